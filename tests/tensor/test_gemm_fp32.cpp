// Our own fp32 GEMM (tensor/kernels/gemm_fp32.h): every backend this CPU has must equal a double
// product to within fp32 summation error, on every shape class the callers use (tiles cut at
// every edge, depth across several kc slices, transposed operands, padded strides, alpha and
// beta), give the same bits on 1 and 2 threads, and never read C when beta = 0. Backends the CPU
// lacks are skipped with the reason.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "support/gradcheck.h"
#include "tensor/kernels/gemm_fp32.h"
#include "util/error.h"

namespace mf::test {
namespace {

using namespace mf::kernels;

bool has(sgemm::Backend backend) {
  for (const sgemm::Backend b : sgemm::backends())
    if (b == backend) return true;
  return false;
}

#define SKIP_WITHOUT(backend)                                                      \
  do {                                                                             \
    if (!has(backend)) GTEST_SKIP() << "this CPU has no " << sgemm::name(backend); \
  } while (0)

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
};

// The largest |error| against the double product, as a multiple of the fp32 bound for a sum of K
// products: K·2⁻²⁴·Σ|a·b| (plus the rounding of alpha and beta terms).
double error_in_bounds(sgemm::Backend backend, const Case& c) {
  Rng rng(static_cast<uint64_t>(c.M * 7919 + c.N * 131 + c.K * 7 + c.ta * 2 + c.tb));
  const int64_t lda = (c.ta ? c.M : c.K) + 3, ldb = (c.tb ? c.K : c.N) + 5, ldc = c.N + 2;
  std::vector<float> A((c.ta ? c.K : c.M) * lda), B((c.tb ? c.N : c.K) * ldb), C(c.M * ldc);
  for (auto& v : A) v = static_cast<float>(rng.uniform(-1, 1));
  for (auto& v : B) v = static_cast<float>(rng.uniform(-1, 1));
  for (auto& v : C) v = static_cast<float>(rng.uniform(-1, 1));
  const std::vector<float> C0 = C;
  sgemm::gemm(backend, c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta,
              C.data(), ldc);
  double worst = 0;
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      double sum = 0, magnitude = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double a = c.ta ? A[k * lda + i] : A[i * lda + k];
        const double b = c.tb ? B[j * ldb + k] : B[k * ldb + j];
        sum += a * b;
        magnitude += std::abs(a * b);
      }
      const double want = c.alpha * sum + (c.beta != 0 ? c.beta * C0[i * ldc + j] : 0.0);
      const double bound =
          (c.K + 2) * std::ldexp(1.0, -24) *
              (std::abs(c.alpha) * magnitude + std::abs(c.beta * C0[i * ldc + j])) +
          1e-30;
      worst = std::max(worst, std::abs(C[i * ldc + j] - want) / bound);
    }
  // Past the row ends (the padding of ldc) nothing may change.
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = c.N; j < ldc; ++j)
      EXPECT_EQ(C[i * ldc + j], C0[i * ldc + j]) << "wrote past column " << c.N;
  return worst;
}

// Shapes around both tiles (12×32 and 6×16), several kc (256) slices and mc (144, 144) blocks,
// and the convolutions' and linear layers' shapes.
std::vector<Case> cases() {
  std::vector<Case> out;
  const int64_t sizes[][3] = {{1, 1, 1},    {5, 7, 3},      {12, 32, 16},   {13, 33, 257},
                              {6, 16, 255}, {64, 504, 576}, {150, 70, 600}, {512, 49, 64},
                              {2, 300, 40}, {300, 2, 40},   {31, 2100, 9}};
  for (const auto& s : sizes)
    for (int t = 0; t < 4; ++t) out.push_back({bool(t & 1), bool(t & 2), s[0], s[1], s[2], 1, 0});
  out.push_back({false, false, 37, 45, 300, 1, 1});
  out.push_back({true, false, 37, 45, 300, -0.5f, 2});
  out.push_back({false, true, 37, 45, 300, 2, 0.25f});
  out.push_back({false, false, 20, 20, 0, 1, 0.5f});  // K = 0: C = beta·C
  return out;
}

