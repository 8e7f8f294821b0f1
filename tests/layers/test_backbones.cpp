// Backbones against PyTorch (tests/fixtures/backbones.h5 from scripts/make_backbone_fixtures.py),
// parameter counts and GFLOPs against PyTorch's and insightface's numbers, float gradient checks
// of the IResNet blocks, determinism of the initialisation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <tuple>

#include "io/module_io.h"
#include "layers/backbones/iresnet.h"
#include "layers/backbones/mobilefacenet.h"
#include "layers/backbones/registry.h"
#include "layers/backbones/sphereface.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"
#include "tensor/parallel.h"

namespace mf {
namespace {

using test::tensors_close;

constexpr double kTorchRtol = 1e-4;  // max |ours − ref| ≤ 1e-4 · max |ref|, per tensor

// ---- building a backbone from a fixture case's attributes ----

std::unique_ptr<Backbone> build_from_fixture(const h5::File& f, const std::string& c, Rng& rng) {
  const std::string family = f.read_attr_string(c, "family");
  const int64_t D = f.read_attr_int(c, "embedding_size");
  if (family == "iresnet") {
    IResNetConfig config;
    config.layers = f.read_attr_ints(c, "layers");
    config.width = f.read_attr_double(c, "width");
    config.embedding_size = D;
    config.dropout = static_cast<float>(f.read_attr_double(c, "dropout"));
    config.se_reduction = f.read_attr_int(c, "se_reduction");
    config.input_height = f.read_attr_int(c, "input_height");
    config.input_width = f.read_attr_int(c, "input_width");
    return std::make_unique<IResNet>(config, rng);
  }
  if (family == "mobilefacenet") {
    MobileFaceNetConfig config;
    config.blocks = f.read_attr_ints(c, "blocks");
    config.scale = f.read_attr_int(c, "scale");
    config.width = f.read_attr_double(c, "width");
    config.embedding_size = D;
    config.input_size = f.read_attr_int(c, "input_size");
    return std::make_unique<MobileFaceNet>(config, rng);
  }
  if (family == "sphere") {
    SphereNetConfig config;
    config.units = f.read_attr_ints(c, "units");
    config.width = f.read_attr_double(c, "width");
    config.embedding_size = D;
    config.input_height = f.read_attr_int(c, "input_height");
    config.input_width = f.read_attr_int(c, "input_width");
    return std::make_unique<SphereNet>(config, rng);
  }
  ADD_FAILURE() << "unknown family '" << family << "' in case " << c;
  return nullptr;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, double(std::abs(t.data()[i])));
  return m;
}

// max |ours − ref| / max |ref| (for the report; the assertion is tensors_close).
double relative_error(const Tensor& ours, const Tensor& ref) {
  if (!ours.defined() || ours.numel() != ref.numel()) return INFINITY;
  double diff = 0, scale = 1e-6;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    scale = std::max(scale, double(std::abs(ref.data()[i])));
    const double d = std::abs(double(ours.data()[i]) - double(ref.data()[i]));
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
  }
  return diff / scale;
}

