// The bf16 fast path (tensor/kernels/gemm_bf16.h): every bf16 GEMM this CPU has (AMX,
// AVX512-BF16) must equal an fp32 product of the bf16-rounded inputs (up to fp32 summation
// order), and the bf16 convolution must stay within a stated tolerance of the exact one. Skipped,
// with the reason, on CPUs with neither; each test names the backends it ran.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "support/gradcheck.h"
#include "tensor/kernels/conv.h"
#include "tensor/kernels/gemm_bf16.h"
#include "util/error.h"

namespace mf::test {
namespace {

using namespace mf::kernels;

#define SKIP_WITHOUT_BF16()                                              \
  do {                                                                   \
    std::string why;                                                     \
    if (!bf16::available(&why)) GTEST_SKIP() << "no bf16 path: " << why; \
  } while (0)

std::vector<float> random_floats(Rng& rng, size_t n) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.uniform(-1, 1));
  return v;
}

TEST(Bf16, ConversionRoundsToNearestEven) {
  EXPECT_EQ(bf16::from_float(1.0f), 0x3f80);
  // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa (1.0).
  EXPECT_EQ(bf16::from_float(1.0f + 1.0f / 256), 0x3f80);
  // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶ (even): up.
  EXPECT_EQ(bf16::to_float(bf16::from_float(1.0f + 3.0f / 256)), 1.0f + 1.0f / 64);
  EXPECT_EQ(bf16::to_float(bf16::from_float(-2.5f)), -2.5f);  // exactly representable
  EXPECT_TRUE(std::isnan(bf16::to_float(bf16::from_float(std::nanf("")))));
  EXPECT_TRUE(std::isinf(bf16::to_float(bf16::from_float(INFINITY))));
}

// C = op(A)·op(B) on `backend` against a double product of the rounded inputs.
void check_gemm(bf16::Backend backend, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                bool accumulate) {
  Rng rng(static_cast<uint64_t>(M * 131 + N * 17 + K + ta * 2 + tb));
  const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;  // padded strides
  const auto A = random_floats(rng, (ta ? K : M) * lda), B = random_floats(rng, (tb ? N : K) * ldb);
  std::vector<float> C = random_floats(rng, M * ldc), C0 = C;
  bf16::PackedA pa;
  bf16::PackedB pb;
  bf16::pack_a(pa, ta, M, K, A.data(), lda);
  bf16::pack_b(pb, tb, K, N, B.data(), ldb);
  bf16::gemm(backend, pa, pb, C.data(), ldc, accumulate);
  auto rounded = [](float v) { return double(bf16::to_float(bf16::from_float(v))); };
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double want = accumulate ? C0[i * ldc + j] : 0.0, scale = std::abs(want);
      for (int64_t k = 0; k < K; ++k) {
        const double p = rounded(ta ? A[k * lda + i] : A[i * lda + k]) *
                         rounded(tb ? B[j * ldb + k] : B[k * ldb + j]);
        want += p;
        scale += std::abs(p);
      }
      ASSERT_NEAR(C[i * ldc + j], want, 1e-5 * (1 + scale))
          << bf16::name(backend) << " ta " << ta << " tb " << tb << " at " << i << "," << j;
    }
  for (int64_t i = 0; i < M; ++i)  // the padding columns of C are untouched
    for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(C[i * ldc + j], C0[i * ldc + j]);
}

TEST(Bf16, GemmMatchesTheRoundedProductInEveryLayout) {
  SKIP_WITHOUT_BF16();
  for (const bf16::Backend backend : bf16::backends()) {
    std::printf("bf16 GEMM backend: %s\n", bf16::name(backend));
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_gemm(backend, ta, tb, 64, 96, 128, false);   // whole tiles
        check_gemm(backend, ta, tb, 37, 45, 70, true);     // ragged edges in M, N, K, accumulating
        check_gemm(backend, ta, tb, 5, 300, 33, false);    // more than one 256-column panel
        check_gemm(backend, ta, tb, 64, 320, 600, false);  // K in three chunks, whole and edges
        check_gemm(backend, ta, tb, 96, 64, 520, true);
        check_gemm(backend, ta, tb, 3, 7, 0, true);   // an empty sum leaves C
        check_gemm(backend, ta, tb, 3, 7, 0, false);  // … or zeroes it
      }
  }
}

// The bf16 convolution against the exact one: forward, dx and dw within 1 % of each output's
// scale (bf16 keeps 8 significant bits; sums stay fp32), on IR-block-like shapes.
void check_conv_tolerance(const ConvGeometry& g) {
  Rng rng(7);
  const auto x = random_floats(rng, g.N * g.C * g.H * g.W),
             w = random_floats(rng, g.O * g.Cg() * g.kH * g.kW),
             dy = random_floats(rng, g.N * g.O * g.Ho() * g.Wo());
  std::vector<float> y(dy.size()), yb(dy.size()), dx(x.size()), dxb(x.size()), dw(w.size()),
      dwb(w.size());
  conv2d_forward<float>(y.data(), x.data(), w.data(), nullptr, g);
  conv2d_backward<float>(dx.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), g);
  const Bf16ConvGemms forward(w.data(), g, false), backward(w.data(), g, true);
  conv2d_forward<float>(yb.data(), x.data(), w.data(), nullptr, g, &forward);
  conv2d_backward<float>(dxb.data(), dwb.data(), nullptr, dy.data(), x.data(), w.data(), g,
                         &backward);
  auto relative_rms = [](const std::vector<float>& got, const std::vector<float>& want) {
    double err = 0, ref = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      err += (got[i] - want[i]) * double(got[i] - want[i]);
      ref += want[i] * double(want[i]);
    }
    return std::sqrt(err / ref);
  };
  // bf16 rounding (relative 2⁻⁹ per input) averages out over the sums: ~0.3 % RMS.
  EXPECT_LT(relative_rms(yb, y), 0.01);
  EXPECT_LT(relative_rms(dxb, dx), 0.01);
  EXPECT_LT(relative_rms(dwb, dw), 0.01);
  EXPECT_GT(relative_rms(yb, y), 0.0);  // it is the bf16 path, not the exact one
}

TEST(Bf16, ConvolutionWithinOnePercentOfExact) {
  SKIP_WITHOUT_BF16();
  check_conv_tolerance(
      {.N = 4, .C = 16, .H = 20, .W = 20, .O = 24, .kH = 3, .kW = 3, .stride = 1, .pad = 1});
  check_conv_tolerance(
      {.N = 6, .C = 32, .H = 7, .W = 7, .O = 32, .kH = 3, .kW = 3, .stride = 2, .pad = 1});
  check_conv_tolerance({.N = 3, .C = 24, .H = 9, .W = 9, .O = 16, .kH = 1, .kW = 1});
}

TEST(Bf16, PrecisionSwitchNamesTheProblem) {
  EXPECT_THROW(parse_conv_precision("fp16"), Error);
  std::string why;
  if (!bf16::available(&why)) {
    try {
      set_conv_precision(ConvPrecision::bf16);
      FAIL() << "bf16 accepted without AMX";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not available"), std::string::npos);
    }
  }
  set_conv_precision(ConvPrecision::fp32);
  EXPECT_EQ(conv_precision(), ConvPrecision::fp32);
}

}  // namespace
}  // namespace mf::test
