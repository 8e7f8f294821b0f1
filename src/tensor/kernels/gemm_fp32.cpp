// Our own fp32 GEMM (see gemm_fp32.h). The microkernels carry their instruction set as a target
// attribute (as gemm_bf16.cpp does), so the file builds for the baseline target and a CPU only
// ever runs a kernel after backends() found its features.
#include "tensor/kernels/gemm_fp32.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace mf::kernels::sgemm {

namespace {

// One microkernel call: c (MR, NR, row stride ldc) = or += alpha · Σ_k a[k] ⊗ b[k] over kc rank-1
// updates, a packed as [kc][MR], b as [kc][NR]. Stores round(alpha·sum) (alpha·sum + c when
// accumulating), so a tile written through a scratch tile gives the same bits.
using Microkernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             float alpha, bool accumulate);

#define MF_AVX512 __attribute__((target("avx512f")))
#define MF_AVX2 __attribute__((target("avx2,fma")))

// 12 rows × 32 columns: 24 zmm accumulators, 2 loads of b and 12 broadcasts of a per 24 FMAs
// (AVX-512 has 32 vector registers).
constexpr int kMr512 = 12, kNr512 = 32;
MF_AVX512 void kernel_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             float alpha, bool accumulate) {
  __m512 acc[kMr512][2];
#pragma GCC unroll 12
  for (int r = 0; r < kMr512; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int r = 0; r < kMr512; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += kMr512;
    b += kNr512;
  }
  const __m512 scale = _mm512_set1_ps(alpha);
#pragma GCC unroll 12
  for (int r = 0; r < kMr512; ++r) {
    float* row = c + r * ldc;
    __m512 v0 = _mm512_mul_ps(scale, acc[r][0]), v1 = _mm512_mul_ps(scale, acc[r][1]);
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
      v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, v0);
    _mm512_storeu_ps(row + 16, v1);
  }
}

// 6 rows × 16 columns: 12 ymm accumulators, 2 loads and 6 broadcasts per 12 FMAs (16 registers).
constexpr int kMr256 = 6, kNr256 = 16;
MF_AVX2 void kernel_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                         float alpha, bool accumulate) {
  __m256 acc[kMr256][2];
#pragma GCC unroll 6
  for (int r = 0; r < kMr256; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < kMr256; ++r) {
      const __m256 ar = _mm256_broadcast_ss(a + r);
      acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += kMr256;
    b += kNr256;
  }
  const __m256 scale = _mm256_set1_ps(alpha);
#pragma GCC unroll 6
  for (int r = 0; r < kMr256; ++r) {
    float* row = c + r * ldc;
    __m256 v0 = _mm256_mul_ps(scale, acc[r][0]), v1 = _mm256_mul_ps(scale, acc[r][1]);
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, v0);
    _mm256_storeu_ps(row + 8, v1);
  }
}

// Block sizes (Goto & van de Geijn §6): a B panel of kc×NR floats (32 KiB at AVX-512) is reused
// from L1 by every MR panel of the mc×kc block of A (144 KiB, in L2); nc bounds B's packed block.
template <int MR, int NR, Microkernel kernel>
struct Shape {
  static constexpr int mr = MR, nr = NR;
  static constexpr int64_t kc = 256, mc = 144, nc = 2048;  // mc: a multiple of both MRs
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                  bool accumulate) {
    kernel(kc, a, b, c, ldc, alpha, accumulate);
  }
};
using Shape512 = Shape<kMr512, kNr512, kernel_avx512>;
using Shape256 = Shape<kMr256, kNr256, kernel_avx2>;

// A per-thread buffer of at least `count` floats, 64-byte aligned, that only grows.
float* buffer(size_t count, int slot) {
  thread_local std::vector<float> storage[3];
  auto& v = storage[slot];
  if (v.size() < count + 16) v.resize(count + 16);
  const auto address = reinterpret_cast<uintptr_t>(v.data());
  return v.data() + ((64 - address % 64) % 64) / sizeof(float);
}

// Rows [i0, i0 + mc), depth [p0, p0 + kc) of op(A) into MR-row panels [panel][k][MR], zero rows
// past mc. (MR is a template constant so the inner copies unroll.)
template <int MR>
void pack_a(float* out, bool trans, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
            int64_t kc) {
  for (int64_t i = 0; i < mc; i += MR) {
    const int64_t rows = std::min<int64_t>(MR, mc - i);
    float* panel = out + i * kc;
    if (trans) {  // op(A)(i, k) = A[k·lda + i]: a panel's k-th line is contiguous
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (p0 + k) * lda + i0 + i;
        float* dst = panel + k * MR;
        if (rows == MR) {
          for (int r = 0; r < MR; ++r) dst[r] = src[r];
        } else {
          for (int64_t r = 0; r < MR; ++r) dst[r] = r < rows ? src[r] : 0.0f;
        }
      }
    } else {
      const float* src = A + (i0 + i) * lda + p0;
      if (rows == MR) {
        for (int64_t k = 0; k < kc; ++k)
          for (int r = 0; r < MR; ++r) panel[k * MR + r] = src[r * lda + k];
      } else {
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t r = 0; r < MR; ++r) panel[k * MR + r] = r < rows ? src[r * lda + k] : 0.0f;
      }
    }
  }
}

