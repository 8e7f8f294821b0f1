// SyncBN (set_batch_norm_sync): batch norm over the slices of a batch held by several processes,
// here two threads whose ChannelSum adds their per-channel sums, equals batch norm over the whole
// batch — outputs, input gradients, running statistics, and parameter gradients once summed over
// the slices (what the trainer's gradient allreduce does). With a one-process sum (identity) the
// synced op's backward also passes the finite-difference check.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "autograd/ops.h"
#include "support/gradcheck.h"

namespace mf::test {
namespace {

using Inputs = std::vector<Var>;

// Adds the values two threads pass in, and gives both the sum (a two-process allreduce).
class TwoThreadSum {
 public:
  void sum(double* values, int64_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t generation = generation_;
    if (arrived_ == 0) {
      partial_.assign(values, values + n);
    } else {
      for (int64_t i = 0; i < n; ++i) partial_[i] += values[i];
    }
    if (++arrived_ == 2) {
      result_ = partial_;
      arrived_ = 0;
      ++generation_;
      done_.notify_all();
    } else {
      done_.wait(lock, [&] { return generation_ != generation; });
    }
    std::memcpy(values, result_.data(), n * sizeof(double));
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<double> partial_, result_;
  int arrived_ = 0;
  int64_t generation_ = 0;
};

// Rows [from, to) of x (N, …).
Tensor rows(const Tensor& x, int64_t from, int64_t to) {
  Shape s = x.shape();
  const int64_t row = x.numel() / s[0];
  s[0] = to - from;
  Tensor out = Tensor::empty(s);
  std::memcpy(out.data(), x.data() + from * row, (to - from) * row * sizeof(float));
  return out;
}

void expect_near(const Tensor& a, const Tensor& b, double tol, const char* what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, std::abs(double(a.data()[i]) - double(b.data()[i])));
  EXPECT_LT(worst, tol) << what;
}

struct Result {
  Tensor y, dx, dgamma, dbeta, dalpha, running_mean, running_var;
};

// Batch norm (with PReLU when `fused`) of x in training mode, backward of Σ y ⊙ seed.
Result run(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& alpha,
           const Tensor& seed, bool fused) {
  Var xv(x.clone(), true), g(gamma.clone(), true), b(beta.clone(), true), a(alpha.clone(), true);
  Result r;
  r.running_mean = Tensor::zeros(gamma.shape());
  r.running_var = Tensor::full(gamma.shape(), 1.0f);
  const BatchNormOptions o{.training = true};
  Var y = fused ? batch_norm_prelu(xv, g, b, r.running_mean, r.running_var, o, a)
                : batch_norm(xv, g, b, r.running_mean, r.running_var, o);
  backward(y, seed);
  r.y = y.value();
  r.dx = xv.grad();
  r.dgamma = g.grad();
  r.dbeta = b.grad();
  if (fused) r.dalpha = a.grad();
  return r;
}

class SyncBatchNorm : public ::testing::TestWithParam<bool> {};

TEST_P(SyncBatchNorm, TwoSlicesEqualTheWholeBatch) {
  const bool fused = GetParam();
  Rng rng(17);
  for (const Shape& shape : {Shape{8, 3, 4, 5}, Shape{10, 6}}) {
    const int64_t C = shape[1];
    const Tensor x = random_tensor(rng, shape, -2.0, 3.0), seed = random_tensor(rng, shape);
    const Tensor gamma = random_tensor(rng, {C}, 0.5, 1.5), beta = random_tensor(rng, {C});
    const Tensor alpha = random_tensor(rng, {C}, 0.1, 0.4);
    const Result whole = run(x, gamma, beta, alpha, seed, fused);

    TwoThreadSum exchange;
    set_batch_norm_sync([&](double* v, int64_t n) { exchange.sum(v, n); });
    // Uneven slices (3 and 5 of 8 rows): the global count weighs each slice.
    const int64_t cut = shape[0] * 3 / 8;
    Result part[2];
    std::thread other([&] {
      part[1] = run(rows(x, cut, shape[0]), gamma, beta, alpha, rows(seed, cut, shape[0]), fused);
    });
    part[0] = run(rows(x, 0, cut), gamma, beta, alpha, rows(seed, 0, cut), fused);
    other.join();
    set_batch_norm_sync(nullptr);

    for (int k = 0; k < 2; ++k) {
      const int64_t from = k ? cut : 0, to = k ? shape[0] : cut;
      expect_near(part[k].y, rows(whole.y, from, to), 1e-5, "y");
      expect_near(part[k].dx, rows(whole.dx, from, to), 1e-5, "dx");
      expect_near(part[k].running_mean, whole.running_mean, 1e-6, "running_mean");
      expect_near(part[k].running_var, whole.running_var, 1e-5, "running_var");
    }
    Tensor dgamma = part[0].dgamma.clone(), dbeta = part[0].dbeta.clone();
    dgamma.add_(part[1].dgamma);
    dbeta.add_(part[1].dbeta);
    expect_near(dgamma, whole.dgamma, 1e-4, "dgamma summed over the slices");
    expect_near(dbeta, whole.dbeta, 1e-4, "dbeta summed over the slices");
    if (fused) {
      Tensor dalpha = part[0].dalpha.clone();
      dalpha.add_(part[1].dalpha);
      expect_near(dalpha, whole.dalpha, 1e-4, "dalpha summed over the slices");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BatchNormAndFusedPrelu, SyncBatchNorm, ::testing::Values(false, true));

TEST(SyncBatchNormGrad, OneProcessSyncedOpPassesFiniteDifferences) {
  set_batch_norm_sync([](double*, int64_t) {});  // one process: the sums are already global
  Rng rng(23);
  EXPECT_TRUE(check_var_gradients(
      [](const Inputs& v) {
        return batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), {.training = true});
      },
      {random_tensor(rng, {4, 3, 2, 3}), random_tensor(rng, {3}, 0.5, 1.5),
       random_tensor(rng, {3})}));
  set_batch_norm_sync(nullptr);
}

}  // namespace
}  // namespace mf::test
