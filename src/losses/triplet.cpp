// triplet: FaceNet's triplet loss (Schroff et al., CVPR 2015, §3.1–3.2) on unit embeddings.
//
//   L = (1/M) Σ_{(a,p,n)} max(0, ‖f_a − f_p‖² − ‖f_a − f_n‖² + α),   f = x/‖x‖
//
// Triplets are mined inside the batch (a P identities × K images batch), on the current squared
// distances, without gradient (mine_triplets):
//  * batch_hard: per anchor, the farthest positive and the nearest negative;
//  * semi_hard (FaceNet §3.2): per anchor-positive pair, the nearest negative with
//    d²_an > d²_ap, or the farthest negative when none is (the tf-addons fallback).
// Gradient: exact for the chosen triplets (kernels::triplet_*, then l2_normalize); the choice
// itself is piecewise constant. Kink: the hinge at 0.
// Accuracy: the fraction of anchors whose nearest other embedding has the same identity; logits
// hold the scores −d² (N, N) with −∞ on the diagonal (an anchor is not its own neighbour).
// Pitfalls (docs/heads.md): batches without two images of an identity yield no triplet (an
// error here: use a P×K sampler); the hardest negatives early in training collapse embeddings,
// which is why FaceNet uses semi-hard ones; triplet training usually trails softmax-based heads
// (facenet#124). No class weights: this head has no parameters.
// Parameters: alpha (0.2, ≥ 0), mining (semi_hard | batch_hard).
#include <cmath>
#include <limits>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {

std::vector<kernels::Triplet> mine_triplets(const Tensor& d2, const Labels& labels,
                                            TripletMining mining) {
  const int64_t N = static_cast<int64_t>(labels.size());
  MF_CHECK(d2.shape() == Shape({N, N}), "mine_triplets: distances ", d2.shape(), " for ", N,
           " labels");
  auto d = [&](int64_t i, int64_t j) { return d2.data()[i * N + j]; };
  std::vector<kernels::Triplet> out;
  for (int64_t a = 0; a < N; ++a) {
    int64_t hardest_p = -1, nearest_n = -1, farthest_n = -1;
    for (int64_t j = 0; j < N; ++j) {
      if (j == a) continue;
      if (labels[j] == labels[a]) {
        if (hardest_p < 0 || d(a, j) > d(a, hardest_p)) hardest_p = j;
      } else {
        if (nearest_n < 0 || d(a, j) < d(a, nearest_n)) nearest_n = j;
        if (farthest_n < 0 || d(a, j) > d(a, farthest_n)) farthest_n = j;
      }
    }
    if (hardest_p < 0 || nearest_n < 0) continue;  // no positive or no negative
    if (mining == TripletMining::kBatchHard) {
      out.push_back({a, hardest_p, nearest_n});
      continue;
    }
    for (int64_t p = 0; p < N; ++p) {
      if (p == a || labels[p] != labels[a]) continue;
      int64_t semi = -1;  // nearest negative farther than the positive
      for (int64_t n = 0; n < N; ++n)
        if (labels[n] != labels[a] && d(a, n) > d(a, p) && (semi < 0 || d(a, n) < d(a, semi)))
          semi = n;
      out.push_back({a, p, semi >= 0 ? semi : farthest_n});
    }
  }
  return out;
}

namespace {

class TripletHead final : public Head {
 public:
  TripletHead(int64_t D, double alpha, TripletMining mining)
      : D_(D), alpha_(alpha), mining_(mining) {}

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo&) override {
    MF_CHECK(x.shape().rank() == 2 && x.dim(1) == D_, "head 'triplet': expected embeddings (N, ",
             D_, "), got ", x.shape());
    const int64_t N = x.dim(0);
    MF_CHECK(static_cast<int64_t>(labels.size()) == N, "head 'triplet': ", labels.size(),
             " labels for ", N, " embeddings");
    const Var f = l2_normalize(x);  // (N, D)
    Tensor d2 = Tensor::empty({N, N});
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        d2.data()[i * N + j] = kernels::row_dist2(f.value().data(), D_, i, j);
    const auto triplets = mine_triplets(d2, labels, mining_);
    MF_CHECK(!triplets.empty(), "head 'triplet': the batch of ", N, " has no triplet; it needs ",
             "at least two identities and two images of some identity (use a P×K sampler)");

    Tensor scores = Tensor::empty({N, N});  // −d², −∞ on the diagonal
    int64_t correct = 0;
    for (int64_t i = 0; i < N; ++i) {
      int64_t nearest = -1;
      for (int64_t j = 0; j < N; ++j) {
        const bool self = i == j;
        scores.data()[i * N + j] =
            self ? -std::numeric_limits<float>::infinity() : -d2.data()[i * N + j];
        if (!self && (nearest < 0 || d2.data()[i * N + j] < d2.data()[i * N + nearest]))
          nearest = j;
      }
      correct += nearest >= 0 && labels[nearest] == labels[i];
    }
    return {triplet_loss(f, triplets, float(alpha_)), scores, double(correct) / double(N), Tensor(),
            std::nullopt};
  }

 private:
  int64_t D_;
  double alpha_;
  TripletMining mining_;
};

}  // namespace

void register_triplet(HeadRegistry& registry) {
  registry.add(
      "triplet",
      [](const Params& p, int64_t D, int64_t, Rng&) -> std::unique_ptr<Head> {
        const double alpha = p.get_double("alpha", 0.2, 0.0, 4.0);
        const std::string mining = p.get_string("mining", "semi_hard", {"semi_hard", "batch_hard"});
        MF_CHECK(D > 0, "head 'triplet': embedding size must be positive, got ", D);
        return std::make_unique<TripletHead>(
            D, alpha,
            mining == "batch_hard" ? TripletMining::kBatchHard : TripletMining::kSemiHard);
      },
      "FaceNet triplet loss on unit embeddings, mined in a P×K batch");
}

}  // namespace mf
