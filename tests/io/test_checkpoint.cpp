// Checkpoints: round trips (model, head, optimizer state, identities, meta), atomic writes, and
// clear errors for truncated or corrupt files, missing tensors and wrong shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "h5/file.h"
#include "io/checkpoint.h"
#include "layers/layers.h"
#include "optim/optimizer.h"
#include "support/file_size_limit.h"
#include "support/temp_dir.h"
#include "util/error.h"
#include "util/file.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<Sequential> small_model(uint64_t seed, int64_t width = 4) {
  Rng rng(seed);
  auto m = std::make_shared<Sequential>();
  m->add(std::make_shared<Conv2d>(Conv2dConfig{.in = 3, .out = width, .kernel = 3, .pad = 1}, rng));
  m->add(std::make_shared<BatchNorm>(BatchNormConfig{.channels = width}));
  m->add(std::make_shared<PReLU>(width));
  return m;
}

// A checkpoint holding only `model`, for backbone "ir18".
void save_model_only(const std::string& path, const Module& model) {
  CheckpointContents contents;
  contents.meta.backbone = "ir18";
  contents.model = &model;
  save_checkpoint(path, contents);
}

TEST(Checkpoint, round_trip_restores_everything) {
  TempDir dir;
  auto model = small_model(1), head = small_model(2, 2);
  // Make the BN running stats non-trivial, and give the optimizer some momentum.
  Var x(Tensor::full({2, 3, 5, 5}, 0.5f));
  backward(sum(model->forward(x)));
  std::vector<ParamGroup> groups{{model->named_parameters(), 1.0f, 0.0f}};
  Sgd opt(groups, 0.9, false);
  opt.step(0.1);
  const std::string path = dir.path("round_trip.h5");
  CheckpointMeta meta;
  meta.backbone = "ir18";
  meta.embedding_size = 128;
  meta.width = 0.25;
  meta.step = 1234;
  meta.epoch = 3;
  meta.head = "arcface";
  meta.config = "head:\n  type: arcface\n";
  CheckpointContents contents;
  contents.meta = meta;
  contents.model = model.get();
  contents.head = head.get();
  contents.optimizer = &opt;
  contents.identities = {"alice", "bob"};
  save_checkpoint(path, contents);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  auto model2 = small_model(7), head2 = small_model(8, 2);
  std::vector<ParamGroup> groups2{{model2->named_parameters(), 1.0f, 0.0f}};
  Sgd opt2(groups2, 0.9, false);
  std::vector<std::string> ids;
  load_checkpoint(path, *model2, head2.get(), &opt2, &ids);
  auto a = model->named_parameters(), b = model2->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t k = 0; k < a[i].second.value().numel(); ++k)
      ASSERT_EQ(a[i].second.value().data()[k], b[i].second.value().data()[k]) << a[i].first;
  auto ba = model->named_buffers(), bb = model2->named_buffers();
  for (size_t i = 0; i < ba.size(); ++i)
    for (int64_t k = 0; k < ba[i].second.numel(); ++k)
      ASSERT_EQ(ba[i].second.data()[k], bb[i].second.data()[k]) << ba[i].first;
  EXPECT_EQ(opt.state().size(), opt2.state().size());
  EXPECT_EQ(ids, (std::vector<std::string>{"alice", "bob"}));
  const CheckpointMeta m = read_checkpoint_meta(path);
  EXPECT_EQ(m.backbone, "ir18");
  EXPECT_EQ(m.embedding_size, 128);
  EXPECT_DOUBLE_EQ(m.width, 0.25);
  EXPECT_EQ(m.step, 1234);
  EXPECT_EQ(m.epoch, 3);
  EXPECT_EQ(m.config, meta.config);
  EXPECT_FALSE(m.verification_threshold.has_value());
  store_verification_threshold(path, 0.3125, "FAR 0.001 on pairs");
  EXPECT_DOUBLE_EQ(*read_checkpoint_meta(path).verification_threshold, 0.3125);
  EXPECT_EQ(read_checkpoint_meta(path).verification_threshold_source, "FAR 0.001 on pairs");
}

