// The built-in heads (one file each in src/losses) and the pieces of them tests call directly.
// The head classes themselves are private to their files; build them through head_registry().
#pragma once

#include <vector>

#include "losses/head.h"
#include "tensor/kernels/pair_losses.h"

namespace mf {

// Each adds its head(s) to the registry; register_builtin_heads() calls them all.
void register_softmax(HeadRegistry& registry);
void register_center(HeadRegistry& registry);
void register_sphereface(HeadRegistry& registry);
void register_normface(HeadRegistry& registry);
void register_cosface(HeadRegistry& registry);  // also "am_softmax"
void register_arcface(HeadRegistry& registry);
void register_combined(HeadRegistry& registry);
void register_contrastive(HeadRegistry& registry);
void register_triplet(HeadRegistry& registry);

// SphereFace's λ annealing: λ = max(λ_min, base·(1 + γ·step)^(−power)).
struct SphereFaceLambda {
  double base = 1000, gamma = 0.12, power = 1, lambda_min = 5;
  double at(int64_t step) const;
};

// Center loss's center step (Wen et al. 2016, Algorithm 1), in place on centers (K, D):
//   Δc_j = Σ_{y_i = j} (c_j − x_i) / (1 + n_j),   c_j ← c_j − α·Δc_j.
void update_centers(Tensor& centers, const Tensor& embeddings, const Labels& labels, double alpha);

// FaceNet triplet selection inside a batch, from the squared distances d2 (N, N):
//  * kBatchHard: per anchor, its farthest positive and its nearest negative;
//  * kSemiHard: per anchor-positive pair (a ≠ p), the nearest negative farther than the positive
//    (d²_an > d²_ap), or the farthest negative when there is none.
// Anchors without a positive or a negative contribute nothing. Ties go to the lower index.
enum class TripletMining { kBatchHard, kSemiHard };
std::vector<kernels::Triplet> mine_triplets(const Tensor& d2, const Labels& labels,
                                            TripletMining mining);

}  // namespace mf
