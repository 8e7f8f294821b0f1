// Pointwise activations. Backward ACCUMULATES into dx (and dalpha); null skips.
#pragma once

#include <cmath>
#include <cstdint>

#include "tensor/kernels/parallel.h"

namespace mf::kernels {

// ReLU: y = max(0, x); dy/dx = [x > 0] (0 at the kink, as in PyTorch).
template <class T>
void relu_forward(T* y, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}
template <class T>
void relu_backward(T* dx, const T* dy, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) dx[i] += x[i] > T(0) ? dy[i] : T(0);
}

// Sigmoid: y = 1 / (1 + e^−x); dy/dx = y·(1 − y), computed from the saved output.
template <class T>
void sigmoid_forward(T* y, const T* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) y[i] = T(1) / (T(1) + std::exp(-x[i]));
}
template <class T>
void sigmoid_backward(T* dx, const T* dy, const T* y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * y[i] * (T(1) - y[i]);
}

// PReLU (He et al. 2015, eq. 1) with one slope per channel:
//   y = x if x > 0 else a_c·x.   x, y: (N, C, S); alpha: (C).
//   dx = dy·(x > 0 ? 1 : a_c);   da_c = Σ_{x ≤ 0} dy·x.
template <class T>
void prelu_forward(T* y, const T* x, const T* alpha, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for collapse(2) schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const T a = alpha[c];
      const T* xc = x + (n * C + c) * S;
      T* yc = y + (n * C + c) * S;
#pragma omp simd
      for (int64_t s = 0; s < S; ++s) yc[s] = xc[s] > T(0) ? xc[s] : a * xc[s];
    }
}
template <class T>
void prelu_backward(T* dx, T* dalpha, const T* dy, const T* x, const T* alpha, int64_t N, int64_t C,
                    int64_t S) {
  // Parallel over channels so the slope gradient reduces without races.
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    const T a = alpha[c];
    T da = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * S;
      const T* dyc = dy + (n * C + c) * S;
      if (dx) {
        T* dxc = dx + (n * C + c) * S;
#pragma omp simd
        for (int64_t s = 0; s < S; ++s) dxc[s] += xc[s] > T(0) ? dyc[s] : a * dyc[s];
      }
#pragma omp simd reduction(+ : da)
      for (int64_t s = 0; s < S; ++s) da += xc[s] > T(0) ? T(0) : dyc[s] * xc[s];
    }
    if (dalpha) dalpha[c] += da;
  }
}

}  // namespace mf::kernels
