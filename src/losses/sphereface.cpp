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

namespace {

class SphereFaceHead final : public ClassifierHead {
 public:
  SphereFaceHead(int64_t D, int64_t K, int m, SphereFaceLambda lambda, int64_t warmup, Rng& rng)
      : ClassifierHead("sphereface", D, K, rng), m_(m), lambda_(lambda), warmup_(warmup) {}

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    const Var cos_margin = margin_logits(cosine(x), labels, spec(step), 1.0f);  // (N, K)
    return classification_output(mul(cos_margin, row_norm(x)), labels);         // × ‖x‖ (N, 1)
  }

  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    return kernels::apply_margin(spec(step), std::cos(theta)).f;
  }

 private:
  kernels::MarginSpec spec(const StepInfo& step) const {
    return {.kind = kernels::MarginKind::kSphere,
            .m = double(m_),
            .w = warmup_ratio(warmup_, step) / (1.0 + lambda_.at(step.step))};
  }

  int m_;
  SphereFaceLambda lambda_;
  int64_t warmup_;
};

}  // namespace

void register_sphereface(HeadRegistry& registry) {
  registry.add(
      "sphereface",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        const int m = static_cast<int>(p.get_int("m", 4, 1, 4));
        SphereFaceLambda lambda;
        lambda.base = p.get_double_open_low("base", 1000, 0.0);
        lambda.gamma = p.get_double("gamma", 0.12, 0.0);
        lambda.power = p.get_double("power", 1.0, 0.0);
        lambda.lambda_min = p.get_double("lambda_min", 5.0, 0.0);
        const int64_t warmup = p.get_int("margin_warmup_steps", 0, 0);
        return std::make_unique<SphereFaceHead>(D, K, m, lambda, warmup, rng);
      },
      "A-Softmax (Liu et al. 2017): ‖x‖·ψ(θ) with annealed λ");
}

}  // namespace mf
