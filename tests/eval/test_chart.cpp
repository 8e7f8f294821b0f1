// The PNG charts (report/chart.h): each test decodes the written file and looks for what was drawn
// at the pixels ChartLayout says, cross-checked against the documented margins.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <opencv2/imgcodecs.hpp>

#include "report/chart.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace mf::report {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Reads and deletes the PNG.
cv::Mat read_png(const fs::path& path) {
  cv::Mat image = cv::imread(path.string(), cv::IMREAD_COLOR);
  fs::remove(path);
  return image;
}

// Within `tolerance` per channel of palette colour `index` (anti-aliased edges blend with white).
bool is_colour(const cv::Mat& image, int row, int col, size_t index, int tolerance = 40) {
  const cv::Vec3b p = image.at<cv::Vec3b>(row, col);
  const Rgb c = palette_colour(index);
  return std::abs(p[2] - c.r) <= tolerance && std::abs(p[1] - c.g) <= tolerance &&
         std::abs(p[0] - c.b) <= tolerance;
}

// The series colour on row ± 1 (a 2 px anti-aliased line straddles its row).
bool line_at(const cv::Mat& image, int row, int col, size_t index) {
  for (int r = row - 1; r <= row + 1; ++r)
    if (is_colour(image, r, col, index)) return true;
  return false;
}

int count_colour_in_column(const cv::Mat& image, int col, size_t index) {
  int n = 0;
  for (int row = 0; row < image.rows; ++row) n += is_colour(image, row, col, index, 10);
  return n;
}

int dark_pixels(const cv::Mat& image, const cv::Rect& region) {
  int n = 0;
  for (int row = region.y; row < region.y + region.height; ++row)
    for (int col = region.x; col < region.x + region.width; ++col) {
      const cv::Vec3b p = image.at<cv::Vec3b>(row, col);
      n += p[0] < 80 && p[1] < 80 && p[2] < 80;
    }
  return n;
}

int col_of(const ChartLayout& l, double x) {
  return int(std::lround(l.px(x)));
}
int row_of(const ChartLayout& l, double y) {
  return int(std::lround(l.py(y)));
}

LineChart half_line_chart() {
  LineChart chart;
  chart.title = "y = 0.5";
  chart.x_label = "x";
  chart.y_label = "y";
  chart.y_min = 0.0;
  chart.y_max = 1.0;
  chart.series = {{"half", {0, 1}, {0.5, 0.5}}};
  return chart;
}

