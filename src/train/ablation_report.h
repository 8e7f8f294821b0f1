// What `marginface ablate` writes besides the run folders: NAME/result.json per finished head,
// and in the output folder results.md (the table), results.json (every number), loss.png,
// accuracy.png, target_logits.png and, for 2-D embeddings, features.png and
// features_normalized.png (the NormFace / SphereFace figures).
#pragma once

#include <string>
#include <vector>

#include "train/ablation.h"
#include "train/target_logit_figure.h"
#include "util/json.h"

namespace mf {

// NAME/result.json: written last for a head, it marks the head done.
json::Value head_result_json(const HeadResult& result);
// Read back through the config reader (JSON is YAML): a damaged file is reported with its path,
// line and key.
HeadResult read_head_result(const std::string& path);

struct AblationReportSpec {
  std::string output_dir, config_path, protocol;
  std::vector<std::string> overrides;
  bool plot_features = false;                   // NAME/features.txt exist
  std::vector<TargetLogitCurve> target_logits;  // one per finished head, in report.heads order
  std::string baseline = "softmax";             // ablation.baseline: the per-fold comparison's
};

// Every other head against `baseline` fold by fold (markdown): the mean and standard deviation of
// the paired fold differences in accuracy, how many folds are better / worse, the paired t
// statistic and whether |t| exceeds Student's two-sided 95 % quantile for F − 1 degrees of
// freedom ("beyond fold noise"). The folds of one protocol share the test pairs, so pairing
// removes the fold-to-fold difficulty the ± of the main table includes. Empty when the baseline
// is not among the heads or there are fewer than two folds.
std::string fold_comparison_table(const std::vector<HeadResult>& heads,
                                  const std::string& baseline);

// Fills report.table (markdown) and writes the files above for report.heads.
void write_ablation_report(const AblationReportSpec& spec, AblationReport& report);

}  // namespace mf
