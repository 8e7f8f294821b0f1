// 1:1 and 1:N building blocks (eval/search.h): cosine scores, top-K ranking, identities, the
// embeddings file format of `marginface embed`, and embedding in-memory crops (embed_batch) and
// raw photos (embed_files with an aligner) consistently with embed_images — on a tiny randomly
// initialised IResNet-18 saved and loaded as a checkpoint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/image.h"
#include "eval/search.h"
#include "h5/file.h"
#include "io/checkpoint.h"
#include "layers/backbones/registry.h"
#include "support/checkpoints.h"
#include "support/faces.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"
#include "util/params.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

// ir18 at width 0.0625 with 16-d embeddings, randomly initialised, saved as a checkpoint and
// loaded back into a fresh network (as `compare` and `search` do).
std::unique_ptr<Backbone> tiny_backbone(const std::string& checkpoint) {
  save_tiny_checkpoint(checkpoint, "ir18", 11);
  Params p("test");
  p.set("width", "0.0625");
  p.set("embedding_size", "16");
  Rng other(99);
  auto loaded = builtin_backbones().create("ir18", p, other);
  load_checkpoint(checkpoint, *loaded);
  return loaded;
}

TEST(SearchScores, cosine_similarity_of_known_vectors) {
  const float a[3] = {1, 0, 0}, b[3] = {0, 2, 0}, c[3] = {3, 3, 0}, z[3] = {0, 0, 0};
  EXPECT_DOUBLE_EQ(eval::cosine_similarity(a, a, 3), 1.0);
  EXPECT_DOUBLE_EQ(eval::cosine_similarity(a, b, 3), 0.0);
  EXPECT_NEAR(eval::cosine_similarity(a, c, 3), 1 / std::sqrt(2.0), 1e-15);
  EXPECT_NEAR(eval::cosine_similarity(c, a, 3), eval::cosine_similarity(a, c, 3), 0);
  EXPECT_DOUBLE_EQ(eval::cosine_similarity(a, z, 3), 0.0);
  const float neg[3] = {-2, 0, 0};
  EXPECT_DOUBLE_EQ(eval::cosine_similarity(a, neg, 3), -1.0);
}

TEST(SearchScores, top_matches_ranks_by_cosine_with_ties_to_the_lower_row) {
  // Rows: scores against q = (1, 0): 0.6, 1.0 (scaled), −1, 0.6 (tie with row 0), 0.
  Tensor g = Tensor::empty({5, 2});
  const float rows[10] = {0.6f, 0.8f, 5, 0, -1, 0, 0.6f, -0.8f, 0, 1};
  std::copy(rows, rows + 10, g.data());
  const float q[2] = {1, 0};
  const auto top = eval::top_matches(g, q, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].index, 1);
  EXPECT_NEAR(top[0].score, 1.0, 1e-12);
  EXPECT_EQ(top[1].index, 0);
  EXPECT_EQ(top[2].index, 3);
  EXPECT_NEAR(top[1].score, top[2].score, 1e-7);
  EXPECT_EQ(eval::top_matches(g, q, 100).size(), 5u);
  EXPECT_EQ(eval::top_matches(g, q, 100).back().index, 2);
  EXPECT_THROW(eval::top_matches(g, q, 0), Error);
}

TEST(SearchScores, identity_is_the_parent_folder) {
  EXPECT_EQ(eval::identity_of("gallery/Alan_Greenspan/Alan_Greenspan_0001.jpg"), "Alan_Greenspan");
  EXPECT_EQ(eval::identity_of("/abs/path/7201/001085.jpg"), "7201");
  EXPECT_EQ(eval::identity_of("Bob/x.png"), "Bob");
  EXPECT_EQ(eval::identity_of("x.png"), "");
}

TEST(SearchFiles, lists_images_recursively_sorted) {
  TempDir tmp;
  write_face(tmp.path("g/b/2.png"), 1);
  write_face(tmp.path("g/a/1.png"), 2);
  write_face(tmp.path("g/b/1.png"), 3);
  std::ofstream(tmp.path("g/a/notes.txt")) << "x";
  const auto files = eval::list_image_files(tmp.path("g"));
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], tmp.path("g/a/1.png"));
  EXPECT_EQ(files[1], tmp.path("g/b/1.png"));
  EXPECT_EQ(files[2], tmp.path("g/b/2.png"));
  EXPECT_THROW(eval::list_image_files(tmp.path("missing")), Error);
}

