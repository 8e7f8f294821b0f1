#include "eval/verification.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <utility>

#include "eval/pairs.h"
#include "util/error.h"

namespace mf::eval {

namespace {

void check_inputs(std::span<const double> scores, std::span<const uint8_t> same, const char* what) {
  MF_CHECK(scores.size() == same.size(), what, ": ", scores.size(), " scores for ", same.size(),
           " labels");
  MF_CHECK(!scores.empty(), what, ": no pairs");
  for (size_t i = 0; i < scores.size(); ++i) {
    MF_CHECK(std::isfinite(scores[i]), what, ": the score of pair ", i, " is ", scores[i]);
    MF_CHECK(same[i] <= 1, what, ": the label of pair ", i, " is ", int(same[i]),
             " (1 same, 0 different)");
  }
}

// Threshold midway between two consecutive distinct sorted scores lo < hi. When they are
// neighbouring doubles the midpoint rounds onto one of them; then lo itself separates them
// under the strict rule score > threshold.
double midpoint(double lo, double hi) {
  const double mid = (lo + hi) / 2;
  return (lo < mid && mid < hi) ? mid : lo;
}

double mean_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

double population_std(const std::vector<double>& v) {
  const double mean = mean_of(v);
  double sum = 0;
  for (const double x : v) sum += (x - mean) * (x - mean);
  return std::sqrt(sum / double(v.size()));
}

// The pooled metrics, shared by both entry points.
void pooled_metrics(std::span<const double> scores, std::span<const uint8_t> same,
                    const VerifyOptions& options, VerificationResult& result) {
  result.pairs = int64_t(scores.size());
  result.positives = std::count(same.begin(), same.end(), uint8_t{1});
  result.negatives = result.pairs - result.positives;
  result.roc = roc_curve(scores, same);
  result.auc = roc_auc(result.roc);
  result.eer = equal_error_rate(result.roc);
  result.tar_at_far.clear();
  for (const double far : options.fars)
    result.tar_at_far.push_back(tar_at_far(result.roc, result.negatives, far));
  result.operating_points.clear();
  for (const double far : options.operating_fars)
    result.operating_points.push_back(operating_point(scores, same, far));
}

}  // namespace

Threshold best_threshold(std::span<const double> scores, std::span<const uint8_t> same) {
  check_inputs(scores, same, "best_threshold");
  const size_t n = scores.size();
  std::vector<std::pair<double, uint8_t>> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[i] = {scores[i], same[i]};
  std::sort(sorted.begin(), sorted.end());
  const int64_t positives = std::count(same.begin(), same.end(), uint8_t{1});

  // With the first k sorted pairs below the threshold ("different") and the rest above:
  // correct = negatives among the first k + positives among the rest.
  Threshold best;
  best.total = int64_t(n);
  best.value = sorted.front().first - 1;  // k = 0: everything "same"
  best.correct = positives;
  int64_t negatives_below = 0, positives_below = 0;
  for (size_t k = 1; k <= n; ++k) {
    (sorted[k - 1].second ? positives_below : negatives_below) += 1;
    if (k < n && sorted[k].first == sorted[k - 1].first) continue;  // no threshold inside a tie
    const int64_t correct = negatives_below + (positives - positives_below);
    if (correct > best.correct) {  // strict: ties keep the smaller threshold
      best.correct = correct;
      best.value = k < n ? midpoint(sorted[k - 1].first, sorted[k].first) : sorted[n - 1].first + 1;
    }
  }
  return best;
}

int64_t count_correct(std::span<const double> scores, std::span<const uint8_t> same,
                      double threshold) {
  MF_CHECK(scores.size() == same.size(), "count_correct: ", scores.size(), " scores for ",
           same.size(), " labels");
  int64_t correct = 0;
  for (size_t i = 0; i < scores.size(); ++i) correct += (scores[i] > threshold) == bool(same[i]);
  return correct;
}

std::vector<RocPoint> roc_curve(std::span<const double> scores, std::span<const uint8_t> same) {
  check_inputs(scores, same, "roc_curve");
  const size_t n = scores.size();
  const int64_t positives = std::count(same.begin(), same.end(), uint8_t{1});
  const int64_t negatives = int64_t(n) - positives;
  MF_CHECK(positives > 0 && negatives > 0, "roc_curve needs same and different pairs, got ",
           positives, " same and ", negatives, " different");
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return scores[i] > scores[j]; });
  std::vector<RocPoint> roc;
  roc.push_back({0.0, 0.0, std::numeric_limits<double>::infinity()});
  int64_t tp = 0, fp = 0;
  for (size_t k = 0; k < n; ++k) {
    (same[order[k]] ? tp : fp) += 1;
    if (k + 1 < n && scores[order[k + 1]] == scores[order[k]]) continue;  // finish the tie
    roc.push_back(
        {double(fp) / double(negatives), double(tp) / double(positives), scores[order[k]]});
  }
  return roc;
}

