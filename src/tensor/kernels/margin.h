// Margin functions of the margin heads and the fused target-column op built on them.
//
// Every cosine-softmax head (src/losses) computes logits z = scale·c over the cosine matrix
// c = x̂·Ŵᵀ (N, K), except in the target column, where z[n, y_n] = scale·f(c[n, y_n]). The
// functions below map the target cosine c = cos θ_y to f(c) and df/dc, one per head:
//   CosFace / AM-Softmax   f = c − m
//   ArcFace                f = cos(θ + m), with the θ + m > π fallback and easy_margin
//   combined (insightface) f = cos(m1·θ + m2) − m3, with the same guard
//   SphereFace (A-Softmax) f = c + w·(ψ(θ) − c), w = 1/(1 + λ) (times the warm-up ratio)
//   AdaFace                f = cos(clip(θ − g, ε, π − ε)) − h, per row (g, h from the norm)
// ElasticFace and MagFace use ArcFace / CosFace with a margin per row (margin_logits' row specs);
// CurricularFace also rescales hard negatives (curricular_logits_*), MagFace differentiates the
// margin in the feature norm (magface_target), Sub-center ArcFace pools sub-centres (group_max_*).
// Formulas, papers and pitfalls are in each head's file in src/losses and in docs/heads.md.
//
// Numerics shared by all of them:
//  * c is clamped to [−1, 1] (rounding gives |c| > 1, and acos would return NaN); as with
//    PyTorch's clamp, the derivative is 0 where the clamp is active (|c| > 1).
//  * sin θ = √clamp(1 − c², 1e-9, 1) (face.evoLVe#117, ronghuaiyang#32): the exact derivative
//    contains c / sin θ, which this keeps finite at |c| = 1. Where the clamp is active sin θ is a
//    constant, so its derivative is 0 (PyTorch's convention), and ArcFace's f′(1) = cos m.
// Templated on T so the tests check every derivative in double against finite differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tensor/kernels/parallel.h"

