// combined: insightface's combined margin (ArcFace paper, Deng et al. CVPR 2019, eq. 4).
//
//   z_y = s·(cos(m1·θ_y + m2) − m3),   z_j = s·cos θ_j
//   (1, 0, 0) NormFace, (1, m, 0) ArcFace, (1, 0, m) CosFace, (1.35, 0, 0) the ArcFace paper's
//   "SphereFace" row (cos(m1·θ) via arccos, no ψ, no λ); CM1 (1, 0.3, 0.2), CM2 (0.9, 0.4, 0.15).
//
// The θ guard, generalised from ArcFace (kernels::combined_margin): m1·θ + m2 reaches π at
// θ* = (π − m2)/m1, beyond which the target would rise again with θ; there it falls back to
// c − m3 − m*·sin m* with m* = π − θ*, which is ArcFace's c − m·sin m for m1 = 1 (our choice:
// insightface's MXNet combined margin has no guard, arcface_torch none for m1 ≠ 1).
// Gradient: exact. m1 = 1 uses ArcFace's careful form, so (1, m, 0) equals arcface and (1, 0, m)
// equals cosface to the bit; m1 ≠ 1 uses θ = acos c and f′ = m1·sin(m1·θ + m2)/sin θ with the
// clamped sin θ (finite at c = ±1, large for m2 > 0 near c = 1, where ∂c/∂x vanishes).
// Pitfalls: m1 > 1 without a guard makes the target non-monotone past θ*; the warm-up moves
// (m1, m2, m3) linearly from (1, 0, 0).
// Parameters: s (64, > 0), m1 (1.0, in (0, 10]), m2 (0.3, in [0, π)), m3 (0.2, in [0, 2]),
// margin_warmup_steps (0).
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {
namespace {

struct CombinedOptions {
  double s = 64, m1 = 1.0, m2 = 0.3, m3 = 0.2;
  int64_t margin_warmup_steps = 0;
};

class CombinedHead final : public ClassifierHead {
 public:
  CombinedHead(int64_t D, int64_t K, const CombinedOptions& options, Rng& rng)
      : ClassifierHead("combined", D, K, rng), o_(options) {}

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    return output(margin_logits(cosine(x), labels, spec(step), float(o_.s)),
                  labels);  // (N, K)
  }

  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    return kernels::apply_margin(spec(step), std::cos(theta)).f;
  }

 private:
  kernels::MarginSpec spec(const StepInfo& step) const {
    const double r = warmup_ratio(o_.margin_warmup_steps, step);
    return {.kind = kernels::MarginKind::kCombined,
            .m1 = 1.0 + (o_.m1 - 1.0) * r,
            .m2 = o_.m2 * r,
            .m3 = o_.m3 * r};
  }

  CombinedOptions o_;
};

}  // namespace

void register_combined(HeadRegistry& registry) {
  registry.add(
      "combined",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        CombinedOptions o;
        o.s = p.get_double_open_low("s", 64.0, 0.0);
        o.m1 = p.get_double_open_low("m1", 1.0, 0.0, 10.0);
        o.m2 = p.get_double("m2", 0.3);
        MF_CHECK(o.m2 >= 0 && o.m2 < M_PI, p.describe("m2"), " = ", o.m2,
                 " is out of range [0, π)");
        o.m3 = p.get_double("m3", 0.2, 0.0, 2.0);
        o.margin_warmup_steps = p.get_int("margin_warmup_steps", 0, 0);
        return std::make_unique<CombinedHead>(D, K, o, rng);
      },
      "insightface's combined margin s·(cos(m1·θ + m2) − m3)");
}

}  // namespace mf
