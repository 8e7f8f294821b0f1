// The conv2d op runs Winograd F(4×4, 3×3) (tensor/kernels/winograd.h; its accuracy is tested in
// tests/tensor/test_winograd.cpp) only when it is enabled and no gradient is recorded.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "support/gradcheck.h"
#include "tensor/kernels/winograd.h"

namespace mf::test {
namespace {

TEST(Winograd, conv2d_op_uses_it_only_for_inference_when_enabled) {
  Rng rng(3);
  const Var x = Var(random_tensor(rng, {2, 8, 12, 12}), true);
  const Var w = Var(random_tensor(rng, {8, 8, 3, 3}), true);
  const Conv2dOptions options{.stride = 1, .pad = 1};
  Tensor exact, inference, training;
  {
    NoGradGuard no_grad;
    exact = conv2d(x, w, Var(), options).value();
  }
  kernels::winograd::set_enabled(true);
  {
    NoGradGuard no_grad;
    inference = conv2d(x, w, Var(), options).value();
  }
  training = conv2d(x, w, Var(), options).value();
  kernels::winograd::set_enabled(false);
  double inference_gap = 0, training_gap = 0;
  for (int64_t i = 0; i < exact.numel(); ++i) {
    inference_gap =
        std::max<double>(inference_gap, std::fabs(inference.data()[i] - exact.data()[i]));
    training_gap = std::max<double>(training_gap, std::fabs(training.data()[i] - exact.data()[i]));
  }
  EXPECT_GT(inference_gap, 0.0);        // Winograd ran
  EXPECT_LT(inference_gap, 5e-6 * 72);  // s ≤ 8·9 here; tests/tensor/test_winograd.cpp: 5e-6·s
  EXPECT_EQ(training_gap, 0.0);         // with a tape the exact path runs
}

}  // namespace
}  // namespace mf::test
