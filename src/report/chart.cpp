// PNG charts with OpenCV (see plot.h). Every chart is drawn in the same order: grid, data, frame,
// labels, legend, so the data covers the grid and the frame, labels and legend stay on top.
#include "report/chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "util/error.h"
#include "util/json.h"

namespace mf::report {

namespace {

constexpr Rgb kPalette[kPaletteSize] = {{31, 119, 180},  {255, 127, 14},  {44, 160, 44},
                                        {214, 39, 40},   {148, 103, 189}, {140, 86, 75},
                                        {227, 119, 194}, {127, 127, 127}, {188, 189, 34},
                                        {23, 190, 207},  {0, 158, 115},   {51, 34, 136}};

// BGR, as OpenCV draws.
const cv::Scalar kWhite(255, 255, 255), kBlack(0, 0, 0), kGrid(225, 225, 225),
    kMinorGrid(242, 242, 242), kReference(170, 170, 170), kLegendEdge(190, 190, 190);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr double kTickScale = 0.45, kPanelTickScale = 0.38;
// Line and bar charts: margins around the plot area (see plot.h).
constexpr int kTop = 50, kRight = 30, kBottom = 70, kMinLeft = 80;
// Scatter grids: square cells below a title strip, each with a square plot area.
constexpr int kCell = 300, kGridTitle = 44, kPanelLeft = 46, kPanelTop = 30, kPanelSide = 240;

cv::Scalar colour(size_t index) {
  const Rgb c = palette_colour(index);
  return {double(c.b), double(c.g), double(c.r)};
}

// ---- text ----

cv::Size text_size(const std::string& text, double scale) {
  int baseline = 0;
  return cv::getTextSize(text, kFont, scale, 1, &baseline);
}

// `scale`, reduced so that `text` is at most `room` px wide (never below a legible 0.25).
double fit_scale(const std::string& text, double scale, double room) {
  const int width = text_size(text, scale).width;
  return width > room ? std::max(0.25, scale * room / width) : scale;
}

// align_x, align_y: where the anchor lies on the text, 0 = left / baseline, 1 = right / top.
void put_text(cv::Mat& canvas, const std::string& text, cv::Point anchor, double scale,
              double align_x, double align_y) {
  const cv::Size size = text_size(text, scale);
  const cv::Point origin(anchor.x - int(std::lround(align_x * size.width)),
                         anchor.y + int(std::lround(align_y * size.height)));
  cv::putText(canvas, text, origin, kFont, scale, kBlack, 1, cv::LINE_AA);
}

// Text reading upwards, horizontally centred on anchor.x, with its top at anchor.y −
// align_y · length. OpenCV cannot draw rotated text, so it is drawn on a strip and rotated; the
// strip is merged with min() so its white background erases nothing (dark text on white).
void put_vertical_text(cv::Mat& canvas, const std::string& text, cv::Point anchor, double scale,
                       double align_y) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, kFont, scale, 1, &baseline);
  cv::Mat strip(size.height + baseline + 4, size.width + 4, CV_8UC3, kWhite);
  cv::putText(strip, text, {2, size.height + 2}, kFont, scale, kBlack, 1, cv::LINE_AA);
  cv::rotate(strip, strip, cv::ROTATE_90_COUNTERCLOCKWISE);
  const cv::Rect where(anchor.x - strip.cols / 2, anchor.y - int(align_y * strip.rows), strip.cols,
                       strip.rows);
  const cv::Rect visible = where & cv::Rect(0, 0, canvas.cols, canvas.rows);
  if (visible.empty()) return;
  cv::Mat target = canvas(visible);
  cv::min(target, strip(visible - where.tl()), target);
}

// ---- axes ----

struct Extent {  // of the finite values added
  double lo = HUGE_VAL, hi = -HUGE_VAL;
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
};

