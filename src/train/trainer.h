// `marginface train`: the YAML-driven training loop.
//
// One step = optim.grad_accum batches → loss → backward → (clip) → optimizer step → the head's
// after_step (center loss) → log. Everything a step depends on is a function of (seed, step), so
// a run resumed from a checkpoint continues the very same batches, augmentations, learning rate,
// SphereFace λ and margin warm-up.
//
// train() is orchestration over named parts: TrainSettings (settings.h) → RunFolder
// (run_folder.h: lock, log, checkpoints) → train_step() per step → Progress (progress.h) →
// TrainingEvaluation (evaluation.h). Every way out of the loop (the last step, a signal, too many
// non-finite losses) goes through the same final code.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "train/settings.h"

namespace mf {

class Backbone;
class Config;
class DataLoader;
class Head;
class LrSchedule;
class Optimizer;

// What one optimizer step trains.
struct Trainee {
  Backbone& backbone;
  Head& head;
  Optimizer& optimizer;
  const LrSchedule& schedule;
};

struct StepResult {
  bool finite = true;             // false: a non-finite loss, the update was skipped
  double loss = 0, accuracy = 0;  // means over the step's batches
  int64_t images = 0;
  double lr = 0;  // the learning rate of the update
};

class GradientSync;
class SplitClassWeights;
namespace dist {
class Communicator;
}
// A data-parallel run's processes (train/data_parallel.h); absent for one process.
struct DataParallel {
  dist::Communicator& comm;
  GradientSync& gradients;
  SplitClassWeights* split = nullptr;  // Partial FC's class weights split over the processes
};

// One optimizer step: grad_accum batches from `loader`, backward, clip, update. With `dp`, each
// batch is this process's slice of the global batch and the result (loss, accuracy, images) is
// the global batch's.
StepResult train_step(Trainee& trainee, DataLoader& loader, int64_t step, int64_t grad_accum,
                      double clip_grad_norm, DataParallel* dp = nullptr);

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // "a.b=value"
  std::string resume;                  // checkpoint path, "auto" (last.h5 of the run), or empty
  bool quiet = false;                  // no per-step console lines (tests)
  bool resume_changed = false;         // resume even if the data or batch settings changed
  int64_t stop_after = 0;  // > 0: stop (as if killed) right after this step's checkpoint
};

struct TrainSummary {
  int64_t steps = 0;
  double final_loss = 0, final_accuracy = 0;
  double images_per_s = 0;
  double wall_seconds = 0;
  int64_t bad_images = 0;
  int64_t skipped_steps = 0;                                    // non-finite loss
  double lfw_accuracy = -1, lfw_std = 0;                        // last evaluation, −1 if none
  std::vector<std::pair<std::string, double>> target_accuracy;  // eval.targets, last evaluation
  // Reached the last step; false when stopped by a signal or stop_after (`marginface train` exits
  // 3 then, 0 when finished; a failed run throws, exit 1).
  bool finished = false;
  std::string output_dir;
};

TrainSummary train(const TrainOptions& options);
// The same with the configuration already loaded (options.config_path and overrides unused);
// `marginface ablate` derives one per head.
TrainSummary train(const Config& config, const TrainOptions& options);

// Validates a whole training config without training: every section and key, and the head's
// parameters (by building the head). The errors train() would raise at its start.
void check_config(const Config& config);

}  // namespace mf
