// `marginface train`: the YAML-driven training loop.
//
// One step = optim.grad_accum batches → loss → backward → (clip) → optimizer step → the head's
// after_step (center loss) → log. Everything a step depends on is a function of (seed, step), so
// a run resumed from a checkpoint continues the very same batches, augmentations, learning rate,
// SphereFace λ and margin warm-up.
//
// Run folder (train.output_dir):
//   config.yaml                  the resolved configuration (overrides applied)
//   log.jsonl                    one record per step {step, epoch, loss, acc, lr, images_per_s,
//                                time (training seconds so far, across resumes)}
//                                and one per evaluation {step, eval: {lfw accuracy, ...}}
//   checkpoints/step_N.h5        every train.checkpoint_every steps (train.keep_checkpoints kept)
//   checkpoints/last.h5          the latest; best.h5 the best by LFW accuracy
#pragma once

#include <string>
#include <vector>

namespace mf {

class Config;

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // "a.b=value"
  std::string resume;                  // checkpoint path, "auto" (last.h5 of the run), or empty
  bool quiet = false;                  // no per-step console lines (tests)
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
  bool finished = false;  // reached the last step (not stopped by a signal or stop_after)
  std::string output_dir;
};

TrainSummary train(const TrainOptions& options);
// The same with the configuration already loaded (options.config_path and overrides unused);
// `marginface ablate` derives one per head.
TrainSummary train(const Config& config, const TrainOptions& options);

// Validates a whole training config without training: every section and key, and the head's
// parameters (by building the head). The errors train() would raise at its start.
void check_config(const Config& config);

// Keys of the reference config (configs/reference.yaml documents each one).
const std::vector<std::string>& config_sections();

}  // namespace mf