double roc_auc(const std::vector<RocPoint>& roc) {
  MF_CHECK(roc.size() >= 2, "roc_auc: a ROC curve needs at least two points");
  double area = 0;
  for (size_t i = 1; i < roc.size(); ++i)
    area += (roc[i].far - roc[i - 1].far) * (roc[i].tar + roc[i - 1].tar) / 2;
  return area;
}

double equal_error_rate(const std::vector<RocPoint>& roc) {
  MF_CHECK(roc.size() >= 2, "equal_error_rate: a ROC curve needs at least two points");
  // g = FRR − FAR = (1 − TAR) − FAR falls from 1 at (0, 0) to −1 at (1, 1); the EER is where the
  // polyline crosses g = 0.
  auto g = [&](size_t i) { return (1 - roc[i].tar) - roc[i].far; };
  for (size_t i = 1; i < roc.size(); ++i) {
    const double g0 = g(i - 1), g1 = g(i);
    if (g1 > 0) continue;
    const double alpha = g0 / (g0 - g1);  // g0 > 0 ≥ g1
    return roc[i - 1].far + alpha * (roc[i].far - roc[i - 1].far);
  }
  MF_FAIL("equal_error_rate: the ROC curve does not reach (1, 1)");
}

TarAtFar tar_at_far(const std::vector<RocPoint>& roc, int64_t negatives, double far) {
  MF_CHECK(far > 0 && far <= 1, "tar_at_far: FAR ", far, " outside (0, 1]");
  MF_CHECK(roc.size() >= 2, "tar_at_far: a ROC curve needs at least two points");
  TarAtFar out;
  out.far = far;
  out.reachable = double(negatives) >= std::ceil(1.0 / far - 1e-9);
  // The last point with FAR ≤ far has the highest TAR among those (TAR never decreases).
  size_t i = 0;
  while (i + 1 < roc.size() && roc[i + 1].far <= far) ++i;
  if (roc[i].far == far || i + 1 == roc.size()) {
    out.tar = roc[i].tar;
  } else {
    const RocPoint& a = roc[i];
    const RocPoint& b = roc[i + 1];
    out.tar = a.tar + (far - a.far) / (b.far - a.far) * (b.tar - a.tar);
  }
  return out;
}

std::string far_text(double far) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", far);
  return buf;
}

