#include "losses/head.h"

#include <algorithm>
#include <cmath>

#include "layers/layers.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {

namespace {
// ClassShardScope's setting for the ClassifierHead constructors on this thread.
struct ShardSetting {
  bool active = false;
  int64_t first = 0, count = 0;
};
thread_local ShardSetting shard_scope;
}  // namespace

const HeadRegistry& head_registry() {
  static const HeadRegistry registry = [] {
    HeadRegistry r("head");
    register_builtin_heads(r);
    return r;
  }();
  return registry;
}

std::vector<double> target_logit_curve(const Head& head, const std::vector<double>& theta,
                                       const StepInfo& step) {
  std::vector<double> out;
  out.reserve(theta.size());
  for (double t : theta) {
    const std::optional<double> z = head.target_logit(t, step);
    MF_CHECK(z.has_value(), "target_logit_curve: this head has no class logits");
    out.push_back(*z);
  }
  return out;
}

double warmup_ratio(int64_t warmup_steps, const StepInfo& step) {
  if (warmup_steps <= 0) return 1.0;
  return std::clamp(double(step.step) / double(warmup_steps), 0.0, 1.0);
}

double argmax_accuracy(const Tensor& scores, const Labels& labels) {
  MF_CHECK(scores.rank() == 2 && scores.dim(0) == static_cast<int64_t>(labels.size()),
           "argmax_accuracy: scores ", scores.shape(), " for ", labels.size(), " labels");
  const int64_t N = scores.dim(0), C = scores.dim(1);
  if (N == 0) return 0.0;
  int64_t correct = 0;
  for (int64_t n = 0; n < N; ++n) {
    const float* row = scores.data() + n * C;
    correct += (std::max_element(row, row + C) - row) == labels[n];
  }
  return double(correct) / double(N);
}

HeadOutput classification_output(const Var& logits, const Labels& labels) {
  return {cross_entropy(logits, labels), logits.value(), argmax_accuracy(logits.value(), labels),
          Tensor(), std::nullopt};
}

ClassifierHead::ClassifierHead(const char* type, int64_t embedding_size, int64_t num_classes,
                               Rng& rng, int64_t rows_per_class)
    : type_(type), D_(embedding_size), K_(num_classes), G_(rows_per_class) {
  MF_CHECK(D_ > 0 && K_ > 1, "head '", type_, "': needs embedding size > 0 and at least two ",
           "classes, got D = ", D_, ", K = ", K_);
  const int64_t rows = K_ * rows_per_class;
  const double bound = std::sqrt(6.0 / double(D_ + rows));
  if (!shard_scope.active) {
    Tensor w = Tensor::empty({rows, D_});
    init_uniform(w, rng, -bound, bound);
    weight_ = register_parameter("weight", w);
    return;
  }
  // Partial FC's shard: the whole matrix's draws, keeping this shard's rows.
  MF_CHECK(shard_scope.first >= 0 && shard_scope.count > 0 &&
               shard_scope.first + shard_scope.count <= K_,
           "internal: class shard [", shard_scope.first, ", ",
           shard_scope.first + shard_scope.count, ") outside [0, ", K_, ")");
  const int64_t skip_before = shard_scope.first * G_ * D_;
  const int64_t keep = shard_scope.count * G_ * D_;
  for (int64_t i = 0; i < skip_before; ++i) rng.uniform();
  Tensor w = Tensor::empty({shard_scope.count * G_, D_});
  init_uniform(w, rng, -bound, bound);
  for (int64_t i = skip_before + keep; i < rows * D_; ++i) rng.uniform();
  K_ = shard_scope.count;
  weight_ = register_parameter("weight", w);
}

ClassShardScope::ClassShardScope(int64_t first, int64_t count) {
  MF_CHECK(!shard_scope.active, "internal: nested ClassShardScope");
  shard_scope = {true, first, count};
}

ClassShardScope::~ClassShardScope() {
  shard_scope = {};
}

HeadOutput ClassifierHead::output(const Var& logits, const Labels& labels) const {
  if (subset_comm_)
    return sharded_classification_output(logits, labels, subset_owned_, *subset_comm_);
  return classification_output(logits, labels);
}

void ClassifierHead::check_input(const Var& embeddings, const Labels& labels) const {
  MF_CHECK(embeddings.shape().rank() == 2 && embeddings.dim(1) == D_, "head '", type_,
           "': expected embeddings (N, ", D_, "), got ", embeddings.shape());
  MF_CHECK(embeddings.dim(0) > 0, "head '", type_, "': empty batch");
  MF_CHECK(static_cast<int64_t>(labels.size()) == embeddings.dim(0), "head '", type_,
           "': ", labels.size(), " labels for ", embeddings.dim(0), " embeddings");
  for (size_t n = 0; n < labels.size(); ++n)
    MF_CHECK(labels[n] >= 0 && labels[n] < classes_in_use(), "head '", type_, "': label ",
             labels[n], " of row ", n, " is outside [0, ", classes_in_use(),
             ") (num_classes = ", classes_in_use(), ")");
}

Var ClassifierHead::cosine(const Var& embeddings) const {
  return linear(l2_normalize(embeddings), l2_normalize(class_weight()));  // (N, K)
}

void ClassifierHead::use_class_subset(Var class_weight, int64_t classes, dist::Communicator* comm,
                                      int64_t owned) {
  MF_CHECK(class_weight.shape() == Shape({classes * G_, D_}), "head '", type_,
           "': a class subset of ", classes, " classes needs weights (", classes * G_, ", ", D_,
           "), got ", class_weight.shape());
  MF_CHECK(!comm || (owned >= 0 && owned <= classes), "internal: ", owned, " owned of ", classes,
           " classes");
  subset_weight_ = std::move(class_weight);
  subset_classes_ = classes;
  subset_comm_ = comm;
  subset_owned_ = owned;
}

void ClassifierHead::use_all_classes() {
  subset_weight_ = Var();
  subset_classes_ = 0;
  subset_comm_ = nullptr;
  subset_owned_ = 0;
}

}  // namespace mf
