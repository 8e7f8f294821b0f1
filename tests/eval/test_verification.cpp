// The verification protocol on hand-computed examples and brute-force properties.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "eval/pairs.h"
#include "eval/verification.h"
#include "tensor/rng.h"
#include "util/error.h"

namespace mf::eval {
namespace {

// Eight pairs, worked out by hand.
//   same:      0.9 0.8 0.6 0.3
//   different: 0.7 0.4 0.2 0.1
// Sorted ascending: 0.1d 0.2d 0.3s 0.4d 0.6s 0.7d 0.8s 0.9s. With the k lowest called
// "different", correct = (different among them) + (same among the rest):
//   k  threshold       correct
//   0  0.1 − 1 = −0.9  0 + 4 = 4
//   1  0.15            1 + 4 = 5
//   2  0.25            2 + 4 = 6   ← first maximum
//   3  0.35            2 + 3 = 5
//   4  0.5             3 + 3 = 6
//   5  0.65            3 + 2 = 5
//   6  0.75            4 + 2 = 6
//   7  0.85            4 + 1 = 5
//   8  0.9 + 1 = 1.9   4 + 0 = 4
// Best threshold 0.25 (ties at 0.5 and 0.75 go to the smallest), accuracy 6/8.
// ROC, decreasing score → (FAR, TAR): (0,0) 0.9:(0,¼) 0.8:(0,½) 0.7:(¼,½) 0.6:(¼,¾) 0.4:(½,¾)
//   0.3:(½,1) 0.2:(¾,1) 0.1:(1,1).
// AUC = ¼·½ + ¼·¾ + ½·1 = 0.8125 = 13/16 (same > different in 4 + 4 + 3 + 2 of 16 pairs).
// EER: FRR − FAR = 1 − TAR − FAR is ½ at (0,½), ¼ at (¼,½) and 0 at (¼,¾) → EER = ¼.
// TAR at FAR ¼ = ¾ (the highest TAR at that FAR); at FAR ⅜ = ¾; at FAR 0.01 = ½ but only 4
// negatives: unreachable (needs 100).
const std::vector<double> kScores = {0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1};
const std::vector<uint8_t> kSame = {1, 1, 1, 1, 0, 0, 0, 0};

// Operating points on the example above (different pairs 0.7 0.4 0.2 0.1, same 0.9 0.8 0.6 0.3):
//   FAR 0.25: ⌊0.25·4⌋ = 1 false accept allowed → threshold = the second-highest impostor, 0.4;
//             above it: same 0.9 0.8 0.6 (TAR ¾), different 0.7 (1 false accept); measurable.
//   FAR 0.5:  2 allowed → threshold 0.2; TAR 1, false accepts 0.7 and 0.4.
//   FAR 0.1:  none allowed → threshold 0.7; TAR ½; 4 negatives cannot measure 0.1 (needs 10).
TEST(OperatingPoint, HandComputed) {
  OperatingPoint p = operating_point(kScores, kSame, 0.25);
  EXPECT_DOUBLE_EQ(p.threshold, 0.4);
  EXPECT_DOUBLE_EQ(p.tar, 0.75);
  EXPECT_EQ(p.false_accepts, 1);
  EXPECT_TRUE(p.reachable);
  p = operating_point(kScores, kSame, 0.5);
  EXPECT_DOUBLE_EQ(p.threshold, 0.2);
  EXPECT_DOUBLE_EQ(p.tar, 1.0);
  EXPECT_EQ(p.false_accepts, 2);
  p = operating_point(kScores, kSame, 0.1);
  EXPECT_DOUBLE_EQ(p.threshold, 0.7);
  EXPECT_DOUBLE_EQ(p.tar, 0.5);
  EXPECT_EQ(p.false_accepts, 0);
  EXPECT_FALSE(p.reachable);
}

// Tied impostor scores at the threshold: "same ⇔ score > threshold" accepts none of them, so the
// FAR stays below the one asked for (here 0 of the 1 allowed).
TEST(OperatingPoint, TiesAtTheThresholdAreRejected) {
  const std::vector<double> scores{0.5, 0.5, 0.5, 0.1, 0.6, 0.5};
  const std::vector<uint8_t> same{0, 0, 0, 0, 1, 1};
  const OperatingPoint p = operating_point(scores, same, 0.25);
  EXPECT_DOUBLE_EQ(p.threshold, 0.5);
  EXPECT_EQ(p.false_accepts, 0);
  EXPECT_DOUBLE_EQ(p.tar, 0.5);
  EXPECT_THROW(operating_point(scores, same, 0.0), Error);
  EXPECT_THROW(operating_point(scores, std::vector<uint8_t>(6, 1), 0.1), Error);
}

// Against brute force: the threshold is an impostor score, at most ⌊far·n⌋ impostors lie above
// it, and no lower impostor score would keep that bound.
TEST(OperatingPoint, MatchesBruteForceOnRandomScores) {
  Rng rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<double> scores;
    std::vector<uint8_t> same;
    for (int i = 0; i < 200; ++i) {
      same.push_back(rng.uniform() < 0.5);
      scores.push_back(std::round(rng.uniform(-1, 1) * 50) / 50 + (same.back() ? 0.3 : 0.0));
    }
    for (double far : {0.01, 0.05, 0.2}) {
      const OperatingPoint p = operating_point(scores, same, far);
      int64_t negatives = 0, above = 0;
      double lowest_ok = 1e9;
      for (size_t i = 0; i < scores.size(); ++i)
        if (!same[i]) {
          ++negatives;
          above += scores[i] > p.threshold;
        }
      const int64_t allowed = int64_t(std::floor(far * double(negatives)));
      EXPECT_LE(above, allowed);
      for (size_t i = 0; i < scores.size(); ++i) {
        if (same[i]) continue;
        int64_t a = 0;
        for (size_t j = 0; j < scores.size(); ++j) a += !same[j] && scores[j] > scores[i];
        if (a <= allowed) lowest_ok = std::min(lowest_ok, scores[i]);
      }
      EXPECT_DOUBLE_EQ(p.threshold, lowest_ok) << "far " << far;
    }
  }
}

TEST(BestThreshold, HandComputedWithTiesInAccuracy) {
  const Threshold t = best_threshold(kScores, kSame);
  EXPECT_DOUBLE_EQ(t.value, 0.25);
  EXPECT_EQ(t.correct, 6);
  EXPECT_EQ(t.total, 8);
  EXPECT_DOUBLE_EQ(t.accuracy(), 0.75);
  EXPECT_EQ(count_correct(kScores, kSame, 0.25), 6);
  EXPECT_EQ(count_correct(kScores, kSame, 0.35), 5);
}

TEST(BestThreshold, NeverSplitsTiedScores) {
  // Sorted: 0.2d 0.5s 0.5s 0.5d. Candidates −0.8 (2 correct), 0.35 (1 + 2 = 3), 1.5 (2); no
  // threshold may fall between the three 0.5s.
  const std::vector<double> scores = {0.5, 0.5, 0.5, 0.2};
  const std::vector<uint8_t> same = {1, 1, 0, 0};
  const Threshold t = best_threshold(scores, same);
  EXPECT_DOUBLE_EQ(t.value, 0.35);
  EXPECT_EQ(t.correct, 3);
}

TEST(BestThreshold, AllSameOrAllDifferent) {
  // Everything "same" is best when every pair is same: the threshold lies below the minimum.
  const std::vector<double> scores = {0.3, 0.1, 0.2};
  EXPECT_DOUBLE_EQ(best_threshold(scores, std::vector<uint8_t>{1, 1, 1}).value, 0.1 - 1);
  EXPECT_DOUBLE_EQ(best_threshold(scores, std::vector<uint8_t>{0, 0, 0}).value, 0.3 + 1);
}

TEST(BestThreshold, NeighbouringDoublesStaySeparated) {
  const double lo = 0.5, hi = std::nextafter(0.5, 1.0);
  const std::vector<double> scores = {lo, hi};
  const std::vector<uint8_t> same = {0, 1};
  const Threshold t = best_threshold(scores, same);
  EXPECT_EQ(t.correct, 2);
  EXPECT_EQ(count_correct(scores, same, t.value), 2);
}

// The sweep against every candidate evaluated directly, on random lists with many ties.
TEST(BestThreshold, MatchesBruteForceOnRandomTiedScores) {
  Rng rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + int(rng.below(30));
    std::vector<double> scores(n);
    std::vector<uint8_t> same(n);
    for (int i = 0; i < n; ++i) {
      scores[i] = double(rng.below(8)) / 8.0 - 0.3;
      same[i] = rng.uniform() < 0.5;
    }
    std::vector<double> sorted = scores;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    std::vector<double> candidates = {sorted.front() - 1};
    for (size_t i = 0; i + 1 < sorted.size(); ++i)
      candidates.push_back((sorted[i] + sorted[i + 1]) / 2);
    candidates.push_back(sorted.back() + 1);
    int64_t best = -1;
    double best_t = 0;
    for (const double c : candidates) {
      const int64_t correct = count_correct(scores, same, c);
      if (correct > best) {
        best = correct;
        best_t = c;
      }
    }
    const Threshold t = best_threshold(scores, same);
    ASSERT_EQ(t.correct, best) << "trial " << trial;
    ASSERT_EQ(t.value, best_t) << "trial " << trial;
    ASSERT_EQ(count_correct(scores, same, t.value), t.correct) << "trial " << trial;
  }
}

