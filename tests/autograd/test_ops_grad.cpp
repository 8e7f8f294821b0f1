// Float32 gradient checks of every autograd op (the wiring: closures, broadcasting, slot indices,
// accumulation). The math of each kernel is checked in double in tests/tensor/test_kernel_grad.cpp;
// here a step of 1e-2 and a 2 % tolerance catch O(1) wiring errors without float noise.
#include <gtest/gtest.h>

#include "autograd/margin_ops.h"
#include "autograd/ops.h"
#include "support/gradcheck.h"

namespace mf::test {
namespace {

using Inputs = std::vector<Var>;

Tensor away_from_zero(Rng& rng, const Shape& s) {
  return to_tensor(random_away_from_zero(rng, s.numel(), 0.1), s);
}

TEST(OpsVar, matmul_grad) {
  Rng rng(1);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Shape a = ta ? Shape{4, 3} : Shape{3, 4}, b = tb ? Shape{5, 4} : Shape{4, 5};
      EXPECT_TRUE(check_var_gradients([&](const Inputs& v) { return matmul(v[0], v[1], ta, tb); },
                                      {random_tensor(rng, a), random_tensor(rng, b)}))
          << ta << tb;
    }
}

TEST(OpsVar, linear_grad) {
  Rng rng(2);
  EXPECT_TRUE(check_var_gradients(
      [](const Inputs& v) { return linear(v[0], v[1], v[2]); },
      {random_tensor(rng, {3, 6}), random_tensor(rng, {4, 6}), random_tensor(rng, {4})}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return linear(v[0], v[1]); },
                                  {random_tensor(rng, {3, 6}), random_tensor(rng, {4, 6})}));
}

TEST(OpsVar, conv2d_grad) {
  Rng rng(3);
  EXPECT_TRUE(check_var_gradients(
      [](const Inputs& v) { return conv2d(v[0], v[1], v[2], {.stride = 2, .pad = 1}); },
      {random_tensor(rng, {2, 3, 7, 6}), random_tensor(rng, {4, 3, 3, 3}),
       random_tensor(rng, {4})}));
  EXPECT_TRUE(check_var_gradients(
      [](const Inputs& v) {
        return conv2d(v[0], v[1], Var(), {.stride = 1, .pad = 1, .groups = 4});
      },
      {random_tensor(rng, {2, 4, 5, 5}), random_tensor(rng, {4, 1, 3, 3})}));
}

TEST(OpsVar, batch_norm_grad_train_eval_frozen) {
  Rng rng(4);
  for (bool training : {true, false}) {
    Tensor rm = random_tensor(rng, {3}, -0.2, 0.2), rv = random_tensor(rng, {3}, 0.5, 1.5);
    EXPECT_TRUE(check_var_gradients(
        [&](const Inputs& v) {
          return batch_norm(v[0], v[1], v[2], rm.clone(), rv.clone(), {.training = training});
        },
        {random_tensor(rng, {4, 3, 2, 3}), random_tensor(rng, {3}, 0.5, 1.5),
         random_tensor(rng, {3})}))
        << "training=" << training;
  }
  // BatchNorm1d with a frozen scale: the weight is constant, the other gradients still flow.
  VarGradCheckOptions frozen;
  frozen.constant = {false, true, false};
  EXPECT_TRUE(check_var_gradients(
      [](const Inputs& v) {
        return batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), {.training = true});
      },
      {random_tensor(rng, {6, 5}), Tensor::full({5}, 1.0f), random_tensor(rng, {5})}, frozen));
}

// (N, C, H, W) whose every channel holds ±(0.5 + 0.1·k) in a random order: zero mean, and after
// normalisation every value is at least ~0.3 from 0, so with |β| ≤ 0.05 no BN output sits near
// the PReLU kink where finite differences break down.
Tensor symmetric_channels(Rng& rng, int64_t N, int64_t C, int64_t H, int64_t W) {
  const int64_t per_channel = N * H * W;  // even
  Tensor t = Tensor::empty({N, C, H, W});
  for (int64_t c = 0; c < C; ++c) {
    std::vector<float> values;
    for (int64_t k = 0; k < per_channel / 2; ++k) {
      values.push_back(0.5f + 0.1f * k);
      values.push_back(-(0.5f + 0.1f * k));
    }
    for (int64_t i = per_channel - 1; i > 0; --i)
      std::swap(values[i], values[static_cast<size_t>(rng.below(i + 1))]);
    for (int64_t n = 0, i = 0; n < N; ++n)
      for (int64_t s = 0; s < H * W; ++s) t.data()[(n * C + c) * H * W + s] = values[i++];
  }
  return t;
}

