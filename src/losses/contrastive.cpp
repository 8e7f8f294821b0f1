// contrastive: DeepID2's joint identification-verification loss (Sun et al., NIPS 2014, §2).
//
//   L = CE(W·x, y) + λ·(1/P) Σ_{i<j} Verif(f_i, f_j),   P = N(N−1)/2,  f = x/‖x‖ (normalize)
//   Verif = ½‖f_i − f_j‖²                   same identity
//         = ½·max(0, margin − ‖f_i − f_j‖)²  different identities
//
// Gradient: exact; the verification term through the fused kernels::contrastive_* (all pairs of
// the batch, ∂/∂f_i = f_i − f_j or −(margin − d)(f_i − f_j)/d) and l2_normalize. Kinks: d = margin,
// and d = 0 for a different-identity pair (gradient 0 there).
// Pitfalls (docs/heads.md): DeepID2 learns the margin and samples pairs; here the margin is fixed
// and every pair of the batch counts, averaged so λ does not depend on N. Verification needs
// several images per identity in a batch (a P×K sampler). On unit vectors d ∈ [0, 2], so a
// margin ≥ 2 pushes every different pair apart forever. λ = 0.05 was DeepID2's best.
// Parameters: lambda (0.05), margin (1.0, > 0), normalize (true).
#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"

namespace mf {
namespace {

class ContrastiveHead final : public ClassifierHead {
 public:
  ContrastiveHead(int64_t D, int64_t K, double lambda, double margin, bool normalize, Rng& rng)
      : ClassifierHead("contrastive", D, K, rng),
        lambda_(lambda),
        margin_(margin),
        normalize_(normalize) {}

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo&) override {
    check_input(x, labels);
    HeadOutput out = output(linear(x, class_weight()), labels);  // (N, K)
    if (x.dim(0) >= 2) {
      const Var f = normalize_ ? l2_normalize(x) : x;  // (N, D)
      out.loss = add(out.loss, once_over_processes(affine(
                                   contrastive_loss(f, labels, float(margin_)), float(lambda_))));
    }
    return out;
  }

  std::optional<double> target_logit(double theta, const StepInfo&) const override {
    return std::cos(theta);
  }

 private:
  double lambda_, margin_;
  bool normalize_;
};

}  // namespace

void register_contrastive(HeadRegistry& registry) {
  registry.add(
      "contrastive",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        const double lambda = p.get_double("lambda", 0.05, 0.0, 1e3);
        const double margin = p.get_double_open_low("margin", 1.0, 0.0);
        return std::make_unique<ContrastiveHead>(D, K, lambda, margin,
                                                 p.get_bool("normalize", true), rng);
      },
      "DeepID2: softmax identification + λ·contrastive verification over the batch's pairs");
}

}  // namespace mf
