// Metric-learning losses over the rows of an embedding batch f (N, D): DeepID2's contrastive
// verification loss over all pairs and FaceNet's triplet loss over given triplets. Both return
// the mean over their terms; backward ACCUMULATES into df, scaled by dloss (the upstream
// gradient of the scalar).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace mf::kernels {

// Squared Euclidean distance between rows i and j of f (N, D).
template <class T>
T row_dist2(const T* f, int64_t D, int64_t i, int64_t j) {
  T s = 0;
  for (int64_t d = 0; d < D; ++d) {
    const T e = f[i * D + d] - f[j * D + d];
    s += e * e;
  }
  return s;
}

// DeepID2's verification loss (Sun et al. 2014, §2) over the P = N(N−1)/2 pairs i < j, d = ‖f_i −
// f_j‖:
//   same label       ½·d²                      ∂/∂f_i = f_i − f_j
//   different label  ½·max(0, margin − d)²     ∂/∂f_i = −(margin − d)·(f_i − f_j)/d  (d < margin)
// L = (1/P) Σ. Kinks: d = margin (the hinge) and d = 0 for a different-label pair, where the
// gradient is taken as 0. ∂/∂f_j is the negative of ∂/∂f_i.
template <class T>
T contrastive_forward(const T* f, const int64_t* labels, int64_t N, int64_t D, T margin) {
  const int64_t pairs = N * (N - 1) / 2;
  if (pairs == 0) return T(0);
  T total = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i + 1; j < N; ++j) {
      const T d2 = row_dist2(f, D, i, j);
      if (labels[i] == labels[j]) {
        total += T(0.5) * d2;
      } else {
        const T gap = margin - std::sqrt(d2);
        if (gap > T(0)) total += T(0.5) * gap * gap;
      }
    }
  return total / T(pairs);
}
template <class T>
void contrastive_backward(T* df, T dloss, const T* f, const int64_t* labels, int64_t N, int64_t D,
                          T margin) {
  const int64_t pairs = N * (N - 1) / 2;
  if (pairs == 0) return;
  const T scale = dloss / T(pairs);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i + 1; j < N; ++j) {
      T coef = 0;  // ∂ℓ/∂f_i = coef·(f_i − f_j)
      if (labels[i] == labels[j]) {
        coef = T(1);
      } else {
        const T d = std::sqrt(row_dist2(f, D, i, j));
        if (d < margin && d > T(0)) coef = -(margin - d) / d;
      }
      if (coef == T(0)) continue;
      for (int64_t k = 0; k < D; ++k) {
        const T g = scale * coef * (f[i * D + k] - f[j * D + k]);
        df[i * D + k] += g;
        df[j * D + k] -= g;
      }
    }
}

// Anchor, positive, negative: row indices into the batch.
struct Triplet {
  int64_t a, p, n;
  bool operator==(const Triplet& o) const { return a == o.a && p == o.p && n == o.n; }
};

// FaceNet (Schroff et al. 2015, §3.1) averaged over the M triplets:
//   L = (1/M) Σ max(0, ‖f_a − f_p‖² − ‖f_a − f_n‖² + α).
// For an active triplet: ∂/∂f_a = 2(f_n − f_p), ∂/∂f_p = −2(f_a − f_p), ∂/∂f_n = 2(f_a − f_n).
// Kink: the hinge at 0 (gradient 0 there, as PyTorch's relu).
template <class T>
T triplet_forward(const T* f, int64_t D, const std::vector<Triplet>& triplets, T alpha) {
  if (triplets.empty()) return T(0);
  T total = 0;
  for (const Triplet& t : triplets) {
    const T h = row_dist2(f, D, t.a, t.p) - row_dist2(f, D, t.a, t.n) + alpha;
    if (h > T(0)) total += h;
  }
  return total / T(triplets.size());
}
template <class T>
void triplet_backward(T* df, T dloss, const T* f, int64_t D, const std::vector<Triplet>& triplets,
                      T alpha) {
  if (triplets.empty()) return;
  const T g = T(2) * dloss / T(triplets.size());
  for (const Triplet& t : triplets) {
    if (row_dist2(f, D, t.a, t.p) - row_dist2(f, D, t.a, t.n) + alpha <= T(0)) continue;
    for (int64_t k = 0; k < D; ++k) {
      const T fa = f[t.a * D + k], fp = f[t.p * D + k], fn = f[t.n * D + k];
      df[t.a * D + k] += g * (fn - fp);
      df[t.p * D + k] -= g * (fa - fp);
      df[t.n * D + k] += g * (fa - fn);
    }
  }
}

}  // namespace mf::kernels
