// The JSON report and the ROC plot of a verification result.
#include <algorithm>
#include <cmath>
#include <utility>

#include "eval/verification.h"
#include "report/chart.h"
#include "util/error.h"
#include "util/file.h"

namespace mf::eval {

using report::LineChart;
using report::Series;
using report::write_line_chart;

json::Value to_json(const VerificationResult& result, const ReportInfo& info) {
  json::Value tar = json::Value::object(), reachable = json::Value::object();
  for (const TarAtFar& t : result.tar_at_far) {
    tar.set(json::number(t.far), t.tar);
    reachable.set(json::number(t.far), t.reachable);
  }
  json::Value points = json::Value::object();
  for (const OperatingPoint& p : result.operating_points) {
    json::Value v = json::Value::object();
    v.set("threshold", p.threshold)
        .set("tar", p.tar)
        .set("false_accepts", p.false_accepts)
        .set("reachable", p.reachable);
    points.set(far_text(p.far), std::move(v));
  }
  json::Value out = json::Value::object();
  out.set("accuracy_mean", result.accuracy_mean)
      .set("accuracy_std", result.accuracy_std)
      .set("auc", result.auc)
      .set("eer", result.eer)
      .set("tar_at_far", std::move(tar))
      .set("tar_at_far_reachable", std::move(reachable))
      .set("operating_points", std::move(points))
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

double threshold_at_far_from_json(const std::string& path, double far) {
  const json::Value report = json::parse(read_file(path, "calibration report"), path);
  const json::Value* points = report.find("operating_points");
  MF_CHECK(points, path,
           ": no operating_points; write it with `marginface eval --lfw|--pairs ... --json`");
  const json::Value* p = points->find(far_text(far));
  MF_CHECK(p, path, ": no operating point at FAR ", far_text(far),
           " (eval reports FAR 0.01, 0.001 and 0.0001)");
  const json::Value* reachable = p->find("reachable");
  MF_CHECK(reachable && reachable->as_bool(), path, ": FAR ", far_text(far),
           " was not reachable on its pairs (too few different-identity pairs to measure it)");
  return p->find("threshold")->as_double();
}

namespace {

// TAR = FAR: what guessing achieves, a curve on the log axis.
Series chance_curve(double low) {
  Series chance;
  for (int s = 0; s <= 200; ++s) {
    const double far = std::pow(low, 1 - s / 200.0);
    chance.x.push_back(far);
    chance.y.push_back(far);
  }
  return chance;
}

}  // namespace

void write_roc_png(const std::string& path, const std::vector<RocPoint>& roc,
                   const std::string& title) {
  MF_CHECK(roc.size() >= 2, "write_roc_png: a ROC curve needs at least two points (", path, ")");
  // Log FAR axis from the decade at or below the smallest non-zero FAR (at most 1e-6) up to 1.
  double min_far = 1.0;
  for (const RocPoint& p : roc)
    if (p.far > 0) min_far = std::min(min_far, p.far);
  const double low =
      std::pow(10.0, std::clamp(int(std::floor(std::log10(min_far) + 1e-9)), -6, -1));

  LineChart chart;
  chart.title = title;
  chart.x_label = "false accept rate (FAR, log scale)";
  chart.y_label = "true accept rate (TAR)";
  chart.log_x = true;
  chart.x_min = low;
  chart.x_max = 1.0;
  chart.y_min = 0.0;
  chart.y_max = 1.0;
  chart.width = 720;
  chart.height = 560;
  chart.reference = {chance_curve(low)};
  // FARs below the axis (0 included: the TAR reached without any false accept) sit on its left
  // edge instead of vanishing from a log axis.
  Series curve;
  for (const RocPoint& p : roc) {
    curve.x.push_back(std::max(p.far, low));
    curve.y.push_back(p.tar);
  }
  chart.series = {std::move(curve)};
  write_line_chart(path, chart);
}

}  // namespace mf::eval
