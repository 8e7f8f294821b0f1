#include "losses/partial_fc.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "dist/communicator.h"
#include "util/error.h"

namespace mf {

namespace {

// x (B_p, D) of every process → X (B, D) in process order, this process's rows at [offset,
// offset + B_p). Backward: X's gradient summed over the processes (each holds the part of its own
// columns), this process's rows of it. Both are sums of zero-padded buffers (exact: x + 0 = x);
// a (B, D) exchange is small next to the gradient allreduce.
Var all_gather_rows(const Var& x, dist::Communicator& comm, int64_t offset, int64_t B) {
  const int64_t n = x.dim(0), D = x.dim(1);
  Tensor all = Tensor::zeros({B, D});
  std::memcpy(all.data() + offset * D, x.value().data(), size_t(n * D) * sizeof(float));
  comm.sum(all.data(), B * D, "Partial FC's all-gather of the embeddings");
  return record("all_gather_rows", std::move(all), {x},
                [&comm, offset, n, D, B](const Tensor& dy, GradSlots& slots) {
                  Tensor summed = dy.clone();
                  comm.sum(summed.data(), B * D, "Partial FC's embedding gradient");
                  float* dx = slots.grad(0).data();
                  const float* mine = summed.data() + offset * D;
                  for (int64_t i = 0; i < n * D; ++i) dx[i] += mine[i];
                });
}

}  // namespace

HeadOutput sharded_classification_output(const Var& logits, const Labels& labels, int64_t owned,
                                         dist::Communicator& comm) {
  MF_CHECK(logits.shape().rank() == 2, "sharded cross-entropy: expected logits (N, C), got ",
           logits.shape());
  const int64_t N = logits.dim(0), C = logits.dim(1);
  MF_CHECK(N > 0 && int64_t(labels.size()) == N && owned <= C,
           "sharded cross-entropy: bad labels or columns");
  for (int64_t n = 0; n < N; ++n)
    MF_CHECK(labels[n] >= 0 && labels[n] < C, "sharded cross-entropy: label ", labels[n],
             " of row ", n, " outside [0, ", C, ")");
  const float* z = logits.value().data();
  // top[n]: row n's largest counted logit; top[N + n]: its largest counted non-target logit.
  std::vector<double> top(size_t(2 * N), -HUGE_VAL);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < owned; ++c) {
      const double v = z[n * C + c];
      top[n] = std::max(top[n], v);
      if (c != labels[n]) top[N + n] = std::max(top[N + n], v);
    }
  comm.max(top.data(), 2 * N, "Partial FC's softmax maxima");
  // sums[n]: Σ exp(z − max) over the counted columns; sums[N + n]: the target logit (its owner's).
  std::vector<double> sums(size_t(2 * N), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < owned; ++c) sums[n] += std::exp(double(z[n * C + c]) - top[n]);
    if (labels[n] < owned) sums[N + n] = z[n * C + labels[n]];
  }
  comm.sum(sums.data(), 2 * N, "Partial FC's softmax sums");
  Tensor prob = Tensor::zeros({N, C});  // softmax over every process's columns; 0 where not ours
  double loss = 0;
  int64_t correct = 0;
  for (int64_t n = 0; n < N; ++n) {
    loss += std::log(sums[n]) + top[n] - sums[N + n];  // −log softmax of the target
    correct += sums[N + n] > top[N + n];
    for (int64_t c = 0; c < owned; ++c)
      prob.data()[n * C + c] = float(std::exp(double(z[n * C + c]) - top[n]) / sums[n]);
  }
  Var loss_var = record("sharded_cross_entropy", Tensor::scalar(float(loss / double(N))), {logits},
                        [prob, labels, owned, N, C](const Tensor& dy, GradSlots& slots) {
                          float* g = slots.grad(0).data();
                          const float d = dy.item() / float(N);
                          for (int64_t n = 0; n < N; ++n)
                            for (int64_t c = 0; c < owned; ++c)
                              g[n * C + c] +=
                                  d * (prob.data()[n * C + c] - (c == labels[n] ? 1.0f : 0.0f));
                        });
  HeadOutput out{loss_var, logits.value(), double(correct) / double(N), Tensor(), std::nullopt};
  out.global_batch = true;
  return out;
}

