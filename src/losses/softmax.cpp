// softmax: a fully connected layer and the softmax cross-entropy.
//
//   z_j = W_j·x (+ b_j),   L = −(1/N) Σ_n log softmax(z_n)[y_n]
//
// The plain classifier every margin head is measured against (ArcFace paper, Table 2 "Softmax").
// Gradient: ∂L/∂z = (softmax(z) − onehot(y)) / N, then through linear() to x, W and b: all exact.
// Pitfalls (docs/heads.md): MXNet's fc7 bias uses lr_mult 2 and wd_mult 0; here the bias is off by
// default. Logits grow with ‖x‖ and ‖W‖, so the loss can be driven down by scale alone; the
// normalised heads (normface and after) remove that freedom.
// Parameters: bias (false).
#include "losses/head.h"
#include "losses/heads.h"

namespace mf {
namespace {

class SoftmaxHead final : public ClassifierHead {
 public:
  SoftmaxHead(int64_t D, int64_t K, bool bias, Rng& rng) : ClassifierHead("softmax", D, K, rng) {
    if (bias) bias_ = register_parameter("bias", Tensor::zeros({K}));
  }

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo&) override {
    check_input(x, labels);
    return output(linear(x, class_weight(), bias_), labels);  // (N, K)
  }

  // With ‖x‖ = ‖W_y‖ = 1 and no bias the target logit is cos θ.
  std::optional<double> target_logit(double theta, const StepInfo&) const override {
    return std::cos(theta);
  }

 private:
  Var bias_;
};

}  // namespace

void register_softmax(HeadRegistry& registry) {
  registry.add(
      "softmax",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        return std::make_unique<SoftmaxHead>(D, K, p.get_bool("bias", false), rng);
      },
      "fully connected + softmax cross-entropy");
}

}  // namespace mf
