// Evaluation during training: eval.lfw (one LFW pairs list, every eval.lfw.every steps) and
// eval.targets (.bin packs and pair lists, every eval.every_steps), each at the last step too.
// Each evaluation prints one progress line and gives the log records to append; the score that
// chooses best.h5 is eval.best over the targets ("mean" or one target), or the LFW accuracy when
// no targets are configured.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eval/pairs.h"
#include "train/settings.h"
#include "util/json.h"

namespace mf {

class Backbone;

struct EvalOutcome {
  std::vector<json::Value> records;              // for log.jsonl, in order
  std::optional<double> threshold;               // LFW's mean fold threshold, when it ran
  std::optional<double> score;                   // for best.h5, when a scoring evaluation ran
  std::optional<std::pair<double, double>> lfw;  // accuracy mean, std
  std::vector<std::pair<std::string, double>> targets;  // (name, accuracy) when targets ran
};

class TrainingEvaluation {
 public:
  // Reads the pair lists and packs named by the settings (errors name the file).
  TrainingEvaluation(const TrainSettings& settings, bool crop_center);
  ~TrainingEvaluation();

  bool due(int64_t step, bool last_step) const;
  // The evaluations due at `step` (the backbone's train/eval mode is restored after).
  EvalOutcome run(Backbone& backbone, int64_t step, bool last_step) const;

 private:
  const TrainSettings& s_;
  bool crop_center_;
  std::unique_ptr<eval::PairList> lfw_;
  std::vector<std::pair<std::string, eval::PairList>> targets_;  // (name, pairs)
};

}  // namespace mf