Var ClassifierHead::once_over_processes(const Var& term) const {
  if (!subset_comm_ || subset_comm_->size() == 1) return term;
  const float share = 1.0f / float(subset_comm_->size());
  return record("once_over_processes", term.value(), {term},
                [share](const Tensor& dy, GradSlots& slots) {
                  float* g = slots.grad(0).data();
                  for (int64_t i = 0; i < dy.numel(); ++i) g[i] += share * dy.data()[i];
                });
}

double ClassifierHead::sum_over_processes(double partial) const {
  if (subset_comm_) subset_comm_->sum(&partial, 1, "Partial FC's sum over the processes");
  return partial;
}

std::pair<int64_t, int64_t> class_shard_of(int64_t K, int p, int P) {
  const int64_t first = K * p / P, end = K * (p + 1) / P;
  return {first, end - first};
}

PartialFcHead::PartialFcHead(std::unique_ptr<ClassifierHead> inner, double sample_rate)
    : PartialFcHead(std::move(inner), sample_rate, ClassShard{}) {}

PartialFcHead::PartialFcHead(std::unique_ptr<ClassifierHead> inner, double sample_rate,
                             ClassShard shard)
    : inner_(std::move(inner)), rate_(sample_rate), shard_(shard) {
  if (!shard_.comm) shard_ = {0, inner_->num_classes(), nullptr};
  MF_CHECK(sample_rate > 0 && sample_rate <= 1,
           "head.partial_fc.sample_rate must be in (0, 1], got ", sample_rate);
  MF_CHECK(std::strcmp(inner_->type(), "center") != 0,
           "head.partial_fc: center loss keeps a centre per class outside the sampled weights; "
           "use another head or no partial_fc");
  for (const auto& [name, v] : inner_->named_parameters())
    MF_CHECK(name == "weight" || name == "s", "head.partial_fc: head '", inner_->type(),
             "' has a parameter '", name, "' per class that Partial FC does not sample (set ",
             name == "bias" ? "head.bias: false" : "no partial_fc", ")");
  register_module("", inner_);  // unnamed: the same checkpoint names as the head alone
}

std::vector<int64_t> PartialFcHead::draw_classes(const Labels& labels, const StepInfo& step) const {
  const int64_t K = shard_.total;
  std::vector<int64_t> classes(labels.begin(), labels.end());
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  const int64_t want = std::max<int64_t>(int64_t(classes.size()),
                                         static_cast<int64_t>(std::ceil(rate_ * double(K))));
  // Seeded by the step and the labels (the batch), so a resumed run draws the same classes.
  uint64_t seed = 0x7061727469616cULL ^ (uint64_t(step.step) * 0x9e3779b97f4a7c15ULL);
  for (const int64_t l : labels) seed = (seed ^ uint64_t(l)) * 0x100000001b3ULL;
  Rng rng(seed);
  // Floyd's algorithm: `need` distinct negatives uniformly from the K − P other classes, in
  // O(need) draws and memory (K may be millions), then O(need·P) to map them past the positives.
  const int64_t P = static_cast<int64_t>(classes.size()), need = want - P;
  if (need > 0) {
    const std::vector<int64_t> positives = classes;
    // The i-th non-positive class (0-based) → its class index.
    auto nth_negative = [&](int64_t i) {
      int64_t c = i;
      for (const int64_t p : positives) c += p <= c;
      return c;
    };
    std::unordered_set<int64_t> chosen;
    chosen.reserve(size_t(need) * 2);
    const int64_t M = K - P;
    for (int64_t j = M - need; j < M; ++j) {
      const int64_t t = static_cast<int64_t>(rng.below(uint64_t(j + 1)));
      chosen.insert(chosen.count(t) ? j : t);
    }
    for (const int64_t i : chosen) classes.push_back(nth_negative(i));
    std::sort(classes.begin(), classes.end());
  }
  return classes;
}

HeadOutput PartialFcHead::forward(const Var& x, const Labels& labels, const StepInfo& step) {
  if (sharded()) return forward_sharded(x, labels, step);
  return forward_with_classes(x, labels, step, draw_classes(labels, step));
}

