// sphereface: A-Softmax (Liu et al., CVPR 2017, the A-Softmax loss with ψ; ψ from L-Softmax,
// Liu et al., ICML 2016).
//
//   Ŵ_j = W_j/‖W_j‖, c_j = cos θ_j;  z_j = ‖x‖·c_j,  z_y = ‖x‖·(λ·c_y + ψ(θ_y)) / (1 + λ)
//   ψ(θ) = (−1)^k·cos(mθ) − 2k  for θ ∈ [kπ/m, (k+1)π/m],   cos(mθ) = T_m(cos θ) (Chebyshev)
//   λ = max(λ_min, base·(1 + γ·step)^(−power))   (Caffe's margin_inner_product_layer)
//
// Gradient: exact. f(c) = c + w·(ψ − c) with w = 1/(1 + λ) has f′ = 1 + w·((−1)^k·T_m′(c) − 1), a
// polynomial, so no 1/sin θ appears (kernels::sphereface_margin); ‖x‖ is differentiated too
// (row_norm), as in Caffe. Kinks: ψ is C¹ at θ = kπ/m but its curvature jumps there.
// Pitfalls (docs/heads.md): Caffe keeps its iteration counter inside the layer (resuming needs
// `iteration:` by hand) and renormalises W in place during forward; here λ is read from the
// caller's step and W is normalised functionally. λ reaches λ_min = 5 at step ≈ 1,659 — early
// training is almost plain softmax by design; the loss often stalls (sphereface#30, #48), and
// λ_min = 10 is the usual fallback. margin_warmup_steps scales w further by the warm-up ratio.
// Parameters: m (4, integer 1..4), base (1000), gamma (0.12), power (1), lambda_min (5),
// margin_warmup_steps (0).
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"

namespace mf {

double SphereFaceLambda::at(int64_t step) const {
  return std::max(lambda_min, base * std::pow(1.0 + gamma * double(step), -power));
}

kernels::MarginSpec SphereFaceOptions::spec(const StepInfo& step) const {
  return {.kind = kernels::MarginKind::kSphere,
          .m = double(m),
          .w = warmup_ratio(margin_warmup_steps, step) / (1.0 + lambda.at(step.step))};
}

SphereFaceOptions read_sphereface_options(const Params& p) {
  SphereFaceOptions o;
  o.m = static_cast<int>(p.get_int("m", 4, 1, 4));
  o.lambda.base = p.get_double_open_low("base", 1000, 0.0);
  o.lambda.gamma = p.get_double("gamma", 0.12, 0.0);
  o.lambda.power = p.get_double("power", 1.0, 0.0);
  o.lambda.lambda_min = p.get_double("lambda_min", 5.0, 0.0);
  o.margin_warmup_steps = p.get_int("margin_warmup_steps", 0, 0);
  return o;
}

namespace {

class SphereFaceHead final : public ClassifierHead {
 public:
  SphereFaceHead(int64_t D, int64_t K, const SphereFaceOptions& options, Rng& rng)
      : ClassifierHead("sphereface", D, K, rng), o_(options) {}

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    const Var cos_margin = margin_logits(cosine(x), labels, o_.spec(step), 1.0f);  // (N, K)
    return output(mul(cos_margin, row_norm(x)), labels);  // × ‖x‖ (N, 1)
  }

  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    return kernels::apply_margin(o_.spec(step), std::cos(theta)).f;
  }

 private:
  SphereFaceOptions o_;
};

}  // namespace

void register_sphereface(HeadRegistry& registry) {
  registry.add(
      "sphereface",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        return std::make_unique<SphereFaceHead>(D, K, read_sphereface_options(p), rng);
      },
      "A-Softmax (Liu et al. 2017): ‖x‖·ψ(θ) with annealed λ");
}

}  // namespace mf
