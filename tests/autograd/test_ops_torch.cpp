// Every op in autograd/ops.h against PyTorch (tests/fixtures/ops.h5, written by
// scripts/make_op_fixtures.py from float32 inputs with float64 arithmetic). Each test builds leaf
// Vars from one fixture group, runs the op, back-propagates the stored upstream gradient dy and
// compares the output and every input gradient per tensor: max |ours − ref| ≤ 1e-5 · max |ref|.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "autograd/margin_ops.h"
#include "autograd/ops.h"
#include "h5/file.h"
#include "support/fixtures.h"
#include "tensor/kernels/elementwise.h"
#include "tensor/rng.h"

namespace mf {
namespace {

constexpr char kFile[] = "ops.h5";
constexpr char kSuite[] = "OpsTorch";
constexpr double kRtol = 1e-5;

// One fixture group.
class Case {
 public:
  explicit Case(const std::string& name) : name_(name), fixture_(kFile, "/" + name) {}

  Tensor tensor(const std::string& key) const { return fixture_.tensor(key); }
  bool has(const std::string& key) const { return fixture_.has(key); }
  Var leaf(const std::string& key, bool requires_grad = true) const {
    return Var(tensor(key), requires_grad);
  }
  std::vector<int64_t> ints(const std::string& key) const { return fixture_.ints(key); }
  Labels labels() const { return ints("labels"); }
  int64_t attr_int(const std::string& key) const { return fixture_.attr_int(key); }
  float attr(const std::string& key) const { return static_cast<float>(fixture_.attr(key)); }
  std::vector<int64_t> attr_ints(const std::string& key) const {
    return h5::File(test::fixture_path(kFile), h5::File::Mode::kRead)
        .read_attr_ints("/" + name_, key);
  }

  // `ours` against the reference dataset `key`: shape and values.
  void expect_close(const Tensor& ours, const std::string& key, double rtol = kRtol) const {
    const Tensor ref = tensor(key);
    ASSERT_TRUE(ours.defined()) << name_ << ": nothing computed for " << key;
    EXPECT_EQ(ours.shape(), ref.shape()) << name_ << " " << key;
    EXPECT_TRUE(test::tensors_close(ours, ref, rtol, name_ + " " + key));
  }
  // Compares the output with y, then runs the backward pass from it seeded with dy.
  void forward_backward(const Var& y) const {
    expect_close(y.value(), "y");
    backward(y, tensor("dy").reshape(y.shape()));
  }
  // The gradient accumulated in v against d<key>.
  void expect_grad(const Var& v, const std::string& key, double rtol = kRtol) const {
    expect_close(v.grad(), "d" + key, rtol);
  }

