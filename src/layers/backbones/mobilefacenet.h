// MobileFaceNet (Chen et al. 2018) as insightface's `mbf`
// (recognition/arcface_torch/backbones/mobilefacenet.py): blocks (1, 4, 6, 2), scale 2, 512-d.
//
//   layers.0  ConvBlock 3×3/2 (3 → 64s)                                      (N, 64s, 56, 56)
//   layers.1  ConvBlock 3×3 grouped (64 groups) when blocks[0] == 1, else Residual
//   layers.2  DepthWise /2 (64s → 64s, expansion 128)                         (N, 64s, 28, 28)
//   layers.3  Residual × blocks[1] (expansion 128)
//   layers.4  DepthWise /2 (64s → 128s, expansion 256)                        (N, 128s, 14, 14)
//   layers.5  Residual × blocks[2] (expansion 256)
//   layers.6  DepthWise /2 (128s → 128s, expansion 512)                       (N, 128s, 7, 7)
//   layers.7  Residual × blocks[3] (expansion 256)
//   conv_sep  ConvBlock 1×1 (128s → 512)
//   features  GDC: LinearBlock depthwise 7×7 → flatten → Linear(512 → D, no bias) → BatchNorm1d
//
// ConvBlock = conv → BN → PReLU and LinearBlock = conv → BN, both as a child Sequential `layers`;
// DepthWise = layers[ConvBlock 1×1 (→ e), ConvBlock k×k depthwise (stride), LinearBlock 1×1],
// plus the input when residual; Residual = layers[DepthWise × n]. So the state-dict names are
// insightface's:
//   layers.0.layers.0.weight, layers.0.layers.1.running_mean, layers.0.layers.2.weight,
//   layers.2.layers.0.layers.0.weight, layers.3.layers.0.layers.1.layers.1.bias, …,
//   conv_sep.layers.0.weight, features.layers.0.layers.0.weight, features.layers.2.weight,
//   features.layers.3.running_var
//
// `width` (ours, default 1) multiplies every channel count — the 64s/128s maps, the expansion
// widths, the grouped conv's group count and the 512 of conv_sep — for small test networks. The GDC
// kernel equals the final map size (7 at 112×112), so the input must be square.
// Initialisation as the reference: conv and linear weights Kaiming-normal with fan_out (PyTorch
// counts fan_out = O·k·k even for grouped convolutions), BN γ = 1, β = 0, PReLU 0.25.
#pragma once

#include <memory>
#include <vector>

#include "layers/backbones/backbone.h"

namespace mf {

struct MobileFaceNetConfig {
  std::vector<int64_t> blocks{1, 4, 6, 2};
  int64_t scale = 2;
  double width = 1.0;
  int64_t embedding_size = 512;
  int64_t input_size = 112;  // square
};

class MobileFaceNet : public Backbone {
 public:
  MobileFaceNet(const MobileFaceNetConfig& config, Rng& rng);
  Var forward(const Var& x) override;
  std::vector<StageInfo> stages() const override;
  const MobileFaceNetConfig config;

 private:
  struct Stage {
    std::shared_ptr<Layer> layer;
    std::vector<Conv2dConfig> convs;  // in forward order, for counting
    std::string summary;
  };
  std::vector<Stage> stages_;         // layers.0 … layers.7, conv_sep
  std::shared_ptr<Sequential> body_;  // "layers"
  std::shared_ptr<Layer> conv_sep_, features_;
  Conv2dConfig gdc_conv_;
  LinearConfig gdc_linear_;
};

}  // namespace mf
