// Gradient checks of every kernel in double precision: central differences (step 1e-6) against
// the hand-written backward, relative error below 1e-6 (support/gradcheck.h). Shapes are odd on
// purpose; inputs stay away from each op's kinks.
#include <gtest/gtest.h>

#include <numeric>

#include "support/gradcheck.h"
#include "tensor/kernels/activation.h"
#include "tensor/kernels/batchnorm.h"
#include "tensor/kernels/conv.h"
#include "tensor/kernels/elementwise.h"
#include "tensor/kernels/gemm.h"
#include "tensor/kernels/pool.h"
#include "tensor/kernels/rows.h"

namespace mf::test {
namespace {

using namespace mf::kernels;

int64_t n_of(const Vec& v) {
  return static_cast<int64_t>(v.size());
}

// ---------------------------------------------------------------- conv2d
void check_conv(ConvGeometry g, bool bias, uint64_t seed) {
  Rng rng(seed);
  const int64_t wsize = g.O * g.Cg() * g.kH * g.kW, ysize = g.N * g.O * g.Ho() * g.Wo();
  KernelGradCheck op;
  op.inputs = {random_vec(rng, g.N * g.C * g.H * g.W), random_vec(rng, wsize),
               random_vec(rng, bias ? g.O : 0)};
  op.forward = [=](const std::vector<Vec>& in) {
    Vec y(ysize);
    conv2d_forward<double>(y.data(), in[0].data(), in[1].data(), bias ? in[2].data() : nullptr, g);
    return y;
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
    std::vector<Vec> d{Vec(in[0].size()), Vec(in[1].size()), Vec(in[2].size())};
    conv2d_backward<double>(d[0].data(), d[1].data(), bias ? d[2].data() : nullptr, dy.data(),
                            in[0].data(), in[1].data(), g);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
}

TEST(Conv2dKernel, grad_3x3_stride1_pad1) {
  check_conv({.N = 2, .C = 3, .H = 7, .W = 6, .O = 5, .kH = 3, .kW = 3, .stride = 1, .pad = 1},
             true, 1);
}
TEST(Conv2dKernel, grad_3x3_stride2_pad1) {
  check_conv({.N = 2, .C = 4, .H = 9, .W = 7, .O = 3, .kH = 3, .kW = 3, .stride = 2, .pad = 1},
             false, 2);
}
TEST(Conv2dKernel, grad_1x1_pointwise) {
  check_conv({.N = 3, .C = 5, .H = 4, .W = 3, .O = 7, .kH = 1, .kW = 1}, true, 3);
}
TEST(Conv2dKernel, grad_1x1_stride2_downsample) {
  check_conv({.N = 2, .C = 4, .H = 7, .W = 7, .O = 6, .kH = 1, .kW = 1, .stride = 2}, false, 4);
}
TEST(Conv2dKernel, grad_groups) {
  check_conv({.N = 2,
              .C = 6,
              .H = 5,
              .W = 6,
              .O = 9,
              .kH = 3,
              .kW = 3,
              .stride = 1,
              .pad = 1,
              .groups = 3},
             true, 5);
}
TEST(Conv2dKernel, grad_depthwise) {
  check_conv({.N = 2,
              .C = 5,
              .H = 7,
              .W = 5,
              .O = 5,
              .kH = 3,
              .kW = 3,
              .stride = 2,
              .pad = 1,
              .groups = 5},
             true, 6);
}
TEST(Conv2dKernel, grad_depthwise_valid_7x7_gdc) {  // MobileFaceNet's global depthwise conv
  check_conv({.N = 2, .C = 4, .H = 7, .W = 7, .O = 4, .kH = 7, .kW = 7, .groups = 4}, false, 7);
}

// ---------------------------------------------------------------- gemm
TEST(GemmKernel, grad_all_transposes) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Rng rng(10 + 2 * ta + tb);
      const int64_t M = 5, K = 7, N = 3;
      KernelGradCheck op;
      op.inputs = {random_vec(rng, M * K), random_vec(rng, K * N)};
      op.forward = [=](const std::vector<Vec>& in) {
        Vec y(M * N);
        gemm<double>(ta, tb, M, N, K, 1.0, in[0].data(), in[1].data(), 0.0, y.data());
        return y;
      };
      // Reference gradients by the definition: dA[m,k] = Σ_n dy[m,n]·B[k,n] (indices through op).
      op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
        std::vector<Vec> d{Vec(M * K), Vec(K * N)};
        for (int64_t m = 0; m < M; ++m)
          for (int64_t k = 0; k < K; ++k)
            for (int64_t n = 0; n < N; ++n) {
              const int64_t ai = ta ? k * M + m : m * K + k, bi = tb ? n * K + k : k * N + n;
              d[0][ai] += dy[m * N + n] * in[1][bi];
              d[1][bi] += dy[m * N + n] * in[0][ai];
            }
        return d;
      };
      EXPECT_TRUE(check_kernel_gradients(op)) << "trans_a=" << ta << " trans_b=" << tb;
    }
}

