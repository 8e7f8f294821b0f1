// The built-in heads (one file each in src/losses) and the pieces of them tests call directly.
// The head classes themselves are private to their files; build them through head_registry().
#pragma once

#include <functional>
#include <vector>

#include "losses/head.h"
#include "tensor/kernels/margin.h"
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
void register_lsoftmax(HeadRegistry& registry);
void register_curricularface(HeadRegistry& registry);
void register_magface(HeadRegistry& registry);
void register_adaface(HeadRegistry& registry);
void register_subcenter_arcface(HeadRegistry& registry);
void register_elasticface(HeadRegistry& registry);
void register_adacos(HeadRegistry& registry);

// SphereFace's λ annealing: λ = max(λ_min, base·(1 + γ·step)^(−power)).
struct SphereFaceLambda {
  double base = 1000, gamma = 0.12, power = 1, lambda_min = 5;
  double at(int64_t step) const;
};
// SphereFace's and L-Softmax's keys: m (4, 1..4), base, gamma, power, lambda_min,
// margin_warmup_steps (0).
struct SphereFaceOptions {
  int m = 4;
  SphereFaceLambda lambda;
  int64_t margin_warmup_steps = 0;
  // The margin function at this step (kernels::MarginKind::kSphere).
  kernels::MarginSpec spec(const StepInfo& step) const;
};
SphereFaceOptions read_sphereface_options(const Params& p);

// ElasticFace's margins for `step`: N draws from N(m, σ), a function of (seed, step) alone
// (Rng seeded with seed + 0x9e3779b97f4a7c15·(step + 1), N normal() calls in row order).
std::vector<double> elastic_margins(uint64_t seed, int64_t step, int64_t N, double m, double sigma);

// AdaCos's dynamic scale (Zhang et al. 2019, eq. 15–16) from the cosines c (N, K) of a batch and
// the previous scale: log(B_avg) / cos(min(π/4, θ_med)). Partial FC over several processes: B_avg's
// sum runs over the first `counted` columns (this process's classes) and `total` sums it over
// the processes; by default every column, as is.
double adacos_scale(const Tensor& cos, const Labels& labels, double previous_s,
                    int64_t counted = -1, const std::function<double(double)>& total = nullptr);

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