namespace mf::kernels {

template <class T>
struct MarginValue {
  T f;   // f(c)
  T df;  // df/dc
};

// √clamp(1 − c², 1e-9, 1) and its derivative in c (0 where the clamp is active).
template <class T>
MarginValue<T> safe_sin(T c) {
  const T one_minus = T(1) - c * c;
  if (one_minus < T(1e-9)) return {std::sqrt(T(1e-9)), T(0)};
  const T sin_t = std::sqrt(one_minus);
  return {sin_t, -c / sin_t};
}

// CosFace (Wang et al., CVPR 2018, LMCL eq. 4) / AM-Softmax (Wang et al., SPL 2018): f = c − m.
template <class T>
MarginValue<T> cosface_margin(T c, double m) {
  return {c - T(m), T(1)};
}

// ArcFace (Deng et al. 2019, eq. 3) in its careful form: φ = c·cos m − sin θ·sin m = cos(θ + m)
// while θ + m ≤ π (c > cos(π − m) = −cos m); beyond, cos(θ + m) would rise again with θ, so the
// target falls back to c − m·sin m. easy_margin: φ where c > 0, else c.
//   φ′ = cos m + sin m·c / sin θ = sin(θ + m) / sin θ; the fallbacks have derivative 1.
// guard = false drops the fallback (ElasticFace's code computes cos(acos c + m) for every θ).
template <class T>
MarginValue<T> arcface_margin(T c, double m, bool easy_margin, bool guard = true) {
  const T cos_m = T(std::cos(m)), sin_m = T(std::sin(m));
  const MarginValue<T> s = safe_sin(c);
  const MarginValue<T> phi{c * cos_m - s.f * sin_m, cos_m - s.df * sin_m};
  if (easy_margin) return c > T(0) ? phi : MarginValue<T>{c, T(1)};
  if (!guard) return phi;
  const T th = -cos_m;              // cos(π − m)
  const T mm = T(m * std::sin(m));  // sin(π − m)·m
  return c > th ? phi : MarginValue<T>{c - mm, T(1)};
}

// insightface's combined margin f = cos(m1·θ + m2) − m3. The argument m1·θ + m2 reaches π at
// θ* = (π − m2) / m1; beyond θ* (c ≤ cos θ*) f would rise again, so, like ArcFace, the target
// falls back to c − m3 − m*·sin m* with m* = π − θ* (the angular margin at θ*; m* = m2 when
// m1 = 1, which is ArcFace's c − m·sin m). m1 = 1 uses ArcFace's careful form, so (1, m, 0)
// equals arcface and (1, 0, m) equals cosface exactly; m1 ≠ 1 needs θ = acos c:
//   f′ = m1·sin(m1·θ + m2) / sin θ.
template <class T>
MarginValue<T> combined_margin(T c, double m1, double m2, double m3) {
  if (m1 == 1.0) {
    MarginValue<T> v = arcface_margin(c, m2, false);
    v.f -= T(m3);
    return v;
  }
  const double theta_star = (M_PI - m2) / m1;
  if (theta_star < M_PI && c <= T(std::cos(theta_star))) {
    const double m_star = M_PI - theta_star;
    return {c - T(m3 + m_star * std::sin(m_star)), T(1)};
  }
  const T theta = std::acos(c), arg = T(m1) * theta + T(m2);
  return {std::cos(arg) - T(m3), T(m1) * std::sin(arg) / safe_sin(c).f};
}

// SphereFace's A-Softmax (Liu et al. 2017; ψ from L-Softmax, Liu et al. 2016): for
// θ ∈ [kπ/m, (k+1)π/m],
//   ψ(θ) = (−1)^k·cos(mθ) − 2k,   cos(mθ) = T_m(c), the Chebyshev polynomial (no acos needed),
// and with λ annealing the target is (λ·c + ψ)/(1 + λ) = c + w·(ψ − c), w = 1/(1 + λ).
// k = #{j in 1..m−1 : c ≤ cos(jπ/m)}; ψ is C¹ at the borders, so ties do not matter, and k is
// capped at m − 1 so that θ = π gets the one-sided limit ψ′ = m² rather than −m².
//   f′ = 1 + w·((−1)^k·T_m′(c) − 1).   m ∈ {1, 2, 3, 4} (Caffe's SINGLE ... QUADRUPLE).
template <class T>
MarginValue<T> sphereface_margin(T c, int m, double w) {
  T cheb = c, dcheb = T(1);
  switch (m) {
    case 2:  // 2c² − 1
      cheb = T(2) * c * c - T(1);
      dcheb = T(4) * c;
      break;
    case 3:  // 4c³ − 3c
      cheb = (T(4) * c * c - T(3)) * c;
      dcheb = T(12) * c * c - T(3);
      break;
    case 4:  // 8c⁴ − 8c² + 1
      cheb = (T(8) * c * c - T(8)) * c * c + T(1);
      dcheb = (T(32) * c * c - T(16)) * c;
      break;
    default:  // m = 1: c
      break;
  }
  int k = 0;
  for (int j = 1; j < m; ++j)
    if (c <= T(std::cos(j * M_PI / m))) k = j;
  const T sign = (k % 2 == 0) ? T(1) : T(-1);
  const T psi = sign * cheb - T(2 * k), dpsi = sign * dcheb;
  return {c + T(w) * (psi - c), T(1) + T(w) * (dpsi - T(1))};
}

// AdaFace (Kim et al., CVPR 2022, eq. 11 with the authors' clipping): on c already clamped to
// [−1 + ε, 1 − ε] (the head does that for every column), θ' = clip(θ − g, ε, π − ε) and
//   f = cos θ' − h,   f′ = sin θ' / sin θ inside the clip, 0 where it is active.
// g = m·ẑ (the angular part) and h = m + m·ẑ (the additive part), ẑ the clipped norm score.
template <class T>
MarginValue<T> adaface_margin(T c, double g, double h) {
  constexpr double kEps = 1e-3;
  const T theta = std::acos(c), shifted = theta - T(g);
  const T clipped = std::clamp(shifted, T(kEps), T(M_PI - kEps));
  const T df = shifted == clipped ? std::sin(clipped) / std::sin(theta) : T(0);
  return {std::cos(clipped) - T(h), df};
}

enum class MarginKind { kNone, kCosine, kArc, kCombined, kSphere, kAdaFace };

// Which margin, with the values in force for this step (warm-up already applied by the head).
struct MarginSpec {
  MarginKind kind = MarginKind::kNone;
  double m = 0;  // kCosine, kArc: the margin; kSphere: the integer multiplier; kAdaFace: g
  double m1 = 1, m2 = 0, m3 = 0;  // kCombined; kAdaFace: m3 = h
  bool easy_margin = false;       // kArc
  bool guard = true;              // kArc: the θ + m > π fallback
  double w = 0;                   // kSphere: weight of ψ − c
  // Gradient convention: false differentiates f (the paper); true treats f(c) − c as a constant,
  // so ∂z_y/∂c_y = scale (insightface's arcface_torch since Dec 2022). The forward is the same.
  bool straight_through = false;
};

// f and f′ of the spec at c, with c clamped to [−1, 1] (derivative 0 outside).
template <class T>
MarginValue<T> apply_margin(const MarginSpec& spec, T c) {
  const bool inside = c >= T(-1) && c <= T(1);
  const T cc = std::clamp(c, T(-1), T(1));
  MarginValue<T> v{cc, T(1)};
  switch (spec.kind) {
    case MarginKind::kNone:
      break;
    case MarginKind::kCosine:
      v = cosface_margin(cc, spec.m);
      break;
    case MarginKind::kArc:
      v = arcface_margin(cc, spec.m, spec.easy_margin, spec.guard);
      break;
    case MarginKind::kCombined:
      v = combined_margin(cc, spec.m1, spec.m2, spec.m3);
      break;
    case MarginKind::kSphere:
      v = sphereface_margin(cc, static_cast<int>(spec.m), spec.w);
      break;
    case MarginKind::kAdaFace:
      v = adaface_margin(cc, spec.m, spec.m3);
      break;
  }
  if (spec.straight_through) v.df = T(1);
  if (!inside) v.df = T(0);
  return v;
}

// z (N, K) = scale·c with the target column z[n, y_n] = scale·f(c[n, y_n]), f from specs[0] for
// every row (spec_stride 0) or specs[n] for row n (spec_stride 1: per-row margins).
// dfdc (N) keeps f′ for the backward. c (N, K), labels (N) in [0, K).
// Threads only pay off on training-sized matrices (the OpenMP barrier costs more than a small one).

template <class T>
void margin_logits_forward(T* z, T* dfdc, const T* c, const int64_t* labels, int64_t N, int64_t K,
                           const MarginSpec* specs, int64_t spec_stride, T scale) {
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* cr = c + n * K;
    T* zr = z + n * K;
    for (int64_t k = 0; k < K; ++k) zr[k] = scale * cr[k];
    const MarginValue<T> v = apply_margin(specs[n * spec_stride], cr[labels[n]]);
    zr[labels[n]] = scale * v.f;
    dfdc[n] = v.df;
  }
}

