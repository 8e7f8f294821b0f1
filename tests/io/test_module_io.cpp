// load_module / save_module: round trip, and errors that name the file and the tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>

#include "io/module_io.h"
#include "layers/backbones/iresnet.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace mf {
namespace {

using test::error_of;

IResNetConfig tiny() {
  IResNetConfig c;
  c.layers = {1, 1, 1, 1};
  c.width = 0.0625;
  c.embedding_size = 8;
  c.input_height = c.input_width = 16;
  return c;
}

std::string temp_file(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

bool same_state(const Module& a, const Module& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  const auto ba = a.named_buffers(), bb = b.named_buffers();
  if (pa.size() != pb.size() || ba.size() != bb.size()) return false;
  auto equal = [](const Tensor& x, const Tensor& y) {
    return x.shape() == y.shape() && std::equal(x.data(), x.data() + x.numel(), y.data());
  };
  for (size_t i = 0; i < pa.size(); ++i)
    if (pa[i].first != pb[i].first || !equal(pa[i].second.value(), pb[i].second.value()))
      return false;
  for (size_t i = 0; i < ba.size(); ++i)
    if (ba[i].first != bb[i].first || !equal(ba[i].second, bb[i].second)) return false;
  return true;
}

TEST(ModuleIo, round_trip) {
  Rng r1(1), r2(2);
  IResNet a(tiny(), r1), b(tiny(), r2);
  {  // a train-mode pass moves the running statistics away from their initial values
    Rng data(3);
    Tensor x = Tensor::empty({2, 3, 16, 16});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = float(data.uniform(-1, 1));
    NoGradGuard no_grad;
    a.forward(Var(x));
  }
  ASSERT_FALSE(same_state(a, b));
  const std::string path = temp_file("module_io_round_trip.h5");
  {
    h5::File f(path, h5::File::Mode::kCreate);
    save_module(f, "model", a);
  }
  const h5::File f(path, h5::File::Mode::kRead);
  EXPECT_TRUE(f.exists("model/layer1.0.downsample.1.running_var"));
  EXPECT_TRUE(f.exists("model/features.weight"));
  load_module(f, "model", b);
  EXPECT_TRUE(same_state(a, b));
}

TEST(ModuleIo, errors_name_file_and_tensor) {
  Rng r1(1), r2(2);
  IResNet a(tiny(), r1);
  const std::string path = temp_file("module_io_errors.h5");
  {
    h5::File f(path, h5::File::Mode::kCreate);
    save_module(f, "model", a);
    f.write_tensor("wrong_shape/x", Tensor::zeros({2}));
  }
  // Missing tensor: a model with SE has tensors the file lacks.
  IResNetConfig se = tiny();
  se.se_reduction = 2;
  IResNet with_se(se, r2);
  Rng again(2);
  const IResNet before(se, again);  // the same weights as with_se
  std::string msg =
      error_of([&] { load_module(h5::File(path, h5::File::Mode::kRead), "model", with_se); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing tensor 'model/layer1.0.se.fc1.weight'"), std::string::npos) << msg;
  EXPECT_TRUE(same_state(with_se, before)) << "a failed load modified the module";

  // Wrong shape: another embedding size.
  IResNetConfig wide = tiny();
  wide.embedding_size = 16;
  IResNet other(wide, r2);
  msg = error_of([&] { load_module(h5::File(path, h5::File::Mode::kRead), "model", other); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("'model/fc.weight' has shape (8, 32), expected (16, 32)"), std::string::npos)
      << msg;

  // Unexpected tensor: the file holds SE weights the plain model lacks.
  {
    h5::File f(path, h5::File::Mode::kReadWrite);
    save_module(f, "se_model", with_se);
  }
  IResNet plain(tiny(), r2);
  msg = error_of([&] { load_module(h5::File(path, h5::File::Mode::kRead), "se_model", plain); });
  EXPECT_NE(msg.find("unexpected tensor 'se_model/layer"), std::string::npos) << msg;
  EXPECT_NO_THROW(load_module(h5::File(path, h5::File::Mode::kRead), "se_model", plain,
                              {.allow_unexpected = true}));

  // Missing group.
  msg = error_of([&] { load_module(h5::File(path, h5::File::Mode::kRead), "nothing", plain); });
  EXPECT_NE(msg.find("no group 'nothing'"), std::string::npos) << msg;
}

TEST(ModuleIo, truncated_file_is_an_error) {
  Rng rng(1);
  IResNet a(tiny(), rng);
  const std::string path = temp_file("module_io_truncated.h5");
  {
    h5::File f(path, h5::File::Mode::kCreate);
    save_module(f, "model", a);
  }
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  const std::string msg = error_of([&] {
    h5::File f(path, h5::File::Mode::kRead);
    load_module(f, "model", a);
  });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

}  // namespace
}  // namespace mf