// Runs one fixture case in train and in eval mode and compares output, input gradient, every
// parameter gradient and (train) the updated running statistics with PyTorch's.
void compare_with_torch(const std::string& path, const std::string& c) {
  const h5::File f(path, h5::File::Mode::kRead);
  const Tensor input = f.read_tensor(c + "/input");
  const Tensor upstream = f.read_tensor(c + "/upstream");
  for (const std::string mode : {"train", "eval"}) {
    SCOPED_TRACE(c + " " + mode);
    Rng rng(7);
    auto model = build_from_fixture(f, c, rng);
    ASSERT_TRUE(model);
    load_module(f, c + "/state", *model);
    model->train(mode == "train");
    Var x(input.clone(), /*requires_grad=*/true);
    Var y = model->forward(x);
    backward(y, upstream);

    const std::string m = c + "/" + mode;
    // Full size: PyTorch's float32 gradients are themselves only good to ~1e-2 there (a PReLU
    // input within float32 rounding of 0 takes the other slope, a deep train-mode BatchNorm
    // backward cancels), so the fixture also holds the float64 answer, and the test asks that our
    // worst gradient error against it is within twice the worst error PyTorch's own float32
    // computation makes on this network (or within 1e-4). The output is held to 1e-4 regardless.
    const bool has_exact = f.exists(m + "/exact");
    double worst = 0, worst_ours_exact = 0;
    size_t compared = 0, beyond = 0;
    std::string worst_name;
    auto check = [&](const Tensor& ours, const std::string& name) {
      ++compared;
      const Tensor ref = f.read_tensor(m + "/" + name);
      const double e = relative_error(ours, ref);
      if (e >= worst) {
        worst = e;
        worst_name = name;
      }
      const std::string exact = m + "/exact/" + name;
      if (!has_exact || !f.exists(exact) ||
          name == "output") {  // the output is always held to 1e-4
        EXPECT_TRUE(tensors_close(ours, ref, kTorchRtol, name));
        return;
      }
      beyond += e > kTorchRtol;
      worst_ours_exact = std::max(worst_ours_exact, relative_error(ours, f.read_tensor(exact)));
    };
    check(y.value(), "output");
    const double output_error = worst;
    check(x.grad(), "input_grad");
    // Gradients that vanish in exact arithmetic (flagged by the script from a float64 run; e.g. a
    // bias whose shift a later train-mode BatchNorm removes) are rounding noise on both sides:
    // they must be negligible next to the network's largest gradient.
    double grad_scale = 0;
    for (const auto& name : f.list(m + "/grad"))
      grad_scale = std::max(grad_scale, max_abs(f.read_tensor(m + "/grad/" + name)));
    double worst_zero = 0;
    size_t trainable = 0, zeros = 0;
    for (const auto& [name, v] : model->named_parameters()) {
      const std::string ref_name = m + "/grad/" + name;
      const bool has_ref = f.exists(ref_name);
      if (!v.requires_grad()) {  // IResNet's frozen BatchNorm1d scale: no gradient on either side
        EXPECT_FALSE(has_ref) << name << " is frozen here but trained in PyTorch";
        EXPECT_FALSE(v.grad().defined()) << name << " is frozen but received a gradient";
        continue;
      }
      ++trainable;
      EXPECT_TRUE(has_ref) << name << " has no PyTorch gradient";
      if (!has_ref) continue;
      if (f.has_attr(ref_name, "exactly_zero")) {
        ++zeros;
        ASSERT_TRUE(v.grad().defined()) << name;
        const double ours = max_abs(v.grad());
        EXPECT_LE(ours, kTorchRtol * grad_scale)
            << name << ": a gradient that is zero in exact arithmetic (PyTorch's float32 value "
            << max_abs(f.read_tensor(ref_name)) << ", the largest gradient " << grad_scale << ")";
        worst_zero = std::max(worst_zero, ours / grad_scale);
        continue;
      }
      check(v.grad(), "grad/" + name);
    }
    EXPECT_EQ(trainable, f.list(m + "/grad").size()) << "PyTorch trains a different parameter set";
    if (mode == "train")
      for (const auto& [name, buffer] : model->named_buffers()) check(buffer, "buffers/" + name);
    double worst_torch_exact = 0;  // PyTorch float32 vs float64, every tensor of this mode
    if (has_exact) {
      std::vector<std::string> names{"output", "input_grad"};
      for (const auto& name : f.list(m + "/grad"))
        if (!f.has_attr(m + "/grad/" + name, "exactly_zero")) names.push_back("grad/" + name);
      for (const auto& name : names)
        worst_torch_exact = std::max(
            worst_torch_exact,
            relative_error(f.read_tensor(m + "/" + name), f.read_tensor(m + "/exact/" + name)));
      EXPECT_LE(worst_ours_exact, std::max(kTorchRtol, 2 * worst_torch_exact))
          << "our float32 error exceeds twice PyTorch's on this network";
    }
    std::printf("[ torch    ] %-22s %-5s max |ours − ref| / max |ref| = %.2e (%s)", c.c_str(),
                mode.c_str(), worst, worst_name.c_str());
    if (zeros) std::printf("; %zu exactly-zero gradients ≤ %.1e of the largest", zeros, worst_zero);
    if (has_exact)
      std::printf(
          "\n             output %.1e; %zu of %zu tensors within 1e-4 of PyTorch; vs "
          "float64 the worst is %.2e for ours, %.2e for PyTorch float32",
          output_error, compared - beyond, compared, worst_ours_exact, worst_torch_exact);
    std::printf("\n");
  }
}

