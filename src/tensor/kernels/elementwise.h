// Elementwise kernels. Backward ACCUMULATES into its outputs; a null pointer skips one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tensor/kernels/parallel.h"

namespace mf::kernels {

// Broadcasting of b against a: same rank, every b dimension equal to a's or 1 — the forms BN
// ((1, C, 1, 1)), squeeze-excitation ((N, C, 1, 1)) and scalar scales ((1, 1)) need.
// Dimensions are padded to 6 on the left.
struct Broadcast {
  static constexpr int kRank = 6;
  int64_t dims[kRank];      // output (= a) dimensions
  int64_t b_stride[kRank];  // b's stride per output axis, 0 where b is broadcast
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

// Calls f(i, j) for every output index i and the index j of b it reads.
template <class F>
void for_each_broadcast(const Broadcast& bc, F&& f) {
  const int64_t inner = bc.dims[Broadcast::kRank - 1],
                inner_stride = bc.b_stride[Broadcast::kRank - 1];
  const int64_t outer = bc.numel() / std::max<int64_t>(inner, 1);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rest = o, j = 0;
    for (int axis = Broadcast::kRank - 2; axis >= 0; --axis) {
      j += (rest % bc.dims[axis]) * bc.b_stride[axis];
      rest /= bc.dims[axis];
    }
    const int64_t i0 = o * inner;
    for (int64_t k = 0; k < inner; ++k) f(i0 + k, j + k * inner_stride);
  }
}

// y = a + sign·b  (sign = +1 add, −1 subtract)
template <class T>
void add_forward(T* y, const T* a, const T* b, T sign, const Broadcast& bc) {
  for_each_broadcast(bc, [&](int64_t i, int64_t j) { y[i] = a[i] + sign * b[j]; });
}
template <class T>
void add_backward(T* da, T* db, const T* dy, T sign, const Broadcast& bc) {
  for_each_broadcast(bc, [&](int64_t i, int64_t j) {
    if (da) da[i] += dy[i];
    if (db) db[j] += sign * dy[i];
  });
}

// y = a · b
template <class T>
void mul_forward(T* y, const T* a, const T* b, const Broadcast& bc) {
  for_each_broadcast(bc, [&](int64_t i, int64_t j) { y[i] = a[i] * b[j]; });
}
template <class T>
void mul_backward(T* da, T* db, const T* dy, const T* a, const T* b, const Broadcast& bc) {
  for_each_broadcast(bc, [&](int64_t i, int64_t j) {
    if (da) da[i] += dy[i] * b[j];
    if (db) db[j] += dy[i] * a[i];
  });
}

// y = alpha·x + beta (scalar constants)
template <class T>
void affine_forward(T* y, const T* x, T alpha, T beta, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta;
}
template <class T>
void affine_backward(T* dx, const T* dy, T alpha, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) dx[i] += alpha * dy[i];
}

// y = clamp(x, lo, hi); the gradient passes where lo ≤ x ≤ hi (PyTorch's convention).
template <class T>
void clamp_forward(T* y, const T* x, T lo, T hi, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(x[i], lo), hi);
}
template <class T>
void clamp_backward(T* dx, const T* dy, const T* x, T lo, T hi, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] += (x[i] >= lo && x[i] <= hi) ? dy[i] : T(0);
}

// y = cos x; dx = −sin x · dy
template <class T>
void cos_forward(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::cos(x[i]);
}
template <class T>
void cos_backward(T* dx, const T* dy, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] -= std::sin(x[i]) * dy[i];
}

// y = acos x on [−1, 1]; dx = −dy / √(1 − x²), unbounded at ±1 (callers clamp away from there).
template <class T>
void acos_forward(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::acos(x[i]);
}
template <class T>
void acos_backward(T* dx, const T* dy, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] -= dy[i] / std::sqrt(T(1) - x[i] * x[i]);
}

// y = √x; dx = dy / (2y), from the saved output.
template <class T>
void sqrt_forward(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::sqrt(x[i]);
}
template <class T>
void sqrt_backward(T* dx, const T* dy, const T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] / (T(2) * y[i]);
}

// y = 1/x, dx += −dy·y² (x = 0 gives ±inf, as in PyTorch).
template <class T>
void reciprocal_forward(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = T(1) / x[i];
}
template <class T>
void reciprocal_backward(T* dx, const T* dy, const T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] -= dy[i] * y[i] * y[i];
}

// Inverted dropout with a given keep-mask (1 keep, 0 drop): y = x·mask / (1 − p).
template <class T>
void dropout_forward(T* y, const T* x, const uint8_t* mask, T p, int64_t n) {
  const T scale = T(1) / (T(1) - p);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) y[i] = mask[i] ? x[i] * scale : T(0);
}
template <class T>
void dropout_backward(T* dx, const T* dy, const uint8_t* mask, T p, int64_t n) {
  const T scale = T(1) / (T(1) - p);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) dx[i] += mask[i] ? dy[i] * scale : T(0);
}

}  // namespace mf::kernels
