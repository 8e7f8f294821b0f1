// The run folder (train.output_dir) and everything written to it, shared by `train` and `ablate`:
//
//   config.yaml              the resolved configuration (overrides applied)
//   log.jsonl                one StepRecord per step and one record per evaluation
//                            ({step, eval: {...}} for eval.lfw, {step, target, eval} per target)
//   checkpoints/step_N.h5    every train.checkpoint_every steps, the newest keep_checkpoints kept
//   checkpoints/last.h5      the newest checkpoint; best.h5 the best by evaluation score (the score
//                            itself is stored in each checkpoint's /meta best_score)
//   .lock                    held (flock) while a training runs in the folder
//
// Writes are atomic (temporary file + rename) and checked: a full disk fails with a message
// naming the file and never shortens log.jsonl.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util/json.h"

namespace mf {

// One line of log.jsonl per optimizer step.
struct StepRecord {
  int64_t step = 0;   // steps done, this one included
  int64_t epoch = 0;  // the epoch the step belongs to
  double loss = 0, acc = 0, lr = 0;
  double images_per_s = 0;  // over the progress window that ends with this step
  double time = 0;          // training seconds so far, across resumes

  json::Value to_json() const;
  // nullopt for a record that is not a step record (an evaluation).
  static std::optional<StepRecord> from_json(const json::Value& record);
};

// The step records of a log.jsonl in file order; evaluation records and a torn last line (a kill
// mid-write) are skipped. A missing file gives no records.
std::vector<StepRecord> read_step_records(const std::string& log_path);

class RunFolder {
 public:
  // Creates the folder and checkpoints/ and takes the folder's lock: a second training started on
  // the same folder fails with a message naming the holder's PID.
  explicit RunFolder(const std::string& dir);
  ~RunFolder();
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;

  const std::string& dir() const { return dir_; }
  std::string checkpoint_dir() const;
  std::string last_checkpoint() const;  // checkpoints/last.h5
  std::string best_checkpoint() const;  // checkpoints/best.h5
  std::string log_path() const;
  bool has_run() const;  // last.h5 exists

  void write_config(const std::string& yaml);

  // A resumed run repeats the steps after its checkpoint: drops their records (written before the
  // run was stopped), so the log holds each step once. Returns the `time` of the last kept step
  // record (0 if none): the training seconds of the earlier segments.
  double truncate_log_after(int64_t step);
  void append(const json::Value& record);

  // Saves checkpoints/step_N.h5 through `save(path)`, makes it last.h5, and removes all but the
  // newest `keep` step files.
  void save_step_checkpoint(int64_t step, int64_t keep,
                            const std::function<void(const std::string&)>& save);
  // Replaces last.h5 through `save(path)` (after an evaluation adds its threshold and score).
  void save_last(const std::function<void(const std::string&)>& save);
  void copy_last_to_best();

 private:
  std::string dir_;
  int lock_fd_ = -1;
};

}  // namespace mf
