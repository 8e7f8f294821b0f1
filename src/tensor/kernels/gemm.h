// Row-major GEMM: C = alpha · op(A) · op(B) + beta · C.
//   op(A): (M, K), op(B): (K, N), C: (M, N); lda/ldb/ldc are the row strides as stored.
// float → our own AVX-512 / AVX2 GEMM (gemm_fp32.h; OpenBLAS's cblas_sgemm on CPUs without AVX2
// or with MF_GEMM=blas), double → cblas_dgemm, so every kernel built on it can be
// gradient-checked in double with the same code.
#pragma once

#include <cstdint>

namespace mf::kernels {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Same, with dense leading dimensions.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          const T* B, T beta, T* C) {
  gemm<T>(trans_a, trans_b, M, N, K, alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, N);
}

}  // namespace mf::kernels
