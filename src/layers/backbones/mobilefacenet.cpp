#include "layers/backbones/mobilefacenet.h"

#include <cmath>
#include <string>

#include "util/error.h"

namespace mf {

namespace {

// insightface keeps each block's nn.Sequential in an attribute `layers`; this reproduces the name.
class Wrapped : public Layer {
 public:
  explicit Wrapped(std::shared_ptr<Sequential> inner) : inner_(std::move(inner)) {
    register_module("layers", inner_);
  }
  Var forward(const Var& x) override { return inner_->forward(x); }

 protected:
  std::shared_ptr<Sequential> inner_;
};

// DepthWise: expand 1×1 → depthwise k×k (stride) → project 1×1, plus the input when residual.
// project_conv and project_bn are the last block's layers: the residual goes to their conv_bn,
// which adds it inside the fused convolution at inference.
class DepthWise : public Wrapped {
 public:
  DepthWise(std::shared_ptr<Sequential> inner, bool residual, std::shared_ptr<Conv2d> project_conv,
            std::shared_ptr<BatchNorm> project_bn)
      : Wrapped(std::move(inner)),
        residual_(residual),
        project_conv_(std::move(project_conv)),
        project_bn_(std::move(project_bn)) {}
  Var forward(const Var& x) override {
    if (!residual_) return Wrapped::forward(x);
    Var h = x;
    for (size_t i = 0; i + 1 < inner_->size(); ++i) h = (*inner_)[i]->forward(h);
    return conv_bn(*project_conv_, *project_bn_, nullptr, h, x);
  }

 private:
  bool residual_;
  std::shared_ptr<Conv2d> project_conv_;
  std::shared_ptr<BatchNorm> project_bn_;
};

// Builds layers and records every convolution's geometry in forward order (for describe).
class Builder {
 public:
  explicit Builder(Rng& rng) : rng_(rng) {}
  std::vector<Conv2dConfig> convs;

  // Kaiming-normal, fan_out mode, ReLU gain: N(0, 2 / (O·k·k)).
  std::shared_ptr<Conv2d> conv(const Conv2dConfig& c) {
    auto layer = std::make_shared<Conv2d>(c, rng_);
    init_normal(layer->weight.value(), rng_, 0.0,
                std::sqrt(2.0 / static_cast<double>(c.out * c.kernel * c.kernel)));
    convs.push_back(c);
    return layer;
  }
  // ConvBlock (activation) or LinearBlock (none): conv → BN [→ PReLU].
  std::shared_ptr<Wrapped> block(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                 int64_t pad, int64_t groups, bool activation) {
    MF_CHECK(in % groups == 0 && out % groups == 0, "MobileFaceNet: ", in, " → ", out,
             " channels do not split into ", groups, " groups (adjust width or scale)");
    auto seq = std::make_shared<Sequential>();
    last_conv_ = conv(
        {.in = in, .out = out, .kernel = kernel, .stride = stride, .pad = pad, .groups = groups});
    last_bn_ = std::make_shared<BatchNorm>(BatchNormConfig{.channels = out});
    seq->add(last_conv_);
    seq->add(last_bn_);
    if (activation) seq->add(std::make_shared<PReLU>(out));
    return std::make_shared<Wrapped>(seq);
  }
  std::shared_ptr<DepthWise> depthwise(int64_t in, int64_t out, int64_t expansion, int64_t stride,
                                       bool residual) {
    auto seq = std::make_shared<Sequential>();
    seq->add(block(in, expansion, 1, 1, 0, 1, true));
    seq->add(block(expansion, expansion, 3, stride, 1, expansion, true));
    seq->add(block(expansion, out, 1, 1, 0, 1, false));
    return std::make_shared<DepthWise>(seq, residual, last_conv_, last_bn_);
  }
  std::shared_ptr<Wrapped> residual(int64_t channels, int64_t count, int64_t expansion) {
    auto seq = std::make_shared<Sequential>();
    for (int64_t i = 0; i < count; ++i) seq->add(depthwise(channels, channels, expansion, 1, true));
    return std::make_shared<Wrapped>(seq);
  }

