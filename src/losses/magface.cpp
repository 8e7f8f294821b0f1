// magface: the magnitude-aware margin (Meng et al., CVPR 2021, eq. 3–6; the authors' code:
// IrvingMeng/MagFace, models/magface.py MagLinear and MagLoss).
//
//   a = clamp(‖x‖, l_a, u_a),   m(a) = l_m + (u_m − l_m)·(a − l_a)/(u_a − l_a)   (eq. 4, linear)
//   z_y = s·cos(θ_y + m(a)) with ArcFace's guard at m(a),   z_j = s·cos θ_j
//   L = CE(z) + λ_g·mean_n g(a_n),   g(a) = 1/a + a/u_a²   (eq. 5–6; convex, minimum at a = u_a)
//
// Gradient: exact, also through the norm: ∂z_y/∂a = s·∂f/∂m·m′(a) (magface_logits) and
// λ_g·g′(a)/N, both 0 where a is clamped. So a face the network fits easily is pushed to a large
// norm (a large margin) and a hard one kept small: ‖x‖ becomes a quality score (`embed` writes it
// to /norms, `eval --quality-curve` uses it).
// Pitfalls (docs/heads.md): with λ_g·g dominating early the norms race to u_a; norms below l_a get
// no gradient from the margin or from g (both clamped) — the BN neck's output must start inside
// [l_a, u_a] (ours: ‖x‖ ≈ √D at initialisation, 11.3 for D = 128).
// margin_warmup_steps scales m(a) by the warm-up ratio, growing from 0 (g is not scaled).
// Parameters: s (64), l_a (10), u_a (110), l_m (0.45), u_m (0.8), lambda_g (35),
// margin_warmup_steps (0).
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {
namespace {

struct MagFaceOptions {
  double s = 64, l_a = 10, u_a = 110, l_m = 0.45, u_m = 0.8, lambda_g = 35;
  int64_t margin_warmup_steps = 0;
  double slope() const { return (u_m - l_m) / (u_a - l_a); }
};

class MagFaceHead final : public ClassifierHead {
 public:
  MagFaceHead(int64_t D, int64_t K, const MagFaceOptions& options, Rng& rng)
      : ClassifierHead("magface", D, K, rng), o_(options) {}

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    const Var a = clamp(row_norm(x), float(o_.l_a), float(o_.u_a));  // (N, 1)
    const double r = warmup_ratio(o_.margin_warmup_steps, step);
    const Var margin =
        affine(a, float(r * o_.slope()), float(r * (o_.l_m - o_.slope() * o_.l_a)));  // (N, 1)
    HeadOutput out = output(magface_logits(cosine(x), margin, labels, float(o_.s)), labels);
    const Var g = add(reciprocal(a), affine(a, float(1.0 / (o_.u_a * o_.u_a))));  // (N, 1)
    out.loss = add(out.loss, once_over_processes(affine(mean(g), float(o_.lambda_g))));
    return out;
  }

  // At the middle of [l_a, u_a]: m = (l_m + u_m)/2.
  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    const double r = warmup_ratio(o_.margin_warmup_steps, step);
    return kernels::magface_target(std::cos(theta), r * 0.5 * (o_.l_m + o_.u_m)).f;
  }

 private:
  MagFaceOptions o_;
};

}  // namespace

void register_magface(HeadRegistry& registry) {
  registry.add(
      "magface",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        MagFaceOptions o;
        o.s = p.get_double_open_low("s", 64.0, 0.0);
        o.l_a = p.get_double_open_low("l_a", 10.0, 0.0);
        o.u_a = p.get_double("u_a", 110.0);
        MF_CHECK(o.u_a > o.l_a, p.describe("u_a"), " = ", o.u_a, " must exceed l_a = ", o.l_a);
        o.l_m = p.get_double("l_m", 0.45, 0.0);
        o.u_m = p.get_double("u_m", 0.8, 0.0);
        MF_CHECK(o.u_m >= o.l_m && o.u_m < M_PI, p.describe("u_m"), " = ", o.u_m,
                 " must be in [l_m, π) (l_m = ", o.l_m, ")");
        o.lambda_g = p.get_double("lambda_g", 35.0, 0.0);
        o.margin_warmup_steps = p.get_int("margin_warmup_steps", 0, 0);
        return std::make_unique<MagFaceHead>(D, K, o, rng);
      },
      "MagFace (Meng et al. 2021): margin growing with ‖x‖, plus λ_g·g(‖x‖)");
}

}  // namespace mf
