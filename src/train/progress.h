// Training progress on the console: one line every train.log_every steps with the window's mean
// loss and accuracy, throughput and the ETA of the run.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace mf {

std::string format_duration(double seconds);  // h:mm:ss

class Progress {
 public:
  Progress(int64_t first_step, int64_t total_steps, int64_t log_every, bool quiet);

  // Counts a finished step; returns the images per second of the window so far (this step's
  // StepRecord::images_per_s).
  double count(double loss, double accuracy, int64_t images);
  // Prints the window's line when `step` ends one (every log_every steps and the last), then
  // starts a new window.
  void report(int64_t step, int64_t epoch, double lr);
  double seconds() const;  // since the first step of this process

 private:
  using Clock = std::chrono::steady_clock;
  int64_t first_step_, total_steps_, log_every_;
  bool quiet_;
  Clock::time_point start_, window_start_;
  double window_loss_ = 0, window_acc_ = 0, window_images_ = 0;
  int64_t window_steps_ = 0;
};

}  // namespace mf