HeadOutput PartialFcHead::forward_sharded(const Var& x, const Labels& labels,
                                          const StepInfo& step) {
  dist::Communicator& comm = *shard_.comm;
  const int P = comm.size(), p = comm.rank();
  const int64_t first = shard_.first, count = inner_->num_classes(), G = inner_->rows_per_class();
  const int64_t D = x.dim(1);
  auto in_shard = [&](int64_t c) { return c >= first && c < first + count; };
  // 1. Every process's embeddings and labels (a process may hold fewer rows than another).
  std::vector<double> sizes(size_t(P), 0.0);
  sizes[size_t(p)] = double(labels.size());
  comm.sum(sizes.data(), P, "Partial FC's batch sizes");
  int64_t offset = 0, B = 0;
  for (int i = 0; i < P; ++i) {
    offset += i < p ? int64_t(sizes[size_t(i)]) : 0;
    B += int64_t(sizes[size_t(i)]);
  }
  const Var X = all_gather_rows(x, comm, offset, B);  // (B, D)
  std::vector<double> label_values(size_t(B), 0.0);
  for (size_t n = 0; n < labels.size(); ++n) label_values[size_t(offset) + n] = double(labels[n]);
  comm.sum(label_values.data(), B, "Partial FC's all-gather of the labels");
  Labels all(static_cast<size_t>(B));
  for (int64_t n = 0; n < B; ++n) {
    all[size_t(n)] = static_cast<int64_t>(label_values[size_t(n)]);
    MF_CHECK(all[size_t(n)] >= 0 && all[size_t(n)] < shard_.total, "head.partial_fc: label ",
             all[size_t(n)], " of global row ", n, " is outside [0, ", shard_.total, ")");
  }
  // 2. The classes one process would draw for this global batch; this process's among them.
  std::vector<int64_t> mine;
  for (const int64_t c : draw_classes(all, step))
    if (in_shard(c)) mine.push_back(c);
  // 3. The batch's target classes: rows of those held elsewhere come from their owners.
  std::vector<int64_t> targets(all.begin(), all.end());
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  const Tensor& W = inner_->full_weight().value();  // (count·G, D), this shard's rows
  const int64_t T = static_cast<int64_t>(targets.size());
  Tensor target_rows = Tensor::zeros({T * G, D});
  for (int64_t t = 0; t < T; ++t)
    if (in_shard(targets[size_t(t)]))
      std::memcpy(target_rows.data() + t * G * D, W.data() + (targets[size_t(t)] - first) * G * D,
                  size_t(G * D) * sizeof(float));
  comm.sum(target_rows.data(), T * G * D, "Partial FC's target rows");
  std::vector<int64_t> others;  // target classes of other shards, ascending
  for (const int64_t c : targets)
    if (!in_shard(c)) others.push_back(c);
  // The leaf: this process's sampled rows (updated), then the other shards' target rows (not).
  const int64_t S = static_cast<int64_t>(mine.size()), O = static_cast<int64_t>(others.size());
  Tensor gathered = Tensor::empty({(S + O) * G, D});
  std::vector<int64_t> rows;
  rows.reserve(size_t(S * G));
  for (const int64_t c : mine)
    for (int64_t g = 0; g < G; ++g) rows.push_back((c - first) * G + g);
  for (size_t r = 0; r < rows.size(); ++r)
    std::memcpy(gathered.data() + int64_t(r) * D, W.data() + rows[r] * D,
                size_t(D) * sizeof(float));
  for (int64_t o = 0; o < O; ++o) {
    const int64_t t =
        std::lower_bound(targets.begin(), targets.end(), others[size_t(o)]) - targets.begin();
    std::memcpy(gathered.data() + (S + o) * G * D, target_rows.data() + t * G * D,
                size_t(G * D) * sizeof(float));
  }
  Labels local(static_cast<size_t>(B));  // positions among [mine..., others...]
  for (int64_t n = 0; n < B; ++n) {
    const int64_t c = all[size_t(n)];
    const auto& list = in_shard(c) ? mine : others;
    local[size_t(n)] =
        std::lower_bound(list.begin(), list.end(), c) - list.begin() + (in_shard(c) ? 0 : S);
  }
  // global_batch: set by sharded_classification_output, which every head's output() reaches.
  return forward_on_rows(X, local, step, gathered, S + O, std::move(rows), &comm, S);
}