// Regression (issue "Nothing lost, nothing silently wrong", item 7): a checkpoint with NaN
// weights loaded silently and gave all-NaN embeddings (eval, embed, search exited 0).
TEST(Checkpoint, non_finite_weights_are_refused_naming_the_tensor) {
  TempDir dir;
  auto model = small_model(1);
  auto params = model->named_parameters();
  params[0].second.value().data()[3] = std::numeric_limits<float>::infinity();
  params[0].second.value().data()[5] = std::nanf("");
  const std::string path = dir.path("diverged.h5");
  save_model_only(path, *model);
  auto fresh = small_model(2);
  const std::string message = error_of([&] { load_checkpoint(path, *fresh); });
  EXPECT_NE(message.find(path + ": tensor '/model/" + params[0].first + "' holds 2 NaN/Inf"),
            std::string::npos)
      << message;
}

// Regression (issue "Nothing lost, nothing silently wrong", item 10): /meta step = -5 ended in
// std::bad_alloc. Values no writer produces are refused naming the attribute.
TEST(Checkpoint, out_of_range_meta_values_are_named) {
  TempDir dir;
  auto model = small_model(1);
  const std::string path = dir.path("edited.h5");
  save_model_only(path, *model);
  {
    h5::File f(path, h5::File::Mode::kReadWrite);
    f.write_attr("/meta", "step", int64_t{-5});
  }
  const std::string message = error_of([&] { read_checkpoint_meta(path); });
  EXPECT_NE(message.find(path + ": /meta step = -5 is out of range"), std::string::npos) << message;
}

// Regression (issue "Nothing lost, nothing silently wrong", item 11): a flipped byte inside a
// weight tensor loaded silently as a different number. Checkpoint tensors carry a Fletcher-32
// checksum; the load fails naming the file and the tensor.
TEST(Checkpoint, a_flipped_byte_in_a_weight_fails_the_load) {
  TempDir dir;
  auto model = small_model(1);
  auto params = model->named_parameters();
  Tensor& w = params[0].second.value();
  for (int64_t i = 0; i < w.numel(); ++i) w.data()[i] = 0.123456f;  // a pattern to find on disk
  const std::string path = dir.path("ck.h5");
  save_model_only(path, *model);
  std::string bytes = read_file(path, "checkpoint");
  std::string pattern(16, '\0');
  for (int k = 0; k < 4; ++k) std::memcpy(&pattern[4 * k], &w.data()[0], 4);
  const size_t at = bytes.find(pattern);
  ASSERT_NE(at, std::string::npos) << "the weight pattern is not stored as raw floats";
  bytes[at + 6] ^= 0x10;  // one bit of one float
  write_file_atomically(path, bytes);
  auto fresh = small_model(2);
  const std::string message = error_of([&] { load_checkpoint(path, *fresh); });
  EXPECT_NE(message.find(path + ": cannot read dataset '/model/" + params[0].first + "'"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("checksum"), std::string::npos) << message;
}

// Found by tests/faults/fault_injection.sh on a full tmpfs: HDF5's flush and close errors were not
// checked, so a checkpoint that did not fit was fsync'ed and renamed into place half-written, and
// HDF5's exit handler then crashed (SIGSEGV) closing it again. Now the write fails naming the file,
// nothing is renamed, and the previous checkpoint stays.
TEST(Checkpoint, a_full_disk_fails_the_save_and_keeps_the_previous_file) {
  TempDir dir;
  auto model = small_model(1, 64);  // ~8 kB of weights: more than the limit leaves room for
  const std::string path = dir.path("last.h5");
  save_model_only(path, *small_model(2));
  const std::string before = read_file(path, "checkpoint");
  std::string message;
  {
    const FileSizeLimit full(before.size() + 4096);
    message = error_of([&] { save_model_only(path, *model); });
  }
  EXPECT_NE(message.find("cannot write " + path + ".tmp"), std::string::npos) << message;
  EXPECT_EQ(read_file(path, "checkpoint"), before);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Checkpoint, minimal_model_and_meta_file_is_enough) {
  TempDir dir;
  auto model = small_model(3);
  const std::string path = dir.path("minimal.h5");
  {
    h5::File f(path, h5::File::Mode::kCreate);
    for (const auto& [name, v] : model->named_parameters())
      f.write_tensor("/model/" + name, v.value());
    for (const auto& [name, t] : model->named_buffers()) f.write_tensor("/model/" + name, t);
    f.write_attr("/meta", "backbone", std::string("ir50"));
    f.write_attr("/meta", "embedding_size", int64_t{512});
  }
  auto model2 = small_model(4);
  load_checkpoint(path, *model2);
  EXPECT_EQ(read_checkpoint_meta(path).backbone, "ir50");
  EXPECT_EQ(read_checkpoint_meta(path).input_height, 112);
  // Asking for a head or optimizer state that is not there is an error naming the file.
  auto head = small_model(5, 2);
  EXPECT_NE(error_of([&] { load_checkpoint(path, *model2, head.get()); }).find(path),
            std::string::npos);
}

// A head without parameters or buffers (triplet) stores nothing; its run must still resume.
TEST(Checkpoint, a_head_without_tensors_loads_back) {
  TempDir dir;
  auto model = small_model(1);
  Sequential head;
  CheckpointContents contents;
  contents.meta.backbone = "ir18";
  contents.meta.head = "triplet";
  contents.model = model.get();
  contents.head = &head;
  const std::string path = dir.path("stateless_head.h5");
  save_checkpoint(path, contents);
  auto model2 = small_model(2);
  Sequential head2;
  load_checkpoint(path, *model2, &head2);
  // The model's tensors came back (model2 was initialised from another seed) and the head asked
  // for nothing; a model with a head that has tensors is refused for this file.
  const auto a = model->named_parameters(), b = model2->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor &x = a[i].second.value(), &y = b[i].second.value();
    ASSERT_EQ(x.numel(), y.numel());
    for (int64_t j = 0; j < x.numel(); ++j) ASSERT_EQ(x.data()[j], y.data()[j]) << a[i].first;
  }
  EXPECT_EQ(read_checkpoint_meta(path).head, "triplet");
  auto head_with_tensors = small_model(3, 2);
  EXPECT_NE(error_of([&] {
              load_checkpoint(path, *model2, head_with_tensors.get());
            }).find("holds no head"),
            std::string::npos);
}

