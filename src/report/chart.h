// Small PNG charts drawn with OpenCV: line charts (optionally on a log x axis), bar charts with
// error whiskers, and grids of 2-D scatter panels. Used by `marginface ablate` and by the ROC plot
// (write_roc_png), so reports need no plotting library at run time.
//
// Axes get "nice" ticks (steps of 1, 2 or 5 × 10^k) over a light grid; a log x axis gets decade
// ticks labelled "1", "0.1", "0.01", "1e-3", … with a lighter 2…9 minor grid. Non-finite values,
// and x ≤ 0 on a log axis, are skipped: a polyline breaks there. Each writer throws mf::Error
// naming the output path on bad input or when the file cannot be written, and replaces the file
// atomically (json::write_file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mf::report {

// The colours of series, bars and scatter groups, in order: matplotlib's tab10 (colour-blind
// friendly), then Okabe-Ito's bluish green and Tol's indigo. Index i uses colour i mod 12.
struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};
inline constexpr size_t kPaletteSize = 12;
Rgb palette_colour(size_t index);

struct Series {
  std::string name;  // shown in the legend; empty: no legend entry
  std::vector<double> x, y;
};

struct LineChart {
  std::string title, x_label, y_label;
  bool log_x = false;
  // Unset limits come from the data: x spans it exactly (whole decades on a log axis), y is
  // padded by 5 % of its span on both sides.
  std::optional<double> x_min, x_max, y_min, y_max;
  std::vector<Series> series;     // palette colours in order, 2 px; named ones get a legend entry
  std::vector<Series> reference;  // thin grey, no legend (e.g. a chance line)
  int width = 760, height = 540;
};
// The legend sits in the upper- or lower-right corner, whichever hides less of the series.
void write_line_chart(const std::string& path, const LineChart& chart);

struct Bar {
  std::string label;
  double value = 0;
  double error = 0;  // ± whisker; 0: none
};

struct BarChart {
  std::string title, y_label;
  // Bar i in palette colour i, its label below (shrunk, or turned vertical when crowded) and its
  // value above (below for a negative bar); a non-finite value draws no bar and prints "n/a".
  std::vector<Bar> bars;
  std::optional<double> y_min, y_max;  // unset: from 0 to the furthest bar end or whisker, + 5 %
  int width = 760, height = 540;
};
void write_bar_chart(const std::string& path, const BarChart& chart);

struct ScatterPanel {
  std::string title;
  std::vector<double> x, y;
  std::vector<int> group;  // palette index per point; empty: all 0
  // Draw the unit circle on equal, symmetric axes [-r, r] with r = max(1.1, 1.05 · max |coord|):
  // for L2-normalised 2-D features.
  bool unit_circle = false;
};
// Panels in a grid of `columns` columns of 300 × 300 px cells, below a 44 px strip for `title`.
void write_scatter_grid(const std::string& path, const std::string& title,
                        const std::vector<ScatterPanel>& panels, int columns);

// Where a chart's plot area lies in its image and how data maps to pixels, so that callers (and
// the tests) can find what was drawn.
struct AxisRange {
  double lo = 0, hi = 1;
  bool log = false;
};
struct ChartLayout {
  // The plot area in image pixels; its frame runs from (left, top) to (left + width, top + height).
  int left = 0, top = 0, width = 0, height = 0;
  AxisRange x, y;
  double px(double vx) const;  // image column of data x
  double py(double vy) const;  // image row of data y (rows grow downwards)
};
// Line and bar charts keep 50 px above the plot area for the title, 30 px right, and 70 px below
// (more for vertical bar labels) and at least 80 px left (more for wide y tick labels).
ChartLayout line_chart_layout(const LineChart& chart);
ChartLayout bar_chart_layout(const BarChart& chart);  // x: bar i spans [i, i + 1], drawn 70 % wide
ChartLayout scatter_panel_layout(const ScatterPanel& panel, size_t index, int columns);

}  // namespace mf::report