// Data limits made drawable: a log axis widens to whole decades; a linear one widens a single
// value to a span and pads pad_lo / pad_hi × span. No data at all gives [0, 1] ([0.1, 1] on log).
Extent widen(Extent e, double pad_lo, double pad_hi, bool log) {
  if (e.empty()) return log ? Extent{0.1, 1} : Extent{0, 1};
  if (log) {
    e = {std::pow(10.0, std::floor(std::log10(e.lo) + 1e-9)),
         std::pow(10.0, std::ceil(std::log10(e.hi) - 1e-9))};
    if (e.lo == e.hi) e.hi *= 10;
    return e;
  }
  if (e.lo == e.hi) {
    const double half = e.lo == 0 ? 0.5 : std::abs(e.lo) * 0.1;
    e = {e.lo - half, e.hi + half};
  }
  const double span = e.hi - e.lo;
  return {e.lo - pad_lo * span, e.hi + pad_hi * span};
}

// Explicit limits win over the (widened) data limits.
AxisRange resolve_axis(const Extent& data, std::optional<double> lo, std::optional<double> hi,
                       double pad_lo, double pad_hi, bool log, const std::string& what) {
  const Extent auto_range = widen(data, pad_lo, pad_hi, log);
  const AxisRange r{lo.value_or(auto_range.lo), hi.value_or(auto_range.hi), log};
  MF_CHECK(std::isfinite(r.lo) && std::isfinite(r.hi) && r.lo < r.hi, what,
           ": empty or non-finite axis range [", r.lo, ", ", r.hi, "]");
  MF_CHECK(!log || r.lo > 0, what, ": a log axis needs a positive minimum, got ", r.lo);
  return r;
}

double axis_fraction(const AxisRange& r, double v) {
  if (r.log) return (std::log10(v) - std::log10(r.lo)) / (std::log10(r.hi) - std::log10(r.lo));
  return (v - r.lo) / (r.hi - r.lo);
}

struct Tick {
  double value = 0;
  std::string label;  // empty: a grid line only
  bool major = true;
};

// The smallest step of 1, 2 or 5 × 10^k that is at least `raw`.
double nice_step(double raw) {
  if (!(raw > 0) || !std::isfinite(raw)) return 1;
  const double decade = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * decade >= raw * (1 - 1e-9)) return m * decade;
  return 10 * decade;
}

// As many decimals as the step needs, so labels line up ("0.0", "0.5", "1.0"); %g for extremes.
std::string tick_label(double v, double step) {
  if (std::abs(v) < step * 1e-6) return "0";  // not "-0" or "5.55e-17"
  const int step_digit = int(std::floor(std::log10(step) + 1e-9));
  char text[32];
  if (step_digit >= -4 && std::abs(v) < 1e6)
    std::snprintf(text, sizeof text, "%.*f", std::max(0, -step_digit), v);
  else  // significant digits from the value's leading digit down to the step's
    std::snprintf(text, sizeof text, "%.*g",
                  std::clamp(int(std::floor(std::log10(std::abs(v)))) - step_digit + 1, 1, 15), v);
  return text;
}

// Ticks at multiples of a nice step, at least `spacing` px apart over `pixels`.
std::vector<Tick> linear_ticks(const AxisRange& r, int pixels, int spacing) {
  const double step = nice_step((r.hi - r.lo) / std::max(1, pixels / spacing));
  std::vector<Tick> ticks;
  for (double k = std::ceil(r.lo / step - 1e-9); ticks.size() < 100; ++k) {
    const double v = k * step;
    if (v > r.hi + step * 1e-9 || (!ticks.empty() && v <= ticks.back().value)) break;
    ticks.push_back({v, tick_label(v, step), true});
  }
  return ticks;
}

std::string decade_label(int e) {
  switch (e) {
    case 0:
      return "1";
    case -1:
      return "0.1";
    case -2:
      return "0.01";
    case 1:
      return "10";
    case 2:
      return "100";
    default:
      return "1e" + std::to_string(e);
  }
}