void check_backend(sgemm::Backend backend) {
  for (const Case& c : cases()) {
    const double worst = error_in_bounds(backend, c);
    EXPECT_LE(worst, 1.0) << sgemm::name(backend) << " ta " << c.ta << " tb " << c.tb << " M "
                          << c.M << " N " << c.N << " K " << c.K << " alpha " << c.alpha << " beta "
                          << c.beta;
  }
}

TEST(Sgemm, Avx512MatchesTheDoubleProduct) {
  SKIP_WITHOUT(sgemm::Backend::avx512);
  check_backend(sgemm::Backend::avx512);
}

TEST(Sgemm, Avx2MatchesTheDoubleProduct) {
  SKIP_WITHOUT(sgemm::Backend::avx2);
  check_backend(sgemm::Backend::avx2);
}

TEST(Sgemm, BlasFallbackMatchesTheDoubleProduct) {
  check_backend(sgemm::Backend::blas);
}

TEST(Sgemm, BetaZeroNeverReadsC) {
  for (const sgemm::Backend backend : sgemm::backends()) {
    const int64_t M = 30, N = 70, K = 300;
    std::vector<float> A(M * K, 0.5f), B(K * N, 0.25f);
    std::vector<float> C(M * N, std::numeric_limits<float>::quiet_NaN());
    sgemm::gemm(backend, false, false, M, N, K, 1, A.data(), K, B.data(), N, 0, C.data(), N);
    for (const float v : C) ASSERT_EQ(v, 0.125f * K) << sgemm::name(backend);
  }
}

// Threads split C, never the depth: the same bits on one thread and on two (columns split for a
// wide C, rows for a narrow one).
TEST(Sgemm, SameBitsOnOneAndTwoThreads) {
  const int saved = omp_get_max_threads();
  for (const sgemm::Backend backend : sgemm::backends()) {
    if (backend == sgemm::Backend::blas) continue;  // OpenBLAS promises no such thing
    for (const auto& [M, N, K] :
         {std::tuple<int64_t, int64_t, int64_t>{96, 1000, 700}, {1000, 40, 700}}) {
      Rng rng(5);
      std::vector<float> A(M * K), B(K * N);
      for (auto& v : A) v = static_cast<float>(rng.uniform(-1, 1));
      for (auto& v : B) v = static_cast<float>(rng.uniform(-1, 1));
      std::vector<float> one(M * N), two(M * N);
      omp_set_num_threads(1);
      sgemm::gemm(backend, false, true, M, N, K, 1, A.data(), K, B.data(), K, 0, one.data(), N);
      omp_set_num_threads(2);
      sgemm::gemm(backend, false, true, M, N, K, 1, A.data(), K, B.data(), K, 0, two.data(), N);
      EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0)
          << sgemm::name(backend) << " M " << M << " N " << N;
    }
  }
  omp_set_num_threads(saved);
}