TEST(SearchFiles, reads_the_embed_command_format_and_rejects_malformed_files) {
  TempDir tmp;
  const float rows[6] = {1, 0, 0, 0, 1, 0};
  {
    h5::File f(tmp.path("emb.h5"), h5::File::Mode::kCreate);
    f.write_floats("/embeddings", rows, {2, 3});
    f.write_strings("/paths", {"alice/1.jpg", "bob/1.jpg"});
    f.write_attr("/meta", "flip", std::string("sum"));
  }
  const eval::Gallery g = eval::read_embeddings_file(tmp.path("emb.h5"));
  EXPECT_EQ(g.embeddings.shape(), Shape({2, 3}));
  EXPECT_EQ(g.embeddings.data()[4], 1.0f);
  EXPECT_EQ(g.paths, (std::vector<std::string>{"alice/1.jpg", "bob/1.jpg"}));
  EXPECT_EQ(g.flip, "sum");

  {
    h5::File f(tmp.path("bad.h5"), h5::File::Mode::kCreate);
    f.write_floats("/embeddings", rows, {2, 3});
    f.write_strings("/paths", {"only_one.jpg"});
  }
  {
    h5::File f(tmp.path("nopaths.h5"), h5::File::Mode::kCreate);
    f.write_floats("/embeddings", rows, {2, 3});
  }
  {  // Regression (issue "Nothing lost, nothing silently wrong", item 7): NaN rows gave nan scores.
    h5::File f(tmp.path("nan.h5"), h5::File::Mode::kCreate);
    std::vector<float> with_nan(rows, rows + 6);
    with_nan[4] = std::nanf("");
    f.write_floats("/embeddings", with_nan.data(), {2, 3});
    f.write_strings("/paths", {"a.jpg", "b.jpg"});
  }
  EXPECT_NE(error_of([&] { eval::read_embeddings_file(tmp.path("nan.h5")); }).find("1 NaN/Inf"),
            std::string::npos);
  for (const std::string name : {"bad.h5", "nopaths.h5", "missing.h5"}) {
    try {
      eval::read_embeddings_file(tmp.path(name));
      ADD_FAILURE() << "no error for " << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(tmp.path(name)), std::string::npos) << e.what();
    }
  }
}

TEST(SearchEmbed, tiny_checkpoint_self_similarity_symmetry_and_top1) {
  TempDir tmp;
  auto net = tiny_backbone(tmp.path("ck.h5"));
  std::vector<std::string> paths;
  for (unsigned i = 0; i < 6; ++i)
    paths.push_back(write_face(
        tmp / ("g/id" + std::to_string(i % 3) + "/" + std::to_string(i) + ".png"), 100 + i));
  eval::EmbedOptions options;
  options.batch_size = 4;  // two batches
  const eval::Embeddings e = eval::embed_files(*net, paths, options);
  ASSERT_EQ(e.num_failed(), 0);
  const int64_t D = e.rows.dim(1);
  ASSERT_EQ(D, 16);
  const float* r = e.rows.data();
  double max_other = -1;
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_NEAR(eval::cosine_similarity(r + i * D, r + i * D, D), 1.0, 1e-6);
    for (int64_t j = 0; j < 6; ++j) {
      EXPECT_EQ(eval::cosine_similarity(r + i * D, r + j * D, D),
                eval::cosine_similarity(r + j * D, r + i * D, D));
      if (i != j) max_other = std::max(max_other, eval::cosine_similarity(r + i * D, r + j * D, D));
    }
    const auto top = eval::top_matches(e.rows, r + i * D, 3);
    EXPECT_EQ(top[0].index, i);
    EXPECT_NEAR(top[0].score, 1.0, 1e-6);
  }
  // A query embedded on its own (another batch composition) finds itself first.
  for (int64_t i : {0, 5}) {
    const eval::Embeddings q = eval::embed_files(*net, {paths[i]}, options);
    const auto top = eval::top_matches(e.rows, q.rows.data(), 3);
    EXPECT_EQ(top[0].index, i);
    EXPECT_NEAR(top[0].score, 1.0, 1e-5);
  }
  std::printf("[ tiny ir18 ] highest cosine between different images: %.4f\n", max_other);
  EXPECT_LT(max_other, 0.9999) << "distinct images must not embed identically";

  // embed_batch on the same pixels equals embed_images, row for row, for every flip mode.
  Tensor batch = Tensor::empty({6, 3, 112, 112});
  for (int i = 0; i < 6; ++i)
    load_face_into(paths[i], 112, 112, batch.data() + int64_t(i) * 3 * 112 * 112);
  for (const std::string flip : {"off", "sum", "concat"}) {
    options.flip = flip;
    const Tensor a = eval::embed_batch(*net, batch, options);
    const eval::Embeddings b = eval::embed_images(*net, paths, options);
    EXPECT_TRUE(tensors_close(a, b.rows, 1e-6, "embed_batch vs embed_images, flip " + flip));
  }
  EXPECT_THROW(eval::embed_batch(*net, Tensor::zeros({1, 3, 112, 96}), options), Error);
}

TEST(SearchEmbed, unreadable_files_are_marked_failed_with_their_name) {
  TempDir tmp;
  auto net = tiny_backbone(tmp.path("ck.h5"));
  const std::string good = write_face(tmp.path("a/1.png"), 1);
  std::ofstream(tmp.path("a/bad.png")) << "not a png";
  const eval::Embeddings e = eval::embed_files(*net, {good, tmp.path("a/bad.png")}, {});
  ASSERT_EQ(e.failed, (std::vector<bool>{false, true}));
  ASSERT_EQ(e.errors.size(), 1u);
  EXPECT_NE(e.errors[0].find(tmp.path("a/bad.png")), std::string::npos) << e.errors[0];
}