// dc += scale·dz, with the target column scaled by f′ as well: dc[n, y_n] += scale·f′·dz[n, y_n].
template <class T>
void margin_logits_backward(T* dc, const T* dz, const T* dfdc, const int64_t* labels, int64_t N,
                            int64_t K, T scale) {
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k)
      if (k != labels[n]) dc[n * K + k] += scale * dz[n * K + k];
    dc[n * K + labels[n]] += scale * dfdc[n] * dz[n * K + labels[n]];
  }
}

// Row norms r (N) = ‖x_n‖ of x (N, D), for the heads that keep ‖x‖ in the logits (SphereFace).
// dx = dr·x / ‖x‖, and 0 for a zero row (the subgradient PyTorch's norm also returns there).
template <class T>
void row_norm_forward(T* r, const T* x, int64_t N, int64_t D) {
  for (int64_t n = 0; n < N; ++n) {
    T sq = 0;
    for (int64_t d = 0; d < D; ++d) sq += x[n * D + d] * x[n * D + d];
    r[n] = std::sqrt(sq);
  }
}
template <class T>
void row_norm_backward(T* dx, const T* dr, const T* x, const T* r, int64_t N, int64_t D) {
  for (int64_t n = 0; n < N; ++n) {
    if (r[n] == T(0)) continue;
    const T g = dr[n] / r[n];
    for (int64_t d = 0; d < D; ++d) dx[n * D + d] += g * x[n * D + d];
  }
}