TEST(Roc, HandComputedCurveAucEer) {
  const std::vector<RocPoint> roc = roc_curve(kScores, kSame);
  const std::vector<std::pair<double, double>> expected = {{0, 0},      {0, 0.25},    {0, 0.5},
                                                           {0.25, 0.5}, {0.25, 0.75}, {0.5, 0.75},
                                                           {0.5, 1},    {0.75, 1},    {1, 1}};
  ASSERT_EQ(roc.size(), expected.size());
  for (size_t i = 0; i < roc.size(); ++i) {
    EXPECT_DOUBLE_EQ(roc[i].far, expected[i].first) << "point " << i;
    EXPECT_DOUBLE_EQ(roc[i].tar, expected[i].second) << "point " << i;
  }
  EXPECT_TRUE(std::isinf(roc[0].threshold));
  EXPECT_DOUBLE_EQ(roc[1].threshold, 0.9);
  EXPECT_DOUBLE_EQ(roc_auc(roc), 0.8125);
  EXPECT_DOUBLE_EQ(equal_error_rate(roc), 0.25);

  const TarAtFar quarter = tar_at_far(roc, 4, 0.25);
  EXPECT_DOUBLE_EQ(quarter.tar, 0.75);
  EXPECT_TRUE(quarter.reachable);
  EXPECT_DOUBLE_EQ(tar_at_far(roc, 4, 0.375).tar, 0.75);
  EXPECT_DOUBLE_EQ(tar_at_far(roc, 4, 0.5).tar, 1.0);
  const TarAtFar small = tar_at_far(roc, 4, 0.01);
  EXPECT_DOUBLE_EQ(small.tar, 0.5);
  EXPECT_FALSE(small.reachable);
}

