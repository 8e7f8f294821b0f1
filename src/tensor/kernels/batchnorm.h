// Batch normalization (Ioffe & Szegedy 2015, Alg. 1) over (N, C, S), S = H·W (S = 1 for BN1d).
//   train: mean, var = batch statistics per channel (biased var normalizes, as in PyTorch);
//          running ← (1 − momentum)·running + momentum·batch (running var takes the unbiased var).
//   eval:  mean, var = running statistics.
//   y = γ · (x − mean) / √(var + eps) + β.
// The forward writes mean and invstd = 1/√(var + eps) (C each) for the backward.
// Backward ACCUMULATES into dx, dgamma, dbeta (null skips); it can read x̂ from the input or from
// the output (batchnorm_backward_from_output).
//   train: dx = γ·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)),  M = N·S  (the batch mean and var depend on
//   x) eval:  dx = γ·invstd·dy dγ = Σ dy·x̂,  dβ = Σ dy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

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

// BN with given statistics as y = x·scale + shift: scale = γ/√(var + eps), shift = β − mean·scale
// (γ = 1, β = 0 when null). batchnorm_forward and the fused inference convolution
// (ConvEpilogue) both use this, so they normalise with the same two numbers per channel.
template <class T>
std::pair<T, T> batchnorm_affine(const T* gamma, const T* beta, T mean, T var, T eps, int64_t c) {
  const T scale = (gamma ? gamma[c] : T(1)) * (T(1) / std::sqrt(var + eps));
  return {scale, (beta ? beta[c] : T(0)) - mean * scale};
}

// With alpha non-null the output is PReLU(BN(x)) with slopes alpha (C), in the same pass.
// `moments` (training only; null = this batch's): the mean (C) then the biased variance (C) to
// normalise with, computed over `M_moments` values per channel (SyncBN: the global batch's).
template <class T>
void batchnorm_forward(T* y, T* mean, T* invstd, const T* x, const T* gamma, const T* beta,
                       T* running_mean, T* running_var, bool training, T momentum, T eps, int64_t N,
                       int64_t C, int64_t S, const T* alpha = nullptr,
                       const double* moments = nullptr, int64_t M_moments = 0) {
  const int64_t M = moments ? M_moments : N * S;
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    T m, v;
    if (training) {
      double dm, dv;
      if (moments) {
        dm = moments[c];
        dv = moments[C + c];
      } else {
        channel_moments(x, N, C, S, c, &dm, &dv);
      }
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
    mean[c] = m;
    invstd[c] = T(1) / std::sqrt(v + eps);
    // Plain copies, not a structured binding: OpenMP regions (and clang < 16) cannot capture those.
    const std::pair<T, T> affine = batchnorm_affine(gamma, beta, m, v, eps, c);
    const T scale = affine.first, shift = affine.second;
    for (int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * S;
      T* yc = y + (n * C + c) * S;
      if (alpha) {
        const T a = alpha[c];
#pragma omp simd
        for (int64_t s = 0; s < S; ++s) {
          const T z = xc[s] * scale + shift;
          yc[s] = z > T(0) ? z : a * z;
        }
      } else {
#pragma omp simd
        for (int64_t s = 0; s < S; ++s) yc[s] = xc[s] * scale + shift;
      }
    }
  }
}

// The backward on x̂ = (src − offset)·factor per channel, where src is either the input
// (offset = mean, factor = invstd) or the output (offset = β, factor = 1/γ); xhat_of(c) gives
// {offset, factor} for channel c.
template <class T, class XhatOf>
void batchnorm_backward_xhat(T* dx, T* dgamma, T* dbeta, const T* dy, const T* src, XhatOf xhat_of,
                             const T* invstd, const T* gamma, bool training, int64_t N, int64_t C,
                             int64_t S) {
  const int64_t M = N * S;
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    const auto xhat = xhat_of(c);  // (offset, factor); copies: OpenMP SIMD regions cannot use
    const T off = xhat.first, f = xhat.second;  // a structured binding under clang < 16
    const T is = invstd[c];
    // Σ dy and Σ dy·(src − offset); the factor is applied once per channel.
    double sum_dy = 0, sum_dy_xc = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* sc = src + (n * C + c) * S;
      const T* dyc = dy + (n * C + c) * S;
      double row_dy = 0, row_dy_xc = 0;
#pragma omp simd reduction(+ : row_dy, row_dy_xc)
      for (int64_t s = 0; s < S; ++s) {
        row_dy += double(dyc[s]);
        row_dy_xc += double(dyc[s]) * double(sc[s] - off);
      }
      sum_dy += row_dy;
      sum_dy_xc += row_dy_xc;
    }
    const double sum_dy_xhat = sum_dy_xc * f;
    if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
    if (!dx) continue;
    const T g = (gamma ? gamma[c] : T(1)) * is;
    const T mean_dy = static_cast<T>(sum_dy / M);
    const T k = static_cast<T>(sum_dy_xhat / M) * f;  // coefficient of (src − offset)
    for (int64_t n = 0; n < N; ++n) {
      const T* sc = src + (n * C + c) * S;
      const T* dyc = dy + (n * C + c) * S;
      T* dxc = dx + (n * C + c) * S;
      if (training) {
#pragma omp simd
        for (int64_t s = 0; s < S; ++s) dxc[s] += g * (dyc[s] - mean_dy - (sc[s] - off) * k);
      } else {
#pragma omp simd
        for (int64_t s = 0; s < S; ++s) dxc[s] += g * dyc[s];
      }
    }
  }
}