 private:
  Rng& rng_;
  std::shared_ptr<Conv2d> last_conv_;  // of the last block() built
  std::shared_ptr<BatchNorm> last_bn_;
};

}  // namespace

MobileFaceNet::MobileFaceNet(const MobileFaceNetConfig& c, Rng& rng)
    : Backbone(c.input_size, c.input_size, c.embedding_size), config(c) {
  MF_CHECK(c.blocks.size() == 4, "MobileFaceNet: expected 4 block counts, got ", c.blocks.size());
  MF_CHECK(c.blocks[0] >= 1 && c.blocks[1] >= 0 && c.blocks[2] >= 0 && c.blocks[3] >= 0,
           "MobileFaceNet: invalid block counts");
  MF_CHECK(c.scale >= 1, "MobileFaceNet: scale must be ≥ 1, got ", c.scale);
  auto ch = [&](int64_t base) { return scaled_channels(base, c.width); };
  const int64_t c64 = ch(64 * c.scale), c128 = ch(128 * c.scale), c512 = ch(512);
  Builder b(rng);
  auto stage = [&](std::shared_ptr<Layer> layer, std::string summary) {
    stages_.push_back({std::move(layer), std::move(b.convs), std::move(summary)});
    b.convs.clear();
  };
  const std::string n0 = std::to_string(c.blocks[0]);
  stage(b.block(3, c64, 3, 2, 1, 1, true), "ConvBlock 3×3/2");
  if (c.blocks[0] == 1)
    stage(b.block(c64, c64, 3, 1, 1, ch(64), true), "ConvBlock 3×3 grouped");
  else
    stage(b.residual(c64, c.blocks[0], ch(128)), "Residual × " + n0);
  stage(b.depthwise(c64, c64, ch(128), 2, false), "DepthWise /2");
  stage(b.residual(c64, c.blocks[1], ch(128)), "Residual × " + std::to_string(c.blocks[1]));
  stage(b.depthwise(c64, c128, ch(256), 2, false), "DepthWise /2");
  stage(b.residual(c128, c.blocks[2], ch(256)), "Residual × " + std::to_string(c.blocks[2]));
  stage(b.depthwise(c128, c128, ch(512), 2, false), "DepthWise /2");
  stage(b.residual(c128, c.blocks[3], ch(256)), "Residual × " + std::to_string(c.blocks[3]));
  body_ = std::make_shared<Sequential>();
  for (auto& s : stages_) body_->add(s.layer);
  register_module("layers", body_);

  conv_sep_ = register_module("conv_sep", b.block(c128, c512, 1, 1, 0, 1, true));
  stage(conv_sep_, "ConvBlock 1×1");

  // GDC: the depthwise kernel covers the whole final map (7×7 at 112×112).
  int64_t final_size = c.input_size;
  for (int i = 0; i < 4; ++i) final_size = conv_out(final_size, 3, 2, 1);
  auto gdc = std::make_shared<Sequential>();
  gdc->add(b.block(c512, c512, final_size, 1, 0, c512, false));
  gdc_conv_ = b.convs.back();
  b.convs.clear();
  gdc->add(std::make_shared<Flatten>());
  gdc_linear_ = {.in = c512, .out = c.embedding_size, .bias = false};
  auto linear = std::make_shared<Linear>(gdc_linear_, rng);
  init_normal(linear->weight.value(), rng, 0.0,
              std::sqrt(2.0 / static_cast<double>(c.embedding_size)));
  gdc->add(linear);
  gdc->add(std::make_shared<BatchNorm>(BatchNormConfig{.channels = c.embedding_size}));
  features_ = register_module("features", std::make_shared<Wrapped>(gdc));
}

Var MobileFaceNet::forward(const Var& x) {
  check_input(x, "MobileFaceNet");
  Var h = body_->forward(x);     // (N, 128s, 7, 7)
  h = conv_sep_->forward(h);     // (N, 512, 7, 7)
  return features_->forward(h);  // (N, D)
}

std::vector<StageInfo> MobileFaceNet::stages() const {
  std::vector<StageInfo> out;
  MacCounter counter(3, config.input_size, config.input_size);
  for (size_t i = 0; i < stages_.size(); ++i) {
    for (const auto& conv : stages_[i].convs) counter.conv(conv);
    const bool last = i + 1 == stages_.size();
    out.push_back({.name = last ? "conv_sep" : "layers." + std::to_string(i),
                   .summary = stages_[i].summary,
                   .output = counter.shape(),
                   .parameters = stages_[i].layer->num_parameters(),
                   .macs = counter.take()});
  }
  counter.conv(gdc_conv_);
  counter.linear(gdc_linear_);
  out.push_back({.name = "features",
                 .summary = "GDC: depthwise " + std::to_string(gdc_conv_.kernel) + "×" +
                            std::to_string(gdc_conv_.kernel) + ", linear, BN1d",
                 .output = counter.shape(),
                 .parameters = features_->num_parameters(),
                 .macs = counter.take()});
  return out;
}

}  // namespace mf