// A packed once (a convolution's weights) gives the same bits as packing per call, for every
// transposition, several kc slices, edge tiles, alpha/beta, on one thread and on two.
TEST(Sgemm, PackedAGivesTheSameBitsAsPackingPerCall) {
  const int saved = omp_get_max_threads();
  for (const sgemm::Backend backend : sgemm::backends())
    for (const Case& c : cases()) {
      if (c.K == 0) continue;
      Rng rng(static_cast<uint64_t>(c.M + c.N + c.K));
      const int64_t lda = (c.ta ? c.M : c.K) + 1, ldb = (c.tb ? c.K : c.N) + 2, ldc = c.N + 3;
      std::vector<float> A((c.ta ? c.K : c.M) * lda), B((c.tb ? c.N : c.K) * ldb), C(c.M * ldc);
      for (auto& v : A) v = static_cast<float>(rng.uniform(-1, 1));
      for (auto& v : B) v = static_cast<float>(rng.uniform(-1, 1));
      for (auto& v : C) v = static_cast<float>(rng.uniform(-1, 1));
      sgemm::PackedA packed;
      sgemm::pack_a(packed, backend, c.ta, c.M, c.K, A.data(), lda);
      for (const int threads : {1, 2}) {
        omp_set_num_threads(threads);
        std::vector<float> plain = C, once = C;
        sgemm::gemm(backend, c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb,
                    c.beta, plain.data(), ldc);
        sgemm::gemm(packed, c.tb, c.N, c.alpha, B.data(), ldb, c.beta, once.data(), ldc);
        EXPECT_EQ(std::memcmp(plain.data(), once.data(), plain.size() * sizeof(float)), 0)
            << sgemm::name(backend) << " ta " << c.ta << " tb " << c.tb << " M " << c.M << " N "
            << c.N << " K " << c.K << ", " << threads << " threads";
      }
    }
  omp_set_num_threads(saved);
}

// B generated row by row (gemm_rows, the convolutions' im2col without a col buffer) packs the
// same panels as B read from memory: the same bits, on every backend and case with beta 0 or 1.
TEST(Sgemm, RowsFromAGeneratorGiveTheSameBitsAsBFromMemory) {
  size_t compared = 0;
  for (const sgemm::Backend backend : sgemm::backends())
    for (const Case& c : cases()) {
      if (c.tb || (c.beta != 0.0f && c.beta != 1.0f)) continue;
      Rng rng(static_cast<uint64_t>(3 * c.M + c.N + c.K));
      const int64_t lda = (c.ta ? c.M : c.K) + 1, ldb = c.N + 2, ldc = c.N + 3;
      std::vector<float> A((c.ta ? c.K : c.M) * lda), B(c.K * ldb), C(c.M * ldc);
      for (auto& v : A) v = static_cast<float>(rng.uniform(-1, 1));
      for (auto& v : B) v = static_cast<float>(rng.uniform(-1, 1));
      for (auto& v : C) v = static_cast<float>(rng.uniform(-1, 1));
      sgemm::PackedA packed;
      sgemm::pack_a(packed, backend, c.ta, c.M, c.K, A.data(), lda);
      std::vector<float> from_memory = C, generated = C;
      sgemm::gemm(packed, false, c.N, c.alpha, B.data(), ldb, c.beta, from_memory.data(), ldc);
      int64_t rows_asked = 0;
      const sgemm::RowSource rows = [&](int64_t k, float* out) {
        ++rows_asked;
        std::copy(B.begin() + k * ldb, B.begin() + k * ldb + c.N, out);
      };
      sgemm::gemm_rows(packed, rows, c.N, c.alpha, c.beta, generated.data(), ldc);
      EXPECT_EQ(std::memcmp(from_memory.data(), generated.data(), C.size() * sizeof(float)), 0)
          << sgemm::name(backend) << " ta " << c.ta << " M " << c.M << " N " << c.N << " K " << c.K
          << " beta " << c.beta;
      EXPECT_GE(rows_asked, c.K);
      ++compared;
    }
  EXPECT_GT(compared, 0u);
  EXPECT_THROW(sgemm::gemm_rows(sgemm::PackedA{}, nullptr, 1, 1.0f, 0.5f, nullptr, 1), Error);
}

TEST(Sgemm, BackendsEndWithTheBlasFallbackAndNameThemselves) {
  const auto& all = sgemm::backends();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back(), sgemm::Backend::blas);
  EXPECT_STREQ(sgemm::name(sgemm::Backend::avx512), "avx512");
  EXPECT_STREQ(sgemm::name(sgemm::Backend::avx2), "avx2");
  const sgemm::Backend before = sgemm::active();
  sgemm::set_active(sgemm::Backend::blas);
  EXPECT_EQ(sgemm::active(), sgemm::Backend::blas);
  sgemm::set_active(before);
}

}  // namespace
}  // namespace mf::test