// SyncBN's moments over every process of a data-parallel run (Peng et al., "MegDet", CVPR 2018,
// Sec. 4.2): two passes, each a per-channel sum completed by `sum_all` (C values → their sum over
// the processes): the mean, then Σ(x − mean)². Fills moments (2C: mean, biased variance); returns
// the global count M.
template <class T, class SumAll>
int64_t synced_moments(const T* x, int64_t N, int64_t C, int64_t S, double* moments,
                       SumAll sum_all) {
  double count = double(N * S);
  sum_all(&count, 1);
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * S;
      double row = 0;
#pragma omp simd reduction(+ : row)
      for (int64_t s = 0; s < S; ++s) row += double(xc[s]);
      sum += row;
    }
    moments[c] = sum;
  }
  sum_all(moments, C);
  for (int64_t c = 0; c < C; ++c) moments[c] /= count;
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    const double m = moments[c];
    double sq = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * S;
      double row = 0;
#pragma omp simd reduction(+ : row)
      for (int64_t s = 0; s < S; ++s) row += (double(xc[s]) - m) * (double(xc[s]) - m);
      sq += row;
    }
    moments[C + c] = sq;
  }
  sum_all(moments + C, C);
  for (int64_t c = 0; c < C; ++c) moments[C + c] /= count;
  return static_cast<int64_t>(count);
}

// SyncBN's backward (training): dx needs Σdy and Σdy·x̂ over the global batch, so the per-channel
// sums go through `sum_all` (2C values) and M is the global count. dγ and dβ stay this process's
// share: the trainer sums parameter gradients over the processes.
//   dx = γ·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)),  x̂ = (x − mean)·invstd
template <class T, class SumAll>
void batchnorm_backward_synced(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                               const T* invstd, const T* gamma, int64_t N, int64_t C, int64_t S,
                               int64_t M_total, double* sums /* 2C scratch */, SumAll sum_all) {
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    const T m = mean[c], is = invstd[c];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * S;
      const T* dyc = dy + (n * C + c) * S;
      double row_dy = 0, row_dy_xhat = 0;
#pragma omp simd reduction(+ : row_dy, row_dy_xhat)
      for (int64_t s = 0; s < S; ++s) {
        row_dy += double(dyc[s]);
        row_dy_xhat += double(dyc[s]) * double((xc[s] - m) * is);
      }
      sum_dy += row_dy;
      sum_dy_xhat += row_dy_xhat;
    }
    if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
    sums[c] = sum_dy;
    sums[C + c] = sum_dy_xhat;
  }
  sum_all(sums, 2 * C);
  if (!dx) return;
  const double M = double(M_total);
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    const T m = mean[c], is = invstd[c];
    const T g = (gamma ? gamma[c] : T(1)) * is;
    const T mean_dy = static_cast<T>(sums[c] / M), mean_dy_xhat = static_cast<T>(sums[C + c] / M);
    for (int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * S;
      const T* dyc = dy + (n * C + c) * S;
      T* dxc = dx + (n * C + c) * S;
#pragma omp simd
      for (int64_t s = 0; s < S; ++s)
        dxc[s] += g * (dyc[s] - mean_dy - (xc[s] - m) * is * mean_dy_xhat);
    }
  }
}

template <class T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                        const T* invstd, const T* gamma, bool training, int64_t N, int64_t C,
                        int64_t S) {
  auto from_input = [&](int64_t c) { return std::pair<T, T>{mean[c], invstd[c]}; };
  batchnorm_backward_xhat(dx, dgamma, dbeta, dy, x, from_input, invstd, gamma, training, N, C, S);
}

// The backward from the output y instead of the input, as in-place activated BN does (Rota Bulò
// et al., CVPR 2018, Sec. 3): x̂ = (y − β)/γ, so a network need not keep a BN's input alive for
// its backward when the output is kept anyway (by the conv or PReLU that reads it). Needs every
// |γ| well away from 0: see batchnorm_output_invertible.
template <class T>
void batchnorm_backward_from_output(T* dx, T* dgamma, T* dbeta, const T* dy, const T* y,
                                    const T* gamma, const T* beta, const T* invstd, bool training,
                                    int64_t N, int64_t C, int64_t S) {
  auto from_output = [&](int64_t c) {
    return std::pair<T, T>{beta ? beta[c] : T(0), gamma ? T(1) / gamma[c] : T(1)};
  };
  batchnorm_backward_xhat(dx, dgamma, dbeta, dy, y, from_output, invstd, gamma, training, N, C, S);
}

