#include "train/progress.h"

#include <algorithm>
#include <cstdio>

namespace mf {

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600),
                (long long)(s / 60 % 60), (long long)(s % 60));
  return buf;
}

Progress::Progress(int64_t first_step, int64_t total_steps, int64_t log_every, bool quiet)
    : first_step_(first_step),
      total_steps_(total_steps),
      log_every_(log_every),
      quiet_(quiet),
      start_(Clock::now()),
      window_start_(start_) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

double Progress::count(double loss, double accuracy, int64_t images) {
  window_loss_ += loss;
  window_acc_ += accuracy;
  window_images_ += static_cast<double>(images);
  ++window_steps_;
  const double elapsed = std::chrono::duration<double>(Clock::now() - window_start_).count();
  return window_images_ / std::max(elapsed, 1e-9);
}

void Progress::report(int64_t step, int64_t epoch, double lr) {
  if (step % log_every_ != 0 && step != total_steps_) return;
  if (!quiet_ && window_steps_ > 0) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - window_start_).count();
    const double rate = window_images_ / std::max(elapsed, 1e-9);
    const double done = double(step - first_step_), left = double(total_steps_ - step);
    const double eta = done > 0 ? seconds() / done * left : 0;
    std::printf("step %lld/%lld  epoch %lld  loss %.4f  acc %.3f  lr %.5f  %.1f img/s  ETA %s\n",
                (long long)step, (long long)total_steps_, (long long)epoch,
                window_loss_ / double(window_steps_), window_acc_ / double(window_steps_), lr, rate,
                format_duration(eta).c_str());
  }
  std::fflush(stdout);
  window_loss_ = window_acc_ = window_images_ = 0;
  window_steps_ = 0;
  window_start_ = Clock::now();
}

}  // namespace mf