 private:
  std::string name_;
  test::Fixture fixture_;
};

// ---- products ----

void check_conv2d(const std::string& name) {
  Case c(name);
  const bool has_bias = c.attr_int("bias") != 0;
  Var x = c.leaf("x"), w = c.leaf("w"), b = has_bias ? c.leaf("b") : Var();
  const Conv2dOptions options{
      .stride = c.attr_int("stride"), .pad = c.attr_int("pad"), .groups = c.attr_int("groups")};
  c.forward_backward(conv2d(x, w, b, options));
  c.expect_grad(x, "x");
  c.expect_grad(w, "w");
  if (has_bias) c.expect_grad(b, "b");
}

TEST(OpsTorch, conv2d_stride2_pad1_torch) {
  check_conv2d("conv2d_stride2_pad1");
}
TEST(OpsTorch, conv2d_groups3_torch) {
  check_conv2d("conv2d_groups3");
}
TEST(OpsTorch, conv2d_depthwise_torch) {
  check_conv2d("conv2d_depthwise");
}
TEST(OpsTorch, conv2d_depthwise_stride2_nobias_torch) {
  check_conv2d("conv2d_depthwise_stride2_nobias");
}
TEST(OpsTorch, conv2d_pointwise_torch) {
  check_conv2d("conv2d_pointwise");
}
TEST(OpsTorch, conv2d_rect_nobias_torch) {
  check_conv2d("conv2d_rect_nobias");
}

void check_linear(const std::string& name) {
  Case c(name);
  const bool has_bias = c.attr_int("bias") != 0;
  Var x = c.leaf("x"), w = c.leaf("w"), b = has_bias ? c.leaf("b") : Var();
  c.forward_backward(linear(x, w, b));
  c.expect_grad(x, "x");
  c.expect_grad(w, "w");
  if (has_bias) c.expect_grad(b, "b");
}

TEST(OpsTorch, linear_bias_torch) {
  check_linear("linear_bias");
}
TEST(OpsTorch, linear_nobias_torch) {
  check_linear("linear_nobias");
}

void check_matmul(const std::string& name) {
  Case c(name);
  Var a = c.leaf("a"), b = c.leaf("b");
  c.forward_backward(matmul(a, b, c.attr_int("trans_a") != 0, c.attr_int("trans_b") != 0));
  c.expect_grad(a, "a");
  c.expect_grad(b, "b");
}

TEST(OpsTorch, matmul_nn_torch) {
  check_matmul("matmul_nn");
}
TEST(OpsTorch, matmul_tn_torch) {
  check_matmul("matmul_tn");
}
TEST(OpsTorch, matmul_nt_torch) {
  check_matmul("matmul_nt");
}
TEST(OpsTorch, matmul_tt_torch) {
  check_matmul("matmul_tt");
}

// ---- normalization and activations ----

// gamma and beta get a gradient when the fixture has one (a frozen scale has none); running
// statistics are compared after the call (updated in training mode, untouched in eval mode).
void check_batch_norm(const std::string& name) {
  Case c(name);
  const bool affine = c.attr_int("affine") != 0;
  Var x = c.leaf("x");
  Var gamma = affine ? c.leaf("gamma", c.has("dgamma")) : Var();
  Var beta = affine ? c.leaf("beta", c.has("dbeta")) : Var();
  Tensor running_mean = c.tensor("running_mean"), running_var = c.tensor("running_var");
  const BatchNormOptions options{.training = c.attr_int("training") != 0,
                                 .momentum = c.attr("momentum"),
                                 .eps = c.attr("eps")};
  c.forward_backward(batch_norm(x, gamma, beta, running_mean, running_var, options));
  c.expect_grad(x, "x");
  if (affine) {
    if (c.has("dgamma"))
      c.expect_grad(gamma, "gamma");
    else
      EXPECT_FALSE(gamma.grad().defined()) << name << ": a frozen gamma received a gradient";
    c.expect_grad(beta, "beta");
  }
  c.expect_close(running_mean, "running_mean_after");
  c.expect_close(running_var, "running_var_after");
}

TEST(OpsTorch, batch_norm2d_train_torch) {
  check_batch_norm("batch_norm2d_train");
}
TEST(OpsTorch, batch_norm2d_eval_torch) {
  check_batch_norm("batch_norm2d_eval");
}
TEST(OpsTorch, batch_norm1d_train_torch) {
  check_batch_norm("batch_norm1d_train");
}
TEST(OpsTorch, batch_norm2d_frozen_scale_torch) {
  check_batch_norm("batch_norm2d_frozen_scale");
}
TEST(OpsTorch, batch_norm2d_no_affine_torch) {
  check_batch_norm("batch_norm2d_no_affine");
}

void check_prelu(const std::string& name) {
  Case c(name);
  Var x = c.leaf("x"), alpha = c.leaf("alpha");
  c.forward_backward(prelu(x, alpha));
  c.expect_grad(x, "x");
  c.expect_grad(alpha, "alpha");
}

TEST(OpsTorch, prelu_torch) {
  check_prelu("prelu");
}
TEST(OpsTorch, prelu_2d_torch) {
  check_prelu("prelu_2d");
}

// y = op(x) with one differentiable input x.
void check_unary(const std::string& name, const std::function<Var(const Var&, const Case&)>& op) {
  Case c(name);
  Var x = c.leaf("x");
  c.forward_backward(op(x, c));
  c.expect_grad(x, "x");
}

TEST(OpsTorch, relu_torch) {
  check_unary("relu", [](const Var& x, const Case&) { return relu(x); });
}
TEST(OpsTorch, relu_at_zero_torch) {
  check_unary("relu_at_zero", [](const Var& x, const Case&) { return relu(x); });
}
TEST(OpsTorch, sigmoid_torch) {
  check_unary("sigmoid", [](const Var& x, const Case&) { return sigmoid(x); });
}

// ---- elementwise with broadcasting ----

void check_binary(const std::string& name, Var (*op)(const Var&, const Var&)) {
  Case c(name);
  Var a = c.leaf("a"), b = c.leaf("b");
  c.forward_backward(op(a, b));
  c.expect_grad(a, "a");
  c.expect_grad(b, "b");
}

TEST(OpsTorch, add_same_torch) {
  check_binary("add_same", add);
}
TEST(OpsTorch, add_bcast_c_torch) {
  check_binary("add_bcast_c", add);
}
TEST(OpsTorch, add_bcast_swap_torch) {
  check_binary("add_bcast_swap", add);
}
TEST(OpsTorch, sub_same_torch) {
  check_binary("sub_same", sub);
}
TEST(OpsTorch, sub_bcast_torch) {
  check_binary("sub_bcast", sub);
}
TEST(OpsTorch, mul_same_torch) {
  check_binary("mul_same", mul);
}
TEST(OpsTorch, mul_bcast_nc_torch) {
  check_binary("mul_bcast_nc", mul);
}
TEST(OpsTorch, mul_bcast_swap_torch) {
  check_binary("mul_bcast_swap", mul);
}
TEST(OpsTorch, mul_bcast_scalar_torch) {
  check_binary("mul_bcast_scalar", mul);
}

TEST(OpsTorch, affine_torch) {
  check_unary("affine", [](const Var& x, const Case& c) {
    return affine(x, c.attr("alpha"), c.attr("beta"));
  });
}
TEST(OpsTorch, clamp_torch) {
  check_unary("clamp",
              [](const Var& x, const Case& c) { return clamp(x, c.attr("lo"), c.attr("hi")); });
}
TEST(OpsTorch, clamp_at_bounds_torch) {
  check_unary("clamp_at_bounds",
              [](const Var& x, const Case& c) { return clamp(x, c.attr("lo"), c.attr("hi")); });
}
TEST(OpsTorch, cos_torch) {
  check_unary("cos", [](const Var& x, const Case&) { return cos(x); });
}
TEST(OpsTorch, acos_torch) {
  check_unary("acos", [](const Var& x, const Case&) { return acos(x); });
}
TEST(OpsTorch, sqrt_torch) {
  check_unary("sqrt", [](const Var& x, const Case&) { return sqrt(x); });
}
TEST(OpsTorch, reciprocal_torch) {
  check_unary("reciprocal", [](const Var& x, const Case&) { return reciprocal(x); });
}
TEST(OpsTorch, group_max_torch) {
  check_unary("group_max",
              [](const Var& x, const Case& c) { return group_max(x, c.attr_int("groups")); });
}

// ---- pooling, dropout, shapes ----

TEST(OpsTorch, global_avg_pool_torch) {
  check_unary("global_avg_pool", [](const Var& x, const Case&) { return global_avg_pool(x); });
}

Var max_pool_from_attrs(const Var& x, const Case& c) {
  return max_pool2d(x, c.attr_int("kernel"), c.attr_int("stride"), c.attr_int("pad"));
}
TEST(OpsTorch, max_pool2d_k3_s2_p1_torch) {
  check_unary("max_pool2d_k3_s2_p1", max_pool_from_attrs);
}
TEST(OpsTorch, max_pool2d_k2_s2_p0_torch) {
  check_unary("max_pool2d_k2_s2_p0", max_pool_from_attrs);
}
TEST(OpsTorch, max_pool2d_ties_torch) {
  check_unary("max_pool2d_ties", max_pool_from_attrs);
}

// The op draws its mask from an Rng, so torch's mask (stored) is replayed through the kernels the
// op runs. The op itself is then checked for using one mask in both passes: its output reveals
// the mask (x has no zeros), and its gradient must follow the same mask.
TEST(OpsTorch, dropout_torch) {
  Case c("dropout");
  const Tensor x = c.tensor("x"), dy = c.tensor("dy");
  const float p = c.attr("p");
  const int64_t n = x.numel();
  const std::vector<int64_t> stored = c.ints("mask");
  ASSERT_EQ(static_cast<int64_t>(stored.size()), n);
  const std::vector<uint8_t> mask(stored.begin(), stored.end());
  Tensor y = Tensor::empty(x.shape()), dx = Tensor::zeros(x.shape());
  kernels::dropout_forward<float>(y.data(), x.data(), mask.data(), p, n);
  kernels::dropout_backward<float>(dx.data(), dy.data(), mask.data(), p, n);
  c.expect_close(y, "y");
  c.expect_close(dx, "dx");

  Rng rng(7);
  Var xv(x, true);
  Var yv = dropout(xv, p, true, rng);
  backward(yv, dy);
  std::vector<uint8_t> drawn(n);
  for (int64_t i = 0; i < n; ++i) drawn[i] = yv.value().data()[i] != 0.0f;
  Tensor y_replay = Tensor::empty(x.shape()), dx_replay = Tensor::zeros(x.shape());
  kernels::dropout_forward<float>(y_replay.data(), x.data(), drawn.data(), p, n);
  kernels::dropout_backward<float>(dx_replay.data(), dy.data(), drawn.data(), p, n);
  EXPECT_TRUE(test::tensors_close(yv.value(), y_replay, 0.0, "dropout op y"));
  EXPECT_TRUE(test::tensors_close(xv.grad(), dx_replay, 0.0, "dropout op dx"));
}

TEST(OpsTorch, dropout_eval_torch) {
  check_unary("dropout_eval", [](const Var& x, const Case& c) {
    Rng rng(7);
    return dropout(x, c.attr("p"), c.attr_int("training") != 0, rng);
  });
}

TEST(OpsTorch, reshape_torch) {
  check_unary("reshape",
              [](const Var& x, const Case& c) { return reshape(x, Shape(c.attr_ints("shape"))); });
}
TEST(OpsTorch, flatten_torch) {
  check_unary("flatten", [](const Var& x, const Case&) { return flatten(x); });
}

// ---- rows, reductions, losses ----

// Rows [begin, end) of a matrix, copied.
Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  const int64_t D = t.dim(1);
  std::vector<float> values(t.data() + begin * D, t.data() + end * D);
  return Tensor::from({end - begin, D}, values);
}

// The fixture's tiny row (norm below eps) has a gradient dy / eps ≈ 1e12, which would swamp the
// per-tensor scale of the other rows, so each part of dx is compared on its own.
TEST(OpsTorch, l2_normalize_torch) {
  Case c("l2_normalize");
  Var x = c.leaf("x");
  c.forward_backward(l2_normalize(x, c.attr("eps")));
  const Tensor ref = c.tensor("dx");
  const Tensor& dx = x.grad();
  ASSERT_TRUE(dx.defined());
  ASSERT_EQ(dx.shape(), ref.shape());
  const int64_t tiny = c.attr_int("tiny_row"), N = ref.dim(0);
  EXPECT_TRUE(test::tensors_close(rows(dx, 0, tiny), rows(ref, 0, tiny), kRtol, "dx rows before"));
  EXPECT_TRUE(test::tensors_close(rows(dx, tiny, tiny + 1), rows(ref, tiny, tiny + 1), kRtol,
                                  "dx tiny row"));
  EXPECT_TRUE(
      test::tensors_close(rows(dx, tiny + 1, N), rows(ref, tiny + 1, N), kRtol, "dx rows after"));
}

TEST(OpsTorch, log_softmax_torch) {
  check_unary("log_softmax", [](const Var& x, const Case&) { return log_softmax(x); });
}

TEST(OpsTorch, cross_entropy_torch) {
  Case c("cross_entropy");
  Var logits = c.leaf("logits");
  c.forward_backward(cross_entropy(logits, c.labels()));
  c.expect_grad(logits, "logits");
}

TEST(OpsTorch, sum_torch) {
  check_unary("sum", [](const Var& x, const Case&) { return sum(x); });
}
TEST(OpsTorch, mean_torch) {
  check_unary("mean", [](const Var& x, const Case&) { return mean(x); });
}

TEST(OpsTorch, gather_target_torch) {
  Case c("gather_target");
  Var z = c.leaf("z");
  c.forward_backward(gather_target(z, c.labels()));
  c.expect_grad(z, "z");
}

TEST(OpsTorch, replace_target_torch) {
  Case c("replace_target");
  Var z = c.leaf("z"), t = c.leaf("t");
  c.forward_backward(replace_target(z, t, c.labels()));
  c.expect_grad(z, "z");
  c.expect_grad(t, "t");
}

// Every group in the fixture file has a test named <group>_torch in this suite, so a case added to
// scripts/make_op_fixtures.py cannot go unchecked.
TEST(OpsTorch, every_fixture_case_tested_torch) {
  const h5::File file(test::fixture_path(kFile), h5::File::Mode::kRead);
  EXPECT_FALSE(file.read_attr_string("/", "torch_version").empty());
  std::set<std::string> tests;
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit.total_test_suite_count(); ++i) {
    const ::testing::TestSuite& suite = *unit.GetTestSuite(i);
    if (std::string(suite.name()) != kSuite) continue;
    for (int j = 0; j < suite.total_test_count(); ++j) tests.insert(suite.GetTestInfo(j)->name());
  }
  const std::vector<std::string> groups = file.list("/");
  EXPECT_GE(groups.size(), 40u);
  for (const std::string& group : groups)
    EXPECT_TRUE(tests.count(group + "_torch")) << "fixture case /" << group << " has no test";
}

}  // namespace
}  // namespace mf
