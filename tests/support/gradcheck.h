// Numerical gradient checks.
//
// Two levels, as the style guide recommends ("math in double, wiring in float"):
//  * check_kernel_gradients: a kernel's forward and backward run in double; central differences
//    with a small step must agree with the analytic gradient to ~1e-6 relative. This catches small
//    missing terms that float32 tolerances would hide.
//  * check_var_gradients: the float32 autograd op (closures, broadcasting, accumulation) against
//    central differences at a float-appropriate step and tolerance; catches O(1) wiring errors.
// Both use the objective Σ f(inputs) ⊙ R with a fixed random R (dlib's test_layer), so one
// backward checks every output, and the error scale max(|numeric|, |analytic|, floor) (Caffe).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/var.h"
#include "tensor/rng.h"

namespace mf::test {

using Vec = std::vector<double>;

struct KernelGradCheck {
  std::vector<Vec> inputs;  // the point at which to differentiate
  std::vector<bool> check;  // which inputs to perturb (default: all)
  // y = f(inputs)
  std::function<Vec(const std::vector<Vec>&)> forward;
  // Gradients of Σ y ⊙ dy for every input (same sizes as inputs; unchecked ones may be empty).
  std::function<std::vector<Vec>(const std::vector<Vec>&, const Vec& dy)> backward;
};

struct GradCheckOptions {
  double eps = 1e-5;        // central-difference step: truncation ~eps², rounding ~1e-16·|f|/eps
  double tolerance = 1e-6;  // on |analytic − numeric| / max(|analytic|, |numeric|, floor)
  double floor = 1e-3;      // keeps the relative error meaningful where both are ~0
  int max_coords = 400;     // coordinates sampled per input
  uint64_t seed = 1701;
};

::testing::AssertionResult check_kernel_gradients(const KernelGradCheck& op,
                                                  const GradCheckOptions& options = {});

// Float32 autograd check of f at `inputs` (all treated as requiring a gradient unless listed in
// `constant`).
struct VarGradCheckOptions {
  double eps = 1e-2;
  double tolerance = 2e-2;
  double floor = 1e-2;
  int max_coords = 200;
  uint64_t seed = 1701;
  std::vector<bool> constant;
};
::testing::AssertionResult check_var_gradients(const std::function<Var(const std::vector<Var>&)>& f,
                                               const std::vector<Tensor>& inputs,
                                               const VarGradCheckOptions& options = {});

// Random helpers.
Vec random_vec(Rng& rng, size_t n, double lo = -1.0, double hi = 1.0);
// Values with |v| ≥ margin, for ops with a kink at 0 (ReLU, PReLU).
Vec random_away_from_zero(Rng& rng, size_t n, double margin = 0.05);
Tensor to_tensor(const Vec& v, const Shape& shape);
Tensor random_tensor(Rng& rng, const Shape& shape, double lo = -1.0, double hi = 1.0);

}  // namespace mf::test