// The inference forward (no gradient, eval mode): convolution → BatchNorm → PReLU / + residual
// run as fused convolutions (conv_bn). Its output against PyTorch's eval output, and against our
// separate ops on the same input; the fused ops must actually have run.
void compare_fused_inference_with_torch(const std::string& c) {
  SCOPED_TRACE(c);
  const h5::File f(test::fixture_path("backbones.h5"), h5::File::Mode::kRead);
  Rng rng(7);
  auto model = build_from_fixture(f, c, rng);
  ASSERT_TRUE(model);
  load_module(f, c + "/state", *model);
  model->eval();
  const Tensor input = f.read_tensor(c + "/input");
  NoGradGuard no_grad;
  set_profiling(true);
  profile_reset();
  const Tensor fused = model->forward(Var(input.clone())).value().clone();
  size_t fused_ops = 0;
  for (const OpTiming& t : profile_report())
    if (t.op.rfind("conv2d+bn", 0) == 0) fused_ops += size_t(t.forward_calls);
  set_profiling(false);
  EXPECT_GT(fused_ops, 0u) << "no fused convolution ran";
  set_inference_fusion(false);
  const Tensor separate = model->forward(Var(input.clone())).value().clone();
  set_inference_fusion(true);
  EXPECT_TRUE(tensors_close(fused, f.read_tensor(c + "/eval/output"), kTorchRtol, "output"));
  const double apart = relative_error(fused, separate);
  EXPECT_LE(apart, 1e-6) << "fused and separate ops differ beyond float rounding";
  std::printf("[ fused    ] %-22s %zu fused convolutions; vs PyTorch %.2e, vs separate ops %.2e\n",
              c.c_str(), fused_ops, relative_error(fused, f.read_tensor(c + "/eval/output")),
              apart);
}

TEST(Backbones, fused_inference_matches_torch_and_separate_ops) {
  for (const char* c : {"iresnet", "ir_se", "mobilefacenet", "mobilefacenet_residual"})
    compare_fused_inference_with_torch(c);
}

TEST(Backbones, fused_convolution_refuses_a_gradient_tape) {
  Rng rng(1);
  Tensor x = Tensor::full({1, 2, 4, 4}, 1.0f), w = Tensor::full({3, 2, 3, 3}, 0.5f);
  EXPECT_THROW(conv2d_fused(Var(x, true), Var(w, true), Var(), {.pad = 1}, {}), Error);
}

TEST(Backbones, torch_iresnet) {
  compare_with_torch(test::fixture_path("backbones.h5"), "iresnet");
}
TEST(Backbones, torch_ir_se) {
  compare_with_torch(test::fixture_path("backbones.h5"), "ir_se");
}
TEST(Backbones, torch_mobilefacenet) {
  compare_with_torch(test::fixture_path("backbones.h5"), "mobilefacenet");
  compare_with_torch(test::fixture_path("backbones.h5"), "mobilefacenet_residual");
}
TEST(Backbones, torch_sphere20) {
  compare_with_torch(test::fixture_path("backbones.h5"), "sphere20");
}

// Full-size IResNet-18 and -50 (D = 512, 112×112). The fixture is about 0.8 GB, so it is not
// committed: `/usr/bin/python3 scripts/make_backbone_fixtures.py --fullsize /tmp/fullsize.h5` and
// MF_FULLSIZE_FIXTURE=/tmp/fullsize.h5.
std::string fullsize_fixture() {
  const char* env = std::getenv("MF_FULLSIZE_FIXTURE");
  return env && std::filesystem::exists(env) ? std::string(env) : std::string();
}

TEST(Backbones, torch_fullsize_ir18) {
  const std::string path = fullsize_fixture();
  if (path.empty())
    GTEST_SKIP() << "full-size fixture absent: set MF_FULLSIZE_FIXTURE to a file written by "
                    "`/usr/bin/python3 scripts/make_backbone_fixtures.py --fullsize PATH`";
  compare_with_torch(path, "ir18");
}

