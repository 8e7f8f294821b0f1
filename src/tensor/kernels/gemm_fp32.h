// Our own fp32 GEMM: packed operands and register-blocked AVX-512 / AVX2 microkernels, chosen at
// run time from the CPU's features, so the hot loop's speed and bits depend on neither the BLAS
// build nor OPENBLAS_CORETYPE. It is exact fp32 arithmetic (one FMA per product, no reduced
// precision), only its summation order differs from OpenBLAS's.
//
// C (M, N) = alpha · op(A) (M, K) · op(B) (K, N) + beta · C, row-major, as kernels::gemm.
//
// Structure (Goto's algorithm, as in BLIS: K. Goto and R. van de Geijn, "Anatomy of
// high-performance matrix multiplication", ACM TOMS 34(3), 2008, §4): the K dimension is cut into
// slices of kc, A into blocks of mc rows packed as MR-row panels ([k][MR], L2-resident), B into
// NR-column panels ([k][NR]); the microkernel keeps an MR×NR tile of C in registers and adds one
// rank-1 update per k. Each element of C is summed in the same order whatever the thread count:
// threads split C's columns (or rows), never K, so 1 and 2 threads give the same bits.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mf::kernels::sgemm {

// avx512: 12×32 tile (24 zmm accumulators); avx2: 6×16 tile (12 ymm, with FMA3); blas: OpenBLAS's
// cblas_sgemm, the exact fallback for CPUs with neither.
enum class Backend { avx512, avx2, blas };

// This machine's backends, fastest first; blas is always last.
const std::vector<Backend>& backends();
const char* name(Backend backend);
// The backend gemm<float> uses: the fastest, unless the environment variable MF_GEMM names
// another one this CPU has (avx512, avx2 or blas; an unknown or unsupported name is an error that
// says which ones exist). set_active changes it for the process (tests and bench).
Backend active();
// The backend called `text` (avx512, avx2 or blas) if this CPU has it; else an error that names
// `where` (the option or variable it came from) and the backends there are.
Backend parse(const std::string& text, const std::string& where);
void set_active(Backend backend);

// C = alpha·op(A)·op(B) + beta·C on `backend`. beta = 0 never reads C. Threads over C's columns
// (or rows) with OpenMP when called outside a parallel region and the product is large enough;
// inside one (the convolutions' per-thread GEMMs) it runs on the calling thread.
void gemm(Backend backend, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc);

// op(A) packed once for many products with it (a convolution's weights, used by every column
// block): the same arithmetic as gemm(), without repacking A per call. The blas backend keeps a
// pointer to A instead (which must then outlive the PackedA).
struct PackedA {
  Backend backend = Backend::blas;
  bool trans = false;
  int64_t M = 0, K = 0, lda = 0;
  const float* source = nullptr;
  std::vector<float> data;  // own kernels: K in slices of kc, each [M rounded up to MR][kc]
};
void pack_a(PackedA& out, Backend backend, bool trans, int64_t M, int64_t K, const float* A,
            int64_t lda);
// C (a.M, N) = alpha · op(A) · op(B) + beta · C.
void gemm(const PackedA& a, bool trans_b, int64_t N, float alpha, const float* B, int64_t ldb,
          float beta, float* C, int64_t ldc);

// op(B) (K, N) supplied row by row instead of from memory: rows(k, out) writes row k's N values.
// For an operand cheaper to generate than to store and read back (a convolution's im2col, whose
// block can exceed L2): each row is packed from an L1-resident buffer as it is made. Runs on the
// calling thread; the same sums in the same order as gemm() on the generated B.
using RowSource = std::function<void(int64_t k, float* out)>;
// C (a.M, N) = alpha · op(A) · B + beta · C with B from `rows`; beta 0 or 1.
void gemm_rows(const PackedA& a, const RowSource& rows, int64_t N, float alpha, float beta,
               float* C, int64_t ldc);

}  // namespace mf::kernels::sgemm