TEST(OpsVar, batch_norm_prelu_grad_and_same_values_as_the_two_ops) {
  Rng rng(41);
  for (bool training : {true, false}) {
    Tensor rm = random_tensor(rng, {3}, -0.2, 0.2), rv = random_tensor(rng, {3}, 0.5, 1.5);
    const BatchNormOptions o{.training = training};
    auto fused = [&](const Inputs& v) {
      return batch_norm_prelu(v[0], v[1], v[2], rm.clone(), rv.clone(), o, v[3]);
    };
    // In eval mode the running statistics normalise, so keep them close to the batch's.
    rm = Tensor::zeros({3});
    rv = random_tensor(rng, {3}, 0.8, 1.2);
    const std::vector<Tensor> inputs{
        symmetric_channels(rng, 4, 3, 3, 2), random_tensor(rng, {3}, 0.5, 1.5),
        random_tensor(rng, {3}, -0.05, 0.05), random_tensor(rng, {3}, 0.1, 0.4)};
    EXPECT_TRUE(check_var_gradients(fused, inputs)) << "training=" << training;

    // Same output and gradients as prelu(batch_norm(...)), to float rounding.
    std::vector<Var> a, b;
    for (const Tensor& t : inputs) {
      a.emplace_back(t.clone(), true);
      b.emplace_back(t.clone(), true);
    }
    Var ya = batch_norm_prelu(a[0], a[1], a[2], rm.clone(), rv.clone(), o, a[3]);
    Var yb = prelu(batch_norm(b[0], b[1], b[2], rm.clone(), rv.clone(), o), b[3]);
    const Tensor seed = random_tensor(rng, ya.shape());
    backward(ya, seed);
    backward(yb, seed);
    for (int64_t i = 0; i < ya.value().numel(); ++i)
      EXPECT_NEAR(ya.value().data()[i], yb.value().data()[i], 1e-6);
    for (size_t k = 0; k < a.size(); ++k)
      for (int64_t i = 0; i < a[k].grad().numel(); ++i)
        EXPECT_NEAR(a[k].grad().data()[i], b[k].grad().data()[i], 2e-5) << "input " << k;
  }
}

TEST(OpsVar, batch_norm_prelu_falls_back_when_not_invertible) {
  // A zero slope (PReLU = ReLU) or a zero scale cannot be undone from the output: the op must
  // then keep what the two separate ops keep and still give their gradients.
  Rng rng(42);
  for (int which : {0, 1}) {
    Tensor gamma = random_tensor(rng, {3}, 0.5, 1.5), alpha = random_tensor(rng, {3}, 0.1, 0.4);
    (which == 0 ? alpha : gamma).data()[1] = 0.0f;
    VarGradCheckOptions constant_gamma;
    constant_gamma.constant = {false, which == 1, false, false};
    EXPECT_TRUE(check_var_gradients(
        [](const Inputs& v) {
          return batch_norm_prelu(v[0], v[1], v[2], Tensor(), Tensor(), {.training = true}, v[3]);
        },
        {symmetric_channels(rng, 4, 3, 2, 2), gamma, random_tensor(rng, {3}, -0.05, 0.05), alpha},
        constant_gamma))
        << (which == 0 ? "alpha" : "gamma") << " has a zero";
  }
}

TEST(OpsVar, add_of_a_value_with_itself_and_a_shared_input) {
  // add hands dy's buffer to its first input: the gradients must still be right when both inputs
  // are the same Var and when an input also feeds another op (a residual shortcut).
  Rng rng(43);
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return add(v[0], v[0]); },
                                  {random_tensor(rng, {2, 3})}));
  EXPECT_TRUE(check_var_gradients(
      [](const Inputs& v) {
        Var h = mul(v[0], v[1]);
        return mul(add(h, v[0]), add(v[0], h));
      },
      {random_tensor(rng, {2, 3}), random_tensor(rng, {2, 3})}));
}

TEST(OpsVar, prelu_relu_sigmoid_grad) {
  Rng rng(5);
  EXPECT_TRUE(
      check_var_gradients([](const Inputs& v) { return prelu(v[0], v[1]); },
                          {away_from_zero(rng, {2, 3, 4, 2}), random_tensor(rng, {3}, 0.1, 0.4)}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return relu(v[0]); },
                                  {away_from_zero(rng, {3, 7})}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return sigmoid(v[0]); },
                                  {random_tensor(rng, {3, 7}, -3, 3)}));
}

TEST(OpsVar, add_sub_mul_broadcast_grad) {
  Rng rng(6);
  const Tensor a = random_tensor(rng, {2, 3, 4, 5}), c = random_tensor(rng, {1, 3, 1, 1}),
               se = random_tensor(rng, {2, 3, 1, 1});
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return add(v[0], v[1]); }, {a, c}));
  EXPECT_TRUE(
      check_var_gradients([](const Inputs& v) { return add(v[1], v[0]); }, {a, c}));  // swapped
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return sub(v[0], v[1]); }, {a, c}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return mul(v[0], v[1]); }, {a, se}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return mul(v[1], v[0]); }, {a, se}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return mul(v[0], v[1]); },
                                  {random_tensor(rng, {3, 4}), random_tensor(rng, {1, 1})}));
}