// Whether x̂ = (y − β)/γ loses little: y carries a rounding error of about ε·(|γ·x̂| + |β|), which
// the division scales by 1/|γ|. With |γ| ≥ 10⁻³·(1 + |β|) the error in x̂ stays below ~10³ ε.
template <class T>
bool batchnorm_output_invertible(const T* gamma, const T* beta, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    const T g = gamma ? gamma[c] : T(1), b = beta ? beta[c] : T(0);
    if (!(std::abs(g) >= T(1e-3) * (1 + std::abs(b)))) return false;
  }
  return true;
}

// Backward of p = PReLU_α(BN(x)) from p alone. With every α > 0 the PReLU is invertible and keeps
// the sign: y = BN(x) = p for p > 0 and p/α otherwise; then x̂ = (y − β)/γ as above. Two passes
// per channel over (dp, p), no intermediate tensor:
//   dy = dp for p > 0, α·dp otherwise;   dα += Σ_{p<0} dp·y;   dγ += Σ dy·x̂;   dβ += Σ dy;
//   dx += γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))   (train; eval: dx += γ·invstd·dy).
template <class T>
void batchnorm_prelu_backward(T* dx, T* dgamma, T* dbeta, T* dalpha, const T* dp, const T* p,
                              const T* gamma, const T* beta, const T* alpha, const T* invstd,
                              bool training, int64_t N, int64_t C, int64_t S) {
  const int64_t M = N * S;
#pragma omp parallel for schedule(static) if (N * C * S >= kParallelMinWork)
  for (int64_t c = 0; c < C; ++c) {
    const T a = alpha[c], inv_a = T(1) / a, b = beta ? beta[c] : T(0);
    const T inv_g = gamma ? T(1) / gamma[c] : T(1);
    double sum_dy = 0, sum_dy_yc = 0, sum_da = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* pc = p + (n * C + c) * S;
      const T* dpc = dp + (n * C + c) * S;
      // Float partial sums over short chunks (vectorised at full width), chunks summed in double:
      // the rounding error stays that of a 256-term float sum, not of S terms.
      double row_dy = 0, row_dy_yc = 0, row_da = 0;
      for (int64_t s0 = 0; s0 < S; s0 += 256) {
        const int64_t s1 = std::min(S, s0 + 256);
        T chunk_dy = 0, chunk_dy_yc = 0, chunk_da = 0;
#pragma omp simd reduction(+ : chunk_dy, chunk_dy_yc, chunk_da)
        for (int64_t s = s0; s < s1; ++s) {
          const bool positive = pc[s] > T(0);
          const T y = positive ? pc[s] : pc[s] * inv_a;
          const T dy = positive ? dpc[s] : a * dpc[s];
          chunk_dy += dy;
          chunk_dy_yc += dy * (y - b);
          chunk_da += positive ? T(0) : dpc[s] * y;
        }
        row_dy += double(chunk_dy);
        row_dy_yc += double(chunk_dy_yc);
        row_da += double(chunk_da);
      }
      sum_dy += row_dy;
      sum_dy_yc += row_dy_yc;
      sum_da += row_da;
    }
    const double sum_dy_xhat = sum_dy_yc * inv_g;
    if (dalpha) dalpha[c] += static_cast<T>(sum_da);
    if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
    if (!dx) continue;
    const T g = (gamma ? gamma[c] : T(1)) * invstd[c];
    const T mean_dy = training ? static_cast<T>(sum_dy / M) : T(0);
    const T k = training ? static_cast<T>(sum_dy_xhat / M) * inv_g : T(0);  // coefficient of y − β
    for (int64_t n = 0; n < N; ++n) {
      const T* pc = p + (n * C + c) * S;
      const T* dpc = dp + (n * C + c) * S;
      T* dxc = dx + (n * C + c) * S;
#pragma omp simd
      for (int64_t s = 0; s < S; ++s) {
        const bool positive = pc[s] > T(0);
        const T y = positive ? pc[s] : pc[s] * inv_a;
        const T dy = positive ? dpc[s] : a * dpc[s];
        dxc[s] += g * (dy - mean_dy - (y - b) * k);
      }
    }
  }
}

// Whether p = PReLU_α(y) can be undone exactly enough: every slope positive (so p keeps y's sign)
// and not so small that p/α overflows.
template <class T>
bool prelu_invertible(const T* alpha, int64_t C) {
  for (int64_t c = 0; c < C; ++c)
    if (!(alpha[c] >= T(1e-6))) return false;
  return true;
}

}  // namespace mf::kernels
