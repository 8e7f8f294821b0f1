// Heads: the training loss on top of the backbone's embeddings, chosen by name (`head.type`).
//
// Contract for every head:
//  * forward(embeddings (N, D), labels, step) returns the batch-mean loss as a scalar Var whose
//    backward reaches the embeddings and the head's parameters, the logits or scores the training
//    accuracy is read from, and that accuracy. For classifier heads `logits` (N, K) is exactly what
//    the cross-entropy sees, margin included (face.evoLVe reports accuracy the same way), and the
//    accuracy is the fraction of rows whose arg-max is the label.
//  * forward never mutates parameters or buffers. Everything step-dependent (SphereFace's λ, the
//    margin warm-up, ElasticFace's draws) is a function of step.step (and the seed), so a resumed
//    run continues the same schedule.
//  * Heads with running statistics (CurricularFace's t, AdaFace's norm mean and std, AdaCos's s)
//    compute in forward the statistics of this batch, use the state as this batch updates it (as
//    the authors' code does) and return the statistics in HeadOutput::batch_stats, without
//    storing them.
//  * after_step(embeddings, labels, batch_stats) is the only update outside the optimizer (center
//    loss's centers; the running statistics). The trainer calls it after the optimizer step once
//    per batch the step used, in order, with the embedding values and batch_stats of that batch's
//    forward; a step skipped for a non-finite loss updates nothing. It is not a gradient, and
//    the gradient checks exclude it: they see the state as a constant.
//  * Names are PyTorch-style so checkpoints store them under /head: class weights "weight" (K, D)
//    (K·G, D for sub-centres), "bias" (K), a learned scale "s" (1); buffers: "centers" (K, D),
//    CurricularFace's "t", AdaFace's "batch_mean" and "batch_std", AdaCos's "s", ElasticFace's
//    "draw_seed" (1 each).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "layers/module.h"
#include "tensor/rng.h"
#include "util/registry.h"

namespace mf {

namespace dist {
class Communicator;
}

struct StepInfo {
  int64_t step = 0;  // optimizer steps taken before this forward
};

// Partial FC: the forward used only some rows of a (K, D) parameter, through `rows_weight`, a leaf
// (R, D) holding those rows. After backward the trainer hands its gradient to the optimizer as an
// update of those rows only (Optimizer::add_sparse_rows); the other rows and their optimizer
// state are not touched.
struct SparseRows {
  std::string param;          // the parameter's name in the head ("weight")
  std::vector<int64_t> rows;  // (R) row indices, ascending
  Var rows_weight;            // (R', D), R' ≥ R: its first R rows are those rows (the rest are
                              // other processes' rows, read only)
};

struct HeadOutput {
  Var loss;       // scalar: batch mean
  Tensor logits;  // (N, K) classifier logits, or (N, N) scores for metric heads
  double accuracy = 0;
  Tensor batch_stats;  // this batch's statistics for after_step (heads with running statistics)
  std::optional<SparseRows> sparse;  // Partial FC only
  // Partial FC over several processes: loss and accuracy are already the global batch's (the
  // same on every process), not this process's slice.
  bool global_batch = false;
};

class Head : public Module {
 public:
  virtual HeadOutput forward(const Var& embeddings, const Labels& labels, const StepInfo& step) = 0;
  virtual void after_step(const Tensor& /*embeddings*/, const Labels& /*labels*/,
                          const Tensor& /*batch_stats*/) {}
  // The target logit at angle θ (radians) between a unit embedding and its unit class weight,
  // before the scale s, computed by the same margin function as forward: the curves of the
  // ArcFace paper's target-logit figure. std::nullopt for heads without class logits.
  virtual std::optional<double> target_logit(double /*theta*/, const StepInfo& /*step*/) const {
    return std::nullopt;
  }
};

// Builders take (params, embedding size D, number of classes K, rng for the initial weights).
using HeadRegistry = Registry<Head, int64_t, int64_t, Rng&>;
void register_builtin_heads(HeadRegistry& registry);  // one explicit list (builtin_heads.cpp)
const HeadRegistry& head_registry();                  // the built-in heads, built once

// target_logit at each θ (radians); an error for a head without class logits.
std::vector<double> target_logit_curve(const Head& head, const std::vector<double>& theta,
                                       const StepInfo& step);

// ---- pieces shared by the head implementations ----

// Linear margin warm-up: min(1, step / warmup_steps), or 1 without warm-up.
double warmup_ratio(int64_t warmup_steps, const StepInfo& step);
// Fraction of rows of scores (N, C) whose arg-max (first on ties) equals the label.
double argmax_accuracy(const Tensor& scores, const Labels& labels);
// Cross-entropy of logits (N, K) plus the accuracy read from them.
HeadOutput classification_output(const Var& logits, const Labels& labels);
// The same when the columns are split over the processes of `comm` (Partial FC, An et al. 2021,
// Sec. 3.2): this process counts columns [0, owned) (its classes; those after them are other
// processes' target classes, present so margins and statistics see every row's target, and
// counted by their owner). Each row's softmax over all processes' columns comes from an allreduce
// of the row maxima and of the sums of exponentials; the loss is the global batch's mean, the same
// on every process, and the gradient reaches only the counted columns. Accuracy: the target logit
// above every other counted logit (a tie counts as a miss). Defined in partial_fc.cpp.
HeadOutput sharded_classification_output(const Var& logits, const Labels& labels, int64_t owned,
                                         dist::Communicator& comm);

// Partial FC over several processes: while a ClassShardScope is alive (on this thread), a
// ClassifierHead built for K classes keeps the weight rows of classes [first, first + count) only,
// drawn from the same random stream as the whole (K·G, D) matrix: every process holds exactly
// the rows a one-process head would, for any number of processes.
class ClassShardScope {
 public:
  ClassShardScope(int64_t first, int64_t count);
  ~ClassShardScope();
  ClassShardScope(const ClassShardScope&) = delete;
  ClassShardScope& operator=(const ClassShardScope&) = delete;
};

// A head with class weights "weight" (K·G, D), G rows per class (1, or Sub-center ArcFace's
// sub-centres), Xavier-uniform initialised (ronghuaiyang's ArcMarginProduct; the cosine heads are
// invariant to the rows' scale anyway).
class ClassifierHead : public Head {
 public:
  // Partial FC (losses/partial_fc.h): until use_all_classes(), forward sees only K' classes whose
  // weight rows are `class_weight` (K'·G, D), and labels are positions among those K'. With
  // `comm`, the softmax spans the processes and this one counts the first `owned` of the K'
  // (sharded_classification_output).
  void use_class_subset(Var class_weight, int64_t classes, dist::Communicator* comm = nullptr,
                        int64_t owned = 0);
  void use_all_classes();
  // The classes whose weight rows this head holds (all, or its shard under ClassShardScope).
  int64_t num_classes() const { return K_; }
  int64_t rows_per_class() const { return G_; }
  const Var& full_weight() const { return weight_; }
  const char* type() const { return type_; }

