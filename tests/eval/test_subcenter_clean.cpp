// Sub-center ArcFace's cleaning step (eval/subcenter_clean.h) on 2-D examples worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "eval/subcenter_clean.h"
#include "util/error.h"

namespace mf::eval {
namespace {

Tensor rows_at_degrees(const std::vector<double>& degrees, double norm = 1.0) {
  Tensor t = Tensor::empty({int64_t(degrees.size()), 2});
  for (size_t i = 0; i < degrees.size(); ++i) {
    t.data()[2 * i] = float(norm * std::cos(degrees[i] * M_PI / 180));
    t.data()[2 * i + 1] = float(norm * std::sin(degrees[i] * M_PI / 180));
  }
  return t;
}

// Class 0's sub-centres at 0°, 90°, 180°; class 1's at 45°, 200°, 300°.
// Class 0 samples at 10°, −20°, 30° (nearest: 0°), 70° (nearest: 90°) and 100° (nearest: 90°):
// votes 3, 2, 0 → dominant 0°; angles to it 10, 20, 30, 70, 100 → 100° is dropped (> 75°).
// Class 1 samples at 190°, 210°, 250° (nearest 200° for all): dominant 200°, angles 10, 10, 50.
// Embedding norms do not matter (the second class's samples have norm 3).
TEST(SubcenterClean, keeps_what_lies_near_the_dominant_subcentre) {
  const Tensor centres = rows_at_degrees({0, 90, 180, 45, 200, 300}, 0.5);
  Tensor x = Tensor::empty({8, 2});
  const Tensor a = rows_at_degrees({10, -20, 30, 70, 100}), b = rows_at_degrees({190, 210, 250}, 3);
  std::copy_n(a.data(), 10, x.data());
  std::copy_n(b.data(), 6, x.data() + 10);
  const std::vector<int64_t> labels{0, 0, 0, 0, 0, 1, 1, 1};
  const SubcenterCleaning c = clean_by_subcentres(x, labels, centres, 3, 75.0);
  EXPECT_EQ(c.dominant, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(c.keep, (std::vector<uint8_t>{1, 1, 1, 1, 0, 1, 1, 1}));
  EXPECT_EQ(c.kept, 7);
  EXPECT_EQ(c.dropped, 1);
  EXPECT_EQ(c.kept_per_class, (std::vector<int64_t>{4, 3}));
  const std::vector<double> angles{10, 20, 30, 70, 100, 10, 10, 50};
  for (size_t i = 0; i < angles.size(); ++i) EXPECT_NEAR(c.angle[i], angles[i], 1e-4) << i;
  // A tighter angle drops more; 180° keeps everything.
  EXPECT_EQ(clean_by_subcentres(x, labels, centres, 3, 25.0).kept, 4);
  EXPECT_EQ(clean_by_subcentres(x, labels, centres, 3, 180.0).kept, 8);
}

TEST(SubcenterClean, bad_shapes_are_errors) {
  const Tensor centres = rows_at_degrees({0, 90, 180, 45, 200, 300});
  const Tensor x = rows_at_degrees({10, 20});
  EXPECT_THROW(clean_by_subcentres(x, {0, 1}, centres, 4, 75.0), Error);  // 6 rows, 4 per class
  EXPECT_THROW(clean_by_subcentres(x, {0, 2}, centres, 3, 75.0), Error);  // label 2 of 2
  EXPECT_THROW(clean_by_subcentres(x, {0}, centres, 3, 75.0), Error);     // one label
  EXPECT_THROW(clean_by_subcentres(x, {0, 1}, centres, 3, 0.0), Error);   // angle
}

}  // namespace
}  // namespace mf::eval