TEST(Backbones, torch_fullsize_ir50) {
  const std::string path = fullsize_fixture();
  if (path.empty())
    GTEST_SKIP() << "full-size fixture absent: set MF_FULLSIZE_FIXTURE to a file written by "
                    "`/usr/bin/python3 scripts/make_backbone_fixtures.py --fullsize PATH`";
  compare_with_torch(path, "ir50");
}

// ---- sizes ----

std::unique_ptr<Backbone> build(const std::string& name, uint64_t seed = 1) {
  Rng rng(seed);
  return builtin_backbones().create(name, Params("model"), rng);
}

int64_t stage_sum(const Backbone& b, int64_t StageInfo::*field) {
  int64_t n = 0;
  for (const auto& s : b.stages()) n += s.*field;
  return n;
}

// PyTorch's count (sum of p.numel() over parameters(), the frozen BatchNorm1d scale included)
// for insightface's iresnet18/34/50/100 with num_features = 512, and forward GFLOPs per image
// (2 × multiply-adds of convolutions and fully connected layers) at 112×112 against insightface's
// 2.61 / 4.46 / 6.31 / 12.09 GMACs (arcface_torch's model-zoo table).
TEST(Backbones, param_count_and_gflops_iresnet) {
  const std::tuple<const char*, int64_t, double> expected[] = {{"ir18", 24025600, 5.22},
                                                               {"ir34", 34139328, 8.92},
                                                               {"ir50", 43590848, 12.62},
                                                               {"ir100", 65156160, 24.18}};
  for (const auto& [name, count, gflops] : expected) {
    auto b = build(name);
    EXPECT_EQ(b->num_parameters(), count) << name;
    EXPECT_EQ(stage_sum(*b, &StageInfo::parameters), count) << name << ": stages do not add up";
    EXPECT_NEAR(2e-9 * double(stage_sum(*b, &StageInfo::macs)), gflops, 0.005) << name;
    EXPECT_EQ(b->input_height(), 112);
    EXPECT_EQ(b->input_width(), 112);
    EXPECT_EQ(b->embedding_size(), 512);
  }
}

// PyTorch's counts of the same networks as written by scripts/make_backbone_fixtures.py (the
// insightface `get_mbf(False, 512)` structure and sphere20a without its classifier fc6); mbf's
// 0.44 GMACs as insightface lists it.
TEST(Backbones, param_count_and_gflops_mobilefacenet_sphere20) {
  auto mbf = build("mobilefacenet");
  EXPECT_EQ(mbf->num_parameters(), 2059520);
  EXPECT_EQ(stage_sum(*mbf, &StageInfo::parameters), 2059520);
  EXPECT_NEAR(2e-9 * double(stage_sum(*mbf, &StageInfo::macs)), 0.875, 0.005);
  auto sphere = build("sphere20");
  EXPECT_EQ(sphere->num_parameters(), 22670656);
  EXPECT_EQ(stage_sum(*sphere, &StageInfo::parameters), 22670656);
  EXPECT_EQ(sphere->input_height(), 112);
  EXPECT_EQ(sphere->input_width(), 96);
}

TEST(Backbones, param_count_width_and_embedding) {
  Rng rng(1);
  Params p("model");
  p.set("width", "0.25");
  p.set("embedding_size", "128");
  auto b = builtin_backbones().create("ir18", p, rng);
  // fc: 128·7·7 → 128; all channel counts 16/32/64/128.
  const auto named = b->named_parameters();
  auto shape_of = [&](const std::string& key) {
    for (const auto& [name, v] : named)
      if (name == key) return v.shape();
    return Shape{};
  };
  EXPECT_EQ(shape_of("conv1.weight"), Shape({16, 3, 3, 3}));
  EXPECT_EQ(shape_of("layer4.0.conv2.weight"), Shape({128, 128, 3, 3}));
  EXPECT_EQ(shape_of("layer2.0.downsample.0.weight"), Shape({32, 16, 1, 1}));
  EXPECT_EQ(shape_of("fc.weight"), Shape({128, 128 * 7 * 7}));
  EXPECT_EQ(shape_of("features.weight"), Shape({128}));
}

