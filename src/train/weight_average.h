// An exponential moving average of a model's weights (Polyak averaging, as timm's ModelEmaV2 and
// TensorFlow's ExponentialMovingAverage keep it): after the update of step t (0-based),
//   w̄ ← d_t · w̄ + (1 − d_t) · w,   d_t = min(d, (1 + t) / (10 + t))
// over every parameter and buffer (BatchNorm's running statistics too, as timm does). The ramp
// d_t lets the average forget the random initial weights quickly in a short run; from t ≈ 9d/(1−d)
// on, d_t = d. `train.ema_decay` (e.g. 0.999) turns it on; evaluation during training, and
// everything that loads the checkpoint's backbone (eval, embed, export), then use the average.
#pragma once

#include <cstdint>

#include "layers/module.h"

namespace mf {

class WeightAverage {
 public:
  // `average` has the same architecture as `live` (same names and shapes, checked).
  WeightAverage(const Module& live, Module& average, double decay);
  // w̄ ← w (the start of a run, or a checkpoint without an average).
  void reset();
  // Folds in the weights after the update of step `step` (0-based).
  void update(int64_t step);
  static double decay_at(double decay, int64_t step);

 private:
  const Module& live_;
  Module& average_;
  double decay_;
};

}  // namespace mf
