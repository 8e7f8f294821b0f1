#include "train/ablation_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/config.h"
#include "report/chart.h"
#include "train/run_folder.h"
#include "util/error.h"
#include "util/json.h"

namespace mf {

namespace fs = std::filesystem;

json::Value head_result_json(const HeadResult& r) {
  json::Value v = json::Value::object();
  v.set("head", r.name)
      .set("type", r.type)
      .set("parameters", r.parameters)
      .set("protocol", r.protocol)
      .set("accuracy_mean", r.accuracy_mean)
      .set("accuracy_std", r.accuracy_std)
      .set("auc", r.auc)
      .set("eer", r.eer)
      .set("tar_at_far_0.001", r.tar_at_far_1e3)
      .set("pairs", r.pairs)
      .set("train_loss", r.train_loss)
      .set("train_accuracy", r.train_accuracy)
      .set("steps", r.steps)
      .set("train_seconds", r.train_seconds)
      .set("eval_seconds", r.eval_seconds)
      .set("images_per_s", r.images_per_s)
      .set("fold_accuracies", json::Value::array_of(r.fold_accuracies));
  return v;
}

// result.json (written by to_json above) read back through the config reader: JSON is YAML, and
// a damaged file is reported with its path, line and key.
HeadResult read_head_result(const std::string& path) {
  const Params p = Config::load(path).section("");
  HeadResult r;
  r.name = p.get_string("head", "");
  r.type = p.get_string("type", "");
  r.parameters = p.get_string("parameters", "");
  r.protocol = p.get_string("protocol", "");
  r.accuracy_mean = p.get_double("accuracy_mean", -1);
  r.accuracy_std = p.get_double("accuracy_std", 0);
  r.auc = p.get_double("auc", 0);
  r.eer = p.get_double("eer", 0);
  r.tar_at_far_1e3 = p.get_double("tar_at_far_0.001", 0);
  r.pairs = p.get_int("pairs", 0);
  r.train_loss = p.get_double("train_loss", 0);
  r.train_accuracy = p.get_double("train_accuracy", 0);
  r.steps = p.get_int("steps", 0);
  r.train_seconds = p.get_double("train_seconds", 0);
  r.eval_seconds = p.get_double("eval_seconds", 0);
  r.images_per_s = p.get_double("images_per_s", 0);
  // Heads finished before result.json carried the folds: eval.json beside it has them.
  const fs::path eval_json = fs::path(path).parent_path() / "eval.json";
  const std::vector<std::string> folds =
      p.has("fold_accuracies") ? p.get_list("fold_accuracies")
      : fs::exists(eval_json)
          ? Config::load(eval_json.string()).section("").get_list("fold_accuracies")
          : std::vector<std::string>{};
  for (const std::string& f : folds) {
    char* end = nullptr;
    r.fold_accuracies.push_back(std::strtod(f.c_str(), &end));
    MF_CHECK(end && *end == 0, path, ": fold accuracy '", f, "' is not a number");
  }
  return r;
}

namespace {

std::string format_time(double seconds) {
  char buf[32];
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

std::string protocol_label(const std::string& protocol, int64_t pairs) {
  if (protocol == "lfw-view2") return "LFW View 2 (" + std::to_string(pairs) + " pairs, 10-fold)";
  if (protocol == "lfw-view1") return "LFW View 1 (DevTest " + std::to_string(pairs) + " pairs)";
  return "none";
}

std::string markdown_table(const std::vector<HeadResult>& heads) {
  std::ostringstream t;
  t << "| head | parameters | protocol | LFW accuracy | TAR@FAR=1e-3 | AUC | train loss | train "
       "acc | "
       "wall time (train + eval) | img/s |\n"
    << "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
  char buf[512];
  for (const auto& r : heads) {
    const std::string params = r.parameters.empty() ? "—" : r.parameters;
    if (r.accuracy_mean >= 0)
      std::snprintf(buf, sizeof buf, "%.2f ± %.2f | %.4f | %.4f", 100 * r.accuracy_mean,
                    100 * r.accuracy_std, r.tar_at_far_1e3, r.auc);
    else
      std::snprintf(buf, sizeof buf, "— | — | —");
    t << "| " << r.name << (r.name == r.type ? "" : " (" + r.type + ")") << " | " << params << " | "
      << protocol_label(r.protocol, r.pairs) << " | " << buf << " | ";
    std::snprintf(buf, sizeof buf, "%.3f | %.3f | %s + %s | %.1f |", r.train_loss, r.train_accuracy,
                  format_time(r.train_seconds).c_str(), format_time(r.eval_seconds).c_str(),
                  r.images_per_s);
    t << buf << "\n";
  }
  return t.str();
}

// Student's t, two-sided 95 % (the 0.975 quantile), for 1 … 29 degrees of freedom; 1.96 beyond.
double t_quantile_975(int64_t df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                                 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                                 2.060,  2.056, 2.052, 2.048, 2.045};
  return df >= 1 && df <= 29 ? table[df - 1] : 1.96;
}

}  // namespace

std::string fold_comparison_table(const std::vector<HeadResult>& heads,
                                  const std::string& baseline) {
  const auto base = std::find_if(heads.begin(), heads.end(),
                                 [&](const HeadResult& r) { return r.name == baseline; });
  if (base == heads.end() || base->fold_accuracies.size() < 2) return "";
  const size_t F = base->fold_accuracies.size();
  std::ostringstream t;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%.3f", t_quantile_975(int64_t(F) - 1));
  t << "Per fold against " << baseline << " (the same " << F
    << " folds; Δ in accuracy points; beyond fold noise: |t| > " << buf << ", Student's t for "
    << F - 1 << " degrees of freedom, two-sided 95 %)\n\n"
    << "| head | mean Δ | std of Δ | folds better / worse / equal | t | beyond fold noise |\n"
    << "|---|---:|---:|---:|---:|---|\n";
  for (const HeadResult& r : heads) {
    if (r.name == baseline || r.fold_accuracies.size() != F) continue;
    double mean = 0, var = 0;
    int better = 0, worse = 0;
    std::vector<double> d(F);
    for (size_t f = 0; f < F; ++f) {
      d[f] = 100.0 * (r.fold_accuracies[f] - base->fold_accuracies[f]);
      mean += d[f] / double(F);
      better += d[f] > 1e-9;
      worse += d[f] < -1e-9;
    }
    for (double x : d) var += (x - mean) * (x - mean) / double(F - 1);
    const double sd = std::sqrt(var);
    const double tstat = sd > 0 ? mean / (sd / std::sqrt(double(F)))
                                : (mean == 0 ? 0.0 : std::copysign(INFINITY, mean));
    const bool beyond = std::abs(tstat) > t_quantile_975(int64_t(F) - 1);
    std::snprintf(buf, sizeof buf, "| %s | %+.2f | %.2f | %d / %d / %d | %.2f | %s |\n",
                  r.name.c_str(), mean, sd, better, worse, int(F) - better - worse, tstat,
                  beyond ? (mean > 0 ? "yes, better" : "yes, worse") : "no");
    t << buf;
  }
  return t.str();
}

namespace {

void write_loss_plot(const AblationReportSpec& a, const std::vector<HeadResult>& heads) {
  report::LineChart chart;
  chart.title = "Training loss (moving average over 10 steps)";
  chart.x_label = "step";
  chart.y_label = "loss";
  for (const auto& r : heads) {
    const auto log = read_step_records(((fs::path(a.output_dir) / r.name) / "log.jsonl").string());
    report::Series s{r.name, {}, {}};
    double sum = 0;
    for (size_t i = 0; i < log.size(); ++i) {
      sum += log[i].loss - (i >= 10 ? log[i - 10].loss : 0.0);
      s.x.push_back(static_cast<double>(log[i].step));
      s.y.push_back(sum / static_cast<double>(std::min<size_t>(i + 1, 10)));
    }
    chart.series.push_back(std::move(s));
  }
  report::write_line_chart((fs::path(a.output_dir) / "loss.png").string(), chart);
}

void write_accuracy_plot(const AblationReportSpec& a, const std::vector<HeadResult>& heads) {
  report::BarChart chart;
  chart.title =
      "LFW verification accuracy: mean and std over the folds";  // ASCII: OpenCV's Hershey fonts
                                                                 // have no "±"
  chart.y_label = "accuracy (%)";
  double lo = 100;
  for (const auto& r : heads) {
    if (r.accuracy_mean < 0) continue;
    chart.bars.push_back({r.name, 100 * r.accuracy_mean, 100 * r.accuracy_std});
    lo = std::min(lo, 100 * (r.accuracy_mean - r.accuracy_std));
  }
  if (chart.bars.empty()) return;
  chart.y_min = std::max(0.0, std::floor(lo / 5 - 1) * 5);  // bars start below the worst head
  chart.y_max = 100;
  report::write_bar_chart((fs::path(a.output_dir) / "accuracy.png").string(), chart);
}

void write_feature_plots(const AblationReportSpec& a, const std::vector<HeadResult>& heads) {
  std::vector<report::ScatterPanel> raw, unit;
  for (const auto& r : heads) {
    std::ifstream in((fs::path(a.output_dir) / r.name) / "features.txt");
    report::ScatterPanel p{r.name, {}, {}, {}, false};
    int label;
    double x, y;
    while (in >> label >> x >> y) {
      p.x.push_back(x);
      p.y.push_back(y);
      p.group.push_back(label);
    }
    if (p.x.empty()) continue;
    report::ScatterPanel q = p;
    q.unit_circle = true;
    for (size_t i = 0; i < q.x.size(); ++i) {
      const double n = std::max(std::hypot(q.x[i], q.y[i]), 1e-12);
      q.x[i] /= n;
      q.y[i] /= n;
    }
    raw.push_back(std::move(p));
    unit.push_back(std::move(q));
  }
  if (raw.empty()) return;
  const int columns = std::min<int>(4, static_cast<int>(raw.size()));
  report::write_scatter_grid((fs::path(a.output_dir) / "features.png").string(),
                             "2-D training features per head (colour = identity)", raw, columns);
  report::write_scatter_grid((fs::path(a.output_dir) / "features_normalized.png").string(),
                             "the same features, L2-normalised onto the unit circle", unit,
                             columns);
}

}  // namespace

void write_ablation_report(const AblationReportSpec& a, AblationReport& report) {
  report.table = markdown_table(report.heads);
  const std::string folds = fold_comparison_table(report.heads, a.baseline);
  if (!folds.empty()) report.table += "\n" + folds;
  const fs::path out(a.output_dir);
  std::ostringstream md;
  md << "# Ablation: " << a.config_path << "\n\n" << report.table;
  json::write_file((out / "results.md").string(), md.str());
  json::Value heads = json::Value::array();
  for (const auto& r : report.heads) heads.push_back(head_result_json(r));
  json::Value all = json::Value::object();
  all.set("config", a.config_path)
      .set("overrides", json::Value::array_of(a.overrides))
      .set("protocol", a.protocol)
      .set("complete", report.complete)
      .set("heads", std::move(heads));
  json::write_file((out / "results.json").string(), all.dump());
  if (report.heads.empty()) return;
  write_loss_plot(a, report.heads);
  write_accuracy_plot(a, report.heads);
  write_target_logit_figure((out / "target_logits.png").string(), a.target_logits);
  if (a.plot_features) write_feature_plots(a, report.heads);
}

}  // namespace mf