OperatingPoint operating_point(std::span<const double> scores, std::span<const uint8_t> same,
                               double far) {
  check_inputs(scores, same, "operating_point");
  MF_CHECK(far > 0 && far < 1, "operating_point: FAR ", far, " outside (0, 1)");
  std::vector<double> impostors;
  for (size_t i = 0; i < scores.size(); ++i)
    if (!same[i]) impostors.push_back(scores[i]);
  MF_CHECK(!impostors.empty() && impostors.size() < scores.size(),
           "operating_point: needs same- and different-identity pairs");
  std::sort(impostors.begin(), impostors.end(), std::greater<>());
  const int64_t negatives = int64_t(impostors.size());
  OperatingPoint p;
  p.far = far;
  p.reachable = double(negatives) >= std::ceil(1.0 / far - 1e-9);
  const int64_t k =
      std::min<int64_t>(int64_t(std::floor(far * double(negatives) + 1e-9)), negatives - 1);
  p.threshold = impostors[k];
  int64_t positives = 0, accepted = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (same[i]) {
      ++positives;
      accepted += scores[i] > p.threshold;
    } else {
      p.false_accepts += scores[i] > p.threshold;
    }
  }
  p.tar = double(accepted) / double(positives);
  return p;
}

double VerificationResult::threshold_mean() const {
  return thresholds.empty() ? 0.0 : mean_of(thresholds);
}

VerificationResult verify(std::span<const double> scores, std::span<const uint8_t> same,
                          std::span<const int> folds, const VerifyOptions& options) {
  check_inputs(scores, same, "verify");
  const int64_t n = int64_t(scores.size());
  MF_CHECK(folds.empty() || folds.size() == scores.size(), "verify: ", folds.size(),
           " fold ids for ", scores.size(), " pairs");
  VerificationResult result;
  int num_folds = 1;
  for (const int f : folds) {
    MF_CHECK(f >= 0, "verify: negative fold id ", f);
    num_folds = std::max(num_folds, f + 1);
  }
  std::vector<int> fold_of(folds.begin(), folds.end());
  if (num_folds == 1) {
    MF_CHECK(n >= options.slices && options.slices >= 2, "verify: a single-fold list of ", n,
             " pairs cannot be cut into ", options.slices, " cross-validation slices");
    fold_of = consecutive_folds(n, options.slices);
    num_folds = options.slices;
    result.threshold_source = "consecutive-slices";
  } else {
    result.threshold_source = "folds";
  }
  std::vector<int64_t> sizes(num_folds, 0);
  for (const int f : fold_of) ++sizes[f];
  for (int f = 0; f < num_folds; ++f)
    MF_CHECK(sizes[f] > 0, "verify: fold ", f, " has no pairs although folds up to ", num_folds - 1,
             " are used");

  std::vector<double> train_scores, test_scores;
  std::vector<uint8_t> train_same, test_same;
  for (int f = 0; f < num_folds; ++f) {
    train_scores.clear();
    test_scores.clear();
    train_same.clear();
    test_same.clear();
    for (int64_t i = 0; i < n; ++i) {
      if (fold_of[i] == f) {
        test_scores.push_back(scores[i]);
        test_same.push_back(same[i]);
      } else {
        train_scores.push_back(scores[i]);
        train_same.push_back(same[i]);
      }
    }
    const Threshold t = best_threshold(train_scores, train_same);
    result.thresholds.push_back(t.value);
    result.fold_accuracies.push_back(double(count_correct(test_scores, test_same, t.value)) /
                                     double(test_scores.size()));
  }
  result.accuracy_mean = mean_of(result.fold_accuracies);
  result.accuracy_std = population_std(result.fold_accuracies);
  pooled_metrics(scores, same, options, result);
  return result;
}

VerificationResult verify_with_threshold_pairs(std::span<const double> scores,
                                               std::span<const uint8_t> same,
                                               std::span<const double> threshold_scores,
                                               std::span<const uint8_t> threshold_same,
                                               const VerifyOptions& options) {
  check_inputs(scores, same, "verify");
  const Threshold t = best_threshold(threshold_scores, threshold_same);
  VerificationResult result;
  result.threshold_source = "threshold-pairs";
  result.thresholds = {t.value};
  result.fold_accuracies = {double(count_correct(scores, same, t.value)) / double(scores.size())};
  result.accuracy_mean = result.fold_accuracies[0];
  result.accuracy_std = 0;
  pooled_metrics(scores, same, options, result);
  return result;
}

}  // namespace mf::eval