// Labelled decades with unlabelled 2…9 × 10^e between them; a range holding fewer than two
// decades labels the 2…9 too, or it would show at most one number.
std::vector<Tick> log_ticks(const AxisRange& r) {
  std::vector<Tick> ticks;
  const int first = int(std::floor(std::log10(r.lo) + 1e-9));
  const int last = int(std::ceil(std::log10(r.hi) - 1e-9));
  for (int e = first; e <= last; ++e)
    for (int m = 1; m <= 9; ++m) {
      const double v = m * std::pow(10.0, e);
      if (v >= r.lo * (1 - 1e-9) && v <= r.hi * (1 + 1e-9))
        ticks.push_back({v, m == 1 ? decade_label(e) : "", m == 1});
    }
  if (std::count_if(ticks.begin(), ticks.end(), [](const Tick& t) { return t.major; }) < 2)
    for (Tick& t : ticks) t.label = tick_label(t.value, t.value);
  return ticks;
}

std::vector<Tick> x_ticks(const ChartLayout& l) {
  return l.x.log ? log_ticks(l.x) : linear_ticks(l.x, l.width, 80);  // room for wide labels
}
std::vector<Tick> y_ticks(const ChartLayout& l) {
  return linear_ticks(l.y, l.height, 40);
}

// Room for the y tick labels (right-aligned 8 px left of the axis) and the vertical y label.
int left_margin(const std::vector<Tick>& ticks, double scale) {
  int widest = 0;
  for (const Tick& t : ticks) widest = std::max(widest, text_size(t.label, scale).width);
  return std::max(kMinLeft, 44 + widest);
}

// ---- drawing on a layout ----

// The plot area as a view: what is drawn into it is clipped to it, whatever the data limits.
cv::Mat plot_area(cv::Mat& canvas, const ChartLayout& l) {
  return canvas(cv::Rect(l.left, l.top, l.width + 1, l.height + 1));
}

// A data point in plot-area pixels, clamped so that far-off points cannot overflow an int.
cv::Point to_point(const ChartLayout& l, double x, double y) {
  auto pixel = [](double v) { return int(std::lround(std::clamp(v, -1e6, 1e6))); };
  return {pixel(l.px(x) - l.left), pixel(l.py(y) - l.top)};
}

void draw_grid(cv::Mat& canvas, const ChartLayout& l, const std::vector<Tick>& xt,
               const std::vector<Tick>& yt) {
  for (const Tick& t : xt) {
    const int x = int(std::lround(l.px(t.value)));
    cv::line(canvas, {x, l.top}, {x, l.top + l.height}, t.major ? kGrid : kMinorGrid, 1);
  }
  for (const Tick& t : yt) {
    const int y = int(std::lround(l.py(t.value)));
    cv::line(canvas, {l.left, y}, {l.left + l.width, y}, t.major ? kGrid : kMinorGrid, 1);
  }
}

void draw_frame(cv::Mat& canvas, const ChartLayout& l) {
  cv::rectangle(canvas, {l.left, l.top}, {l.left + l.width, l.top + l.height}, kBlack, 1);
}

void draw_tick_labels(cv::Mat& canvas, const ChartLayout& l, const std::vector<Tick>& xt,
                      const std::vector<Tick>& yt, double scale) {
  for (const Tick& t : xt)
    if (!t.label.empty())
      put_text(canvas, t.label, {int(std::lround(l.px(t.value))), l.top + l.height + 8}, scale, 0.5,
               1.0);
  for (const Tick& t : yt)
    put_text(canvas, t.label, {l.left - 8, int(std::lround(l.py(t.value)))}, scale, 1.0, 0.5);
}