// One NR-column panel of a transposed B: panel[k·nr + c] = src[c·ldb + k] for the first `cols`
// columns, zero for the rest. 8 × 8 blocks are transposed in registers (AVX2, which every CPU our
// kernels run on has): a scalar loop here took a quarter of the weight-gradient GEMM's time.
MF_AVX2 void pack_b_transposed(float* panel, int nr, const float* src, int64_t ldb, int64_t kc,
                               int cols) {
  const int64_t k8 = kc / 8 * 8;
  int c = 0;
  for (; c + 8 <= cols; c += 8) {
    const float* row[8];
    for (int i = 0; i < 8; ++i) row[i] = src + (c + i) * ldb;
    for (int64_t k = 0; k < k8; k += 8) {
      __m256 r[8], t[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(row[i] + k);
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
      }
      for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(panel + (k + i) * nr + c, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
        _mm256_storeu_ps(panel + (k + i + 4) * nr + c,
                         _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
      }
    }
    for (int64_t k = k8; k < kc; ++k)
      for (int i = 0; i < 8; ++i) panel[k * nr + c + i] = row[i][k];
  }
  for (; c < cols; ++c)
    for (int64_t k = 0; k < kc; ++k) panel[k * nr + c] = src[c * ldb + k];
  for (; c < nr; ++c)
    for (int64_t k = 0; k < kc; ++k) panel[k * nr + c] = 0.0f;
}

// Row k of a depth slice of kc (its nc values at src) into NR-column panels [panel][k][NR], zero
// columns past nc.
template <int NR>
void pack_b_row(float* out, const float* src, int64_t k, int64_t kc, int64_t nc) {
  const int64_t full = nc / NR * NR;
  for (int64_t j = 0; j < full; j += NR) {
    float* dst = out + j * kc + k * NR;
    for (int c = 0; c < NR; ++c) dst[c] = src[j + c];
  }
  if (full < nc) {
    float* dst = out + full * kc + k * NR;
    for (int64_t c = 0; c < NR; ++c) dst[c] = full + c < nc ? src[full + c] : 0.0f;
  }
}

// Depth [p0, p0 + kc), columns [j0, j0 + nc) of op(B) into NR-column panels [panel][k][NR], zero
// columns past nc.
template <int NR>
void pack_b(float* out, bool trans, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
            int64_t nc) {
  if (trans) {  // op(B)(k, j) = B[j·ldb + k]: a column's depth is contiguous
    for (int64_t j = 0; j < nc; j += NR)
      pack_b_transposed(out + j * kc, NR, B + (j0 + j) * ldb + p0, ldb, kc,
                        static_cast<int>(std::min<int64_t>(NR, nc - j)));
    return;
  }
  // Row by row of B, so every read is contiguous.
  for (int64_t k = 0; k < kc; ++k) pack_b_row<NR>(out, B + (p0 + k) * ldb + j0, k, kc, nc);
}

// C (M, N) += or = alpha·op(A)·op(B) on the calling thread; `accumulate` false only for beta = 0
// (any other beta was applied to C before).
// prepacked: op(A) packed whole by pack_slices (then A and lda are unused). b_rows: B's rows
// come from this generator instead of B (then B, ldb and tb are unused).
template <class S>
void serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
            int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
            const float* prepacked = nullptr, const RowSource* b_rows = nullptr) {
  constexpr int mr = S::mr, nr = S::nr;
  constexpr S s{};
  float* scratch_a = prepacked ? nullptr : buffer(s.mc * s.kc, 0);
  float* packed_b = buffer(s.kc * s.nc, 1);
  const int64_t rows_padded = (M + mr - 1) / mr * mr;
  alignas(64) float tile[kMr512 * kNr512];
  for (int64_t jc = 0; jc < N; jc += s.nc) {
    const int64_t nc = std::min(s.nc, N - jc);
    for (int64_t pc = 0; pc < K; pc += s.kc) {
      const int64_t kc = std::min(s.kc, K - pc);
      const bool add = accumulate || pc > 0;
      if (b_rows) {
        float* row = buffer(size_t(N), 2);  // one generated row, L1-resident while it is packed
        for (int64_t k = 0; k < kc; ++k) {
          (*b_rows)(pc + k, row);
          pack_b_row<nr>(packed_b, row + jc, k, kc, nc);
        }
      } else {
        pack_b<nr>(packed_b, tb, B, ldb, pc, kc, jc, nc);
      }
      for (int64_t ic = 0; ic < M; ic += s.mc) {
        const int64_t mc = std::min(s.mc, M - ic);
        const float* packed_a = scratch_a;
        if (prepacked)
          packed_a = prepacked + rows_padded * pc + ic * kc;
        else
          pack_a<mr>(scratch_a, ta, A, lda, ic, mc, pc, kc);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const int64_t cols = std::min<int64_t>(nr, nc - jr);
          const float* b_panel = packed_b + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += mr) {
            const int64_t rows = std::min<int64_t>(mr, mc - ir);
            const float* a_panel = packed_a + ir * kc;
            float* c = C + (ic + ir) * ldc + jc + jr;
            if (rows == mr && cols == nr) {
              S::run(kc, a_panel, b_panel, c, ldc, alpha, add);
              continue;
            }
            // An edge tile: the full tile into scratch, then its valid part.
            S::run(kc, a_panel, b_panel, tile, nr, alpha, false);
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t q = 0; q < cols; ++q)
                c[r * ldc + q] = add ? c[r * ldc + q] + tile[r * nr + q] : tile[r * nr + q];
          }
        }
      }
    }
  }
}

