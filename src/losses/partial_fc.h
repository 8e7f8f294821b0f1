// Partial FC (An et al., "Partial FC: Training 10 Million Identities on a Single Machine", ICCVW
// 2021, Sec. 3): `head.partial_fc: {sample_rate: r}` wraps any classifier head so that each step's
// softmax sees only K' of the K classes — every class of the batch (the positives) plus classes
// drawn uniformly without replacement from the rest, K' = max(#positives, ⌈r·K⌉) in all. Only those
// classes' weight rows are gathered into a (K'·G, D) leaf, take part in forward and backward, and
// are updated (with their optimizer state) by the optimizer (HeadOutput::sparse); the others stay
// untouched. The head's margin, scale and statistics apply unchanged on the K' classes; accuracy is
// the arg-max over them. With r = 1 every class takes part: the full head, to float rounding.
//
// Memory: the (N, K) logits and their gradient shrink to (N, K'), and the (K, D) weight gradient to
// (K'·G, D): what lets one process hold a million-class head (README "Many machines").
//
// The draw is a function of (step, the batch's labels), so a resumed run draws the same classes.
// Not for heads that keep a per-class state outside the weight (center loss) or a bias.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "losses/head.h"

namespace mf {

class PartialFcHead final : public Head {
 public:
  PartialFcHead(std::unique_ptr<ClassifierHead> inner, double sample_rate);

  HeadOutput forward(const Var& embeddings, const Labels& labels, const StepInfo& step) override;
  // The same with the K' classes given (ascending, every label among them), not drawn.
  HeadOutput forward_with_classes(const Var& embeddings, const Labels& labels, const StepInfo& step,
                                  const std::vector<int64_t>& classes);
  // The classes forward draws for this batch and step (ascending).
  std::vector<int64_t> draw_classes(const Labels& labels, const StepInfo& step) const;

  void after_step(const Tensor& embeddings, const Labels& labels,
                  const Tensor& batch_stats) override {
    inner_->after_step(embeddings, labels, batch_stats);
  }
  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    return inner_->target_logit(theta, step);
  }
  double sample_rate() const { return rate_; }

 private:
  std::shared_ptr<ClassifierHead> inner_;
  double rate_;
};

// A head by type and parameters, as head_registry().create, wrapped in PartialFcHead when
// `params` set partial_fc.sample_rate below 1 (the key is read here, not by the head).
std::unique_ptr<Head> create_head(const std::string& type, const Params& params, int64_t D,
                                  int64_t K, Rng& rng);

}  // namespace mf