TEST(SearchEmbed, raw_photos_through_the_aligner_equal_their_aligned_crops) {
  const std::string model = shared_data_dir() + "/models/face_detection_yunet_2022mar.onnx";
  const std::string raw = shared_data_dir() + "/raw/lfw/Alan_Greenspan";
  if (!fs::is_regular_file(model) || !fs::is_directory(raw))
    GTEST_SKIP() << "../shared/data (raw LFW samples, YuNet model) not found at "
                 << shared_data_dir();
  TempDir tmp;
  auto net = tiny_backbone(tmp.path("ck.h5"));
  AlignOptions align;
  align.pick = FacePick::kLargest;
  align.center_crop_fallback = false;
  FaceAligner aligner(model, align);
  const std::vector<std::string> files = eval::list_image_files(raw);
  ASSERT_GE(files.size(), 3u);
  eval::EmbedOptions options;
  const eval::Embeddings e = eval::embed_files(*net, files, options, &aligner);
  ASSERT_EQ(e.num_failed(), 0) << e.errors.front();
  Tensor batch = Tensor::empty({int64_t(files.size()), 3, 112, 112});
  for (size_t i = 0; i < files.size(); ++i)
    bgr_to_face(aligner.align(read_image(files[i])).image,
                batch.data() + int64_t(i) * 3 * 112 * 112);
  EXPECT_TRUE(tensors_close(e.rows, eval::embed_batch(*net, batch, options), 1e-6,
                            "embed_files(aligner) vs embed_batch(aligned crops)"));
  // A photo without a face is a failure naming it (no centre-crop guess in this pipeline).
  const std::string noface = shared_data_dir() + "/raw/noface/gradient_texture.jpg";
  const eval::Embeddings n = eval::embed_files(*net, {noface}, options, &aligner);
  ASSERT_EQ(n.num_failed(), 1);
  EXPECT_NE(n.errors[0].find("no face found in " + noface), std::string::npos) << n.errors[0];
  // The aligner must crop what the backbone takes.
  align.width = 96;
  FaceAligner narrow(model, align);
  EXPECT_THROW(eval::embed_files(*net, files, options, &narrow), Error);
}

}  // namespace
}  // namespace mf::test

namespace mf::test {
namespace {

// Identities a, b, c, d: the probes of a and b are copies of their gallery images (cosine 1, so
// rank 1 by construction); c's probe is a different image; d has one image (a distractor only).
TEST(Identification, gallery_is_the_first_image_and_copies_rank_first) {
  TempDir tmp;
  auto net = tiny_backbone(tmp.path("ck.h5"));
  write_face(tmp.path("ids/a/1.png"), 1);
  fs::copy_file(tmp.path("ids/a/1.png"), tmp.path("ids/a/2.png"));
  write_face(tmp.path("ids/b/1.png"), 2);
  fs::copy_file(tmp.path("ids/b/1.png"), tmp.path("ids/b/2.png"));
  fs::copy_file(tmp.path("ids/b/1.png"), tmp.path("ids/b/3.png"));
  write_face(tmp.path("ids/c/1.png"), 3);
  write_face(tmp.path("ids/c/2.png"), 4);
  write_face(tmp.path("ids/d/1.png"), 5);
  eval::EmbedOptions options;
  const eval::IdentificationResult r = eval::identify(*net, tmp.path("ids"), options);
  EXPECT_EQ(r.gallery, 4);
  EXPECT_EQ(r.probes, 4);
  // 3 probes are exact copies → rank 1; c/2 with 4 gallery entries is always within rank 5.
  EXPECT_GE(r.rank1, 0.75);
  EXPECT_LE(r.rank1, 1.0);
  EXPECT_DOUBLE_EQ(r.rank5, 1.0);
  EXPECT_THROW(eval::identify(*net, tmp.path("ids/d"), options), Error);  // no probes at all
  // Regression (issue "Nothing lost, nothing silently wrong", item 9): an unreadable image was
  // left out silently. It is an error naming it, unless skipping is asked for.
  std::ofstream(tmp.path("ids/c/3.png")) << "not a png";
  const std::string message = error_of([&] { eval::identify(*net, tmp.path("ids"), options); });
  EXPECT_NE(message.find("1 unreadable images under"), std::string::npos) << message;
  EXPECT_NE(message.find("ids/c/3.png"), std::string::npos) << message;
  const eval::IdentificationResult skipped = eval::identify(*net, tmp.path("ids"), options, true);
  EXPECT_EQ(skipped.failed, 1);
  EXPECT_EQ(skipped.probes, 4);
}

}  // namespace
}  // namespace mf::test
