// arcface: the additive angular margin (Deng et al., CVPR 2019, eq. 3).
//
//   z_y = s·cos(θ_y + m),   z_j = s·cos θ_j,   c = cos θ clamped to [−1, 1]
//   careful form: φ = c·cos m − sin θ·sin m with sin θ = √clamp(1 − c², 1e-9, 1);
//   z_y = s·φ where θ + m ≤ π (c > cos(π − m)), else s·(c − m·sin m) (the fallback);
//   easy_margin: s·φ where c > 0, else s·c.
//
// Gradient (`gradient`, two conventions in use; docs/heads.md):
//  * exact (default; the paper, ronghuaiyang/arcface-pytorch, face.evoLVe): ∂z_y/∂c = s·φ′ with
//    φ′ = cos m + sin m·c/sin θ = sin(θ + m)/sin θ, and s on the fallback. Unbounded as c → 1
//    without the 1e-9 clamp (face.evoLVe#117); with it, φ′(1) = cos m.
//  * straight_through (insightface arcface_torch since Dec 2022): the margin is a constant
//    offset, ∂z_y/∂c = s. Same forward, so p_y still carries the margin. Finite differences only
//    verify `exact`; the PyTorch fixtures have one case set per convention.
// Pitfalls (docs/heads.md): at θ = π − m the fallback jumps from −1 to −cos m − m·sin m
// (−1.117 for m = 0.5, insightface#228); θ_y starts near π/2, so it rarely fires (#348). From
// scratch ArcFace often stalls (loss ≈ 20–45, insightface#313): margin_warmup_steps grows m
// linearly from 0 (or pre-train with softmax). easy_margin and th/mm confuse users
// (ronghuaiyang#2, #24); arcface_torch ignores easy_margin.
// Parameters: s (64, > 0), m (0.5, in [0, π)), easy_margin (false),
// gradient (exact | straight_through), margin_warmup_steps (0).
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {
namespace {

struct ArcFaceOptions {
  double s = 64, m = 0.5;
  bool easy_margin = false, straight_through = false;
  int64_t margin_warmup_steps = 0;
};

class ArcFaceHead final : public ClassifierHead {
 public:
  ArcFaceHead(int64_t D, int64_t K, const ArcFaceOptions& options, Rng& rng)
      : ClassifierHead("arcface", D, K, rng), o_(options) {}

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
    return {.kind = kernels::MarginKind::kArc,
            .m = o_.m * warmup_ratio(o_.margin_warmup_steps, step),
            .easy_margin = o_.easy_margin,
            .straight_through = o_.straight_through};
  }

  ArcFaceOptions o_;
};

}  // namespace

void register_arcface(HeadRegistry& registry) {
  registry.add(
      "arcface",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        ArcFaceOptions o;
        o.s = p.get_double_open_low("s", 64.0, 0.0);
        o.m = p.get_double("m", 0.5);
        MF_CHECK(o.m >= 0 && o.m < M_PI, p.describe("m"), " = ", o.m, " is out of range [0, π)");
        o.easy_margin = p.get_bool("easy_margin", false);
        o.straight_through =
            p.get_string("gradient", "exact", {"exact", "straight_through"}) == "straight_through";
        o.margin_warmup_steps = p.get_int("margin_warmup_steps", 0, 0);
        return std::make_unique<ArcFaceHead>(D, K, o, rng);
      },
      "additive angular margin s·cos(θ + m) (Deng et al. 2019)");
}

}  // namespace mf
