#include "train/evaluation.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "eval/embed.h"
#include "eval/verification.h"

namespace mf {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

bool every(int64_t period, int64_t step, bool last_step) {
  return last_step || (period > 0 && step % period == 0);
}

}  // namespace

TrainingEvaluation::TrainingEvaluation(const TrainSettings& s, bool crop_center)
    : s_(s), crop_center_(crop_center) {
  if (!s.lfw_pairs.empty())
    lfw_ = std::make_unique<eval::PairList>(eval::read_lfw_pairs(s.lfw_pairs, s.lfw_root));
  for (const auto& t : s.targets)
    targets_.emplace_back(target_name(t), std::filesystem::path(t).extension() == ".bin"
                                              ? eval::read_bin_pairs(t)
                                              : eval::read_lfw_pairs(t, s.targets_root));
}

TrainingEvaluation::~TrainingEvaluation() = default;

bool TrainingEvaluation::due(int64_t step, bool last_step) const {
  return (lfw_ && every(s_.lfw_every, step, last_step)) ||
         (!targets_.empty() && every(s_.targets_every, step, last_step));
}

EvalOutcome TrainingEvaluation::run(Backbone& backbone, int64_t step, bool last_step) const {
  EvalOutcome out;
  if (lfw_ && every(s_.lfw_every, step, last_step)) {
    eval::PairEvalOptions options;
    options.embed.batch_size = s_.lfw_batch;
    options.embed.flip = s_.lfw_flip;
    options.embed.crop_center = crop_center_;
    options.skip_missing = s_.lfw_skip_missing;
    const auto t0 = Clock::now();
    const eval::PairEvaluation e = eval::evaluate_pairs(backbone, *lfw_, options);
    const auto& r = e.result;
    std::printf(
        "[eval] step %lld  LFW %s  accuracy %.4f ± %.4f  AUC %.4f  EER %.4f  TAR@FAR=1e-3 %.4f  "
        "(%.0f s)\n",
        (long long)step, lfw_->protocol.c_str(), r.accuracy_mean, r.accuracy_std, r.auc, r.eer,
        r.tar_at_far.empty() ? 0.0 : r.tar_at_far[0].tar, seconds_since(t0));
    json::Value record = json::Value::object();
    record.set("step", step);
    record.set("eval", eval::to_json(r, {lfw_->protocol, s_.lfw_flip, "", e.missing}));
    out.records.push_back(std::move(record));
    out.threshold = r.threshold_mean();
    out.lfw = {r.accuracy_mean, r.accuracy_std};
    if (targets_.empty()) out.score = r.accuracy_mean;  // otherwise eval.best decides
  }
  if (!targets_.empty() && every(s_.targets_every, step, last_step)) {
    eval::PairEvalOptions options;
    options.embed.batch_size = s_.targets_batch;
    options.embed.flip = s_.targets_flip;
    options.embed.crop_center = crop_center_;
    const auto t0 = Clock::now();
    std::string line = "[eval] step " + std::to_string(step);
    double sum = 0, chosen = 0;
    char buf[128];
    for (const auto& [name, list] : targets_) {
      const eval::PairEvaluation e = eval::evaluate_pairs(backbone, list, options);
      const auto& r = e.result;
      json::Value record = json::Value::object();
      record.set("step", step);
      record.set("target", name);
      record.set("eval", eval::to_json(r, {list.protocol, s_.targets_flip, "", e.missing}));
      out.records.push_back(std::move(record));
      std::snprintf(buf, sizeof buf, "  %s %.4f ± %.4f", name.c_str(), r.accuracy_mean,
                    r.accuracy_std);
      line += buf;
      sum += r.accuracy_mean;
      if (name == s_.best) chosen = r.accuracy_mean;
      out.targets.emplace_back(name, r.accuracy_mean);
    }
    const double mean = sum / double(targets_.size());
    out.score = s_.best == "mean" ? mean : chosen;
    std::snprintf(buf, sizeof buf, "  mean %.4f  (%.0f s)", mean, seconds_since(t0));
    std::printf("%s%s\n", line.c_str(), buf);
  }
  std::fflush(stdout);
  return out;
}

}  // namespace mf