TEST(Backbones, registry_errors) {
  Rng rng(1);
  Params p("model");
  p.set("dropout", "0.1");
  EXPECT_THROW(builtin_backbones().create("mobilefacenet", p, rng), Error);  // unknown key
  EXPECT_THROW(builtin_backbones().create("ir51", Params("model"), rng), Error);
  Params bad("model");
  bad.set("width", "0");
  EXPECT_THROW(builtin_backbones().create("ir18", bad, rng), Error);
}

TEST(Backbones, forward_rejects_wrong_input_size) {
  Rng rng(1);
  IResNetConfig c;
  c.layers = {1, 1, 1, 1};
  c.width = 0.0625;
  c.embedding_size = 8;
  IResNet net(c, rng);
  Var x(Tensor::zeros({2, 3, 112, 96}));
  try {
    net.forward(x);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(N, 3, 112, 112)"), std::string::npos) << e.what();
  }
}

// ---- initialisation ----

TEST(Backbones, init_deterministic_and_as_reference) {
  auto a = build("ir_se18", 42), b = build("ir_se18", 42), c = build("ir_se18", 43);
  const auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  bool differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor &ta = pa[i].second.value(), &tb = pb[i].second.value(), &tc = pc[i].second.value();
    EXPECT_TRUE(std::equal(ta.data(), ta.data() + ta.numel(), tb.data())) << pa[i].first;
    differs = differs || !std::equal(ta.data(), ta.data() + ta.numel(), tc.data());
  }
  EXPECT_TRUE(differs) << "another seed gave the same weights";
  // iresnet.py: conv N(0, 0.1), BN γ 1 β 0, PReLU 0.25, frozen BatchNorm1d scale 1.
  for (const auto& [name, v] : pa) {
    const Tensor& t = v.value();
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      sum += t.data()[i];
      sq += double(t.data()[i]) * t.data()[i];
    }
    const double mean = sum / t.numel(), sd = std::sqrt(sq / t.numel() - mean * mean);
    if (t.rank() == 4 && t.numel() >= 10000) {
      EXPECT_NEAR(mean, 0.0, 0.01) << name;
      EXPECT_NEAR(sd, 0.1, 0.005) << name;
    } else if (name.ends_with("prelu.weight")) {
      EXPECT_EQ(mean, 0.25) << name;
      EXPECT_EQ(sd, 0.0) << name;
    } else if (name.find("bn") != std::string::npos || name.starts_with("features.")) {
      EXPECT_EQ(mean, name.ends_with(".weight") ? 1.0 : 0.0) << name;
      EXPECT_EQ(sd, 0.0) << name;
    }
  }
}

// ---- float gradient checks of the blocks (all parameters and the input) ----

// The layers read their parameters through public Var members; pointing those at the checker's
// Vars lets check_var_gradients perturb and differentiate every parameter of the block.
struct Rebound {
  std::vector<Var*> slots;
  std::vector<Tensor> values;
  void add(Var& v) {
    slots.push_back(&v);
    values.push_back(v.value().clone());
  }
  void add(BatchNorm& bn) {
    add(bn.weight);
    add(bn.bias);
  }
};

double min_abs(const Var& v) {
  double m = INFINITY;
  for (int64_t i = 0; i < v.value().numel(); ++i)
    m = std::min(m, double(std::abs(v.value().data()[i])));
  return m;
}

// The smallest |value| entering a PReLU or ReLU of the block: the distance from the kinks.
double kink_margin(Layer& layer, const Var& x) {
  NoGradGuard no_grad;
  if (auto* se = dynamic_cast<SqueezeExcite*>(&layer))
    return min_abs(se->fc1->forward(global_avg_pool(x)));
  auto& b = dynamic_cast<IBasicBlock&>(layer);
  Var h = b.bn2->forward(b.conv1->forward(b.bn1->forward(x)));
  double margin = min_abs(h);
  if (b.se) {
    Var o = b.bn3->forward(b.conv2->forward(b.prelu->forward(h)));
    margin = std::min(margin, min_abs(b.se->fc1->forward(global_avg_pool(o))));
  }
  return margin;
}

