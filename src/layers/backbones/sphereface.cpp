#include "layers/backbones/sphereface.h"

#include <cmath>
#include <string>

#include "util/error.h"

namespace mf {

SphereNet::ConvPReLU SphereNet::make(int stage, int index, int64_t in, int64_t out, int64_t stride,
                                     Rng& rng) {
  const std::string suffix = std::to_string(stage) + "_" + std::to_string(index);
  ConvPReLU unit;
  unit.conv = register_module(
      "conv" + suffix,
      std::make_shared<Conv2d>(
          Conv2dConfig{.in = in, .out = out, .kernel = 3, .stride = stride, .pad = 1, .bias = true},
          rng));
  if (index == 1) {  // the stage's strided convolution: Xavier
    const double bound = std::sqrt(3.0 / static_cast<double>(in * 9));
    init_uniform(unit.conv->weight.value(), rng, -bound, bound);
  } else {  // residual units: N(0, 0.01)
    init_normal(unit.conv->weight.value(), rng, 0.0, 0.01);
  }
  unit.conv->bias.value().zero();
  unit.relu = register_module("relu" + suffix, std::make_shared<PReLU>(out));
  return unit;
}

SphereNet::SphereNet(const SphereNetConfig& c, Rng& rng)
    : Backbone(c.input_height, c.input_width, c.embedding_size), config(c) {
  MF_CHECK(c.units.size() == 4, "SphereNet: expected 4 stages, got ", c.units.size());
  int64_t in = 3, h = c.input_height, w = c.input_width;
  for (int s = 0; s < 4; ++s) {
    MF_CHECK(c.units[s] >= 0, "SphereNet: negative unit count");
    const int64_t out = scaled_channels(int64_t(64) << s, c.width);
    Stage stage;
    stage.down = make(s + 1, 1, in, out, 2, rng);
    for (int k = 1; k <= c.units[s]; ++k) {
      ConvPReLU first = make(s + 1, 2 * k, out, out, 1, rng);
      ConvPReLU second = make(s + 1, 2 * k + 1, out, out, 1, rng);
      stage.units.emplace_back(first, second);
    }
    stages_.push_back(std::move(stage));
    in = out;
    h = conv_out(h, 3, 2, 1);
    w = conv_out(w, 3, 2, 1);
  }
  const int64_t features = in * h * w;
  fc5_ = register_module(
      "fc5", std::make_shared<Linear>(LinearConfig{.in = features, .out = c.embedding_size}, rng));
  const double bound = std::sqrt(3.0 / static_cast<double>(features));
  init_uniform(fc5_->weight.value(), rng, -bound, bound);
  fc5_->bias.value().zero();
}

Var SphereNet::forward(const Var& x) {
  check_input(x, "SphereNet");
  Var h = x;
  for (const Stage& stage : stages_) {
    h = stage.down.forward(h);  // (N, C_S, H/2^S, W/2^S)
    for (const auto& [first, second] : stage.units) h = add(h, second.forward(first.forward(h)));
  }
  return fc5_->forward(flatten(h));  // (N, D)
}

std::vector<StageInfo> SphereNet::stages() const {
  std::vector<StageInfo> out;
  MacCounter counter(3, config.input_height, config.input_width);
  for (size_t s = 0; s < stages_.size(); ++s) {
    const Stage& stage = stages_[s];
    std::vector<const Module*> modules{stage.down.conv.get(), stage.down.relu.get()};
    counter.conv(stage.down.conv->config);
    for (const auto& [first, second] : stage.units) {
      counter.conv(first.conv->config);
      counter.conv(second.conv->config);
      modules.insert(modules.end(),
                     {first.conv.get(), first.relu.get(), second.conv.get(), second.relu.get()});
    }
    out.push_back({.name = "stage" + std::to_string(s + 1),
                   .summary = "conv 3×3/2 + " + std::to_string(stage.units.size()) +
                              " residual unit" + (stage.units.size() == 1 ? "" : "s"),
                   .output = counter.shape(),
                   .parameters = count_parameters(modules),
                   .macs = counter.take()});
  }
  counter.linear(fc5_->config);
  out.push_back({.name = "fc5",
                 .summary = "linear",
                 .output = counter.shape(),
                 .parameters = fc5_->num_parameters(),
                 .macs = counter.take()});
  return out;
}

}  // namespace mf
