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
//
// Over the P processes of an mpirun job (Sec. 3.2; insightface's partial_fc_v2) the class weights
// are split by class: process p holds the rows of classes [K·p/P, K·(p+1)/P) and their optimizer
// state, nothing else (`ClassShardScope`, the same rows a one-process head holds). Each step:
//   1. the embeddings (B_p, D) and labels of every process are all-gathered → X (B, D), y (B);
//   2. the K' classes are drawn from the global batch as one process draws them (so a run of any P
//      samples the same classes; insightface samples per shard instead), and each process keeps
//      those of its shard;
//   3. each process also gets the weight rows of the batch's other target classes (a (≤B·G, D)
//      exchange), so the head's margin and statistics see every row's target exactly as in one
//      process; those columns are counted by their owner only;
//   4. the softmax cross-entropy spans the processes (sharded_classification_output): the loss
//      is the global batch's mean on every process, the gradient reaches its own columns, and the
//      embedding gradient (B, D) is summed over the processes and each keeps its rows.
// A loss term outside the softmax (MagFace's g(a), the contrastive term) is computed by every
// process on the global batch and passes 1/P of its gradient back on each
// (ClassifierHead::once_over_processes); AdaCos's B_avg sums each process's columns over the
// processes (sum_over_processes). Every classifier head but center loss is served.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "losses/head.h"

namespace mf {

// How the classes are split over processes: this process holds [first, first + inner's classes)
// of `total`; `comm` is null in one process.
struct ClassShard {
  int64_t first = 0, total = 0;
  dist::Communicator* comm = nullptr;
};

// Process p's classes [first, first + count) of K over P processes.
std::pair<int64_t, int64_t> class_shard_of(int64_t K, int p, int P);

class PartialFcHead final : public Head {
 public:
  // One process: `inner` holds every class.
  PartialFcHead(std::unique_ptr<ClassifierHead> inner, double sample_rate);
  // Several: `inner` holds the classes of `shard` (built under a ClassShardScope).
  PartialFcHead(std::unique_ptr<ClassifierHead> inner, double sample_rate, ClassShard shard);

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
  const ClassShard& shard() const { return shard_; }
  int64_t rows_per_class() const { return inner_->rows_per_class(); }
  // Whether the class weights are split over several processes.
  bool sharded() const { return shard_.comm != nullptr; }

 private:
  HeadOutput forward_sharded(const Var& embeddings, const Labels& labels, const StepInfo& step);
  // The inner head's forward on the weight rows `gathered` (`classes` classes; `rows`: their
  // indices in the weight, the first of gathered's rows) with `local` labels among them.
  HeadOutput forward_on_rows(const Var& x, const Labels& local, const StepInfo& step,
                             const Tensor& gathered, int64_t classes, std::vector<int64_t> rows,
                             dist::Communicator* comm, int64_t owned);

  std::shared_ptr<ClassifierHead> inner_;
  double rate_;
  ClassShard shard_;
};

// A head by type and parameters, as head_registry().create, wrapped in PartialFcHead when
// `params` enable Partial FC (partial_fc.enabled, by default on when partial_fc.sample_rate is
// below 1; the keys are read here, not by the head). With `comm` of several processes, its class
// weights are split over them.
std::unique_ptr<Head> create_head(const std::string& type, const Params& params, int64_t D,
                                  int64_t K, Rng& rng, dist::Communicator* comm = nullptr);

}  // namespace mf