// Checks the gradients of the input and of every parameter. PReLU and ReLU have a kink at 0; a
// central difference that straddles one is wrong by O(1), so the input is drawn until every
// value entering an activation is at least kMargin from 0; a step of 1e-3 moves those values by
// less than that (weights and BatchNorm scales are O(1)). At that step the float32 rounding of the
// objective (~1e-6) makes the numeric derivative uncertain by ~5e-4, hence a floor of 0.05 on the
// error scale: gradients here are O(0.1–1), so wiring errors still show; the kernels' own checks
// in double cover small missing terms.
::testing::AssertionResult check_block(Layer& block, Rebound& params, const Shape& input_shape) {
  constexpr double kMargin = 5e-3;
  // Thousands of forwards on tiny tensors: one thread, since more only add synchronisation (and
  // stall badly when the machine is oversubscribed).
  const int threads = num_threads();
  set_num_threads(1);
  struct Restore {
    int n;
    ~Restore() { set_num_threads(n); }
  } restore{threads};
  for (size_t i = 0; i < params.slots.size(); ++i) *params.slots[i] = Var(params.values[i]);
  Rng rng(5);
  Tensor x;
  for (int attempt = 0;; ++attempt) {
    if (attempt == 200) return ::testing::AssertionFailure() << "no input clear of the kinks";
    x = test::random_tensor(rng, input_shape);
    if (kink_margin(block, Var(x)) >= kMargin) break;
  }
  std::vector<Tensor> inputs{x};
  inputs.insert(inputs.end(), params.values.begin(), params.values.end());
  test::VarGradCheckOptions options;
  options.eps = 1e-3;
  options.floor = 0.05;
  // Float32 central differences through two train-mode BatchNorms carry ~1e-3 absolute noise
  // (seen: 2.05 % on one entry in the -O1 sanitizer build). This check is for
  // wiring, whose mistakes are O(1); the math of every kernel is checked in double elsewhere.
  options.tolerance = 5e-2;
  options.max_coords = 100;  // per input; the block has ~15 of them
  return test::check_var_gradients(
      [&](const std::vector<Var>& in) {
        for (size_t i = 0; i < params.slots.size(); ++i) *params.slots[i] = in[i + 1];
        return block.forward(in[0]);
      },
      inputs, options);
}

void perturb(Rebound& params, Rng& rng) {
  // Away from γ = 1, β = 0 and the init's small weights so every term of the gradient matters.
  for (Tensor& t : params.values)
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] += float(rng.uniform(-0.3, 0.3));
}

Rebound block_params(IBasicBlock& b) {
  Rebound p;
  p.add(*b.bn1);
  p.add(b.conv1->weight);
  p.add(*b.bn2);
  p.add(b.prelu->weight);
  p.add(b.conv2->weight);
  p.add(*b.bn3);
  if (b.se) {
    p.add(b.se->fc1->weight);
    p.add(b.se->fc1->bias);
    p.add(b.se->fc2->weight);
    p.add(b.se->fc2->bias);
  }
  if (b.downsample) {
    p.add(b.downsample_conv->weight);
    p.add(static_cast<BatchNorm&>(*(*b.downsample)[1]));
  }
  return p;
}

TEST(Backbones, grad_ibasicblock) {
  for (const bool train : {true, false})
    for (const int64_t stride : {1, 2}) {
      SCOPED_TRACE(std::string(train ? "train" : "eval") + " stride " + std::to_string(stride));
      Rng rng(11);
      IBasicBlock block(4, stride == 1 ? 4 : 6, stride, /*se_reduction=*/0, rng);
      block.train(train);
      Rebound p = block_params(block);
      perturb(p, rng);
      EXPECT_TRUE(check_block(block, p, {2, 4, 4, 4}));
    }
}

TEST(Backbones, grad_se_block) {
  for (const bool train : {true, false}) {
    SCOPED_TRACE(train ? "train" : "eval");
    Rng rng(12);
    IBasicBlock block(4, 8, 2, /*se_reduction=*/4, rng);
    block.train(train);
    Rebound p = block_params(block);
    perturb(p, rng);
    EXPECT_TRUE(check_block(block, p, {2, 4, 4, 4}));
  }
  Rng rng(13);
  SqueezeExcite se(8, 2, rng);
  Rebound p;
  p.add(se.fc1->weight);
  p.add(se.fc1->bias);
  p.add(se.fc2->weight);
  p.add(se.fc2->bias);
  perturb(p, rng);
  EXPECT_TRUE(check_block(se, p, {2, 8, 3, 3}));
}

}  // namespace
}  // namespace mf
