#include "layers/backbones/iresnet.h"

#include <algorithm>
#include <string>

#include "util/error.h"

namespace mf {

namespace {

constexpr float kBnEps = 1e-5f;

// A bias-free convolution initialised as iresnet.py does: N(0, 0.1).
std::shared_ptr<Conv2d> make_conv(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                  Rng& rng) {
  auto conv = std::make_shared<Conv2d>(
      Conv2dConfig{.in = in, .out = out, .kernel = kernel, .stride = stride, .pad = kernel / 2},
      rng);
  init_normal(conv->weight.value(), rng, 0.0, 0.1);
  return conv;
}

std::shared_ptr<BatchNorm> make_bn(int64_t channels, bool frozen_scale = false) {
  return std::make_shared<BatchNorm>(
      BatchNormConfig{.channels = channels, .eps = kBnEps, .frozen_scale = frozen_scale});
}

}  // namespace

std::vector<int64_t> iresnet_depth(int depth) {
  switch (depth) {
    case 18:
      return {2, 2, 2, 2};
    case 34:
      return {3, 4, 6, 3};
    case 50:
      return {3, 4, 14, 3};
    case 100:
      return {3, 13, 30, 3};
    case 200:
      return {6, 26, 60, 6};
  }
  MF_FAIL("IResNet: no depth ", depth, " (known: 18, 34, 50, 100, 200)");
}

SqueezeExcite::SqueezeExcite(int64_t channels, int64_t reduction, Rng& rng) {
  MF_CHECK(reduction > 0, "SqueezeExcite: reduction must be positive, got ", reduction);
  const int64_t hidden = std::max<int64_t>(1, channels / reduction);
  // 1×1 convolutions with bias; the weights follow the IResNet convolution init N(0, 0.1), the
  // biases keep PyTorch's default (Conv2d's constructor draws it).
  fc1 = register_module(
      "fc1", std::make_shared<Conv2d>(
                 Conv2dConfig{.in = channels, .out = hidden, .kernel = 1, .bias = true}, rng));
  fc2 = register_module(
      "fc2", std::make_shared<Conv2d>(
                 Conv2dConfig{.in = hidden, .out = channels, .kernel = 1, .bias = true}, rng));
  init_normal(fc1->weight.value(), rng, 0.0, 0.1);
  init_normal(fc2->weight.value(), rng, 0.0, 0.1);
}

Var SqueezeExcite::forward(const Var& x) {
  Var s = global_avg_pool(x);    // (N, C, 1, 1)
  s = relu(fc1->forward(s));     // (N, C/r, 1, 1)
  s = sigmoid(fc2->forward(s));  // (N, C, 1, 1)
  return mul(x, s);              // (N, C, H, W), s broadcast over H, W
}

IBasicBlock::IBasicBlock(int64_t inplanes, int64_t planes, int64_t stride, int64_t se_reduction,
                         Rng& rng) {
  // Registration order = PyTorch's attribute order, so named_parameters() lists as state_dict().
  bn1 = register_module("bn1", make_bn(inplanes));
  conv1 = register_module("conv1", make_conv(inplanes, planes, 3, 1, rng));
  bn2 = register_module("bn2", make_bn(planes));
  prelu = register_module("prelu", std::make_shared<PReLU>(planes));
  conv2 = register_module("conv2", make_conv(planes, planes, 3, stride, rng));
  bn3 = register_module("bn3", make_bn(planes));
  if (se_reduction > 0)
    se = register_module("se", std::make_shared<SqueezeExcite>(planes, se_reduction, rng));
  if (stride != 1 || inplanes != planes) {
    downsample_conv = make_conv(inplanes, planes, 1, stride, rng);
    downsample_bn = make_bn(planes);
    downsample = std::make_shared<Sequential>();
    downsample->add(downsample_conv).add(downsample_bn);
    register_module("downsample", downsample);
  }
}

Var IBasicBlock::forward(const Var& x) {
  auto shortcut = [&] {  // (N, C, H/s, W/s)
    return downsample ? conv_bn(*downsample_conv, *downsample_bn, nullptr, x) : x;
  };
  // At inference the shortcut comes first, so that conv2 → bn3 → + shortcut is one fused op; in
  // training it comes last, as it always has, so its activation is not kept alive any longer.
  const Var early = !se && conv_bn_fuses(*bn3) ? shortcut() : Var();
  Var out = bn1->forward(x);                                               // (N, Cin, H, W)
  out = conv_bn(*conv1, *bn2, prelu.get(), out);                           // (N, C, H, W)
  if (early.defined()) return conv_bn(*conv2, *bn3, nullptr, out, early);  // (N, C, H/s, W/s)
  out = conv_bn(*conv2, *bn3, nullptr, out);
  if (se) out = se->forward(out);
  return add(out, shortcut());
}

void IBasicBlock::count(MacCounter& counter) const {
  MacCounter shortcut = counter;
  counter.conv(conv1->config);
  counter.conv(conv2->config);
  if (se) {
    MacCounter squeezed(counter.C, 1, 1);
    squeezed.conv(se->fc1->config);
    squeezed.conv(se->fc2->config);
    counter.macs += squeezed.macs;
  }
  if (downsample_conv) {
    shortcut.macs = 0;
    shortcut.conv(downsample_conv->config);
    counter.macs += shortcut.macs;
  }
}

IResNet::IResNet(const IResNetConfig& c, Rng& rng)
    : Backbone(c.input_height, c.input_width, c.embedding_size), config(c) {
  MF_CHECK(c.layers.size() == 4, "IResNet: expected 4 stages, got ", c.layers.size());
  for (int64_t n : c.layers) MF_CHECK(n >= 1, "IResNet: every stage needs a block");
  MF_CHECK(c.se_reduction >= 0, "IResNet: se_reduction must be ≥ 0, got ", c.se_reduction);
  const int64_t stem = scaled_channels(64, c.width);
  conv1 = register_module("conv1", make_conv(3, stem, 3, 1, rng));
  bn1 = register_module("bn1", make_bn(stem));
  prelu = register_module("prelu", std::make_shared<PReLU>(stem));
  int64_t inplanes = stem, h = c.input_height, w = c.input_width;
  for (int s = 0; s < 4; ++s) {
    const int64_t planes = scaled_channels(int64_t(64) << s, c.width);
    auto stage = std::make_shared<Sequential>();
    for (int64_t b = 0; b < c.layers[s]; ++b) {
      stage->add(
          std::make_shared<IBasicBlock>(inplanes, planes, b == 0 ? 2 : 1, c.se_reduction, rng));
      inplanes = planes;
    }
    layer.push_back(register_module("layer" + std::to_string(s + 1), stage));
    h = conv_out(h, 3, 2, 1);
    w = conv_out(w, 3, 2, 1);
  }
  bn2 = register_module("bn2", make_bn(inplanes));
  dropout = register_module("dropout", std::make_shared<Dropout>(c.dropout, rng.next_u64()));
  fc = register_module(
      "fc",
      std::make_shared<Linear>(LinearConfig{.in = inplanes * h * w, .out = c.embedding_size}, rng));
  features = register_module("features", make_bn(c.embedding_size, /*frozen_scale=*/true));
}

Var IResNet::forward(const Var& x) {
  check_input(x, "IResNet");
  Var h = conv_bn(*conv1, *bn1, prelu.get(), x);    // (N, 64, H, W)
  for (auto& stage : layer) h = stage->forward(h);  // … (N, 512, H/16, W/16)
  h = bn2->forward(h);
  h = flatten(h);  // (N, 512·H/16·W/16)
  h = dropout->forward(h);
  h = fc->forward(h);           // (N, D)
  return features->forward(h);  // (N, D)
}

std::vector<StageInfo> IResNet::stages() const {
  std::vector<StageInfo> out;
  MacCounter counter(3, config.input_height, config.input_width);
  counter.conv(conv1->config);
  out.push_back({.name = "stem",
                 .summary = "conv 3×3, BN, PReLU",
                 .output = counter.shape(),
                 .parameters = count_parameters({conv1.get(), bn1.get(), prelu.get()}),
                 .macs = counter.take()});
  for (size_t s = 0; s < layer.size(); ++s) {
    const Sequential& stage = *layer[s];
    for (size_t b = 0; b < stage.size(); ++b)
      static_cast<const IBasicBlock&>(*stage[b]).count(counter);
    out.push_back({.name = "layer" + std::to_string(s + 1),
                   .summary = std::to_string(stage.size()) +
                              (config.se_reduction ? " × IBasicBlock+SE" : " × IBasicBlock") +
                              ", stride 2",
                   .output = counter.shape(),
                   .parameters = stage.num_parameters(),
                   .macs = counter.take()});
  }
  counter.linear(fc->config);
  out.push_back({.name = "output",
                 .summary = "BN, dropout, fc, BN1d",
                 .output = counter.shape(),
                 .parameters = count_parameters({bn2.get(), fc.get(), features.get()}),
                 .macs = counter.take()});
  return out;
}

}  // namespace mf
