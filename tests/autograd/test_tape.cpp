// The tape itself: accumulation, zeroing, no-grad mode, shared subexpressions, freeing, errors.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "autograd/ops.h"
#include "support/gradcheck.h"
#include "tensor/allocator.h"
#include "tensor/parallel.h"
#include "util/error.h"

namespace mf::test {
namespace {

TEST(Tape, gradient_of_shared_subexpression_sums_both_paths) {
  // y = Σ (x·x + x) → dy/dx = 2x + 1, with x used on three paths.
  Var x(Tensor::from({3}, {1.0f, -2.0f, 0.5f}), true);
  Var y = sum(add(mul(x, x), x));
  backward(y);
  EXPECT_FLOAT_EQ(x.grad().data()[0], 3.0f);
  EXPECT_FLOAT_EQ(x.grad().data()[1], -3.0f);
  EXPECT_FLOAT_EQ(x.grad().data()[2], 2.0f);
}

TEST(Tape, leaf_gradients_accumulate_until_zeroed) {
  Var x(Tensor::from({2}, {1.0f, 2.0f}), true);
  backward(sum(affine(x, 3.0f)));
  backward(sum(affine(x, 3.0f)));
  EXPECT_FLOAT_EQ(x.grad().data()[1], 6.0f);
  x.zero_grad();
  EXPECT_FLOAT_EQ(x.grad().data()[1], 0.0f);
  backward(sum(affine(x, 2.0f)));
  EXPECT_FLOAT_EQ(x.grad().data()[0], 2.0f);
}

TEST(Tape, no_grad_records_nothing) {
  Var x(Tensor::from({2}, {1.0f, 2.0f}), true);
  Var y;
  {
    NoGradGuard guard;
    y = sum(mul(x, x));
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(grad_enabled());
  backward(y);  // nothing to do
  EXPECT_FALSE(x.grad().defined());
}

TEST(Tape, constants_get_no_gradient) {
  Var w(Tensor::from({2}, {1.0f, 2.0f}), true);
  Var c(Tensor::from({2}, {3.0f, 4.0f}), false);
  backward(sum(mul(w, c)));
  EXPECT_FLOAT_EQ(w.grad().data()[1], 4.0f);
  EXPECT_FALSE(c.grad().defined());
}

TEST(Tape, graph_is_freed_after_backward) {
  Var x(Tensor::from({2}, {1.0f, 2.0f}), true);
  Var h = mul(x, x);
  Var y = sum(h);
  std::weak_ptr<Node> node = h.state()->tape->producer;
  ASSERT_FALSE(node.expired());
  backward(y);
  EXPECT_TRUE(node.expired());       // saved tensors released
  EXPECT_FALSE(h.grad().defined());  // intermediate gradients are not kept
}

TEST(Tape, an_input_no_backward_needs_is_freed_after_the_forward) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan build: the allocator does not count buffers";
#endif
  // conv → BN: the BN computes its backward from its output, so the conv's output (2 MiB) must
  // not outlive the forward — the tape keeps gradient slots, not values.
  Var x(Tensor::full({2, 8, 128, 128}, 0.5f), true);  // 1 MiB
  Var w(Tensor::full({16, 8, 1, 1}, 0.1f), true);
  Var gamma(Tensor::full({16}, 1.0f), true), beta(Tensor::zeros({16}), true);
  const size_t before = storage::stats().live_bytes;
  Var y = batch_norm(conv2d(x, w, Var()), gamma, beta, Tensor(), Tensor(), {.training = true});
  const size_t one_output = size_t{2} * 16 * 128 * 128 * sizeof(float);
  EXPECT_EQ(storage::stats().live_bytes - before, one_output);  // y only, not the conv output too
  backward(sum(y));
  EXPECT_TRUE(x.grad().defined());
  EXPECT_TRUE(w.grad().defined());
}

TEST(Tape, shape_errors_name_the_op_and_both_shapes) {
  Var a(Tensor::zeros({2, 3}), true), b(Tensor::zeros({4, 5}), true);
  try {
    matmul(a, b);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("matmul"), std::string::npos) << m;
    EXPECT_NE(m.find("(2, 3)"), std::string::npos) << m;
    EXPECT_NE(m.find("(4, 5)"), std::string::npos) << m;
  }
  EXPECT_THROW(add(Var(Tensor::zeros({2, 3})), Var(Tensor::zeros({3, 2}))), Error);
  EXPECT_THROW(conv2d(Var(Tensor::zeros({1, 3, 5, 5})), Var(Tensor::zeros({4, 2, 3, 3})), Var()),
               Error);
  EXPECT_THROW(cross_entropy(Var(Tensor::zeros({2, 3})), {0, 3}), Error);  // label out of range
  EXPECT_THROW(acos(Var(Tensor::full({1}, 1.5f))), Error);
}

TEST(Tape, anomaly_mode_names_the_op) {
  set_anomaly_detection(true);
  try {
    sqrt(Var(Tensor::full({2}, -1.0f)));
    set_anomaly_detection(false);
    FAIL() << "no error";
  } catch (const Error& e) {
    set_anomaly_detection(false);
    EXPECT_NE(std::string(e.what()).find("sqrt"), std::string::npos) << e.what();
  }
}

// Kernels give the same result on 1 and 2 threads (up to reassociation in the GEMM).
TEST(Threads, conv_and_batch_norm_agree_across_thread_counts) {
  Rng rng(3);
  const Tensor x = random_tensor(rng, {4, 8, 14, 14}), w = random_tensor(rng, {16, 8, 3, 3});
  auto run = [&](int threads) {
    set_num_threads(threads);
    Var xv(x.clone(), true), wv(w.clone(), true);
    Var y = batch_norm(conv2d(xv, wv, Var(), {.stride = 1, .pad = 1}), Var(), Var(), Tensor(),
                       Tensor(), {});
    backward(sum(mul(y, y)));
    return std::vector<Tensor>{y.value(), xv.grad(), wv.grad()};
  };
  const auto one = run(1), two = run(2);
  set_num_threads(0);
  for (size_t i = 0; i < one.size(); ++i)
    for (int64_t k = 0; k < one[i].numel(); ++k)
      ASSERT_NEAR(one[i].data()[k], two[i].data()[k], 1e-4 * (1 + std::abs(one[i].data()[k])))
          << "tensor " << i << " index " << k;
}

// The per-layer FLOP counts bench's GFLOP/s columns divide by, against hand counts:
// conv2d 2·N·O·Ho·Wo·(C/G)·kH·kW, linear 2·N·out·in, matmul 2·M·N·K (transposed too); other ops 0.
TEST(Profile, matrix_ops_count_twice_their_multiply_adds) {
  Rng rng(1);
  auto random = [&](Shape s) {
    Tensor t = Tensor::empty(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(rng.uniform(-1, 1));
    return Var(t);
  };
  set_profiling(true);
  profile_reset();
  Conv2dOptions strided;
  strided.stride = 2;
  strided.pad = 1;
  const Var x = random({2, 4, 9, 9});
  const Var y = conv2d(x, random({6, 4, 3, 3}), Var(), strided);  // (2, 6, 5, 5)
  (void)linear(random({3, 7}), random({5, 7}));                   // (3, 5)
  (void)matmul(random({8, 3}), random({8, 4}), true, false);      // (3, 8)ᵀ… M 3, K 8, N 4
  (void)relu(y);
  const auto report = profile_report();
  set_profiling(false);
  std::map<std::string, double> flop;
  for (const auto& t : report) flop[t.op] = t.forward_flop;
  EXPECT_DOUBLE_EQ(flop["conv2d"], 2.0 * 2 * 6 * 5 * 5 * 4 * 3 * 3);
  EXPECT_DOUBLE_EQ(flop["linear"], 2.0 * 3 * 5 * 7);
  EXPECT_NEAR(flop["matmul"], 2.0 * 3 * 4 * 8, 1e-9);
  EXPECT_EQ(flop["relu"], 0.0);
}

}  // namespace
}  // namespace mf::test
