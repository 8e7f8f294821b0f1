// Batch normalization (Ioffe & Szegedy 2015, Alg. 1) over (N, C, S), S = H·W (S = 1 for BN1d).
//   train: mean, var = batch statistics per channel (biased var normalizes, as in PyTorch);
//          running ← (1 − momentum)·running + momentum·batch (running var takes the unbiased var).
//   eval:  mean, var = running statistics.
//   y = γ · (x − mean) / √(var + eps) + β.
// The forward writes mean and invstd = 1/√(var + eps) (C each) for the backward.
// Backward ACCUMULATES into dx, dgamma, dbeta (null skips).
//   train: dx = γ·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)),  M = N·S  (the batch mean and var depend on
//   x) eval:  dx = γ·invstd·dy dγ = Σ dy·x̂,  dβ = Σ dy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tensor/kernels/parallel.h"

namespace mf::kernels {

// One pass over x for both moments, accumulated in double (exact enough that finite differences
// of a float32 network stay clean) with `omp simd reduction`, which lets the compiler vectorise
// the sums without -ffast-math. Values are shifted by a per-channel reference (the first element)
// so Σ(x − r)² does not cancel when |mean| ≫ std.
template <class T>
void channel_moments(const T* x, int64_t N, int64_t C, int64_t S, int64_t c, double* mean,
                     double* var) {
  const T ref = x[c * S];
  double sum = 0, sq = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T* xc = x + (n * C + c) * S;
    double row_sum = 0, row_sq = 0;
#pragma omp simd reduction(+ : row_sum, row_sq)
    for (int64_t s = 0; s < S; ++s) {
      const double d = double(xc[s]) - double(ref);
      row_sum += d;
      row_sq += d * d;
    }
    sum += row_sum;
    sq += row_sq;
  }
  const double M = double(N * S), shifted_mean = sum / M;
  *mean = shifted_mean + ref;
  *var = std::max(0.0, sq / M - shifted_mean * shifted_mean);
}

template <class T>
void batchnorm_forward(T* y, T* mean, T* invstd, const T* x, const T* gamma, const T* beta,
                       T* running_mean, T* running_var, bool training, T momentum, T eps,
                       int64_t N, int64_t C, int64_t S) {
  const int64_t M = N * S;
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    T m, v;
    if (training) {
      double dm, dv;
      channel_moments(x, N, C, S, c, &dm, &dv);
      m = static_cast<T>(dm);
      v = static_cast<T>(dv);
      if (running_mean) running_mean[c] = (1 - momentum) * running_mean[c] + momentum * m;
      if (running_var) {
        const T unbiased = M > 1 ? static_cast<T>(dv * M / (M - 1)) : v;
        running_var[c] = (1 - momentum) * running_var[c] + momentum * unbiased;
      }
    } else {
      m = running_mean[c];
      v = running_var[c];
    }
    const T is = T(1) / std::sqrt(v + eps);
    mean[c] = m;
    invstd[c] = is;
    const T scale = (gamma ? gamma[c] : T(1)) * is;
    const T shift = (beta ? beta[c] : T(0)) - m * scale;
    for (int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * S;
      T* yc = y + (n * C + c) * S;
#pragma omp simd
      for (int64_t s = 0; s < S; ++s) yc[s] = xc[s] * scale + shift;
    }
  }
}

template <class T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                        const T* invstd, const T* gamma, bool training, int64_t N, int64_t C,
                        int64_t S) {
  const int64_t M = N * S;
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    const T m = mean[c], is = invstd[c];
    // Σ dy and Σ dy·(x − m); x̂ = (x − m)·invstd is applied once per channel.
    double sum_dy = 0, sum_dy_xc = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * S;
      const T* dyc = dy + (n * C + c) * S;
      double row_dy = 0, row_dy_xc = 0;
#pragma omp simd reduction(+ : row_dy, row_dy_xc)
      for (int64_t s = 0; s < S; ++s) {
        row_dy += double(dyc[s]);
        row_dy_xc += double(dyc[s]) * double(xc[s] - m);
      }
      sum_dy += row_dy;
      sum_dy_xc += row_dy_xc;
    }
    const double sum_dy_xhat = sum_dy_xc * is;
    if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
    if (!dx) continue;
    const T g = (gamma ? gamma[c] : T(1)) * is;
    const T mean_dy = static_cast<T>(sum_dy / M);
    const T k = static_cast<T>(sum_dy_xhat / M) * is;  // coefficient of (x − m)
    for (int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * S;
      const T* dyc = dy + (n * C + c) * S;
      T* dxc = dx + (n * C + c) * S;
      if (training) {
#pragma omp simd
        for (int64_t s = 0; s < S; ++s) dxc[s] += g * (dyc[s] - mean_dy - (xc[s] - m) * k);
      } else {
#pragma omp simd
        for (int64_t s = 0; s < S; ++s) dxc[s] += g * dyc[s];
      }
    }
  }
}

}  // namespace mf::kernels