TEST(Checkpoint, truncated_and_corrupt_files_give_clear_errors) {
  TempDir dir;
  auto model = small_model(1);
  const std::string path = dir.path("good.h5"), cut = dir.path("truncated.h5"),
                    junk = dir.path("junk.h5");
  save_model_only(path, *model);
  const auto size = fs::file_size(path);
  fs::copy_file(path, cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, size / 2);
  std::ofstream(junk) << "definitely not HDF5";
  auto m2 = small_model(2);
  for (const std::string& bad : {cut, junk, dir.path("missing.h5")}) {
    const std::string e = error_of([&] { load_checkpoint(bad, *m2); });
    EXPECT_NE(e.find(bad), std::string::npos) << "no file name in: " << e;
  }
}

TEST(Checkpoint, missing_tensor_and_wrong_shape_are_named) {
  TempDir dir;
  auto model = small_model(1);
  const std::string path = dir.path("shapes.h5");
  save_model_only(path, *model);
  auto wider = small_model(1, 6);
  std::string e = error_of([&] { load_checkpoint(path, *wider); });
  EXPECT_NE(e.find("/model/0.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("(6, 3, 3, 3)"), std::string::npos) << e;
  EXPECT_NE(e.find("(4, 3, 3, 3)"), std::string::npos) << e;
  // A model with one more layer than the file: the missing tensor is named.
  auto deeper = small_model(1);
  Rng rng(1);
  deeper->add(std::make_shared<Conv2d>(Conv2dConfig{.in = 4, .out = 4, .kernel = 1}, rng));
  e = error_of([&] { load_checkpoint(path, *deeper); });
  EXPECT_NE(e.find("missing tensor '/model/3.weight'"), std::string::npos) << e;
  // The failed loads left the model untouched (nothing is copied before everything is checked).
  EXPECT_NE(deeper->named_parameters()[0].second.value().data()[0], 0.0f);
}

}  // namespace
}  // namespace mf::test
