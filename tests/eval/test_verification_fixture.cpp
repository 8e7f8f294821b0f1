// The verification protocol against an independent numpy implementation on the same scores
// (tests/fixtures/eval.h5, written by scripts/make_eval_fixture.py; see its docstring for how
// each number is computed there). Everything must agree to 1e-9: both sides compute the same
// exact thresholds, so accuracies are the same ratios of integers, and AUC, EER and TAR differ
// only by floating-point rounding (the AUC is a pairwise count there and a trapezoid sum here;
// the EER a bisection there and a closed-form segment intersection here).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "eval/verification.h"
#include "h5/file.h"
#include "support/fixtures.h"

namespace mf::eval {
namespace {

constexpr double kTol = 1e-9;

struct Case {
  std::vector<double> scores, train_scores;
  std::vector<uint8_t> same, train_same;
  std::vector<int> folds;
  std::vector<double> thresholds, fold_accuracies;
};

std::vector<uint8_t> to_labels(const std::vector<int64_t>& v) {
  return std::vector<uint8_t>(v.begin(), v.end());
}

class EvalFixture : public ::testing::TestWithParam<std::string> {
 protected:
  EvalFixture() : file_(test::fixture_path("eval.h5"), h5::File::Mode::kRead) {}
  Case load() const {
    const std::string g = GetParam() + "/";
    Case c;
    c.scores = file_.read_doubles(g + "scores");
    c.same = to_labels(file_.read_int64(g + "labels"));
    if (file_.exists(g + "folds")) {
      const std::vector<int64_t> f = file_.read_int64(g + "folds");
      c.folds.assign(f.begin(), f.end());
    }
    if (file_.exists(g + "train_scores")) {
      c.train_scores = file_.read_doubles(g + "train_scores");
      c.train_same = to_labels(file_.read_int64(g + "train_labels"));
    }
    c.thresholds = file_.read_doubles(g + "thresholds");
    c.fold_accuracies = file_.read_doubles(g + "fold_accuracies");
    return c;
  }
  double attr(const std::string& name) const { return file_.read_attr_double(GetParam(), name); }
  h5::File file_;
};

TEST_P(EvalFixture, MatchesNumpyReference) {
  const Case c = load();
  const VerificationResult r =
      c.train_scores.empty()
          ? verify(c.scores, c.same, c.folds)
          : verify_with_threshold_pairs(c.scores, c.same, c.train_scores, c.train_same);
  if (!c.train_scores.empty())
    EXPECT_EQ(r.threshold_source, "threshold-pairs");
  else if (c.folds.empty())
    EXPECT_EQ(r.threshold_source, "consecutive-slices");
  else
    EXPECT_EQ(r.threshold_source, "folds");

  ASSERT_EQ(r.thresholds.size(), c.thresholds.size());
  ASSERT_EQ(r.fold_accuracies.size(), c.fold_accuracies.size());
  for (size_t f = 0; f < c.thresholds.size(); ++f) {
    EXPECT_NEAR(r.thresholds[f], c.thresholds[f], kTol) << "fold " << f;
    EXPECT_NEAR(r.fold_accuracies[f], c.fold_accuracies[f], kTol) << "fold " << f;
  }
  EXPECT_NEAR(r.accuracy_mean, attr("accuracy_mean"), kTol);
  EXPECT_NEAR(r.accuracy_std, attr("accuracy_std"), kTol);
  EXPECT_NEAR(r.auc, attr("auc"), kTol);
  EXPECT_NEAR(r.eer, attr("eer"), kTol);
  ASSERT_EQ(r.tar_at_far.size(), 2u);
  EXPECT_NEAR(r.tar_at_far[0].tar, attr("tar_at_far_0.001"), kTol);
  EXPECT_NEAR(r.tar_at_far[1].tar, attr("tar_at_far_0.01"), kTol);
  EXPECT_EQ(r.tar_at_far[0].reachable, r.negatives >= 1000);
  EXPECT_EQ(r.tar_at_far[1].reachable, r.negatives >= 100);

  // Every fold threshold is genuinely optimal on its training folds, not merely reproduced.
  if (!c.folds.empty()) {
    for (size_t f = 0; f < c.thresholds.size(); ++f) {
      std::vector<double> s;
      std::vector<uint8_t> y;
      for (size_t i = 0; i < c.scores.size(); ++i)
        if (c.folds[i] != int(f)) {
          s.push_back(c.scores[i]);
          y.push_back(c.same[i]);
        }
      EXPECT_EQ(count_correct(s, y, r.thresholds[f]), best_threshold(s, y).correct);
    }
  }
  RecordProperty("accuracy_mean", std::to_string(r.accuracy_mean));
  RecordProperty("insightface_grid_accuracy_mean",
                 std::to_string(attr("insightface_grid_accuracy_mean")));
}

INSTANTIATE_TEST_SUITE_P(Cases, EvalFixture,
                         ::testing::Values("continuous", "tied", "unbalanced", "single_fold",
                                           "threshold_pairs"));

TEST(EvalFixtureFile, HasTheLfwShape) {
  h5::File file(test::fixture_path("eval.h5"), h5::File::Mode::kRead);
  const std::vector<int64_t> labels = file.read_int64("continuous/labels");
  const std::vector<int64_t> folds = file.read_int64("continuous/folds");
  ASSERT_EQ(labels.size(), 6000u);
  int64_t same = 0;
  for (const int64_t l : labels) same += l;
  EXPECT_EQ(same, 3000);
  EXPECT_EQ(folds.front(), 0);
  EXPECT_EQ(folds.back(), 9);
}

}  // namespace
}  // namespace mf::eval
