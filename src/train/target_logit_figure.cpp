#include "train/target_logit_figure.h"

#include <cmath>

#include "losses/head.h"
#include "report/chart.h"
#include "tensor/rng.h"

namespace mf {

bool write_target_logit_figure(const std::string& path,
                               const std::vector<TargetLogitCurve>& curves) {
  report::LineChart chart;
  chart.title = "Target logit (before the scale s) against the angle to the class weight";
  chart.x_label = "theta (degrees)";
  chart.y_label = "target logit";
  chart.x_min = 0;
  chart.x_max = 180;
  std::vector<double> theta, degrees;
  for (int d = 0; d <= 180; ++d) {
    degrees.push_back(d);
    theta.push_back(d * M_PI / 180);
  }
  for (const TargetLogitCurve& c : curves) {
    Rng rng(0);
    // The curve depends on neither size; 3 classes is what every head accepts (AdaCos needs 3).
    const auto head = head_registry().create(c.type, c.params, 2, 3, rng);
    if (!head->target_logit(0.0, {c.step})) continue;  // metric heads have no class logits
    chart.series.push_back({c.label, degrees, target_logit_curve(*head, theta, {c.step})});
  }
  if (chart.series.empty()) return false;
  report::write_line_chart(path, chart);
  return true;
}

}  // namespace mf