// Runs `write` expecting an mf::Error whose message names `path`.
void expect_error_naming(const std::function<void()>& write, const std::string& path) {
  try {
    write();
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(Plot, PaletteColoursAreDistinct) {
  for (size_t i = 0; i < kPaletteSize; ++i)
    for (size_t j = i + 1; j < kPaletteSize; ++j) {
      const Rgb a = palette_colour(i), b = palette_colour(j);
      EXPECT_GT(std::abs(a.r - b.r) + std::abs(a.g - b.g) + std::abs(a.b - b.b), 60) << i << j;
    }
  EXPECT_EQ(palette_colour(kPaletteSize).r, palette_colour(0).r);  // wraps around
}

TEST(Plot, LineChartDrawsTheSeriesWhereTheLayoutSays) {
  TempDir dir;
  const LineChart chart = half_line_chart();
  const ChartLayout l = line_chart_layout(chart);
  // The documented margins: 50 px above, 70 px below, 80 px left, 30 px right.
  EXPECT_EQ(l.top, 50);
  EXPECT_EQ(l.height, 540 - 50 - 70);
  EXPECT_EQ(l.left, 80);
  EXPECT_EQ(l.width, 760 - 80 - 30);
  EXPECT_EQ(row_of(l, 0.5), 50 + 420 / 2);
  EXPECT_EQ(l.x.lo, 0.0);  // x spans the data exactly
  EXPECT_EQ(l.x.hi, 1.0);

  const fs::path path = dir.path("line.png");
  write_line_chart(path.string(), chart);
  const cv::Mat image = read_png(path);
  ASSERT_FALSE(image.empty());
  EXPECT_EQ(image.cols, 760);
  EXPECT_EQ(image.rows, 540);
  for (double x = 0.05; x < 0.7; x += 0.05)  // the legend box may cover the right end
    EXPECT_TRUE(line_at(image, row_of(l, 0.5), col_of(l, x), 0)) << "x = " << x;
  EXPECT_FALSE(line_at(image, row_of(l, 0.25), col_of(l, 0.5), 0));
  EXPECT_FALSE(line_at(image, row_of(l, 0.75), col_of(l, 0.5), 0));
}

TEST(Plot, LineBreaksAtNonFiniteValues) {
  TempDir dir;
  LineChart chart = half_line_chart();
  chart.series = {{"", {0, 0.2, 0.4, 0.5, 0.6, 0.8, 1}, {0.5, 0.5, 0.5, kNaN, 0.5, 0.5, 0.5}},
                  {"", {0, 0.2, kInf, 0.8, 1}, {0.25, 0.25, 0.25, 0.25, 0.25}}};
  const ChartLayout l = line_chart_layout(chart);
  const fs::path path = dir.path("gaps.png");
  write_line_chart(path.string(), chart);
  const cv::Mat image = read_png(path);
  ASSERT_FALSE(image.empty());
  EXPECT_TRUE(line_at(image, row_of(l, 0.5), col_of(l, 0.3), 0));
  EXPECT_TRUE(line_at(image, row_of(l, 0.5), col_of(l, 0.7), 0));
  EXPECT_FALSE(line_at(image, row_of(l, 0.5), col_of(l, 0.5), 0));
  EXPECT_TRUE(line_at(image, row_of(l, 0.25), col_of(l, 0.1), 1));  // second colour
  EXPECT_FALSE(line_at(image, row_of(l, 0.25), col_of(l, 0.5), 1));
}

TEST(Plot, LogAxisSkipsNonPositiveXAndSpansWholeDecades) {
  TempDir dir;
  LineChart chart;
  chart.log_x = true;
  chart.series = {{"tar", {-1, 0, 2e-3, 1e-2, 0.1, 0.5}, {0.1, 0.2, 0.3, 0.4, 0.6, 0.9}}};
  const ChartLayout l = line_chart_layout(chart);
  EXPECT_TRUE(l.x.log);
  EXPECT_DOUBLE_EQ(l.x.lo, 1e-3);
  EXPECT_DOUBLE_EQ(l.x.hi, 1.0);
  EXPECT_NEAR(l.y.lo, 0.3 - 0.05 * 0.6, 1e-12);  // data 0.3 … 0.9 padded by 5 % of 0.6
  EXPECT_NEAR(l.y.hi, 0.9 + 0.05 * 0.6, 1e-12);
  EXPECT_NEAR(l.px(1e-2) - l.px(1e-3), l.px(1.0) - l.px(0.1), 1e-9);  // equal decades

  const fs::path path = dir.path("log.png");
  write_line_chart(path.string(), chart);
  const cv::Mat image = read_png(path);
  ASSERT_FALSE(image.empty());
  EXPECT_TRUE(line_at(image, row_of(l, 0.4), col_of(l, 1e-2), 0));
}

TEST(Plot, LegendGoesWhereTheDataIsNot) {
  TempDir dir;
  // A rising diagonal fills the upper-right corner: the legend goes lower right.
  LineChart chart;
  chart.series = {{"rising", {0, 1}, {0, 1}}};
  chart.y_min = 0.0;
  chart.y_max = 1.0;
  const ChartLayout l = line_chart_layout(chart);
  const fs::path path = dir.path("legend.png");
  write_line_chart(path.string(), chart);
  const cv::Mat image = read_png(path);
  ASSERT_FALSE(image.empty());
  // Inside the frame only the legend text is dark.
  const int half_w = l.width / 2, half_h = l.height / 2;
  const cv::Rect upper_right(l.left + half_w, l.top + 3, half_w - 3, half_h - 3);
  const cv::Rect lower_right(l.left + half_w, l.top + half_h, half_w - 3, half_h - 3);
  EXPECT_EQ(dark_pixels(image, upper_right), 0);
  EXPECT_GT(dark_pixels(image, lower_right), 20);
}

TEST(Plot, BarHeightsAreProportionalToValues) {
  TempDir dir;
  BarChart chart;
  chart.title = "bars";
  chart.y_label = "accuracy";
  chart.bars = {{"small", 0.2}, {"large", 0.8}};
  const ChartLayout l = bar_chart_layout(chart);
  EXPECT_EQ(l.y.lo, 0.0);  // bars grow from zero
  EXPECT_NEAR(l.y.hi, 0.84, 1e-12);

  const fs::path path = dir.path("bars.png");
  write_bar_chart(path.string(), chart);
  const cv::Mat image = read_png(path);
  ASSERT_FALSE(image.empty());
  EXPECT_EQ(image.cols, 760);
  EXPECT_EQ(image.rows, 540);
  const int small = count_colour_in_column(image, col_of(l, 0.5), 0);
  const int large = count_colour_in_column(image, col_of(l, 1.5), 1);
  EXPECT_NEAR(small, row_of(l, 0) - row_of(l, 0.2), 2);
  EXPECT_NEAR(large, row_of(l, 0) - row_of(l, 0.8), 2);
  ASSERT_GT(small, 50);
  EXPECT_NEAR(double(large) / small, 4.0, 0.1);
  EXPECT_EQ(count_colour_in_column(image, col_of(l, 1.0), 0), 0);  // a gap between the bars
}

TEST(Plot, CrowdedBarLabelsTurnVertical) {
  TempDir dir;
  BarChart chart;
  for (int i = 0; i < 24; ++i)
    chart.bars.push_back({"variant with a long name " + std::to_string(i), 0.9 + i * 0.001, 0.01});
  chart.bars[3].value = kNaN;  // a failed run: no bar, "n/a"
  const ChartLayout l = bar_chart_layout(chart);
  EXPECT_GT(540 - l.top - l.height, 70);  // the bottom margin grew for vertical labels
  const fs::path path = dir.path("crowded.png");
  write_bar_chart(path.string(), chart);
  const cv::Mat image = read_png(path);
  ASSERT_FALSE(image.empty());
  EXPECT_GT(dark_pixels(image, cv::Rect(l.left, l.top + l.height + 20, l.width, 60)), 500);
  EXPECT_GT(count_colour_in_column(image, col_of(l, 0.5), 0), 50);
  EXPECT_EQ(count_colour_in_column(image, col_of(l, 3.5), 3), 0);
}

TEST(Plot, ScatterPanelsPutGroupsAtTheirPointsInTheirColours) {
  TempDir dir;
  ScatterPanel circle;
  circle.title = "normalised";
  circle.unit_circle = true;
  circle.x = {0.7, -0.7, 0.0, 0.0};
  circle.y = {0.0, 0.0, 0.7, -0.7};
  circle.group = {0, 1, 0, 1};
  ScatterPanel raw;
  raw.title = "raw";
  raw.x = {0, 10, kNaN};
  raw.y = {0, 5, 1};
  const std::vector<ScatterPanel> panels = {circle, raw, circle};

  const ChartLayout l = scatter_panel_layout(circle, 0, 2);
  EXPECT_DOUBLE_EQ(l.x.lo, -1.1);  // symmetric, at least the unit circle plus 10 %
  EXPECT_DOUBLE_EQ(l.y.hi, 1.1);
  EXPECT_EQ(l.width, l.height);  // equal axes
  const ChartLayout third = scatter_panel_layout(circle, 2, 2);
  EXPECT_EQ(third.left, l.left);  // next row, same column
  EXPECT_EQ(third.top, l.top + 300);

  const fs::path path = dir.path("scatter.png");
  write_scatter_grid(path.string(), "features", panels, 2);
  const cv::Mat image = read_png(path);
  ASSERT_FALSE(image.empty());
  EXPECT_EQ(image.cols, 2 * 300);
  EXPECT_EQ(image.rows, 44 + 2 * 300);
  for (const ChartLayout& p : {l, third}) {
    EXPECT_TRUE(is_colour(image, row_of(p, 0.0), col_of(p, 0.7), 0, 10));
    EXPECT_TRUE(is_colour(image, row_of(p, 0.7), col_of(p, 0.0), 0, 10));
    EXPECT_TRUE(is_colour(image, row_of(p, 0.0), col_of(p, -0.7), 1, 10));
    EXPECT_TRUE(is_colour(image, row_of(p, -0.7), col_of(p, 0.0), 1, 10));
    EXPECT_FALSE(is_colour(image, row_of(p, 0.0), col_of(p, 0.0), 0, 40));  // nothing at the centre
  }
  ScatterPanel far = circle;
  far.x[0] = 2.0;
  EXPECT_DOUBLE_EQ(scatter_panel_layout(far, 0, 1).x.hi, 2.1);
}

TEST(Plot, BadInputThrowsNamingThePath) {
  TempDir dir;
  const std::string path = dir.path("bad.png");
  LineChart mismatched = half_line_chart();
  mismatched.series[0].y.push_back(0.5);
  expect_error_naming([&] { write_line_chart(path, mismatched); }, path);
  expect_error_naming([&] { write_line_chart(path, LineChart{}); }, path);  // no series
  LineChart bad_log = half_line_chart();
  bad_log.log_x = true;
  bad_log.x_min = 0.0;
  expect_error_naming([&] { write_line_chart(path, bad_log); }, path);
  expect_error_naming([&] { write_bar_chart(path, BarChart{}); }, path);  // no bars
  ScatterPanel panel;
  panel.x = {0, 1};
  panel.y = {0, 1};
  panel.group = {0};
  expect_error_naming([&] { write_scatter_grid(path, "", {panel}, 1); }, path);
  EXPECT_FALSE(fs::exists(path));

  const std::string unwritable = "/nonexistent_dir/x.png";
  expect_error_naming([&] { write_line_chart(unwritable, half_line_chart()); }, unwritable);
  BarChart bars;
  bars.bars = {{"a", 1}};
  expect_error_naming([&] { write_bar_chart(unwritable, bars); }, unwritable);
  panel.group.clear();
  expect_error_naming([&] { write_scatter_grid(unwritable, "", {panel}, 3); }, unwritable);
}

}  // namespace
}  // namespace mf::report
