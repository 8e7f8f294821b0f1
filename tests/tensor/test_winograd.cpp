// Winograd F(4×4, 3×3) (tensor/kernels/winograd.h) is an approximate path: these tests bound its
// distance from the convolution summed in double (the definition), on shapes that exercise whole
// and partial tiles, padding 0–2, several images per chunk, several chunks and threads, bias, and
// every GEMM backend and transform code this CPU has. The tolerance is stated relative to the
// scale of the products, s = max over outputs of |b| + Σ |w|·|x|: the exact fp32 path stays
// within 1.2e-7·s; the transforms' constants (up to 8 and 1/24) let Winograd's rounding grow
// about tenfold (measured 3e-8·s to 1.7e-6·s over these cases); the test allows 5e-6·s.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "support/gradcheck.h"
#include "tensor/kernels/conv.h"
#include "tensor/kernels/gemm_fp32.h"
#include "tensor/kernels/winograd.h"

namespace mf::test {
namespace {

using kernels::ConvGeometry;

constexpr double kTolerance = 5e-6;

struct Case {
  const char* name;
  ConvGeometry g;
};

// s = max over outputs of |b| + Σ |w|·|x|: the scale of the products an output sums.
double product_scale(const ConvGeometry& g, const Vec& x, const Vec& w, const Vec& b) {
  auto absolute = [](const Vec& v) {
    Vec out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = std::fabs(v[i]);
    return out;
  };
  const Vec ax = absolute(x), aw = absolute(w), ab = absolute(b);
  Vec sums(size_t(g.N * g.O * g.Ho() * g.Wo()));
  kernels::conv2d_forward<double>(sums.data(), ax.data(), aw.data(), ab.data(), g);
  double s = 0;
  for (double v : sums) s = std::max(s, v);
  return s;
}

// The largest |y − reference| over the batch, as a fraction of the product scale s.
struct Distance {
  double winograd = 0, exact = 0;
};

Distance measure(const ConvGeometry& g, bool bias, bool allow_avx512, uint64_t seed) {
  Rng rng(seed);
  const Vec x = random_vec(rng, size_t(g.N * g.C * g.H * g.W));
  const Vec w = random_vec(rng, size_t(g.O * g.C * 9));
  const Vec b = bias ? random_vec(rng, size_t(g.O)) : Vec(size_t(g.O), 0.0);
  const size_t ny = size_t(g.N * g.O * g.Ho() * g.Wo());
  Vec want(ny);
  kernels::conv2d_forward<double>(want.data(), x.data(), w.data(), b.data(), g);
  const double s = product_scale(g, x, w, b);

  std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), bf(b.begin(), b.end());
  std::vector<float> got(ny, std::nanf("")), exact(ny);
  kernels::winograd::forward(got.data(), xf.data(), wf.data(), bias ? bf.data() : nullptr, g,
                             allow_avx512);
  kernels::conv2d_forward<float>(exact.data(), xf.data(), wf.data(), bias ? bf.data() : nullptr, g);
  Distance d;
  for (size_t i = 0; i < ny; ++i) {
    EXPECT_TRUE(std::isfinite(got[i])) << "output " << i << " never written";
    d.winograd = std::max(d.winograd, std::fabs(got[i] - want[i]) / s);
    d.exact = std::max(d.exact, std::fabs(exact[i] - want[i]) / s);
  }
  return d;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      // whole tiles (8 = 2·4 outputs), bias, one image
      {"8x8 pad1", {.N = 1, .C = 5, .H = 8, .W = 8, .O = 7, .kH = 3, .kW = 3, .pad = 1}},
      // partial tiles in both directions, several images in one chunk
      {"9x11 pad1", {.N = 3, .C = 6, .H = 9, .W = 11, .O = 5, .kH = 3, .kW = 3, .pad = 1}},
      // no padding (output 5×5: one whole and one partial tile), 7² as IResNet's last stage
      {"7x7 pad0", {.N = 2, .C = 17, .H = 7, .W = 7, .O = 33, .kH = 3, .kW = 3, .pad = 0}},
      {"7x7 pad1", {.N = 5, .C = 32, .H = 7, .W = 7, .O = 16, .kH = 3, .kW = 3, .pad = 1}},
      // padding 2: output larger than the input, border tiles read only padding
      {"6x5 pad2", {.N = 2, .C = 3, .H = 6, .W = 5, .O = 4, .kH = 3, .kW = 3, .pad = 2}},
      // a one-pixel output
      {"3x3 pad0", {.N = 1, .C = 4, .H = 3, .W = 3, .O = 2, .kH = 3, .kW = 3, .pad = 0}},
      // 8 or more tiles across: the AVX-512 path reads runs of tiles along rows instead of
      // per-tile gathers; partial last tile, pad 0 and 2, chunks that start mid-row at 2 threads
      {"30x33 pad1", {.N = 2, .C = 5, .H = 30, .W = 33, .O = 6, .kH = 3, .kW = 3, .pad = 1}},
      {"35x34 pad0", {.N = 1, .C = 4, .H = 35, .W = 34, .O = 3, .kH = 3, .kW = 3, .pad = 0}},
      {"29x40 pad2", {.N = 2, .C = 3, .H = 29, .W = 40, .O = 5, .kH = 3, .kW = 3, .pad = 2}},
      // IResNet shapes: many chunks, both threads, C and O at GEMM panel multiples and not
      {"28x28x64", {.N = 4, .C = 64, .H = 28, .W = 28, .O = 64, .kH = 3, .kW = 3, .pad = 1}},
      {"56x56x32", {.N = 2, .C = 32, .H = 56, .W = 56, .O = 48, .kH = 3, .kW = 3, .pad = 1}},
      {"14x14x130", {.N = 3, .C = 130, .H = 14, .W = 14, .O = 70, .kH = 3, .kW = 3, .pad = 1}},
  };
  return all;
}