TEST(OpsVar, elementwise_math_grad) {
  Rng rng(7);
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return affine(v[0], 2.5f, -1.0f); },
                                  {random_tensor(rng, {9})}));
  Tensor x = random_tensor(rng, {3, 5}, -0.4, 0.4);
  x.data()[0] = 0.9f;  // clamped away: zero gradient
  x.data()[1] = -0.9f;
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return clamp(v[0], -0.5f, 0.5f); }, {x}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return cos(v[0]); },
                                  {random_tensor(rng, {11}, -3, 3)}));
  VarGradCheckOptions fine;
  fine.eps = 1e-3;  // acos curves sharply near ±0.9
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return acos(v[0]); },
                                  {random_tensor(rng, {11}, -0.9, 0.9)}, fine));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return sqrt(v[0]); },
                                  {random_tensor(rng, {11}, 0.2, 2)}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return reciprocal(v[0]); },
                                  {random_tensor(rng, {11}, 0.5, 3)}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return reciprocal(v[0]); },
                                  {random_tensor(rng, {11}, -3, -0.5)}));
}

// Sub-center pooling: values 0.1 apart, so a 1e-2 step never changes a group's winner.
TEST(OpsVar, group_max_grad) {
  Tensor x = Tensor::empty({3, 12});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 17 % 36) * 0.1);
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return group_max(v[0], 3); }, {x}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return group_max(v[0], 4); }, {x}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return group_max(v[0], 1); }, {x}));
}

TEST(OpsVar, pooling_grad) {
  Rng rng(8);
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return global_avg_pool(v[0]); },
                                  {random_tensor(rng, {2, 3, 4, 5})}));
  // Distinct values far apart relative to the step, so the argmax never flips.
  Tensor x = Tensor::empty({2, 2, 5, 6});
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data()[i] = static_cast<float>((i * 37 % x.numel()) * 0.1);
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return max_pool2d(v[0], 3, 2, 1); }, {x}));
}

TEST(OpsVar, dropout_reshape_flatten_grad) {
  Rng rng(9);
  EXPECT_TRUE(check_var_gradients(
      [](const Inputs& v) {
        Rng mask_rng(42);  // the same mask at every evaluation
        return dropout(v[0], 0.4f, true, mask_rng);
      },
      {random_tensor(rng, {4, 6})}));
  EXPECT_TRUE(check_var_gradients(
      [](const Inputs& v) {
        return reshape(v[0], {6, 4});
      },
      {random_tensor(rng, {4, 6})}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return flatten(v[0]); },
                                  {random_tensor(rng, {2, 3, 2, 2})}));
}

TEST(OpsVar, rows_and_losses_grad) {
  Rng rng(10);
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return l2_normalize(v[0]); },
                                  {random_tensor(rng, {4, 6})}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return log_softmax(v[0]); },
                                  {random_tensor(rng, {3, 7}, -3, 3)}));
  const Labels labels{2, 0, 6};
  EXPECT_TRUE(check_var_gradients([&](const Inputs& v) { return cross_entropy(v[0], labels); },
                                  {random_tensor(rng, {3, 7}, -3, 3)}));
  EXPECT_TRUE(
      check_var_gradients([](const Inputs& v) { return sum(v[0]); }, {random_tensor(rng, {3, 4})}));
  EXPECT_TRUE(check_var_gradients([](const Inputs& v) { return mean(v[0]); },
                                  {random_tensor(rng, {3, 4})}));
  EXPECT_TRUE(check_var_gradients([&](const Inputs& v) { return gather_target(v[0], labels); },
                                  {random_tensor(rng, {3, 7})}));
  EXPECT_TRUE(
      check_var_gradients([&](const Inputs& v) { return replace_target(v[0], v[1], labels); },
                          {random_tensor(rng, {3, 7}), random_tensor(rng, {3})}));
}

// A composed margin-head expression (ArcFace's target logit from primitives): the ops chain.
TEST(OpsVar, composed_arcface_target_grad) {
  Rng rng(11);
  const Labels labels{1, 3, 0};
  EXPECT_TRUE(check_var_gradients(
      [&](const Inputs& v) {
        Var cosine = clamp(linear(l2_normalize(v[0]), l2_normalize(v[1])), -1.0f, 1.0f);  // (N, K)
        Var theta = acos(gather_target(cosine, labels));                                  // (N)
        Var target = cos(affine(theta, 1.0f, 0.5f));  // cos(θ + m)
        return cross_entropy(affine(replace_target(cosine, target, labels), 8.0f), labels);
      },
      {random_tensor(rng, {3, 5}), random_tensor(rng, {4, 5})}));
}

}  // namespace
}  // namespace mf::test
