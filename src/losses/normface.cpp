// normface: the normalised softmax with a scale (NormFace, Wang et al., ACM MM 2017).
//
//   z_j = s·cos θ_j = s·⟨x/‖x‖, W_j/‖W_j‖⟩,   no bias
//
// Gradient: exact, through l2_normalize, linear and the scale; with learn_s the scale is a
// parameter "s" (1) and ∂L/∂s = Σ ∂L/∂z·cos θ (NormFace's learned `Scale` layer; its prototxt
// starts at 10). Pitfalls (docs/heads.md): without a margin, normalised features train worse
// than softmax (ArcFace Table 2: NS 98.56 vs softmax 99.08 LFW), and a small s caps the target
// posterior: the CE cannot fall below log(1 + (K−1)·e^(−2s)); the CosFace paper's bound
// s ≥ (K−1)/K·ln((K−1)·P/(1−P)) gives the s needed for posterior P. A learned s is not clamped.
// This is combined (1, 0, 0) and the margin heads' starting point.
// Parameters: s (64, > 0), learn_s (false).
#include <cmath>

#include "losses/head.h"
#include "losses/heads.h"

namespace mf {
namespace {

class NormFaceHead final : public ClassifierHead {
 public:
  NormFaceHead(int64_t D, int64_t K, double s, bool learn_s, Rng& rng)
      : ClassifierHead("normface", D, K, rng), s_(s) {
    if (learn_s) s_param_ = register_parameter("s", Tensor::full({1}, float(s)));
  }

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo&) override {
    check_input(x, labels);
    const Var cos = cosine(x);  // (N, K)
    const Var logits =
        s_param_.defined() ? mul(cos, reshape(s_param_, {1, 1})) : affine(cos, float(s_));
    return output(logits, labels);
  }

  std::optional<double> target_logit(double theta, const StepInfo&) const override {
    return std::cos(theta);
  }

 private:
  double s_;
  Var s_param_;  // defined with learn_s
};

}  // namespace

void register_normface(HeadRegistry& registry) {
  registry.add(
      "normface",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        const double s = p.get_double_open_low("s", 64.0, 0.0);
        return std::make_unique<NormFaceHead>(D, K, s, p.get_bool("learn_s", false), rng);
      },
      "normalised softmax s·cos θ (Wang et al. 2017), s fixed or learned");
}

}  // namespace mf