TEST(Winograd, applies_to_dense_3x3_stride_1_only) {
  ConvGeometry g{.N = 2, .C = 8, .H = 14, .W = 14, .O = 8, .kH = 3, .kW = 3, .pad = 1};
  EXPECT_TRUE(kernels::winograd::applies(g));
  ConvGeometry strided = g;
  strided.stride = 2;
  ConvGeometry pointwise = g;
  pointwise.kH = pointwise.kW = 1;
  pointwise.pad = 0;
  ConvGeometry grouped = g;
  grouped.groups = 2;
  ConvGeometry wide_pad = g;
  wide_pad.pad = 3;
  for (const ConvGeometry& other : {strided, pointwise, grouped, wide_pad})
    EXPECT_FALSE(kernels::winograd::applies(other));
}

// Every case on every GEMM backend and transform code this CPU has, at 1 and 2 threads.
TEST(Winograd, within_tolerance_of_the_exact_convolution) {
  const kernels::sgemm::Backend before = kernels::sgemm::active();
  const bool has_avx512 = __builtin_cpu_supports("avx512f");
  if (!has_avx512) std::printf("[ skipped ] AVX-512 transforms: this CPU has no avx512f\n");
  for (kernels::sgemm::Backend backend : kernels::sgemm::backends()) {
    kernels::sgemm::set_active(backend);
    for (bool avx512 : {false, true}) {
      if (avx512 && !has_avx512) continue;
      for (int threads : {1, 2}) {
        omp_set_num_threads(threads);
        for (const Case& c : cases()) {
          SCOPED_TRACE(std::string(c.name) + " gemm " + kernels::sgemm::name(backend) +
                       (avx512 ? " avx512 transforms" : " baseline transforms") + " threads " +
                       std::to_string(threads));
          const Distance d = measure(c.g, /*bias=*/true, avx512, 7);
          EXPECT_LT(d.winograd, kTolerance);
          EXPECT_LT(d.exact, 1e-6);
          // It must be a different computation from the exact one (the test can fail).
          EXPECT_GT(d.winograd, 0.0);
        }
      }
    }
  }
  kernels::sgemm::set_active(before);
  omp_set_num_threads(2);
}

// The inference epilogue (conv → BN → PReLU, + residual: kernels::ConvEpilogue) on Winograd's
// output, against the definition in double put through the same steps. Each step changes an
// output's error by at most |scale| ≤ 1 (and |slope| ≤ 1) plus its own fp32 rounding, so the
// bound is the plain Winograd one on the same product scale s.
TEST(Winograd, epilogue_on_every_case) {
  const bool has_avx512 = __builtin_cpu_supports("avx512f");
  for (bool avx512 : {false, true}) {
    if (avx512 && !has_avx512) continue;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      for (const Case& c : cases()) {
        SCOPED_TRACE(std::string(c.name) + (avx512 ? " avx512" : " baseline") + " threads " +
                     std::to_string(threads));
        const ConvGeometry& g = c.g;
        Rng rng(13);
        const Vec x = random_vec(rng, size_t(g.N * g.C * g.H * g.W)),
                  w = random_vec(rng, size_t(g.O * g.C * 9)), b = random_vec(rng, size_t(g.O)),
                  scale = random_vec(rng, size_t(g.O)), shift = random_vec(rng, size_t(g.O)),
                  slope = random_vec(rng, size_t(g.O));
        const size_t ny = size_t(g.N * g.O * g.Ho() * g.Wo());
        const Vec residual = random_vec(rng, ny);
        Vec want(ny);
        kernels::conv2d_forward<double>(want.data(), x.data(), w.data(), b.data(), g);
        const double s = product_scale(g, x, w, b);
        const int64_t plane = g.Ho() * g.Wo();
        for (size_t i = 0; i < ny; ++i) {
          const int64_t o = int64_t(i) / plane % g.O;
          double v = want[i] * scale[o] + shift[o];
          v = v > 0 ? v : slope[o] * v;
          want[i] = v + residual[i];
        }
        auto f = [](const Vec& v) { return std::vector<float>(v.begin(), v.end()); };
        const std::vector<float> xf = f(x), wf = f(w), bf = f(b), sf = f(scale), tf = f(shift),
                                 af = f(slope), rf = f(residual);
        std::vector<float> got(ny, std::nanf(""));
        kernels::winograd::forward(
            got.data(), xf.data(), wf.data(), bf.data(), g, avx512,
            {.scale = sf.data(), .shift = tf.data(), .slope = af.data(), .residual = rf.data()});
        double worst = 0;
        for (size_t i = 0; i < ny; ++i) {
          ASSERT_TRUE(std::isfinite(got[i])) << "output " << i << " never written";
          worst = std::max(worst, std::fabs(got[i] - want[i]) / s);
        }
        EXPECT_LT(worst, kTolerance);
      }
    }
  }
  omp_set_num_threads(2);
}

TEST(Winograd, no_bias_means_zero_bias) {
  const ConvGeometry g{.N = 2, .C = 6, .H = 10, .W = 9, .O = 5, .kH = 3, .kW = 3, .pad = 1};
  EXPECT_LT(measure(g, /*bias=*/false, true, 11).winograd, kTolerance);
}

}  // namespace
}  // namespace mf::test