// ---- CurricularFace (Huang et al., CVPR 2020, eq. 7–9) ----
// A negative j of row n is hard when c_j > cos(θ_y + m) (the unguarded φ, as in the authors'
// code); a hard negative's logit becomes c_j·(t + c_j), derivative t + 2c_j. c clamped to [−1, 1].
template <class T>
MarginValue<T> curricular_negative(T c, T phi, T t) {
  const bool inside = c >= T(-1) && c <= T(1);
  const T cc = std::clamp(c, T(-1), T(1));
  if (!(cc > phi)) return {cc, inside ? T(1) : T(0)};
  return {cc * (t + cc), inside ? t + T(2) * cc : T(0)};
}

// z (N, K): the target column scale·(ArcFace's guarded cos(θ_y + m)), hard negatives
// scale·c(t + c), the rest scale·c. phi (N) keeps the unguarded cos(θ_y + m) for the backward and
// dfdc (N) the target's f′.
template <class T>
void curricular_logits_forward(T* z, T* phi, T* dfdc, const T* c, const int64_t* labels, int64_t N,
                               int64_t K, double m, T t, T scale) {
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* cr = c + n * K;
    T* zr = z + n * K;
    const T cy = std::clamp(cr[labels[n]], T(-1), T(1));
    phi[n] = arcface_margin(cy, m, false, false).f;
    for (int64_t k = 0; k < K; ++k) zr[k] = scale * curricular_negative(cr[k], phi[n], t).f;
    const MarginValue<T> v =
        apply_margin(MarginSpec{.kind = MarginKind::kArc, .m = m}, cr[labels[n]]);
    zr[labels[n]] = scale * v.f;
    dfdc[n] = v.df;
  }
}
template <class T>
void curricular_logits_backward(T* dc, const T* dz, const T* c, const T* phi, const T* dfdc,
                                const int64_t* labels, int64_t N, int64_t K, T t, T scale) {
#pragma omp parallel for schedule(static) if (N * K >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const T d = k == labels[n] ? dfdc[n] : curricular_negative(c[n * K + k], phi[n], t).df;
      dc[n * K + k] += scale * d * dz[n * K + k];
    }
}

// ---- MagFace (Meng et al., CVPR 2021, eq. 3–5) ----
// The ArcFace target with the guard at a margin m that the head makes a function of the feature
// norm; dm is ∂f/∂m (so the norm receives a gradient through the margin):
//   φ = c·cos m − sin θ·sin m,  ∂φ/∂m = −c·sin m − sin θ·cos m   (θ + m ≤ π)
//   c − m·sin m,                ∂/∂m  = −(sin m + m·cos m)       (beyond: the fallback)
template <class T>
struct MarginValueM {
  T f, df, dm;  // f(c, m), ∂f/∂c, ∂f/∂m
};
template <class T>
MarginValueM<T> magface_target(T c, T m) {
  const bool inside = c >= T(-1) && c <= T(1);
  const T cc = std::clamp(c, T(-1), T(1));
  const T cos_m = std::cos(m), sin_m = std::sin(m);
  MarginValueM<T> v;
  if (cc > -cos_m) {
    const MarginValue<T> s = safe_sin(cc);
    v = {cc * cos_m - s.f * sin_m, cos_m - s.df * sin_m, -cc * sin_m - s.f * cos_m};
  } else {
    v = {cc - m * sin_m, T(1), -(sin_m + m * cos_m)};
  }
  if (!inside) v.df = T(0);
  return v;
}

// ---- Sub-center ArcFace (Deng et al., ECCV 2020, eq. 1) ----
// x (N, K·G) → y (N, K): y[n, k] = max over x[n, k·G … k·G + G − 1] (the class's G sub-centres,
// insightface's layout); arg (N·K) keeps the winning column (the first on ties) for the backward.
template <class T>
void group_max_forward(T* y, int64_t* arg, const T* x, int64_t N, int64_t K, int64_t G) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const T* g = x + n * K * G + k * G;
      int64_t best = 0;
      for (int64_t i = 1; i < G; ++i)
        if (g[i] > g[best]) best = i;
      y[n * K + k] = g[best];
      arg[n * K + k] = k * G + best;
    }
}
template <class T>
void group_max_backward(T* dx, const T* dy, const int64_t* arg, int64_t N, int64_t K, int64_t G) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) dx[n * K * G + arg[n * K + k]] += dy[n * K + k];
}

}  // namespace mf::kernels
