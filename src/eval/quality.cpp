#include "eval/quality.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "eval/verification.h"
#include "report/chart.h"
#include "util/error.h"

namespace mf::eval {

std::vector<double> default_reject_fractions() {
  std::vector<double> out;
  for (int i = 0; i <= 10; ++i) out.push_back(0.05 * i);
  return out;
}

QualityCurve error_versus_reject(std::span<const double> scores, std::span<const uint8_t> same,
                                 std::span<const int> folds, std::span<const double> quality,
                                 double far, const std::vector<double>& fractions) {
  const size_t P = scores.size();
  MF_CHECK(same.size() == P && quality.size() == P && (folds.empty() || folds.size() == P),
           "error_versus_reject: ", P, " scores, ", same.size(), " labels, ", quality.size(),
           " qualities, ", folds.size(), " folds");
  for (double q : quality)
    MF_CHECK(std::isfinite(q), "error_versus_reject: a pair quality is not finite");
  QualityCurve curve;
  curve.far = far;
  // The operating point's threshold (accept ⇔ score > it), as the least double above it here.
  curve.threshold = std::nextafter(operating_point(scores, same, far).threshold,
                                   std::numeric_limits<double>::infinity());

  std::vector<size_t> order(P);  // lowest quality first, ties by index
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return quality[a] < quality[b]; });
  for (double r : fractions) {
    MF_CHECK(r >= 0 && r <= 0.9, "error_versus_reject: reject fraction ", r, " outside [0, 0.9]");
    const size_t drop = static_cast<size_t>(std::floor(r * double(P)));
    std::vector<uint8_t> keep(P, 1);
    for (size_t i = 0; i < drop; ++i) keep[order[i]] = 0;
    std::vector<double> s;
    std::vector<uint8_t> y;
    std::vector<int> f;
    int64_t genuine = 0, rejected_genuine = 0;
    for (size_t i = 0; i < P; ++i) {
      if (!keep[i]) continue;
      s.push_back(scores[i]);
      y.push_back(same[i]);
      if (!folds.empty()) f.push_back(folds[i]);
      if (same[i]) {
        ++genuine;
        rejected_genuine += scores[i] < curve.threshold;
      }
    }
    // Folds that lost every pair are left out (the others renumbered), as verify() needs.
    std::vector<int> renumber;
    for (int& id : f) {
      if (id >= int(renumber.size())) renumber.resize(id + 1, -1);
      if (renumber[id] < 0) renumber[id] = 0;
    }
    int next = 0;
    for (int& id : renumber)
      if (id >= 0) id = next++;
    for (int& id : f) id = renumber[id];
    const VerificationResult v = verify(s, y, f);
    curve.rejected.push_back(r);
    curve.accuracy.push_back(v.accuracy_mean);
    curve.fnmr.push_back(genuine ? double(rejected_genuine) / double(genuine) : 0.0);
    curve.kept.push_back(int64_t(s.size()));
  }
  return curve;
}

void write_quality_curve_png(const std::string& path, const std::vector<QualityCurve>& curves,
                             const std::string& title) {
  report::LineChart chart;
  chart.title = title;
  chart.x_label = "fraction of pairs rejected (lowest feature norm first)";
  chart.y_label = "error: 1 - accuracy (first), FNMR at the FAR (second)";
  chart.y_min = 0.0;
  for (const QualityCurve& c : curves) {
    report::Series error{c.label + ": 1 - accuracy", c.rejected, {}};
    for (double a : c.accuracy) error.y.push_back(1.0 - a);
    chart.series.push_back(std::move(error));
    chart.series.push_back({c.label + ": FNMR @ FAR " + far_text(c.far), c.rejected, c.fnmr});
  }
  report::write_line_chart(path, chart);
}

}  // namespace mf::eval