void draw_titles(cv::Mat& canvas, const ChartLayout& l, const std::string& title,
                 const std::string& x_label, const std::string& y_label) {
  if (!title.empty())
    put_text(canvas, title, {canvas.cols / 2, l.top / 2}, fit_scale(title, 0.6, canvas.cols - 20),
             0.5, 0.5);
  if (!x_label.empty())
    put_text(canvas, x_label, {l.left + l.width / 2, canvas.rows - 22},
             fit_scale(x_label, 0.55, l.width), 0.5, 0.0);
  if (!y_label.empty())
    put_vertical_text(canvas, y_label, {22, l.top + l.height / 2},
                      fit_scale(y_label, 0.55, l.height), 0.5);
}

// Draws with `draw` and writes the PNG through json::write_file (atomic replace); OpenCV errors
// become mf::Error naming the file.
template <class Draw>
void render_png(const std::string& path, Draw draw) {
  std::vector<uchar> png;
  try {
    const cv::Mat canvas = draw();
    MF_CHECK(cv::imencode(".png", canvas, png), "cannot encode the chart ", path);
  } catch (const cv::Exception& e) {
    MF_FAIL("cannot draw the chart ", path, ": ", e.what());
  }
  json::write_file(path, std::string(png.begin(), png.end()));
}

void check_image_size(int width, int height, const std::string& what) {
  MF_CHECK(width >= 300 && height >= 200 && width <= 10000 && height <= 10000, what,
           ": image size ", width, " x ", height, " is outside 300 x 200 … 10000 x 10000");
}

// ---- line charts ----

bool drawable(double x, double y, bool log_x) {
  return std::isfinite(x) && std::isfinite(y) && (!log_x || x > 0);
}

void check_series(const std::vector<Series>& group, const char* kind, const std::string& what) {
  for (size_t i = 0; i < group.size(); ++i)
    MF_CHECK(group[i].x.size() == group[i].y.size(), what, ": ", kind, " ", i, " ('", group[i].name,
             "') has ", group[i].x.size(), " x values but ", group[i].y.size(), " y values");
}

ChartLayout line_layout(const LineChart& c, const std::string& what) {
  MF_CHECK(!c.series.empty(), what, ": no series to draw");
  check_series(c.series, "series", what);
  check_series(c.reference, "reference series", what);
  check_image_size(c.width, c.height, what);
  Extent xs, ys;
  for (const auto* group : {&c.series, &c.reference})
    for (const Series& s : *group)
      for (size_t i = 0; i < s.x.size(); ++i)
        if (drawable(s.x[i], s.y[i], c.log_x)) {
          xs.add(s.x[i]);
          ys.add(s.y[i]);
        }
  ChartLayout l;
  l.x = resolve_axis(xs, c.x_min, c.x_max, 0, 0, c.log_x, what);
  l.y = resolve_axis(ys, c.y_min, c.y_max, 0.05, 0.05, false, what);
  l.top = kTop;
  l.height = c.height - kTop - kBottom;
  l.left = left_margin(y_ticks(l), kTickScale);
  l.width = c.width - l.left - kRight;
  return l;
}

using Run = std::vector<cv::Point>;

// The drawable stretches of a series in plot-area pixels: a skipped value ends a stretch.
// Repeated pixels are dropped (a ROC over millions of pairs has few distinct ones).
std::vector<Run> pixel_runs(const ChartLayout& l, const Series& s) {
  std::vector<Run> runs(1);
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (!drawable(s.x[i], s.y[i], l.x.log)) {
      if (!runs.back().empty()) runs.emplace_back();
      continue;
    }
    const cv::Point p = to_point(l, s.x[i], s.y[i]);
    if (runs.back().empty() || runs.back().back() != p) runs.back().push_back(p);
  }
  if (runs.back().empty()) runs.pop_back();
  return runs;
}

void draw_runs(cv::Mat& area, const std::vector<Run>& runs, const cv::Scalar& c, int thickness) {
  for (const Run& run : runs)
    if (run.size() == 1)  // a lone point would otherwise not show at all
      cv::circle(area, run[0], thickness + 1, c, cv::FILLED, cv::LINE_AA);
    else
      cv::polylines(area, run, false, c, thickness, cv::LINE_AA);
}