HeadOutput PartialFcHead::forward_on_rows(const Var& x, const Labels& local, const StepInfo& step,
                                          const Tensor& gathered, int64_t classes,
                                          std::vector<int64_t> rows, dist::Communicator* comm,
                                          int64_t owned) {
  Var rows_weight(gathered, inner_->full_weight().requires_grad());
  inner_->use_class_subset(rows_weight, classes, comm, owned);
  HeadOutput out;
  try {
    out = inner_->forward(x, local, step);
  } catch (...) {
    inner_->use_all_classes();
    throw;
  }
  inner_->use_all_classes();
  out.sparse = SparseRows{"weight", std::move(rows), rows_weight};
  return out;
}

HeadOutput PartialFcHead::forward_with_classes(const Var& x, const Labels& labels,
                                               const StepInfo& step,
                                               const std::vector<int64_t>& classes) {
  const int64_t K = inner_->num_classes(), G = inner_->rows_per_class();
  const Tensor& W = inner_->full_weight().value();  // (K·G, D)
  const int64_t D = W.dim(1), Kp = static_cast<int64_t>(classes.size());
  // Labels → positions among the K' classes.
  Labels local(labels.size());
  for (size_t n = 0; n < labels.size(); ++n) {
    const auto it = std::lower_bound(classes.begin(), classes.end(), labels[n]);
    MF_CHECK(labels[n] >= 0 && labels[n] < K && it != classes.end() && *it == labels[n],
             "head.partial_fc: label ", labels[n], " of row ", n,
             " is not among the sampled classes (or outside [0, ", K, "))");
    local[n] = it - classes.begin();
  }
  // Gather the K'·G rows (class-major, as the head lays out its sub-centres).
  std::vector<int64_t> rows;
  rows.reserve(size_t(Kp * G));
  for (const int64_t c : classes)
    for (int64_t g = 0; g < G; ++g) rows.push_back(c * G + g);
  Tensor gathered = Tensor::empty({Kp * G, D});
  for (size_t r = 0; r < rows.size(); ++r)
    std::memcpy(gathered.data() + int64_t(r) * D, W.data() + rows[r] * D, D * sizeof(float));
  return forward_on_rows(x, local, step, gathered, Kp, std::move(rows), nullptr, 0);
}

std::unique_ptr<Head> create_head(const std::string& type, const Params& params, int64_t D,
                                  int64_t K, Rng& rng, dist::Communicator* comm) {
  const double rate = params.get_double_open_low("partial_fc.sample_rate", 1.0, 0.0, 1.0);
  const bool enabled = params.get_bool("partial_fc.enabled", rate < 1.0);
  const Params head_params = params.except({"partial_fc.sample_rate", "partial_fc.enabled"});
  if (!enabled) return head_registry().create(type, head_params, D, K, rng);
  const bool several = comm && comm->size() > 1;
  ClassShard shard;
  std::unique_ptr<Head> head;
  if (several) {
    MF_CHECK(K >= 2 * comm->size(), "head.partial_fc over ", comm->size(), " processes needs at ",
             "least two classes per process, the data has ", K);
    const auto [first, count] = class_shard_of(K, comm->rank(), comm->size());
    shard = ClassShard{first, K, comm};
    const ClassShardScope scope(first, count);
    head = head_registry().create(type, head_params, D, K, rng);
  } else {
    head = head_registry().create(type, head_params, D, K, rng);
  }
  auto* classifier = dynamic_cast<ClassifierHead*>(head.get());
  MF_CHECK(classifier, "head.partial_fc: head '", type,
           "' has no class weights to sample (a metric-learning head)");
  head.release();
  std::unique_ptr<ClassifierHead> inner(classifier);
  return several ? std::make_unique<PartialFcHead>(std::move(inner), rate, shard)
                 : std::make_unique<PartialFcHead>(std::move(inner), rate);
}

}  // namespace mf
