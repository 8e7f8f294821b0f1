// The error-versus-reject curve (eval/quality.h) on an example worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "eval/quality.h"
#include "util/error.h"

namespace mf::eval {
namespace {

// 40 pairs in 10 folds of four (two same, two different). Same pairs score 0.9, different ones
// 0.1, except one same pair in each of folds 0–3 that scores 0.05 (below every different pair):
// those four are the only errors any threshold can leave, and they have the lowest quality.
//   rejected 0:    every fold's threshold lies in (0.1, 0.9]; folds 0–3 score 3/4, the rest 1:
//                  accuracy (4·0.75 + 6)/10 = 0.9. FAR 1e-3 of 20 different pairs allows none:
//                  threshold just above 0.1, so the four 0.05 pairs are the FNMR: 4/20 = 0.2.
//   rejected 10 %: the four lowest-quality pairs (the bad ones) are gone: accuracy 1, FNMR 0/16.
//   rejected 20 %: four more go (qualities 11, 12, 13, 15: the rest of fold 0, which is left
//                  out, and one pair of fold 1): still accuracy 1, FNMR 0.
struct Example {
  std::vector<double> scores, quality;
  std::vector<uint8_t> same;
  std::vector<int> folds;
};

Example make_example() {
  Example e;
  for (int fold = 0; fold < 10; ++fold)
    for (int i = 0; i < 4; ++i) {
      const bool same = i < 2, bad = same && i == 0 && fold < 4;
      e.scores.push_back(bad ? 0.05 : same ? 0.9 : 0.1);
      e.same.push_back(same);
      e.folds.push_back(fold);
      e.quality.push_back(bad ? 1.0 + fold : 10.0 + double(e.quality.size()));
    }
  return e;
}

TEST(QualityCurve, error_versus_reject_by_hand) {
  const Example e = make_example();
  const QualityCurve c =
      error_versus_reject(e.scores, e.same, e.folds, e.quality, 1e-3, {0.0, 0.1, 0.2});
  ASSERT_EQ(c.rejected.size(), 3u);
  EXPECT_NEAR(c.accuracy[0], 0.9, 1e-12);
  EXPECT_NEAR(c.fnmr[0], 0.2, 1e-12);
  EXPECT_EQ(c.kept, (std::vector<int64_t>{40, 36, 32}));
  EXPECT_NEAR(c.accuracy[1], 1.0, 1e-12);
  EXPECT_NEAR(c.fnmr[1], 0.0, 1e-12);
  EXPECT_NEAR(c.accuracy[2], 1.0, 1e-12);
  EXPECT_GT(c.threshold, 0.1);
  EXPECT_LT(c.threshold, 0.1 + 1e-12);
}

// The opposite quality: the bad pairs have the highest quality, so rejecting the lowest ones
// takes only good pairs away and the error cannot fall.
TEST(QualityCurve, a_quality_that_means_nothing_does_not_help) {
  Example e = make_example();
  for (double& q : e.quality) q = -q;
  const QualityCurve c =
      error_versus_reject(e.scores, e.same, e.folds, e.quality, 1e-3, {0.0, 0.1, 0.2});
  EXPECT_NEAR(c.fnmr[0], 0.2, 1e-12);
  EXPECT_GE(c.fnmr[1], 0.2);
  EXPECT_LT(c.accuracy[2], 1.0);
}

TEST(QualityCurve, bad_input_is_an_error) {
  const Example e = make_example();
  EXPECT_THROW(error_versus_reject(e.scores, e.same, e.folds, e.quality, 0.0, {0.0}), Error);
  EXPECT_THROW(error_versus_reject(e.scores, e.same, e.folds, e.quality, 1e-3, {0.95}), Error);
  std::vector<double> short_quality(e.quality.begin(), e.quality.end() - 1);
  EXPECT_THROW(error_versus_reject(e.scores, e.same, e.folds, short_quality, 1e-3, {0.0}), Error);
  std::vector<double> nan_quality = e.quality;
  nan_quality[3] = std::nan("");
  EXPECT_THROW(error_versus_reject(e.scores, e.same, e.folds, nan_quality, 1e-3, {0.0}), Error);
}

}  // namespace
}  // namespace mf::eval