// Enough multiply-adds per thread to be worth a parallel region (a fork/join costs a few µs).
constexpr double kMinParallelMacs = 1 << 20;

template <class S>
void own_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
              const float* prepacked = nullptr) {
  if (beta != 0.0f && beta != 1.0f)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] *= beta;
  const bool accumulate = beta != 0.0f;
  if (K == 0) {  // C = beta·C, with beta = 0 meaning zeros whatever C held
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    return;
  }
  constexpr S s{};
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const double macs = double(M) * double(N) * double(K);
  // Split C's columns (or, when it has too few, its rows) into per-thread ranges aligned to the
  // tile: every element's sum runs in the same order as on one thread.
  const bool by_columns = N >= int64_t(threads) * s.nr * 2;
  // (A packed whole is laid out for all of M: only columns split then.)
  const bool by_rows = !by_columns && !prepacked && M >= int64_t(threads) * s.mr * 2;
  if (threads == 1 || macs < kMinParallelMacs * threads || (!by_columns && !by_rows))
    return serial<S>(ta, tb, M, N, K, alpha, A, lda, B, ldb, C, ldc, accumulate, prepacked);
  const int64_t extent = by_columns ? N : M, unit = by_columns ? s.nr : s.mr;
  const int64_t units = (extent + unit - 1) / unit;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t begin = std::min(extent, units * t / team * unit);
    const int64_t end = std::min(extent, units * (t + 1) / team * unit);
    if (begin < end) {
      if (by_columns) {
        const float* Bt = tb ? B + begin * ldb : B + begin;
        serial<S>(ta, tb, M, end - begin, K, alpha, A, lda, Bt, ldb, C + begin, ldc, accumulate,
                  prepacked);
      } else {
        const float* At = ta ? A + begin : A + begin * lda;
        serial<S>(ta, tb, end - begin, N, K, alpha, At, lda, B, ldb, C + begin * ldc, ldc,
                  accumulate);
      }
    }
  }
}

// op(A) (M, K) whole into `out`: slice by slice of kc, each [M rounded up to MR][kc] in MR-row
// panels, the layout serial() reads a block of at rows_padded·pc + ic·kc.
template <class S>
void pack_slices(std::vector<float>& out, bool trans, int64_t M, int64_t K, const float* A,
                 int64_t lda) {
  const int64_t rows_padded = (M + S::mr - 1) / S::mr * S::mr;
  out.resize(static_cast<size_t>(rows_padded * K));
  const int64_t slices = (K + S::kc - 1) / S::kc;
  const bool parallel = !omp_in_parallel() && slices > 1 && M * K >= (int64_t{1} << 16);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < slices; ++i) {
    const int64_t pc = i * S::kc, kc = std::min(S::kc, K - pc);
    pack_a<S::mr>(out.data() + rows_padded * pc, trans, A, lda, 0, M, pc, kc);
  }
}

std::vector<Backend> probe() {
  std::vector<Backend> out;
  // __builtin_cpu_supports checks the OS saves the registers too (XCR0), not only CPUID.
  if (__builtin_cpu_supports("avx512f")) out.push_back(Backend::avx512);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(Backend::avx2);
  out.push_back(Backend::blas);
  return out;
}

