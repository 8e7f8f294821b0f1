// lsoftmax: the Large-Margin Softmax loss (Liu et al., ICML 2016, eq. 4–6), SphereFace's
// predecessor: the same ψ, but the class weights keep their norms.
//
//   z_j = ‖W_j‖·‖x‖·cos θ_j = W_j·x,   z_y = ‖W_j‖·‖x‖·(λ·cos θ_y + ψ(θ_y)) / (1 + λ)
//   ψ and the λ annealing exactly as `sphereface` (kernels::sphereface_margin; Caffe's
//   LargeMarginInnerProduct layer, wy1iu/LargeMargin_Softmax_Loss).
//
// Gradient: exact, through ‖x‖, ‖W_j‖ (row_norm, 0 for a zero row) and the cosine; no 1/sin θ.
// Why it is here: with the same ψ, λ and m as `sphereface`, an ablation of the two shows what
// normalising W changed (SphereFace §3.3: the norms of W bias the decision towards frequent
// classes). Pitfalls (docs/heads.md): the L-Softmax authors anneal λ from 1000 slowly; the loss
// stalls or diverges with a fast schedule (wy1iu#5); without weight decay ‖W‖ grows freely.
// Parameters: as sphereface — m (4), base (1000), gamma (0.12), power (1), lambda_min (5),
// margin_warmup_steps (0).
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"

namespace mf {
namespace {

class LSoftmaxHead final : public ClassifierHead {
 public:
  LSoftmaxHead(int64_t D, int64_t K, const SphereFaceOptions& options, Rng& rng)
      : ClassifierHead("lsoftmax", D, K, rng), o_(options) {}

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    const Var cos_margin = margin_logits(cosine(x), labels, o_.spec(step), 1.0f);       // (N, K)
    const Var weight_norms = reshape(row_norm(class_weight()), {1, classes_in_use()});  // (1, K)
    return output(mul(mul(cos_margin, row_norm(x)), weight_norms), labels);
  }

  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    return kernels::apply_margin(o_.spec(step), std::cos(theta)).f;  // per unit ‖W‖·‖x‖
  }

 private:
  SphereFaceOptions o_;
};

}  // namespace

void register_lsoftmax(HeadRegistry& registry) {
  registry.add(
      "lsoftmax",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        return std::make_unique<LSoftmaxHead>(D, K, read_sphereface_options(p), rng);
      },
      "Large-Margin Softmax (Liu et al. 2016): ‖W‖‖x‖·ψ(θ), unnormalised weights");
}

}  // namespace mf