struct LegendEntry {
  std::string name;
  cv::Scalar colour;
};
constexpr double kLegendScale = 0.45;
constexpr int kLegendRow = 20;

// In plot-area pixels, 8 px in from the right and the top or bottom edge.
cv::Rect legend_box(const ChartLayout& l, const std::vector<LegendEntry>& entries, bool upper) {
  int widest = 0;
  for (const LegendEntry& e : entries)
    widest = std::max(widest, text_size(e.name, kLegendScale).width);
  const cv::Size size(widest + 44, int(entries.size()) * kLegendRow + 10);
  return {l.width - 8 - size.width, upper ? 8 : l.height - 8 - size.height, size.width,
          size.height};
}

// How much of the drawn series `box` would hide: points every ~4 px along each run, so a long
// segment with no vertex under the box still counts.
int points_under(const cv::Rect& box, const std::vector<Run>& runs) {
  int n = 0;
  for (const Run& run : runs)
    for (size_t i = 0; i < run.size(); ++i) {
      n += box.contains(run[i]);
      if (i + 1 == run.size()) break;
      const cv::Point2d a = run[i], d = cv::Point2d(run[i + 1]) - a;
      const int steps = int(std::min(1e4, cv::norm(d) / 4));
      for (int s = 1; s < steps; ++s) n += box.contains(cv::Point(a + d * (double(s) / steps)));
    }
  return n;
}

void draw_legend(cv::Mat& area, const ChartLayout& l, const std::vector<LegendEntry>& entries,
                 const std::vector<Run>& drawn) {
  if (entries.empty()) return;
  const cv::Rect upper = legend_box(l, entries, true), lower = legend_box(l, entries, false);
  const cv::Rect box = points_under(lower, drawn) < points_under(upper, drawn) ? lower : upper;
  cv::rectangle(area, box, kWhite, cv::FILLED);
  cv::rectangle(area, box, kLegendEdge, 1);
  for (size_t i = 0; i < entries.size(); ++i) {
    const int y = box.y + 5 + kLegendRow * int(i) + kLegendRow / 2;
    cv::line(area, {box.x + 8, y}, {box.x + 30, y}, entries[i].colour, 2, cv::LINE_AA);
    put_text(area, entries[i].name, {box.x + 36, y}, kLegendScale, 0.0, 0.5);
  }
}

struct DrawnSeries {
  std::vector<Run> runs;  // all of them, for placing the legend
  std::vector<LegendEntry> legend;
};

DrawnSeries draw_series(cv::Mat& area, const ChartLayout& l, const LineChart& c) {
  for (const Series& s : c.reference) draw_runs(area, pixel_runs(l, s), kReference, 1);
  DrawnSeries drawn;
  for (size_t i = 0; i < c.series.size(); ++i) {
    const std::vector<Run> runs = pixel_runs(l, c.series[i]);
    draw_runs(area, runs, colour(i), 2);
    drawn.runs.insert(drawn.runs.end(), runs.begin(), runs.end());
    if (!c.series[i].name.empty()) drawn.legend.push_back({c.series[i].name, colour(i)});
  }
  return drawn;
}

cv::Mat draw_line_chart(const LineChart& c, const std::string& what) {
  const ChartLayout l = line_layout(c, what);
  const std::vector<Tick> xt = x_ticks(l), yt = y_ticks(l);
  cv::Mat canvas(c.height, c.width, CV_8UC3, kWhite);
  draw_grid(canvas, l, xt, yt);
  cv::Mat area = plot_area(canvas, l);
  const DrawnSeries drawn = draw_series(area, l, c);
  draw_frame(canvas, l);
  draw_tick_labels(canvas, l, xt, yt, kTickScale);
  draw_titles(canvas, l, c.title, c.x_label, c.y_label);
  draw_legend(area, l, drawn.legend, drawn.runs);
  return canvas;
}

// ---- bar charts ----

