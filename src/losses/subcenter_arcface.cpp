// subcenter_arcface: Sub-center ArcFace (Deng et al., ECCV 2020, eq. 1–2; insightface's
// ArcMarginProduct_subcenter layout, weight (K·G, D) with a class's G rows consecutive).
//
//   cos θ_j = max over g of ⟨x̂, Ŵ_{j·G+g}⟩   (group_max: the nearest of the class's sub-centres)
//   then ArcFace: z_y = s·cos(θ_y + m) with the guard, z_j = s·cos θ_j
//
// Gradient: exact ArcFace on the pooled cosine, routed to the winning sub-centre only (ties: the
// first). Why: a noisy sample can join a non-dominant sub-centre instead of dragging the class
// centre; `marginface clean` then keeps, per class, the dominant sub-centre and drops samples
// farther than --max-angle (75°, the paper's §3.2) from it.
// Pitfalls (docs/heads.md): G multiplies the classifier's size; the paper drops the non-dominant
// sub-centres after cleaning and retrains with G = 1.
// margin_warmup_steps grows m linearly from 0 (as ArcFace's; from scratch at small scale the margin
// otherwise holds the head on the plateau).
// Parameters: s (64), m (0.5), k (3: sub-centres per class, G), margin_warmup_steps (0).
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {
namespace {

class SubcenterArcFaceHead final : public ClassifierHead {
 public:
  SubcenterArcFaceHead(int64_t D, int64_t K, double s, double m, int64_t k, int64_t warmup,
                       Rng& rng)
      : ClassifierHead("subcenter_arcface", D, K, rng, k), s_(s), m_(m), k_(k), warmup_(warmup) {}

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    const Var cos = group_max(cosine(x), k_);  // (N, K·G) → (N, K)
    return output(margin_logits(cos, labels, spec(step), float(s_)), labels);
  }

  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    return kernels::apply_margin(spec(step), std::cos(theta)).f;
  }

 private:
  kernels::MarginSpec spec(const StepInfo& step) const {
    return {.kind = kernels::MarginKind::kArc, .m = m_ * warmup_ratio(warmup_, step)};
  }

  double s_, m_;
  int64_t k_, warmup_;
};

}  // namespace

void register_subcenter_arcface(HeadRegistry& registry) {
  registry.add(
      "subcenter_arcface",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        const double s = p.get_double_open_low("s", 64.0, 0.0);
        const double m = p.get_double("m", 0.5);
        MF_CHECK(m >= 0 && m < M_PI, p.describe("m"), " = ", m, " is out of range [0, π)");
        const int64_t k = p.get_int("k", 3, 1, 64);
        const int64_t warmup = p.get_int("margin_warmup_steps", 0, 0);
        return std::make_unique<SubcenterArcFaceHead>(D, K, s, m, k, warmup, rng);
      },
      "Sub-center ArcFace (Deng et al. 2020): max over k sub-centres per class, then ArcFace");
}

}  // namespace mf
