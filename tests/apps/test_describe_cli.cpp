// `marginface describe`: a backbone's parameter count, and the heads' target-logit figure.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "support/process.h"
#include "support/temp_dir.h"

namespace mf::test {
namespace {

CommandResult describe(const std::string& args) {
  return run_command(shell_quote(MF_MARGINFACE_BIN) + " describe " + args + " 2>&1");
}

TEST(DescribeCli, counts_the_parameters_of_ir18) {
  const CommandResult r = describe("--backbone ir18 --width 0.25 --embedding-size 128");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("total"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("input 3×112×112, embedding 128"), std::string::npos) << r.output;
}

TEST(DescribeCli, without_a_backbone_or_figure_names_the_missing_option) {
  const CommandResult r = describe("");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--backbone is required"), std::string::npos) << r.output;
}

// The figure of docs/target_logits.png: one chart with nine coloured curves on a white canvas.
TEST(DescribeCli, target_logit_figure_is_a_readable_png) {
  TempDir dir;
  const std::string png = dir.path("t.png");
  const CommandResult r = describe("--target-logits " + shell_quote(png));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("(9 heads)"), std::string::npos) << r.output;
  const cv::Mat image = cv::imread(png, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  EXPECT_GT(image.cols, 400);
  EXPECT_GT(image.rows, 300);
  int coloured = 0;  // pixels of the curves and legend: channels far apart
  for (int y = 0; y < image.rows; ++y)
    for (int x = 0; x < image.cols; ++x) {
      const cv::Vec3b p = image.at<cv::Vec3b>(y, x);
      coloured += std::max({p[0], p[1], p[2]}) - std::min({p[0], p[1], p[2]}) > 80;
    }
  EXPECT_GT(coloured, 2000);
}

}  // namespace
}  // namespace mf::test