struct BarGeometry {
  ChartLayout layout;
  double label_scale = kTickScale;
  bool vertical_labels = false;
  double value_scale = 0.42;  // one size for all values, so that none looks more important
};

std::string value_text(const Bar& bar) {
  if (!std::isfinite(bar.value)) return "n/a";
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", bar.value);
  return text;
}

// From zero (bars grow from it) to the furthest bar end or whisker, padded 5 % away from zero.
AxisRange bar_range(const BarChart& c, const std::string& what) {
  Extent e;
  e.add(0);
  for (const Bar& b : c.bars) {
    e.add(b.value);
    if (b.error > 0) {
      e.add(b.value - b.error);
      e.add(b.value + b.error);
    }
  }
  return resolve_axis(e, c.y_min, c.y_max, e.lo < 0 ? 0.05 : 0, e.hi > 0 ? 0.05 : 0, false, what);
}

// Horizontal labels shrink to fit their slot, down to scale 0.33; narrower slots get vertical
// labels and a bottom margin grown to hold them (at most 40 % of the image). Returns the margin.
int fit_bar_labels(const BarChart& c, double slot, BarGeometry& g) {
  int widest = 1;
  for (const Bar& b : c.bars) widest = std::max(widest, text_size(b.label, kTickScale).width);
  g.label_scale = kTickScale * std::min(1.0, (slot - 6) / widest);
  if (g.label_scale >= 0.33) return kBottom;
  g.vertical_labels = true;
  const double length = widest * 0.42 / kTickScale;  // at scale 0.42
  const int bottom = std::clamp(int(length) + 16, kBottom, int(0.4 * c.height));
  g.label_scale = 0.42 * std::min(1.0, (bottom - 16) / length);
  return bottom;
}

BarGeometry bar_geometry(const BarChart& c, const std::string& what) {
  MF_CHECK(!c.bars.empty(), what, ": no bars to draw");
  check_image_size(c.width, c.height, what);
  for (const Bar& b : c.bars)
    MF_CHECK(!(b.error < 0), what, ": bar '", b.label, "' has a negative error ", b.error);
  BarGeometry g;
  ChartLayout& l = g.layout;
  l.x = {0, double(c.bars.size()), false};
  l.y = bar_range(c, what);
  l.top = kTop;
  // The tallest plot area has the densest, hence widest, y tick labels: the margin fits any.
  l.height = c.height - kTop - kBottom;
  l.left = left_margin(y_ticks(l), kTickScale);
  l.width = c.width - l.left - kRight;
  const double slot = l.width / l.x.hi;
  l.height = c.height - kTop - fit_bar_labels(c, slot, g);
  for (const Bar& b : c.bars)
    g.value_scale = std::min(g.value_scale, fit_scale(value_text(b), 0.42, slot - 2));
  return g;
}

double bar_base(const ChartLayout& l) {
  return std::clamp(0.0, l.y.lo, l.y.hi);
}

void draw_bar(cv::Mat& area, const ChartLayout& l, size_t i, const Bar& bar) {
  if (!std::isfinite(bar.value)) return;
  const double x = double(i);
  const cv::Point a = to_point(l, x + 0.15, bar_base(l)), b = to_point(l, x + 0.85, bar.value);
  cv::rectangle(area, a, b, colour(i), cv::FILLED);
  if (!(bar.error > 0) || !std::isfinite(bar.error)) return;
  const cv::Point lo = to_point(l, x + 0.5, bar.value - bar.error);
  const cv::Point hi = to_point(l, x + 0.5, bar.value + bar.error);
  const cv::Point cap(std::max(2, (b.x - a.x) / 6), 0);
  cv::line(area, lo, hi, kBlack, 1);
  cv::line(area, lo - cap, lo + cap, kBlack, 1);
  cv::line(area, hi - cap, hi + cap, kBlack, 1);
}

