// Row-wise kernels on (N, D) or (N, K) matrices. Backward ACCUMULATES; a null pointer skips.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tensor/kernels/parallel.h"

namespace mf::kernels {

// Row-wise L2 normalization, y = x / max(‖x‖, eps) (torch.nn.functional.normalize).
// norms (N) keeps ‖x‖ for the backward:
//   ‖x‖ > eps: dx = (dy − y·⟨y, dy⟩) / ‖x‖    (the projection that removes the radial part)
//   ‖x‖ ≤ eps: dx = dy / eps                  (the clamp is constant there)
template <class T>
void l2_normalize_forward(T* y, T* norms, const T* x, int64_t N, int64_t D, T eps) {
#pragma omp parallel for schedule(static) if (N * D >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * D;
    T sq = 0;
    for (int64_t d = 0; d < D; ++d) sq += xr[d] * xr[d];
    const T norm = std::sqrt(sq);
    norms[n] = norm;
    const T inv = T(1) / std::max(norm, eps);
    for (int64_t d = 0; d < D; ++d) y[n * D + d] = xr[d] * inv;
  }
}
template <class T>
void l2_normalize_backward(T* dx, const T* dy, const T* y, const T* norms, int64_t N, int64_t D,
                           T eps) {
#pragma omp parallel for schedule(static) if (N * D >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* yr = y + n * D;
    const T* dyr = dy + n * D;
    T* dxr = dx + n * D;
    if (norms[n] > eps) {
      T dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += yr[d] * dyr[d];
      const T inv = T(1) / norms[n];
      for (int64_t d = 0; d < D; ++d) dxr[d] += (dyr[d] - yr[d] * dot) * inv;
    } else {
      for (int64_t d = 0; d < D; ++d) dxr[d] += dyr[d] / eps;
    }
  }
}

// Stable log-softmax per row: y = x − max − log Σ exp(x − max).
// dx = dy − softmax · Σ dy, with softmax = exp(y).
template <class T>
void log_softmax_forward(T* y, const T* x, int64_t N, int64_t K) {
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * K;
    const T mx = *std::max_element(xr, xr + K);
    T sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += std::exp(xr[k] - mx);
    const T lse = mx + std::log(sum);
    for (int64_t k = 0; k < K; ++k) y[n * K + k] = xr[k] - lse;
  }
}
template <class T>
void log_softmax_backward(T* dx, const T* dy, const T* y, int64_t N, int64_t K) {
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    T sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += dy[n * K + k];
    for (int64_t k = 0; k < K; ++k) dx[n * K + k] += dy[n * K + k] - std::exp(y[n * K + k]) * sum;
  }
}

// Mean softmax cross-entropy over the batch: loss = −(1/N) Σ_n log softmax(z_n)[y_n].
// prob (N, K) receives the softmax for the backward: dz = (prob − onehot(y)) · dloss / N.
template <class T>
T softmax_xent_forward(T* prob, const T* z, const int64_t* labels, int64_t N, int64_t K) {
  T total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* zr = z + n * K;
    T* pr = prob + n * K;
    const T mx = *std::max_element(zr, zr + K);
    T sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      pr[k] = std::exp(zr[k] - mx);
      sum += pr[k];
    }
    const T inv = T(1) / sum;
    for (int64_t k = 0; k < K; ++k) pr[k] *= inv;
    total += -(zr[labels[n]] - mx - std::log(sum));
  }
  return total / T(N);
}
template <class T>
void softmax_xent_backward(T* dz, T dloss, const T* prob, const int64_t* labels, int64_t N,
                           int64_t K) {
  const T scale = dloss / T(N);
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) dz[n * K + k] += scale * prob[n * K + k];
    dz[n * K + labels[n]] -= scale;
  }
}

// Target column: t_n = z[n, y_n].
template <class T>
void gather_target_forward(T* t, const T* z, const int64_t* labels, int64_t N, int64_t K) {
  for (int64_t n = 0; n < N; ++n) t[n] = z[n * K + labels[n]];
}
template <class T>
void gather_target_backward(T* dz, const T* dt, const int64_t* labels, int64_t N, int64_t K) {
  for (int64_t n = 0; n < N; ++n) dz[n * K + labels[n]] += dt[n];
}

// out = z with the target column replaced by t: out[n, y_n] = t_n.
// dz = dout with the target column zeroed; dt_n = dout[n, y_n].
template <class T>
void replace_target_forward(T* out, const T* z, const T* t, const int64_t* labels, int64_t N,
                            int64_t K) {
  std::copy(z, z + N * K, out);
  for (int64_t n = 0; n < N; ++n) out[n * K + labels[n]] = t[n];
}
template <class T>
void replace_target_backward(T* dz, T* dt, const T* dout, const int64_t* labels, int64_t N,
                             int64_t K) {
  for (int64_t n = 0; n < N; ++n) {
    if (dz)
      for (int64_t k = 0; k < K; ++k)
        if (k != labels[n]) dz[n * K + k] += dout[n * K + k];
    if (dt) dt[n] += dout[n * K + labels[n]];
  }
}

}  // namespace mf::kernels
