// The JSON report and the ROC plot of a verification result.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "eval/verification.h"
#include "util/error.h"

namespace mf::eval {

json::Value to_json(const VerificationResult& result, const ReportInfo& info) {
  json::Value tar = json::Value::object(), reachable = json::Value::object();
  for (const TarAtFar& t : result.tar_at_far) {
    tar.set(json::number(t.far), t.tar);
    reachable.set(json::number(t.far), t.reachable);
  }
  json::Value out = json::Value::object();
  out.set("accuracy_mean", result.accuracy_mean)
      .set("accuracy_std", result.accuracy_std)
      .set("auc", result.auc)
      .set("eer", result.eer)
      .set("tar_at_far", std::move(tar))
      .set("tar_at_far_reachable", std::move(reachable))
      .set("thresholds", json::Value::array_of(result.thresholds))
      .set("threshold_mean", result.threshold_mean())
      .set("threshold_source", result.threshold_source)
      .set("fold_accuracies", json::Value::array_of(result.fold_accuracies))
      .set("pairs", result.pairs)
      .set("positives", result.positives)
      .set("negatives", result.negatives)
      .set("missing", info.missing)
      .set("protocol", info.protocol)
      .set("flip", info.flip)
      .set("checkpoint", info.checkpoint);
  return out;
}

void write_json(const std::string& path, const VerificationResult& result, const ReportInfo& info) {
  json::write_file(path, to_json(result, info).dump());
}

namespace {

const cv::Scalar kBlack(0, 0, 0), kGrid(225, 225, 225), kMinorGrid(242, 242, 242),
    kChance(170, 170, 170), kCurve(180, 90, 20);  // BGR: a dark blue curve
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

void put_text(cv::Mat& canvas, const std::string& text, cv::Point anchor, double scale,
              double align_x, double align_y) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, kFont, scale, 1, &baseline);
  const cv::Point origin(anchor.x - int(std::lround(align_x * size.width)),
                         anchor.y + int(std::lround(align_y * size.height)));
  cv::putText(canvas, text, origin, kFont, scale, kBlack, 1, cv::LINE_AA);
}

std::string decade_label(int e) {
  switch (e) {
    case 0:
      return "1";
    case -1:
      return "0.1";
    case -2:
      return "0.01";
    default:
      return "1e" + std::to_string(e);
  }
}

}  // namespace

void write_roc_png(const std::string& path, const std::vector<RocPoint>& roc,
                   const std::string& title) {
  MF_CHECK(roc.size() >= 2, "write_roc_png: a ROC curve needs at least two points");
  const int width = 720, height = 560;
  const int left = 80, right = 30, top = 50, bottom = 70;
  const int plot_w = width - left - right, plot_h = height - top - bottom;
  cv::Mat canvas(height, width, CV_8UC3, cv::Scalar(255, 255, 255));

  // Log FAR axis from the decade at or below the smallest non-zero FAR (at most 1e-6) up to 1.
  double min_far = 1.0;
  for (const RocPoint& p : roc)
    if (p.far > 0) min_far = std::min(min_far, p.far);
  const int low = std::clamp(int(std::floor(std::log10(min_far) + 1e-9)), -6, -1);
  auto x_of = [&](double far) {
    const double lg = std::log10(std::max(far, std::pow(10.0, low)));
    return left + int(std::lround((lg - low) / -low * plot_w));
  };
  auto y_of = [&](double tar) { return top + int(std::lround((1 - tar) * plot_h)); };

  for (int e = low; e <= 0; ++e) {  // decades, with 2…9 as a lighter minor grid
    if (e < 0)
      for (int m = 2; m <= 9; ++m) {
        const int x = x_of(m * std::pow(10.0, e));
        cv::line(canvas, {x, top}, {x, top + plot_h}, kMinorGrid, 1);
      }
    const int x = x_of(std::pow(10.0, e));
    cv::line(canvas, {x, top}, {x, top + plot_h}, kGrid, 1);
    put_text(canvas, decade_label(e), {x, top + plot_h + 8}, 0.45, 0.5, 1.0);
  }
  for (int k = 0; k <= 10; ++k) {
    const int y = y_of(k / 10.0);
    cv::line(canvas, {left, y}, {left + plot_w, y}, kGrid, 1);
    char label[8];
    std::snprintf(label, sizeof label, "%.1f", k / 10.0);
    put_text(canvas, label, {left - 8, y}, 0.45, 1.0, 0.5);
  }

  // Chance (TAR = FAR), a curve on the log axis.
  std::vector<cv::Point> chance;
  for (int s = 0; s <= 200; ++s) {
    const double far = std::pow(10.0, low * (1 - s / 200.0));
    chance.emplace_back(x_of(far), y_of(far));
  }
  cv::polylines(canvas, chance, false, kChance, 1, cv::LINE_AA);

  std::vector<cv::Point> curve;
  for (const RocPoint& p : roc) {
    const cv::Point q(x_of(p.far), y_of(p.tar));
    if (curve.empty() || curve.back() != q) curve.push_back(q);
  }
  cv::polylines(canvas, curve, false, kCurve, 2, cv::LINE_AA);
  cv::rectangle(canvas, {left, top}, {left + plot_w, top + plot_h}, kBlack, 1);

  put_text(canvas, "false accept rate (FAR, log scale)", {left + plot_w / 2, height - 22}, 0.55,
           0.5, 0.0);
  {  // vertical y-axis label: drawn horizontally, then rotated
    const std::string label = "true accept rate (TAR)";
    int baseline = 0;
    const cv::Size size = cv::getTextSize(label, kFont, 0.55, 1, &baseline);
    cv::Mat strip(size.height + baseline + 4, size.width + 4, CV_8UC3, cv::Scalar(255, 255, 255));
    cv::putText(strip, label, {2, size.height + 2}, kFont, 0.55, kBlack, 1, cv::LINE_AA);
    cv::rotate(strip, strip, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int x0 = 14, y0 = top + (plot_h - strip.rows) / 2;
    if (y0 >= 0 && y0 + strip.rows <= height)
      strip.copyTo(canvas(cv::Rect(x0, y0, strip.cols, strip.rows)));
  }
  if (!title.empty()) put_text(canvas, title, {width / 2, top / 2}, 0.6, 0.5, 0.5);

  std::vector<uchar> png;
  try {
    MF_CHECK(cv::imencode(".png", canvas, png), "cannot encode the ROC plot for ", path);
  } catch (const cv::Exception& e) {
    MF_FAIL("cannot encode the ROC plot for ", path, ": ", e.what());
  }
  json::write_file(path, std::string(png.begin(), png.end()));
}

}  // namespace mf::eval