// ---------------------------------------------------------------- batch norm
void check_batchnorm(bool training, int64_t N, int64_t C, int64_t S, uint64_t seed) {
  Rng rng(seed);
  KernelGradCheck op;
  Vec rm = random_vec(rng, C, -0.5, 0.5), rv = random_vec(rng, C, 0.5, 2.0);
  op.inputs = {random_vec(rng, N * C * S, -2, 2), random_vec(rng, C, 0.5, 1.5), random_vec(rng, C)};
  op.forward = [=](const std::vector<Vec>& in) {
    Vec y(in[0].size()), mean(C), invstd(C), rm_copy = rm, rv_copy = rv;
    batchnorm_forward<double>(y.data(), mean.data(), invstd.data(), in[0].data(), in[1].data(),
                              in[2].data(), rm_copy.data(), rv_copy.data(), training, 0.1, 1e-5, N,
                              C, S);
    return y;
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
    Vec y(in[0].size()), mean(C), invstd(C), rm_copy = rm, rv_copy = rv;
    batchnorm_forward<double>(y.data(), mean.data(), invstd.data(), in[0].data(), in[1].data(),
                              in[2].data(), rm_copy.data(), rv_copy.data(), training, 0.1, 1e-5, N,
                              C, S);
    std::vector<Vec> d{Vec(in[0].size()), Vec(C), Vec(C)};
    batchnorm_backward<double>(d[0].data(), d[1].data(), d[2].data(), dy.data(), in[0].data(),
                               mean.data(), invstd.data(), in[1].data(), training, N, C, S);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
}

TEST(BatchNormKernel, grad_2d_train) {
  check_batchnorm(true, 3, 4, 5 * 3, 20);
}
TEST(BatchNormKernel, grad_2d_eval) {
  check_batchnorm(false, 3, 4, 5 * 3, 21);
}
TEST(BatchNormKernel, grad_1d_train) {
  check_batchnorm(true, 7, 5, 1, 22);
}
TEST(BatchNormKernel, grad_1d_eval) {
  check_batchnorm(false, 7, 5, 1, 23);
}

// The backward from the output (x̂ = (y − β)/γ) against finite differences of the forward, and
// equal to the backward from the input to double rounding. γ includes negative values.
void check_batchnorm_from_output(bool training, uint64_t seed) {
  Rng rng(seed);
  const int64_t N = 3, C = 4, S = 6;
  KernelGradCheck op;
  Vec rm = random_vec(rng, C, -0.5, 0.5), rv = random_vec(rng, C, 0.5, 2.0);
  Vec gamma = random_away_from_zero(rng, C, 0.3);
  op.inputs = {random_vec(rng, N * C * S, -2, 2), gamma, random_vec(rng, C)};
  auto forward = [=](const std::vector<Vec>& in, Vec& mean, Vec& invstd) {
    Vec y(in[0].size()), rm_copy = rm, rv_copy = rv;
    batchnorm_forward<double>(y.data(), mean.data(), invstd.data(), in[0].data(), in[1].data(),
                              in[2].data(), rm_copy.data(), rv_copy.data(), training, 0.1, 1e-5, N,
                              C, S);
    return y;
  };
  op.forward = [=](const std::vector<Vec>& in) {
    Vec mean(C), invstd(C);
    return forward(in, mean, invstd);
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
    Vec mean(C), invstd(C);
    const Vec y = forward(in, mean, invstd);
    std::vector<Vec> d{Vec(in[0].size()), Vec(C), Vec(C)}, e = d;
    batchnorm_backward_from_output<double>(d[0].data(), d[1].data(), d[2].data(), dy.data(),
                                           y.data(), in[1].data(), in[2].data(), invstd.data(),
                                           training, N, C, S);
    batchnorm_backward<double>(e[0].data(), e[1].data(), e[2].data(), dy.data(), in[0].data(),
                               mean.data(), invstd.data(), in[1].data(), training, N, C, S);
    for (size_t k = 0; k < d.size(); ++k)
      for (size_t i = 0; i < d[k].size(); ++i) EXPECT_NEAR(d[k][i], e[k][i], 1e-12);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
}

TEST(BatchNormKernel, grad_from_output_train) {
  check_batchnorm_from_output(true, 24);
}
TEST(BatchNormKernel, grad_from_output_eval) {
  check_batchnorm_from_output(false, 25);
}

TEST(BatchNormKernel, output_invertible_only_with_gamma_away_from_zero) {
  const Vec gamma{1.0, -0.5, 0.01}, beta{0.0, 3.0, 5.0};
  EXPECT_TRUE(batchnorm_output_invertible<double>(gamma.data(), beta.data(), 3));
  const Vec tiny{1.0, 1e-4, 1.0};  // 1e-4 < 1e-3 · (1 + 3)
  EXPECT_FALSE(batchnorm_output_invertible<double>(tiny.data(), beta.data(), 3));
  const Vec nan{1.0, std::nan(""), 1.0};
  EXPECT_FALSE(batchnorm_output_invertible<double>(nan.data(), beta.data(), 3));
  EXPECT_TRUE(batchnorm_output_invertible<double>(nullptr, nullptr, 3));  // γ = 1, β = 0
}

// PReLU(BN(x)) in one kernel, its backward from the output only: x, γ, β and α against finite
// differences (x away from BN's mean so no output sits on the PReLU kink).
void check_batchnorm_prelu(bool training, uint64_t seed) {
  Rng rng(seed);
  const int64_t N = 2, C = 3, S = 7;
  KernelGradCheck op;
  Vec rm = random_vec(rng, C, -0.5, 0.5), rv = random_vec(rng, C, 0.5, 2.0);
  op.inputs = {random_vec(rng, N * C * S, -2, 2), random_away_from_zero(rng, C, 0.4),
               random_vec(rng, C, -0.3, 0.3), random_vec(rng, C, 0.1, 0.6)};
  auto forward = [=](const std::vector<Vec>& in, Vec& invstd) {
    Vec p(in[0].size()), mean(C), rm_copy = rm, rv_copy = rv;
    batchnorm_forward<double>(p.data(), mean.data(), invstd.data(), in[0].data(), in[1].data(),
                              in[2].data(), rm_copy.data(), rv_copy.data(), training, 0.1, 1e-5, N,
                              C, S, in[3].data());
    return p;
  };
  op.forward = [=](const std::vector<Vec>& in) {
    Vec invstd(C);
    return forward(in, invstd);
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dp) {
    Vec invstd(C);
    const Vec p = forward(in, invstd);
    std::vector<Vec> d{Vec(in[0].size()), Vec(C), Vec(C), Vec(C)};
    batchnorm_prelu_backward<double>(d[0].data(), d[1].data(), d[2].data(), d[3].data(), dp.data(),
                                     p.data(), in[1].data(), in[2].data(), in[3].data(),
                                     invstd.data(), training, N, C, S);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
}

TEST(BatchNormKernel, fused_prelu_grad_train) {
  check_batchnorm_prelu(true, 26);
}
TEST(BatchNormKernel, fused_prelu_grad_eval) {
  check_batchnorm_prelu(false, 27);
}

TEST(BatchNormKernel, running_stats_follow_pytorch_momentum) {
  // x for one channel: {1, 2, 3, 6}: mean 3, biased var 3.5, unbiased var 14/3.
  Vec x{1, 2, 3, 6}, y(4), mean(1), invstd(1), rm{0.5}, rv{2.0};
  batchnorm_forward<double>(y.data(), mean.data(), invstd.data(), x.data(), nullptr, nullptr,
                            rm.data(), rv.data(), true, 0.1, 0.0, 4, 1, 1);
  EXPECT_DOUBLE_EQ(mean[0], 3.0);
  EXPECT_NEAR(invstd[0], 1.0 / std::sqrt(3.5), 1e-15);
  EXPECT_NEAR(rm[0], 0.9 * 0.5 + 0.1 * 3.0, 1e-15);
  EXPECT_NEAR(rv[0], 0.9 * 2.0 + 0.1 * 14.0 / 3.0, 1e-15);
  EXPECT_NEAR(y[3], 3.0 / std::sqrt(3.5), 1e-14);
}

// ---------------------------------------------------------------- activations
TEST(PReLUKernel, grad) {
  Rng rng(30);
  const int64_t N = 3, C = 4, S = 5;
  KernelGradCheck op;
  op.inputs = {random_away_from_zero(rng, N * C * S), random_vec(rng, C, 0.05, 0.5)};
  op.forward = [=](const std::vector<Vec>& in) {
    Vec y(in[0].size());
    prelu_forward<double>(y.data(), in[0].data(), in[1].data(), N, C, S);
    return y;
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
    std::vector<Vec> d{Vec(in[0].size()), Vec(C)};
    prelu_backward<double>(d[0].data(), d[1].data(), dy.data(), in[0].data(), in[1].data(), N, C,
                           S);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
}

template <class F, class B>
KernelGradCheck unary_check(Vec x, F forward, B backward_from_input) {
  KernelGradCheck op;
  op.inputs = {std::move(x)};
  op.forward = [forward](const std::vector<Vec>& in) {
    Vec y(in[0].size());
    forward(y.data(), in[0].data(), n_of(in[0]));
    return y;
  };
  op.backward = [forward, backward_from_input](const std::vector<Vec>& in, const Vec& dy) {
    Vec y(in[0].size());
    forward(y.data(), in[0].data(), n_of(in[0]));
    std::vector<Vec> d{Vec(in[0].size())};
    backward_from_input(d[0].data(), dy.data(), in[0].data(), y.data(), n_of(in[0]));
    return d;
  };
  return op;
}

TEST(ReLUKernel, grad) {
  Rng rng(31);
  EXPECT_TRUE(check_kernel_gradients(
      unary_check(random_away_from_zero(rng, 37), relu_forward<double>,
                  [](double* dx, const double* dy, const double* x, const double*, int64_t n) {
                    relu_backward<double>(dx, dy, x, n);
                  })));
}
TEST(SigmoidKernel, grad) {
  Rng rng(32);
  EXPECT_TRUE(check_kernel_gradients(
      unary_check(random_vec(rng, 41, -4, 4), sigmoid_forward<double>,
                  [](double* dx, const double* dy, const double*, const double* y, int64_t n) {
                    sigmoid_backward<double>(dx, dy, y, n);
                  })));
}
TEST(CosKernel, grad) {
  Rng rng(33);
  EXPECT_TRUE(check_kernel_gradients(
      unary_check(random_vec(rng, 29, -3, 3), cos_forward<double>,
                  [](double* dx, const double* dy, const double* x, const double*, int64_t n) {
                    cos_backward<double>(dx, dy, x, n);
                  })));
}
TEST(AcosKernel, grad) {  // away from ±1, where the derivative is unbounded
  Rng rng(34);
  EXPECT_TRUE(check_kernel_gradients(
      unary_check(random_vec(rng, 29, -0.95, 0.95), acos_forward<double>,
                  [](double* dx, const double* dy, const double* x, const double*, int64_t n) {
                    acos_backward<double>(dx, dy, x, n);
                  })));
}
TEST(SqrtKernel, grad) {
  Rng rng(35);
  EXPECT_TRUE(check_kernel_gradients(
      unary_check(random_vec(rng, 23, 0.1, 3), sqrt_forward<double>,
                  [](double* dx, const double* dy, const double*, const double* y, int64_t n) {
                    sqrt_backward<double>(dx, dy, y, n);
                  })));
}
TEST(ClampKernel, grad) {  // values kept away from the bounds ±0.5
  Rng rng(36);
  Vec x = random_away_from_zero(rng, 31, 0.05);
  for (auto& v : x) v = v > 0 ? (v > 0.5 ? v + 0.1 : v * 0.8) : (v < -0.5 ? v - 0.1 : v * 0.8);
  EXPECT_TRUE(check_kernel_gradients(unary_check(
      x, [](double* y, const double* xv, int64_t n) { clamp_forward<double>(y, xv, -0.5, 0.5, n); },
      [](double* dx, const double* dy, const double* xv, const double*, int64_t n) {
        clamp_backward<double>(dx, dy, xv, -0.5, 0.5, n);
      })));
}
TEST(AffineKernel, grad) {
  Rng rng(37);
  EXPECT_TRUE(check_kernel_gradients(unary_check(
      random_vec(rng, 19),
      [](double* y, const double* x, int64_t n) { affine_forward<double>(y, x, -1.7, 0.3, n); },
      [](double* dx, const double* dy, const double*, const double*, int64_t n) {
        affine_backward<double>(dx, dy, -1.7, n);
      })));
}
TEST(DropoutKernel, grad) {
  Rng rng(38);
  std::vector<uint8_t> mask(43);
  for (auto& m : mask) m = rng.uniform() < 0.7;
  EXPECT_TRUE(check_kernel_gradients(unary_check(
      random_vec(rng, 43),
      [&mask](double* y, const double* x, int64_t n) {
        dropout_forward<double>(y, x, mask.data(), 0.3, n);
      },
      [&mask](double* dx, const double* dy, const double*, const double*, int64_t n) {
        dropout_backward<double>(dx, dy, mask.data(), 0.3, n);
      })));
}

// ---------------------------------------------------------------- broadcasting arithmetic
Broadcast broadcast_of(std::vector<int64_t> a, std::vector<int64_t> b) {
  Broadcast bc;
  const int pad = Broadcast::kRank - static_cast<int>(a.size());
  int64_t stride = 1;
  for (int axis = Broadcast::kRank - 1; axis >= 0; --axis) {
    const int src = axis - pad;
    const int64_t d = src >= 0 ? a[src] : 1, e = src >= 0 ? b[src] : 1;
    bc.dims[axis] = d;
    bc.b_stride[axis] = e == 1 ? 0 : stride;
    stride *= e;
  }
  return bc;
}

void check_binary(const std::string& kind, std::vector<int64_t> a_shape,
                  std::vector<int64_t> b_shape, uint64_t seed) {
  Rng rng(seed);
  const Broadcast bc = broadcast_of(a_shape, b_shape);
  int64_t bn = 1;
  for (auto d : b_shape) bn *= d;
  KernelGradCheck op;
  op.inputs = {random_vec(rng, bc.numel()), random_vec(rng, bn)};
  op.forward = [=](const std::vector<Vec>& in) {
    Vec y(in[0].size());
    if (kind == "mul")
      mul_forward<double>(y.data(), in[0].data(), in[1].data(), bc);
    else
      add_forward<double>(y.data(), in[0].data(), in[1].data(), kind == "sub" ? -1.0 : 1.0, bc);
    return y;
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
    std::vector<Vec> d{Vec(in[0].size()), Vec(in[1].size())};
    if (kind == "mul")
      mul_backward<double>(d[0].data(), d[1].data(), dy.data(), in[0].data(), in[1].data(), bc);
    else
      add_backward<double>(d[0].data(), d[1].data(), dy.data(), kind == "sub" ? -1.0 : 1.0, bc);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op)) << kind;
}

TEST(AddKernel, grad_same_shape) {
  check_binary("add", {3, 4, 5}, {3, 4, 5}, 40);
}
TEST(AddKernel, grad_broadcast_channel) {
  check_binary("add", {2, 3, 4, 5}, {1, 3, 1, 1}, 41);
}
TEST(SubKernel, grad_broadcast_row) {
  check_binary("sub", {4, 7}, {1, 7}, 42);
}
TEST(MulKernel, grad_broadcast_se_scale) {
  check_binary("mul", {2, 3, 4, 5}, {2, 3, 1, 1}, 43);
}
TEST(MulKernel, grad_scalar_scale) {
  check_binary("mul", {5, 6}, {1, 1}, 44);
}

// ---------------------------------------------------------------- pooling
TEST(GlobalAvgPoolKernel, grad) {
  Rng rng(50);
  const int64_t NC = 6, S = 35;
  KernelGradCheck op;
  op.inputs = {random_vec(rng, NC * S)};
  op.forward = [=](const std::vector<Vec>& in) {
    Vec y(NC);
    global_avg_pool_forward<double>(y.data(), in[0].data(), NC, S);
    return y;
  };
  op.backward = [=](const std::vector<Vec>&, const Vec& dy) {
    std::vector<Vec> d{Vec(NC * S)};
    global_avg_pool_backward<double>(d[0].data(), dy.data(), NC, S);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
}

void check_max_pool(PoolGeometry g, uint64_t seed) {
  Rng rng(seed);
  // Distinct values 0.01 apart (a shuffled ramp): no ties within eps, so argmax is stable.
  const int64_t n = g.N * g.C * g.H * g.W;
  Vec x(n);
  std::iota(x.begin(), x.end(), 0.0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(x[i], x[rng.below(i + 1)]);
  for (auto& v : x) v = v * 0.01 - 1.0;
  const int64_t ysize = g.N * g.C * g.Ho() * g.Wo();
  KernelGradCheck op;
  op.inputs = {x};
  op.forward = [=](const std::vector<Vec>& in) {
    Vec y(ysize);
    std::vector<int32_t> arg(ysize);
    max_pool_forward<double>(y.data(), arg.data(), in[0].data(), g);
    return y;
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
    Vec y(ysize);
    std::vector<int32_t> arg(ysize);
    max_pool_forward<double>(y.data(), arg.data(), in[0].data(), g);
    std::vector<Vec> d{Vec(in[0].size())};
    max_pool_backward<double>(d[0].data(), dy.data(), arg.data(), g);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
}
TEST(MaxPoolKernel, grad_2x2_stride2) {
  check_max_pool({.N = 2, .C = 3, .H = 6, .W = 5, .kernel = 2, .stride = 2}, 51);
}
TEST(MaxPoolKernel, grad_3x3_stride2_pad1) {
  check_max_pool({.N = 2, .C = 2, .H = 7, .W = 6, .kernel = 3, .stride = 2, .pad = 1}, 52);
}

// ---------------------------------------------------------------- rows
TEST(L2NormalizeKernel, grad) {
  Rng rng(60);
  const int64_t N = 4, D = 7;
  KernelGradCheck op;
  op.inputs = {random_vec(rng, N * D)};
  op.forward = [=](const std::vector<Vec>& in) {
    Vec y(N * D), norms(N);
    l2_normalize_forward<double>(y.data(), norms.data(), in[0].data(), N, D, 1e-12);
    return y;
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
    Vec y(N * D), norms(N);
    l2_normalize_forward<double>(y.data(), norms.data(), in[0].data(), N, D, 1e-12);
    std::vector<Vec> d{Vec(N * D)};
    l2_normalize_backward<double>(d[0].data(), dy.data(), y.data(), norms.data(), N, D, 1e-12);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
}

TEST(LogSoftmaxKernel, grad) {
  Rng rng(61);
  const int64_t N = 3, K = 9;
  KernelGradCheck op;
  op.inputs = {random_vec(rng, N * K, -5, 5)};
  op.forward = [=](const std::vector<Vec>& in) {
    Vec y(N * K);
    log_softmax_forward<double>(y.data(), in[0].data(), N, K);
    return y;
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
    Vec y(N * K);
    log_softmax_forward<double>(y.data(), in[0].data(), N, K);
    std::vector<Vec> d{Vec(N * K)};
    log_softmax_backward<double>(d[0].data(), dy.data(), y.data(), N, K);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
}

TEST(CrossEntropyKernel, grad_and_value) {
  Rng rng(62);
  const int64_t N = 5, K = 6;
  const std::vector<int64_t> labels{0, 5, 2, 2, 3};
  KernelGradCheck op;
  op.inputs = {random_vec(rng, N * K, -30, 30)};  // large logits: the max-subtraction matters
  op.forward = [=](const std::vector<Vec>& in) {
    Vec prob(N * K);
    return Vec{softmax_xent_forward<double>(prob.data(), in[0].data(), labels.data(), N, K)};
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
    Vec prob(N * K);
    softmax_xent_forward<double>(prob.data(), in[0].data(), labels.data(), N, K);
    std::vector<Vec> d{Vec(N * K)};
    softmax_xent_backward<double>(d[0].data(), dy[0], prob.data(), labels.data(), N, K);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(op));
  // Hand-computed value: logits (0, ln 3) with label 1 → −log(3/4).
  Vec z{0.0, std::log(3.0)}, prob(2);
  const int64_t label = 1;
  EXPECT_NEAR(softmax_xent_forward<double>(prob.data(), z.data(), &label, 1, 2), -std::log(0.75),
              1e-15);
}

TEST(TargetColumnKernels, grad_gather_and_replace) {
  Rng rng(63);
  const int64_t N = 4, K = 5;
  const std::vector<int64_t> labels{4, 0, 2, 2};
  KernelGradCheck gather;
  gather.inputs = {random_vec(rng, N * K)};
  gather.forward = [=](const std::vector<Vec>& in) {
    Vec t(N);
    gather_target_forward<double>(t.data(), in[0].data(), labels.data(), N, K);
    return t;
  };
  gather.backward = [=](const std::vector<Vec>&, const Vec& dy) {
    std::vector<Vec> d{Vec(N * K)};
    gather_target_backward<double>(d[0].data(), dy.data(), labels.data(), N, K);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(gather));

  KernelGradCheck replace;
  replace.inputs = {random_vec(rng, N * K), random_vec(rng, N)};
  replace.forward = [=](const std::vector<Vec>& in) {
    Vec out(N * K);
    replace_target_forward<double>(out.data(), in[0].data(), in[1].data(), labels.data(), N, K);
    return out;
  };
  replace.backward = [=](const std::vector<Vec>&, const Vec& dy) {
    std::vector<Vec> d{Vec(N * K), Vec(N)};
    replace_target_backward<double>(d[0].data(), d[1].data(), dy.data(), labels.data(), N, K);
    return d;
  };
  EXPECT_TRUE(check_kernel_gradients(replace));
}

}  // namespace
}  // namespace mf::test
