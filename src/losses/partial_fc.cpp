#include "losses/partial_fc.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "util/error.h"

namespace mf {

PartialFcHead::PartialFcHead(std::unique_ptr<ClassifierHead> inner, double sample_rate)
    : inner_(std::move(inner)), rate_(sample_rate) {
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
  const int64_t K = inner_->num_classes();
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
  // O(need) time and memory (K may be millions).
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
  return forward_with_classes(x, labels, step, draw_classes(labels, step));
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
  Var rows_weight(gathered, inner_->full_weight().requires_grad());
  inner_->use_class_subset(rows_weight, Kp);
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

std::unique_ptr<Head> create_head(const std::string& type, const Params& params, int64_t D,
                                  int64_t K, Rng& rng) {
  const double rate = params.get_double_open_low("partial_fc.sample_rate", 1.0, 0.0, 1.0);
  std::unique_ptr<Head> head =
      head_registry().create(type, params.except({"partial_fc.sample_rate"}), D, K, rng);
  if (rate >= 1.0) return head;
  auto* classifier = dynamic_cast<ClassifierHead*>(head.get());
  MF_CHECK(classifier, "head.partial_fc: head '", type,
           "' has no class weights to sample (a metric-learning head)");
  head.release();
  return std::make_unique<PartialFcHead>(std::unique_ptr<ClassifierHead>(classifier), rate);
}

}  // namespace mf