// Just beyond the bar's end or whisker: above a bar growing up, below one growing down.
void draw_bar_value(cv::Mat& canvas, const BarGeometry& g, size_t i, const Bar& bar) {
  const ChartLayout& l = g.layout;
  const bool up = !(bar.value < bar_base(l));
  const double whisker = bar.error > 0 && std::isfinite(bar.error) ? bar.error : 0;
  const double end = std::isfinite(bar.value) ? bar.value + (up ? whisker : -whisker) : 0;
  const double row = std::clamp(l.py(end), double(l.top), double(l.top + l.height));
  const cv::Point at(int(std::lround(l.px(i + 0.5))), int(std::lround(row)) + (up ? -5 : 5));
  put_text(canvas, value_text(bar), at, g.value_scale, 0.5, up ? 0.0 : 1.0);
}

void draw_bar_label(cv::Mat& canvas, const BarGeometry& g, size_t i, const std::string& label) {
  const ChartLayout& l = g.layout;
  const cv::Point at(int(std::lround(l.px(i + 0.5))), l.top + l.height + 8);
  if (g.vertical_labels)
    put_vertical_text(canvas, label, at, g.label_scale, 0.0);
  else
    put_text(canvas, label, at, g.label_scale, 0.5, 1.0);
}

cv::Mat draw_bar_chart(const BarChart& c, const std::string& what) {
  const BarGeometry g = bar_geometry(c, what);
  const ChartLayout& l = g.layout;
  const std::vector<Tick> yt = y_ticks(l);
  cv::Mat canvas(c.height, c.width, CV_8UC3, kWhite);
  draw_grid(canvas, l, {}, yt);
  cv::Mat area = plot_area(canvas, l);
  for (size_t i = 0; i < c.bars.size(); ++i) draw_bar(area, l, i, c.bars[i]);
  draw_frame(canvas, l);
  draw_tick_labels(canvas, l, {}, yt, kTickScale);
  for (size_t i = 0; i < c.bars.size(); ++i) {
    draw_bar_label(canvas, g, i, c.bars[i].label);
    draw_bar_value(canvas, g, i, c.bars[i]);
  }
  draw_titles(canvas, l, c.title, "", c.y_label);
  return canvas;
}

// ---- scatter grids ----

void check_panel(const ScatterPanel& p, size_t index, const std::string& what) {
  MF_CHECK(p.x.size() == p.y.size(), what, ": panel ", index, " ('", p.title, "') has ", p.x.size(),
           " x values but ", p.y.size(), " y values");
  MF_CHECK(p.group.empty() || p.group.size() == p.x.size(), what, ": panel ", index, " ('", p.title,
           "') has ", p.group.size(), " groups for ", p.x.size(), " points");
  for (int g : p.group)
    MF_CHECK(g >= 0, what, ": panel ", index, " ('", p.title, "') has a negative group ", g);
}

double circle_radius(const ScatterPanel& p) {
  double r = 1.1;
  for (size_t i = 0; i < p.x.size(); ++i)
    if (drawable(p.x[i], p.y[i], false))
      r = std::max(r, 1.05 * std::max(std::abs(p.x[i]), std::abs(p.y[i])));
  return r;
}

ChartLayout panel_layout(const ScatterPanel& p, size_t index, int columns,
                         const std::string& what) {
  MF_CHECK(columns >= 1, what, ": columns must be at least 1, got ", columns);
  check_panel(p, index, what);
  ChartLayout l;
  l.left = int(index % size_t(columns)) * kCell + kPanelLeft;
  l.top = kGridTitle + int(index / size_t(columns)) * kCell + kPanelTop;
  l.width = l.height = kPanelSide;
  if (p.unit_circle) {
    const double r = circle_radius(p);
    l.x = l.y = {-r, r, false};
    return l;
  }
  Extent xs, ys;
  for (size_t i = 0; i < p.x.size(); ++i)
    if (drawable(p.x[i], p.y[i], false)) {
      xs.add(p.x[i]);
      ys.add(p.y[i]);
    }
  l.x = resolve_axis(xs, {}, {}, 0.05, 0.05, false, what);
  l.y = resolve_axis(ys, {}, {}, 0.05, 0.05, false, what);
  return l;
}