bool has(Backend backend) {
  const auto& all = backends();
  return std::find(all.begin(), all.end(), backend) != all.end();
}

std::string list_backends() {
  std::string out;
  for (const Backend b : backends()) out += std::string(out.empty() ? "" : ", ") + name(b);
  return out;
}

Backend from_environment() {
  const char* chosen = std::getenv("MF_GEMM");
  if (!chosen || !*chosen) return backends().front();
  return parse(chosen, "MF_GEMM");
}

std::atomic<int> g_active{-1};

}  // namespace

const std::vector<Backend>& backends() {
  static const std::vector<Backend> all = probe();
  return all;
}

const char* name(Backend backend) {
  switch (backend) {
    case Backend::avx512:
      return "avx512";
    case Backend::avx2:
      return "avx2";
    case Backend::blas:
      return "blas";
  }
  return "?";
}

Backend parse(const std::string& text, const std::string& where) {
  for (const Backend b : {Backend::avx512, Backend::avx2, Backend::blas})
    if (text == name(b)) {
      MF_CHECK(has(b), where, "=", text, ": this CPU lacks it; it has ", list_backends());
      return b;
    }
  MF_FAIL(where, "=", text, " is not a GEMM backend; this CPU has ", list_backends());
}

Backend active() {
  int current = g_active.load();
  if (current < 0) {
    current = static_cast<int>(from_environment());
    g_active.store(current);
  }
  return static_cast<Backend>(current);
}

void set_active(Backend backend) {
  MF_CHECK(has(backend), "GEMM backend ", name(backend), " is not available on this CPU (it has ",
           list_backends(), ")");
  g_active.store(static_cast<int>(backend));
}

void gemm(Backend backend, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  switch (backend) {
    case Backend::avx512:
      return own_gemm<Shape512>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    case Backend::avx2:
      return own_gemm<Shape256>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    case Backend::blas:
      cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                  trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                  ldc);
      return;
  }
}

void pack_a(PackedA& out, Backend backend, bool trans, int64_t M, int64_t K, const float* A,
            int64_t lda) {
  out.backend = backend;
  out.trans = trans;
  out.M = M;
  out.K = K;
  out.source = A;
  out.lda = lda;
  switch (backend) {
    case Backend::avx512:
      return pack_slices<Shape512>(out.data, trans, M, K, A, lda);
    case Backend::avx2:
      return pack_slices<Shape256>(out.data, trans, M, K, A, lda);
    case Backend::blas:
      out.data.clear();
      return;
  }
}

void gemm(const PackedA& a, bool trans_b, int64_t N, float alpha, const float* B, int64_t ldb,
          float beta, float* C, int64_t ldc) {
  if (a.M <= 0 || N <= 0) return;
  switch (a.backend) {
    case Backend::avx512:
      return own_gemm<Shape512>(a.trans, trans_b, a.M, N, a.K, alpha, nullptr, 0, B, ldb, beta, C,
                                ldc, a.data.data());
    case Backend::avx2:
      return own_gemm<Shape256>(a.trans, trans_b, a.M, N, a.K, alpha, nullptr, 0, B, ldb, beta, C,
                                ldc, a.data.data());
    case Backend::blas:
      return gemm(Backend::blas, a.trans, trans_b, a.M, N, a.K, alpha, a.source, a.lda, B, ldb,
                  beta, C, ldc);
  }
}

void gemm_rows(const PackedA& a, const RowSource& rows, int64_t N, float alpha, float beta,
               float* C, int64_t ldc) {
  MF_CHECK(beta == 0.0f || beta == 1.0f, "sgemm::gemm_rows: beta must be 0 or 1, got ", beta);
  if (a.M <= 0 || N <= 0) return;
  const bool accumulate = beta != 0.0f;
  if (a.K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < a.M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    return;
  }
  switch (a.backend) {
    case Backend::avx512:
      return serial<Shape512>(a.trans, false, a.M, N, a.K, alpha, nullptr, 0, nullptr, 0, C, ldc,
                              accumulate, a.data.data(), &rows);
    case Backend::avx2:
      return serial<Shape256>(a.trans, false, a.M, N, a.K, alpha, nullptr, 0, nullptr, 0, C, ldc,
                              accumulate, a.data.data(), &rows);
    case Backend::blas: {  // OpenBLAS takes B from memory: generate it whole
      std::vector<float> B(static_cast<size_t>(a.K * N));
      for (int64_t k = 0; k < a.K; ++k) rows(k, B.data() + k * N);
      return gemm(a, false, N, alpha, B.data(), N, beta, C, ldc);
    }
  }
}

}  // namespace mf::kernels::sgemm