TEST(Roc, TiesGiveOneDiagonalStep) {
  // same 0.5 0.5, different 0.5 0.2: the tied group moves (0,0) → (½,1) in one diagonal step.
  // AUC = ½·(0 + 1)/2 + ½·1 = ¾ = (2 wins + ½·2 ties)/4. EER on TAR = 2·FAR: 1 − 2x = x → ⅓.
  const std::vector<double> scores = {0.5, 0.5, 0.5, 0.2};
  const std::vector<uint8_t> same = {1, 1, 0, 0};
  const std::vector<RocPoint> roc = roc_curve(scores, same);
  ASSERT_EQ(roc.size(), 3u);
  EXPECT_DOUBLE_EQ(roc[1].far, 0.5);
  EXPECT_DOUBLE_EQ(roc[1].tar, 1.0);
  EXPECT_DOUBLE_EQ(roc_auc(roc), 0.75);
  EXPECT_DOUBLE_EQ(equal_error_rate(roc), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(tar_at_far(roc, 2, 0.25).tar, 0.5);  // halfway along the diagonal
}

TEST(Roc, AucEqualsMannWhitneyOnRandomTiedScores) {
  Rng rng(11);
  for (int trial = 0; trial < 100; ++trial) {
    const int n = 2 + int(rng.below(60));
    std::vector<double> scores(n);
    std::vector<uint8_t> same(n);
    for (int i = 0; i < n; ++i) {
      scores[i] = double(rng.below(10)) / 10.0;
      same[i] = i < 1 ? 1 : i < 2 ? 0 : rng.uniform() < 0.5;
    }
    double wins = 0, total = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (same[i] && !same[j]) {
          wins += scores[i] > scores[j] ? 1.0 : scores[i] == scores[j] ? 0.5 : 0.0;
          total += 1;
        }
    const std::vector<RocPoint> roc = roc_curve(scores, same);
    ASSERT_NEAR(roc_auc(roc), wins / total, 1e-12) << "trial " << trial;
    const double eer = equal_error_rate(roc);
    ASSERT_GE(eer, 0.0);
    ASSERT_LE(eer, 1.0);
  }
}

// Three folds by hand.
//   fold 0: same 0.9, different 0.2;  fold 1: same 0.8, different 0.25;
//   fold 2: same 0.4, different 0.6  (a fold no threshold gets right)
// Fold 0 trains on 0.25d 0.4s 0.6d 0.8s: 0.325 and 0.7 both give 3 of 4 → 0.325; tests 2/2.
// Fold 1 trains on 0.2d 0.4s 0.6d 0.9s: 0.3 and 0.75 both give 3 of 4 → 0.3; tests 2/2.
// Fold 2 trains on 0.2d 0.25d 0.8s 0.9s: 0.525 gives 4 of 4; tests 0.4 → different,
//   0.6 → same: 0/2.
// Accuracy 1, 1, 0: mean ⅔, population std √((⅓² + ⅓² + ⅔²)/3) = √2/3.
TEST(Verify, HandComputedThreeFolds) {
  const std::vector<double> scores = {0.9, 0.2, 0.8, 0.25, 0.4, 0.6};
  const std::vector<uint8_t> same = {1, 0, 1, 0, 1, 0};
  const std::vector<int> folds = {0, 0, 1, 1, 2, 2};
  const VerificationResult r = verify(scores, same, folds);
  EXPECT_EQ(r.threshold_source, "folds");
  ASSERT_EQ(r.thresholds.size(), 3u);
  EXPECT_DOUBLE_EQ(r.thresholds[0], 0.325);
  EXPECT_DOUBLE_EQ(r.thresholds[1], 0.3);
  EXPECT_DOUBLE_EQ(r.thresholds[2], 0.525);
  ASSERT_EQ(r.fold_accuracies.size(), 3u);
  EXPECT_DOUBLE_EQ(r.fold_accuracies[0], 1.0);
  EXPECT_DOUBLE_EQ(r.fold_accuracies[1], 1.0);
  EXPECT_DOUBLE_EQ(r.fold_accuracies[2], 0.0);
  EXPECT_DOUBLE_EQ(r.accuracy_mean, 2.0 / 3.0);
  EXPECT_NEAR(r.accuracy_std, std::sqrt(2.0) / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(r.threshold_mean(), (0.325 + 0.3 + 0.525) / 3);
  EXPECT_EQ(r.pairs, 6);
  EXPECT_EQ(r.positives, 3);
  EXPECT_EQ(r.negatives, 3);
  // Pooled: same 0.9 0.8 0.4 vs different 0.6 0.25 0.2: 8 of 9 orderings right.
  EXPECT_DOUBLE_EQ(r.auc, 8.0 / 9.0);
  ASSERT_EQ(r.tar_at_far.size(), 2u);
  EXPECT_FALSE(r.tar_at_far[0].reachable);
  EXPECT_FALSE(r.tar_at_far[1].reachable);
}

TEST(Verify, SingleFoldUsesConsecutiveSlices) {
  // 20 pairs, one fold: 10 slices of 2. Perfectly separable scores give accuracy 1 everywhere.
  std::vector<double> scores;
  std::vector<uint8_t> same;
  for (int i = 0; i < 20; ++i) {
    same.push_back(i % 2);
    scores.push_back(i % 2 ? 0.6 + 0.01 * i : 0.1 + 0.01 * i);
  }
  const std::vector<int> zeros(20, 0);
  for (const VerificationResult& r : {verify(scores, same, zeros), verify(scores, same, {})}) {
    EXPECT_EQ(r.threshold_source, "consecutive-slices");
    EXPECT_EQ(r.thresholds.size(), 10u);
    EXPECT_DOUBLE_EQ(r.accuracy_mean, 1.0);
    EXPECT_DOUBLE_EQ(r.accuracy_std, 0.0);
    EXPECT_DOUBLE_EQ(r.auc, 1.0);
    EXPECT_DOUBLE_EQ(r.eer, 0.0);
  }
}

TEST(Verify, ThresholdFromSeparatePairs) {
  // Threshold list: 0.1d 0.3s → best threshold 0.2. Test list at 0.2: 0.25s ✓ 0.15d ✓ 0.22d ✗.
  const std::vector<double> train = {0.1, 0.3};
  const std::vector<uint8_t> train_same = {0, 1};
  const std::vector<double> scores = {0.25, 0.15, 0.22};
  const std::vector<uint8_t> same = {1, 0, 0};
  const VerificationResult r = verify_with_threshold_pairs(scores, same, train, train_same);
  EXPECT_EQ(r.threshold_source, "threshold-pairs");
  ASSERT_EQ(r.thresholds.size(), 1u);
  EXPECT_DOUBLE_EQ(r.thresholds[0], 0.2);
  EXPECT_DOUBLE_EQ(r.accuracy_mean, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.accuracy_std, 0.0);
}

TEST(Verify, RejectsBadInput) {
  const std::vector<double> scores = {0.9, 0.2, 0.8, 0.25};
  const std::vector<uint8_t> same = {1, 0, 1, 0};
  EXPECT_THROW(verify(scores, std::vector<uint8_t>{1, 0}, {}), Error);
  EXPECT_THROW(verify(scores, same, std::vector<int>{0, 0, 2, 2}), Error);  // fold 1 empty
  EXPECT_THROW(verify(scores, same, std::vector<int>{0, 0}), Error);        // size mismatch
  EXPECT_THROW(verify(scores, same, std::vector<int>{0, 0, 0, 0}), Error);  // < 10 pairs to slice
  std::vector<double> nan = scores;
  nan[2] = std::numeric_limits<double>::quiet_NaN();
  try {
    verify(nan, same, std::vector<int>{0, 0, 1, 1});
    FAIL() << "a NaN score was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pair 2"), std::string::npos) << e.what();
  }
  // Only one class: a ROC curve is undefined.
  EXPECT_THROW(roc_curve(scores, std::vector<uint8_t>{1, 1, 1, 1}), Error);
}

TEST(ConsecutiveFolds, MatchesKFoldSizes) {
  const std::vector<int> folds = consecutive_folds(23, 10);  // sizes 3 3 3 2 2 2 2 2 2 2
  std::vector<int> sizes(10, 0);
  for (const int f : folds) ++sizes[f];
  EXPECT_EQ(sizes, (std::vector<int>{3, 3, 3, 2, 2, 2, 2, 2, 2, 2}));
  for (size_t i = 1; i < folds.size(); ++i) EXPECT_LE(folds[i - 1], folds[i]);
  EXPECT_THROW(consecutive_folds(9, 10), Error);
}

}  // namespace
}  // namespace mf::eval
