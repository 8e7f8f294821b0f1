#include "layers/layers.h"

#include <cmath>

#include "tensor/kernels/batchnorm.h"
#include "util/error.h"

namespace mf {

void init_normal(Tensor& t, Rng& rng, double mean, double stddev) {
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = static_cast<float>(rng.normal(mean, stddev));
}

void init_uniform(Tensor& t, Rng& rng, double lo, double hi) {
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(rng.uniform(lo, hi));
}

Conv2d::Conv2d(const Conv2dConfig& c, Rng& rng) : config(c) {
  MF_CHECK(c.in > 0 && c.out > 0 && c.groups > 0 && c.in % c.groups == 0 && c.out % c.groups == 0,
           "Conv2d: invalid channels ", c.in, " → ", c.out, " with groups ", c.groups);
  // PyTorch's default: kaiming_uniform(a = √5), i.e. U(±1/√fan_in) for weight and bias.
  const double fan_in = double(c.in / c.groups) * c.kernel * c.kernel,
               bound = 1.0 / std::sqrt(fan_in);
  Tensor w = Tensor::empty({c.out, c.in / c.groups, c.kernel, c.kernel});
  init_uniform(w, rng, -bound, bound);
  weight = register_parameter("weight", w);
  if (c.bias) {
    Tensor b = Tensor::empty({c.out});
    init_uniform(b, rng, -bound, bound);
    bias = register_parameter("bias", b);
  }
}

Var Conv2d::forward(const Var& x) {
  return conv2d(x, weight, bias,
                {.stride = config.stride, .pad = config.pad, .groups = config.groups});
}

BatchNorm::BatchNorm(const BatchNormConfig& c) : config(c) {
  MF_CHECK(c.channels > 0, "BatchNorm: channels must be positive");
  if (c.affine) {
    weight = register_parameter("weight", Tensor::full({c.channels}, 1.0f), !c.frozen_scale);
    bias = register_parameter("bias", Tensor::zeros({c.channels}));
  }
  running_mean = register_buffer("running_mean", Tensor::zeros({c.channels}));
  running_var = register_buffer("running_var", Tensor::full({c.channels}, 1.0f));
}

BatchNormOptions BatchNorm::options() const {
  return {.training = is_training(), .momentum = config.momentum, .eps = config.eps};
}

Var BatchNorm::forward(const Var& x) {
  return batch_norm(x, weight, bias, running_mean, running_var, options());
}

Var batch_norm_prelu(BatchNorm& bn, PReLU& act, const Var& x) {
  return batch_norm_prelu(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.options(),
                          act.weight);
}

namespace {
bool g_inference_fusion = true;
}
void set_inference_fusion(bool on) {
  g_inference_fusion = on;
}

bool conv_bn_fuses(const BatchNorm& bn) {
  return g_inference_fusion && !grad_enabled() && !tracing() && !bn.is_training();
}

Var conv_bn(Conv2d& conv, BatchNorm& bn, PReLU* act, const Var& x, const Var& residual) {
  if (!conv_bn_fuses(bn)) {
    Var y = conv.forward(x);
    y = act ? batch_norm_prelu(bn, *act, y) : bn.forward(y);
    return residual.defined() ? add(y, residual) : y;
  }
  const int64_t C = bn.config.channels;
  MF_CHECK(conv.config.out == C, "conv_bn: ", conv.config.out, " convolution channels for a ", C,
           "-channel BatchNorm");
  ConvFusion fused{.scale = Tensor::empty({C}),
                   .shift = Tensor::empty({C}),
                   .slope = act ? act->weight.value() : Tensor(),
                   .residual = residual.defined() ? residual.value() : Tensor(),
                   .name = act                  ? "conv2d+bn+prelu"
                           : residual.defined() ? "conv2d+bn+add"
                                                : "conv2d+bn"};
  const float* gamma = bn.weight.defined() ? bn.weight.value().data() : nullptr;
  const float* beta = bn.bias.defined() ? bn.bias.value().data() : nullptr;
  for (int64_t c = 0; c < C; ++c) {
    const auto [scale, shift] = kernels::batchnorm_affine(
        gamma, beta, bn.running_mean.data()[c], bn.running_var.data()[c], bn.config.eps, c);
    fused.scale.data()[c] = scale;
    fused.shift.data()[c] = shift;
  }
  if (act)
    MF_CHECK(act->weight.shape() == Shape({C}), "conv_bn: PReLU ", act->weight.shape(), " for ", C,
             " channels");
  return conv2d_fused(
      x, conv.weight, conv.bias,
      {.stride = conv.config.stride, .pad = conv.config.pad, .groups = conv.config.groups}, fused);
}

PReLU::PReLU(int64_t channels, float init) {
  weight = register_parameter("weight", Tensor::full({channels}, init));
}

Linear::Linear(const LinearConfig& c, Rng& rng) : config(c) {
  const double bound = 1.0 / std::sqrt(double(c.in));
  Tensor w = Tensor::empty({c.out, c.in});
  init_uniform(w, rng, -bound, bound);
  weight = register_parameter("weight", w);
  if (c.bias) {
    Tensor b = Tensor::empty({c.out});
    init_uniform(b, rng, -bound, bound);
    bias = register_parameter("bias", b);
  }
}

Dropout::Dropout(float p, uint64_t seed) : p_(p), rng_(seed) {
  MF_CHECK(p >= 0.0f && p < 1.0f, "Dropout: probability ", p, " outside [0, 1)");
}

}  // namespace mf
