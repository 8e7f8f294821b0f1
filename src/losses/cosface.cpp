// cosface (alias am_softmax): the additive cosine margin (CosFace, Wang et al., CVPR 2018, LMCL,
// eq. 4; AM-Softmax, Wang et al., IEEE SPL 2018).
//
//   z_y = s·(cos θ_y − m),   z_j = s·cos θ_j
//
// Gradient: exact and simple: ∂z_y/∂cos θ_y = s, as for every other column (the margin is a
// constant offset on the target logit), so this head has no kink and no 1/sin θ.
// Pitfalls (docs/heads.md): defaults differ by source (CosFace s 64 m 0.35, AM-Softmax s 30,
// arcface_torch m 0.40); happynear's Caffe applies −m then a fixed Scale of s. The CosFace bound
// s ≥ (K−1)/K·ln((K−1)·P/(1−P)) says how large s must be for target posterior P.
// margin_warmup_steps grows m linearly from 0.
// Parameters: s (64, > 0), m (0.35, in [0, 2]), margin_warmup_steps (0).
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"

namespace mf {
namespace {

class CosFaceHead final : public ClassifierHead {
 public:
  CosFaceHead(int64_t D, int64_t K, double s, double m, int64_t warmup, Rng& rng)
      : ClassifierHead("cosface", D, K, rng), s_(s), m_(m), warmup_(warmup) {}

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    return output(margin_logits(cosine(x), labels, spec(step), float(s_)), labels);
  }

  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    return kernels::apply_margin(spec(step), std::cos(theta)).f;
  }

 private:
  kernels::MarginSpec spec(const StepInfo& step) const {
    return {.kind = kernels::MarginKind::kCosine, .m = m_ * warmup_ratio(warmup_, step)};
  }

  double s_, m_;
  int64_t warmup_;
};

std::unique_ptr<Head> build(const Params& p, int64_t D, int64_t K, Rng& rng) {
  const double s = p.get_double_open_low("s", 64.0, 0.0);
  const double m = p.get_double("m", 0.35, 0.0, 2.0);
  const int64_t warmup = p.get_int("margin_warmup_steps", 0, 0);
  return std::make_unique<CosFaceHead>(D, K, s, m, warmup, rng);
}

}  // namespace

void register_cosface(HeadRegistry& registry) {
  registry.add("cosface", build, "additive cosine margin s·(cos θ − m) (Wang et al. 2018)");
  registry.add("am_softmax", build, "alias of cosface (AM-Softmax)");
}

}  // namespace mf