// Small discs, smaller when there are many, so that dense clusters keep their shape.
void draw_points(cv::Mat& area, const ChartLayout& l, const ScatterPanel& p) {
  const int radius = p.x.size() > 2000 ? 1 : p.x.size() > 300 ? 2 : 3;
  for (size_t i = 0; i < p.x.size(); ++i)
    if (drawable(p.x[i], p.y[i], false))
      cv::circle(area, to_point(l, p.x[i], p.y[i]), radius,
                 colour(p.group.empty() ? 0 : size_t(p.group[i])), cv::FILLED, cv::LINE_AA);
}

void draw_panel(cv::Mat& canvas, const ChartLayout& l, const ScatterPanel& p) {
  const std::vector<Tick> xt = linear_ticks(l.x, l.width, 40), yt = linear_ticks(l.y, l.height, 40);
  draw_grid(canvas, l, xt, yt);
  cv::Mat area = plot_area(canvas, l);
  if (p.unit_circle)
    cv::circle(area, to_point(l, 0, 0), int(std::lround(l.px(1) - l.px(0))), kReference, 1,
               cv::LINE_AA);
  draw_points(area, l, p);
  draw_frame(canvas, l);
  draw_tick_labels(canvas, l, xt, yt, kPanelTickScale);
  if (!p.title.empty())
    put_text(canvas, p.title, {l.left + l.width / 2, l.top - 14},
             fit_scale(p.title, 0.5, kCell - 10), 0.5, 0.5);
}

cv::Mat draw_scatter_grid(const std::string& title, const std::vector<ScatterPanel>& panels,
                          int columns, const std::string& what) {
  const int rows = (int(panels.size()) + columns - 1) / columns;
  cv::Mat canvas(kGridTitle + rows * kCell, columns * kCell, CV_8UC3, kWhite);
  for (size_t i = 0; i < panels.size(); ++i)
    draw_panel(canvas, panel_layout(panels[i], i, columns, what), panels[i]);
  if (!title.empty())
    put_text(canvas, title, {canvas.cols / 2, kGridTitle / 2},
             fit_scale(title, 0.65, canvas.cols - 20), 0.5, 0.5);
  return canvas;
}

}  // namespace

Rgb palette_colour(size_t index) {
  return kPalette[index % kPaletteSize];
}

double ChartLayout::px(double vx) const {
  return left + axis_fraction(x, vx) * width;
}
double ChartLayout::py(double vy) const {
  return top + (1 - axis_fraction(y, vy)) * height;
}

ChartLayout line_chart_layout(const LineChart& chart) {
  return line_layout(chart, "line chart");
}
ChartLayout bar_chart_layout(const BarChart& chart) {
  return bar_geometry(chart, "bar chart").layout;
}
ChartLayout scatter_panel_layout(const ScatterPanel& panel, size_t index, int columns) {
  return panel_layout(panel, index, columns, "scatter grid");
}

void write_line_chart(const std::string& path, const LineChart& chart) {
  render_png(path, [&] { return draw_line_chart(chart, "line chart " + path); });
}

void write_bar_chart(const std::string& path, const BarChart& chart) {
  render_png(path, [&] { return draw_bar_chart(chart, "bar chart " + path); });
}

void write_scatter_grid(const std::string& path, const std::string& title,
                        const std::vector<ScatterPanel>& panels, int columns) {
  const std::string what = "scatter grid " + path;
  MF_CHECK(!panels.empty(), what, ": no panels to draw");
  MF_CHECK(columns >= 1, what, ": columns must be at least 1, got ", columns);
  // Fewer panels than columns: no empty cells on the right.
  const int used = int(std::min(size_t(columns), panels.size()));
  render_png(path, [&] { return draw_scatter_grid(title, panels, used, what); });
}

}  // namespace mf::report
