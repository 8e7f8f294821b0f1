// The JSON writer, the verification report and the ROC plot.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "eval/verification.h"
#include "support/temp_dir.h"
#include "util/error.h"
#include "util/json.h"

namespace mf::eval {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(Json, ScalarsStringsAndNesting) {
  json::Value v = json::Value::object();
  v.set("int", int64_t{-42})
      .set("size", size_t{7})
      .set("double", 0.1)
      .set("tiny", 1e-300)
      .set("nan", std::numeric_limits<double>::quiet_NaN())
      .set("inf", std::numeric_limits<double>::infinity())
      .set("yes", true)
      .set("none", nullptr)
      .set("text", "a \"quoted\"\\ line\nwith\ttab and \x01")
      .set("list", json::Value::array_of(std::vector<double>{1, 0.5}))
      .set("empty", json::Value::array())
      .set("nested", json::Value::object().set("k", "v"));
  v.set("int", 3);  // replaces, keeping the position
  EXPECT_EQ(v.dump(-1),
            "{\"int\":3,\"size\":7,\"double\":0.1,\"tiny\":1e-300,\"nan\":null,\"inf\":null,"
            "\"yes\":true,\"none\":null,"
            "\"text\":\"a \\\"quoted\\\"\\\\ line\\nwith\\ttab and \\u0001\","
            "\"list\":[1,0.5],\"empty\":[],\"nested\":{\"k\":\"v\"}}");
  EXPECT_EQ(json::Value::object().set("a", json::Value::array_of(std::vector<int>{1, 2})).dump(),
            "{\n  \"a\": [1, 2]\n}\n");
  // Shortest round-trip text.
  const double x = 0.9016666666666667;
  EXPECT_EQ(std::stod(json::number(x)), x);
  EXPECT_THROW(json::Value(1.0).push_back(2), Error);
  EXPECT_THROW(json::Value::array().set("k", 1), Error);
}

TEST(Report, JsonCarriesTheRequiredKeys) {
  TempDir dir;
  const std::vector<double> scores = {0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.95, 0.05};
  const std::vector<uint8_t> same = {1, 1, 1, 1, 0, 0, 0, 0, 1, 0};
  const VerificationResult r = verify(scores, same, {});
  const ReportInfo info{"lfw-view2", "sum", "ck.h5", 3};
  const fs::path path = dir.path("report.json");
  write_json(path.string(), r, info);
  const std::string text = read_text(path);
  fs::remove(path);
  for (const char* key :
       {"\"accuracy_mean\": ", "\"accuracy_std\": ", "\"auc\": ", "\"eer\": ",
        "\"tar_at_far\": {\n    \"0.001\": ", "\"0.01\": ", "\"thresholds\": [",
        "\"fold_accuracies\": [", "\"pairs\": 10", "\"missing\": 3", "\"protocol\": \"lfw-view2\"",
        "\"flip\": \"sum\"", "\"checkpoint\": \"ck.h5\"",
        "\"threshold_source\": \"consecutive-slices\"", "\"tar_at_far_reachable\": {"})
    EXPECT_NE(text.find(key), std::string::npos) << key << " missing from\n" << text;
  EXPECT_NE(text.find("\"auc\": " + json::number(r.auc)), std::string::npos);
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

TEST(Report, RocPngIsDrawn) {
  TempDir dir;
  std::vector<double> scores;
  std::vector<uint8_t> same;
  for (int i = 0; i < 400; ++i) {
    same.push_back(i % 2);
    scores.push_back((i % 2 ? 0.3 : 0.0) + 0.5 * std::sin(i * 12.9898) * 0.5 + 0.25);
  }
  const VerificationResult r = verify(scores, same, {});
  const fs::path path = dir.path("roc.png");
  write_roc_png(path.string(), r.roc, "synthetic: AUC " + json::number(r.auc));
  const cv::Mat image = cv::imread(path.string(), cv::IMREAD_COLOR);
  fs::remove(path);
  ASSERT_FALSE(image.empty());
  EXPECT_EQ(image.cols, 720);
  EXPECT_EQ(image.rows, 560);
  int curve = 0, dark = 0;
  for (int y = 0; y < image.rows; ++y)
    for (int x = 0; x < image.cols; ++x) {
      const cv::Vec3b p = image.at<cv::Vec3b>(y, x);
      curve += p[0] > 150 && p[2] < 60;  // the blue curve (BGR)
      dark += p[0] < 60 && p[1] < 60 && p[2] < 60;
    }
  EXPECT_GT(curve, 500);  // a curve across the plot
  EXPECT_GT(dark, 1000);  // frame, ticks and labels
  EXPECT_THROW(write_roc_png("/nonexistent-dir/roc.png", r.roc), Error);
}

}  // namespace
}  // namespace mf::eval
