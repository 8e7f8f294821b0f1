// Face verification metrics from per-pair similarity scores (cosine: higher means more alike).
//
// Accuracy: k-fold cross-validation as in insightface's verification.py — for each fold, the
// threshold that maximises accuracy on the other folds is applied to it — reported as the mean
// and population standard deviation (np.std, ddof 0) of the fold accuracies. Unlike insightface's
// grid of thresholds (np.arange(0, 4, 0.01) on squared distances) the threshold here is exact:
//   * a pair is called "same" when its score is strictly greater than the threshold;
//   * the candidates are the midpoints between consecutive distinct sorted training scores, plus
//     min − 1 (everything "same") and max + 1 (everything "different"); between two candidates the
//     training accuracy cannot change, so the best candidate is a true maximum;
//   * ties in training accuracy go to the first, i.e. smallest, threshold (insightface takes the
//     first maximum of its ascending distance grid, which is the largest similarity threshold:
//     the two rules only differ when several thresholds are equally good).
//
// Pooled over all pairs: the ROC curve (one point per distinct score, so tied scores give one
// diagonal step), its trapezoidal AUC (which equals P(s_same > s_diff) + ½ P(tie) exactly), the
// equal error rate interpolated linearly where FAR = 1 − TAR, and TAR at given FARs interpolated
// linearly on the ROC. A FAR below 1 / negatives cannot be resolved by the data: the value is
// still interpolated but flagged unreachable.
//
// All rates are fractions in [0, 1].
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/json.h"

namespace mf::eval {

struct Threshold {
  double value = 0;
  int64_t correct = 0;  // pairs classified correctly at this threshold
  int64_t total = 0;
  double accuracy() const { return total ? double(correct) / double(total) : 0.0; }
};

// The exact best threshold on (scores, same) under the rule above.
Threshold best_threshold(std::span<const double> scores, std::span<const uint8_t> same);
// Pairs classified correctly with "same" ⇔ score > threshold.
int64_t count_correct(std::span<const double> scores, std::span<const uint8_t> same,
                      double threshold);

struct RocPoint {
  double far = 0;        // false accept rate: different pairs with score ≥ threshold / negatives
  double tar = 0;        // true accept rate: same pairs with score ≥ threshold / positives
  double threshold = 0;  // +inf for the first point (0, 0)
};
// From (0, 0) to (1, 1), one point per distinct score in decreasing order.
std::vector<RocPoint> roc_curve(std::span<const double> scores, std::span<const uint8_t> same);
double roc_auc(const std::vector<RocPoint>& roc);
double equal_error_rate(const std::vector<RocPoint>& roc);

struct TarAtFar {
  double far = 0;
  double tar = 0;
  bool reachable = false;  // at least ⌈1 / far⌉ negative pairs
};
TarAtFar tar_at_far(const std::vector<RocPoint>& roc, int64_t negatives, double far);

// An operating point: the cosine threshold that accepts at most ⌊far·negatives⌋ different-identity
// pairs ("same" ⇔ score > threshold, as count_correct and `compare`), read exactly from the
// sorted impostor scores — the (k+1)-th highest, k = ⌊far·negatives⌋ — and the TAR there. The
// answer to "what threshold gives FAR 1e-3?" (insightface#2239), which the accuracy threshold is
// not. With fewer than ⌈1/far⌉ negatives the FAR cannot be measured: reachable = false, and the
// threshold is then the highest impostor score (no impostor accepted).
struct OperatingPoint {
  double far = 0;             // asked for
  double threshold = 0;       // accept ⇔ score > threshold
  double tar = 0;             // same-identity pairs above the threshold / positives
  int64_t false_accepts = 0;  // different-identity pairs above it (≤ ⌊far·negatives⌋)
  bool reachable = false;
};
OperatingPoint operating_point(std::span<const double> scores, std::span<const uint8_t> same,
                               double far);
// A FAR as text ("%g": "0.01", "0.001", "0.0001"): the operating points' keys in the JSON report
// and how every command names a FAR.
std::string far_text(double far);

struct VerifyOptions {
  std::vector<double> fars = {1e-3, 1e-2};  // for tar_at_far
  std::vector<double> operating_fars = {1e-2, 1e-3, 1e-4};
  int slices = 10;  // cross-validation slices of a single-fold list
};

struct VerificationResult {
  // How the thresholds were chosen:
  //   "folds"              k-fold cross-validation over the list's folds
  //   "consecutive-slices" a single-fold list, cross-validated over consecutive slices
  //   "threshold-pairs"    one threshold chosen on a separate list of pairs
  std::string threshold_source;
  std::vector<double> fold_accuracies;
  std::vector<double> thresholds;  // one per fold, applied to that fold
  double accuracy_mean = 0, accuracy_std = 0;
  double auc = 0, eer = 0;
  std::vector<TarAtFar> tar_at_far;              // one per VerifyOptions::fars
  std::vector<OperatingPoint> operating_points;  // one per VerifyOptions::operating_fars
  std::vector<RocPoint> roc;
  int64_t pairs = 0, positives = 0, negatives = 0;

  double threshold_mean() const;  // the threshold to deploy (e.g. for `compare`)
};

// Cross-validated over `folds` (ids 0 … F − 1, every fold non-empty). With a single fold (all
// ids 0, or `folds` empty) the list is cut into options.slices consecutive slices instead.
VerificationResult verify(std::span<const double> scores, std::span<const uint8_t> same,
                          std::span<const int> folds, const VerifyOptions& options = {});

// A single-fold list whose threshold is the best one on a separate list of pairs (e.g. LFW
// View 1: threshold from pairsDevTrain, applied to pairsDevTest).
VerificationResult verify_with_threshold_pairs(std::span<const double> scores,
                                               std::span<const uint8_t> same,
                                               std::span<const double> threshold_scores,
                                               std::span<const uint8_t> threshold_same,
                                               const VerifyOptions& options = {});

// What the JSON report carries besides the metrics.
struct ReportInfo {
  std::string protocol;    // "lfw-view2", "lfw-view1", "pairs"
  std::string flip;        // "sum", "concat" or "off"
  std::string checkpoint;  // path
  int64_t missing = 0;     // images missing (their pairs dropped)
};

// keys: accuracy_mean, accuracy_std, auc, eer, tar_at_far {"0.001": …, "0.01": …},
// tar_at_far_reachable, operating_points {"0.001" (%g): {threshold, tar, false_accepts,
// reachable}},
// thresholds, threshold_mean, threshold_source, fold_accuracies, pairs,
// positives, negatives, missing, protocol, flip, checkpoint.
json::Value to_json(const VerificationResult& result, const ReportInfo& info);
void write_json(const std::string& path, const VerificationResult& result, const ReportInfo& info);
// The threshold of the operating point at `far` in an `eval --lfw|--pairs --json` report; an
// error naming the file when it holds none for that FAR, or when the FAR was not reachable on its
// pairs.
double threshold_at_far_from_json(const std::string& path, double far);

// The ROC curve as a PNG: TAR against FAR on a logarithmic axis (decades down to the smallest
// non-zero FAR), with a grid, axis labels and `title` on top.
void write_roc_png(const std::string& path, const std::vector<RocPoint>& roc,
                   const std::string& title = "");

}  // namespace mf::eval
