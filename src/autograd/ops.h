// Differentiable ops on Vars. Each op checks its shapes (errors name the op and both shapes), runs
// a kernel from tensor/kernels and records a backward closure that captures only what it needs.
// Shape letters as in tensor/tensor.h.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "autograd/var.h"
#include "tensor/rng.h"

namespace mf {

using Labels = std::vector<int64_t>;

// ---- products ----
// (M, K) · (K, N) → (M, N); trans_a / trans_b use the transposed operand as stored.
Var matmul(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);
// x (N, in) · Wᵀ (in, out) + b (out) → (N, out), PyTorch's nn.Linear layout. bias may be undefined.
Var linear(const Var& x, const Var& weight, const Var& bias = Var());

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t pad = 0;
  int64_t groups = 1;
};
// x (N, C, H, W), w (O, C/groups, kH, kW), bias (O) or undefined → (N, O, Ho, Wo)
Var conv2d(const Var& x, const Var& weight, const Var& bias, const Conv2dOptions& options = {});
// Inference only (an error while a gradient is recorded): conv2d, then per output channel
// v·scale + shift (a frozen BatchNorm: kernels::batchnorm_affine), PReLU with `slope`, and
// + residual (N, O, Ho, Wo), in that order, in the convolution's own pass over its output
// (kernels::ConvEpilogue). Undefined tensors skip their step. `name` is the op's name in
// profiles ("conv2d+bn+prelu"); nothing is recorded for a backward.
struct ConvFusion {
  Tensor scale, shift, slope, residual;
  const char* name = "conv2d+bn";
};
Var conv2d_fused(const Var& x, const Var& weight, const Var& bias, const Conv2dOptions& options,
                 const ConvFusion& fused);

// ---- normalization and activations ----
struct BatchNormOptions {
  bool training = true;
  float momentum = 0.1f;  // PyTorch's convention: running = (1 − momentum)·running + momentum·batch
  float eps = 1e-5f;
};
// x (N, C, H, W) or (N, C); gamma, beta (C) (either may be undefined: scale 1 / shift 0; a gamma
// that does not require grad is a frozen scale). running_mean / running_var (C) are updated in
// place in training mode and read in eval mode.
Var batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
               Tensor running_var, const BatchNormOptions& options);
// SyncBN (model.sync_bn): `sum` completes per-channel sums over the processes of a data-parallel
// run (n doubles in place → their sum over the processes), so every training-mode batch norm
// normalises with the global batch's statistics and its backward with the global sums. Installed
// by the trainer for the run; an empty function (the default) = per-process statistics.
using ChannelSum = std::function<void(double* values, int64_t n)>;
void set_batch_norm_sync(ChannelSum sum);

Var prelu(const Var& x, const Var& alpha);  // x (N, C, ...) , alpha (C)
// prelu(batch_norm(x, …), alpha) in one pass that keeps only its output for the backward (BN's
// input and output are recovered from it: needs every γ away from 0 and every α > 0, else it runs
// the two ops). The same values as the two ops, to float rounding.
Var batch_norm_prelu(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
                     Tensor running_var, const BatchNormOptions& options, const Var& alpha);
Var relu(const Var& x);
Var sigmoid(const Var& x);

// ---- elementwise with broadcasting ----
// b broadcasts against a (same rank; each of b's dimensions equals a's or is 1), or the other way
// round for add and mul. The output has the larger shape.
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);  // a − b, b broadcast against a
Var mul(const Var& a, const Var& b);
Var affine(const Var& x, float alpha, float beta = 0.0f);  // alpha·x + beta
Var clamp(const Var& x, float lo, float hi);
Var cos(const Var& x);
Var acos(const Var& x);  // inputs in [−1, 1]; the gradient is unbounded at ±1
Var sqrt(const Var& x);
Var reciprocal(const Var& x);  // 1/x

// ---- pooling, dropout, shapes ----
Var global_avg_pool(const Var& x);  // (N, C, H, W) → (N, C, 1, 1)
Var max_pool2d(const Var& x, int64_t kernel, int64_t stride, int64_t pad = 0);
// Inverted dropout: kept values scaled by 1 / (1 − p); identity when !training or p == 0.
Var dropout(const Var& x, float p, bool training, Rng& rng);
Var reshape(const Var& x, const Shape& shape);
Var flatten(const Var& x);  // (N, ...) → (N, rest)

// ---- rows, reductions, losses ----
Var l2_normalize(const Var& x, float eps = 1e-12f);  // rows of (N, D): x / max(‖x‖, eps)
Var log_softmax(const Var& x);                       // rows of (N, K)
// Mean softmax cross-entropy of logits (N, K) against labels in [0, K): a scalar.
Var cross_entropy(const Var& logits, const Labels& labels);
Var sum(const Var& x);                                                 // all elements → scalar
Var mean(const Var& x);                                                // all elements → scalar
Var gather_target(const Var& z, const Labels& labels);                 // (N, K) → (N): z[n, y_n]
Var replace_target(const Var& z, const Var& t, const Labels& labels);  // z with z[n, y_n] = t_n

}  // namespace mf