 protected:
  ClassifierHead(const char* type, int64_t embedding_size, int64_t num_classes, Rng& rng,
                 int64_t rows_per_class = 1);
  // The loss of the classes in use: classification_output, or its sharded form in Partial FC over
  // several processes. Every classifier head ends its forward with it.
  HeadOutput output(const Var& logits, const Labels& labels) const;
  // Partial FC over several processes (each computes the head on the global batch): a loss term
  // every process computes identically, outside the softmax (MagFace's g(a), the contrastive
  // term), passes 1/P of its gradient back on each, so it counts once; its value is unchanged.
  // The identity otherwise.
  Var once_over_processes(const Var& term) const;
  // A per-process partial sum over the logit columns this process counts (`counted_columns` of
  // `columns`), summed over the processes (AdaCos's B_avg). In one process: all, unchanged.
  int64_t counted_columns(int64_t columns) const { return subset_comm_ ? subset_owned_ : columns; }
  double sum_over_processes(double partial) const;
  // Checks embeddings (N, D) and labels; names the head in the error.
  void check_input(const Var& embeddings, const Labels& labels) const;
  // Cosine matrix x̂·Ŵᵀ (N, K·G) with x̂ = x / max(‖x‖, 1e-12) and Ŵ likewise per row (of the
  // classes in use: all K, or Partial FC's K').
  Var cosine(const Var& embeddings) const;
  // The class weights forward uses (K·G, D), or Partial FC's subset (K'·G, D); their class count.
  const Var& class_weight() const { return subset_weight_.defined() ? subset_weight_ : weight_; }
  int64_t classes_in_use() const { return subset_weight_.defined() ? subset_classes_ : K_; }

  const char* type_;
  int64_t D_, K_, G_ = 1;
  Var weight_;

 private:
  Var subset_weight_;
  int64_t subset_classes_ = 0;
  dist::Communicator* subset_comm_ = nullptr;
  int64_t subset_owned_ = 0;
};

}  // namespace mf
