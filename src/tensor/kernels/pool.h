// Pooling over NCHW maps. Backward ACCUMULATES into dx.
#pragma once

#include <cstdint>
#include <limits>

#include "tensor/kernels/parallel.h"

namespace mf::kernels {

// Global average pooling: (N, C, H, W) → (N, C, 1, 1); dx = dy / (H·W) everywhere.
template <class T>
void global_avg_pool_forward(T* y, const T* x, int64_t NC, int64_t S) {
#pragma omp parallel for schedule(static) if (NC * S >= kParallelMinWork)
  for (int64_t i = 0; i < NC; ++i) {
    T sum = 0;
    for (int64_t s = 0; s < S; ++s) sum += x[i * S + s];
    y[i] = sum / T(S);
  }
}
template <class T>
void global_avg_pool_backward(T* dx, const T* dy, int64_t NC, int64_t S) {
#pragma omp parallel for schedule(static) if (NC * S >= kParallelMinWork)
  for (int64_t i = 0; i < NC; ++i) {
    const T d = dy[i] / T(S);
    for (int64_t s = 0; s < S; ++s) dx[i * S + s] += d;
  }
}

struct PoolGeometry {
  int64_t N = 0, C = 0, H = 0, W = 0, kernel = 2, stride = 2, pad = 0;
  int64_t Ho() const { return (H + 2 * pad - kernel) / stride + 1; }
  int64_t Wo() const { return (W + 2 * pad - kernel) / stride + 1; }
};

// Max pooling; padding counts as −∞. argmax (N, C, Ho, Wo) keeps the flat H·W index of the winner
// (the first maximum on ties, as PyTorch) so the backward routes dy there.
template <class T>
void max_pool_forward(T* y, int32_t* argmax, const T* x, const PoolGeometry& g) {
  const int64_t Ho = g.Ho(), Wo = g.Wo();
#pragma omp parallel for schedule(static) if (g.N * g.C * Ho * Wo * g.kernel * g.kernel >= \
                                              kParallelMinWork)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const T* xc = x + nc * g.H * g.W;
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        int32_t best_index = -1;
        for (int64_t ki = 0; ki < g.kernel; ++ki) {
          const int64_t ih = oh * g.stride - g.pad + ki;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t kj = 0; kj < g.kernel; ++kj) {
            const int64_t iw = ow * g.stride - g.pad + kj;
            if (iw < 0 || iw >= g.W) continue;
            const T v = xc[ih * g.W + iw];
            if (v > best || best_index < 0) {
              best = v;
              best_index = static_cast<int32_t>(ih * g.W + iw);
            }
          }
        }
        y[(nc * Ho + oh) * Wo + ow] = best;
        argmax[(nc * Ho + oh) * Wo + ow] = best_index;
      }
  }
}
template <class T>
void max_pool_backward(T* dx, const T* dy, const int32_t* argmax, const PoolGeometry& g) {
  const int64_t HoWo = g.Ho() * g.Wo();
#pragma omp parallel for schedule(static) if (g.N * g.C * HoWo >= kParallelMinWork)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc)
    for (int64_t i = 0; i < HoWo; ++i)
      if (argmax[nc * HoWo + i] >= 0)
        dx[nc * g.H * g.W + argmax[nc * HoWo + i]] += dy[nc * HoWo + i];
}

}  // namespace mf::kernels
