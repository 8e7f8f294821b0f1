// The basic layers, each a thin Module around an op from autograd/ops.h. Parameter names and
// shapes are PyTorch's (Conv2d weight (O, C/groups, kH, kW), Linear weight (out, in)).
// Initialisation follows PyTorch's defaults unless an options field says otherwise; backbones
// re-initialise as their reference does.
#pragma once

#include <memory>

#include "autograd/ops.h"
#include "layers/module.h"
#include "tensor/rng.h"

namespace mf {

struct Conv2dConfig {
  int64_t in = 0, out = 0, kernel = 3, stride = 1, pad = 0, groups = 1;
  bool bias = false;
};
class Conv2d : public Layer {
 public:
  Conv2d(const Conv2dConfig& config, Rng& rng);
  Var forward(const Var& x) override;
  Var weight, bias;
  const Conv2dConfig config;
};

struct BatchNormConfig {
  int64_t channels = 0;
  float eps = 1e-5f, momentum = 0.1f;
  bool affine = true;
  bool frozen_scale = false;  // weight fixed at 1 and not trained (IResNet's final BatchNorm1d)
};
// BatchNorm over (N, C, H, W) or (N, C): one class serves nn.BatchNorm2d and nn.BatchNorm1d.
class BatchNorm : public Layer {
 public:
  explicit BatchNorm(const BatchNormConfig& config);
  Var forward(const Var& x) override;
  BatchNormOptions options() const;  // train/eval mode, momentum and eps for the op
  Var weight, bias;
  Tensor running_mean, running_var;
  const BatchNormConfig config;
};

class PReLU : public Layer {
 public:
  explicit PReLU(int64_t channels, float init = 0.25f);
  Var forward(const Var& x) override { return prelu(x, weight); }
  Var weight;
};

// act(bn(x)) as one op (batch_norm_prelu): one pass instead of two, and only the output is kept
// for the backward.
Var batch_norm_prelu(BatchNorm& bn, PReLU& act, const Var& x);

// conv → BN [→ PReLU] [+ residual] (the order IResNet and MobileFaceNet use). At inference — no
// gradient recorded, BN in eval mode, no export trace — one op (conv2d_fused): BN's affine form
// from its running statistics, the activation and the residual applied while each block of the
// convolution's output is still in cache. Otherwise the separate ops, exactly as written.
Var conv_bn(Conv2d& conv, BatchNorm& bn, PReLU* act, const Var& x, const Var& residual = Var());
// Whether conv_bn with this BN runs fused now.
bool conv_bn_fuses(const BatchNorm& bn);
// On by default; off runs the separate ops at inference too (`bench --unfused`, tests).
void set_inference_fusion(bool on);

struct LinearConfig {
  int64_t in = 0, out = 0;
  bool bias = true;
};
class Linear : public Layer {
 public:
  Linear(const LinearConfig& config, Rng& rng);
  Var forward(const Var& x) override { return linear(x, weight, bias); }
  Var weight, bias;
  const LinearConfig config;
};

// Dropout owns its generator so a seeded model draws the same masks every run.
class Dropout : public Layer {
 public:
  explicit Dropout(float p, uint64_t seed = 0);
  Var forward(const Var& x) override { return dropout(x, p_, is_training(), rng_); }

 private:
  float p_;
  Rng rng_;
};

class ReLU : public Layer {
 public:
  Var forward(const Var& x) override { return relu(x); }
};
class Sigmoid : public Layer {
 public:
  Var forward(const Var& x) override { return sigmoid(x); }
};
class Flatten : public Layer {
 public:
  Var forward(const Var& x) override { return flatten(x); }
};
class MaxPool2d : public Layer {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, int64_t pad = 0)
      : kernel_(kernel), stride_(stride), pad_(pad) {}
  Var forward(const Var& x) override { return max_pool2d(x, kernel_, stride_, pad_); }

 private:
  int64_t kernel_, stride_, pad_;
};

// Fills with N(mean, std) / U(lo, hi) from rng (initialisers used by the backbones).
void init_normal(Tensor& t, Rng& rng, double mean, double stddev);
void init_uniform(Tensor& t, Rng& rng, double lo, double hi);

}  // namespace mf
