// IResNet (Deng et al. 2019, "ArcFace", §3.1 and Fig. 6 "E": BN-Dropout-FC-BN), exactly as
// insightface's recognition/arcface_torch/backbones/iresnet.py, and IR-SE, the same network with a
// squeeze-excitation unit (Hu et al. 2018) on every block's residual branch.
//
//   stem    conv1 3×3 (3 → 64) → bn1 → prelu                          (N, 64, 112, 112)
//   layerS  blocks; the first has stride 2 and a downsample shortcut   (N, C_S, H/2^S, W/2^S)
//           C = 64, 128, 256, 512 for S = 1..4
//   output  bn2 (2d) → flatten → dropout → fc (C_4·7·7 → D, bias) → features (BatchNorm1d,
//           weight frozen at 1)                                        (N, D)
//
// IBasicBlock: bn1 → conv1 3×3 → bn2 → prelu → conv2 3×3 (stride) → bn3 [→ se] ; + shortcut, where
// the shortcut is the identity or downsample = conv 1×1 (stride) → BN. All convolutions are
// bias-free and BatchNorm eps is 1e-5.
//
// State-dict names (PyTorch's): conv1.weight, bn1.{weight,bias,running_mean,running_var},
// prelu.weight, layer1.0.bn1.*, layer1.0.conv1.weight, layer1.0.bn2.*, layer1.0.prelu.weight,
// layer1.0.conv2.weight, layer1.0.bn3.*, layer1.0.downsample.0.weight, layer1.0.downsample.1.*,
// …, bn2.*, fc.weight, fc.bias, features.*.
//
// The SE unit (our choice of layout, since arcface_torch has none) is a child `se` of the block
// with two 1×1 convolutions with bias, as torch.nn.Conv2d(C, C/r, 1) and Conv2d(C/r, C, 1):
//   layer1.0.se.fc1.weight (C/r, C, 1, 1), layer1.0.se.fc1.bias (C/r),
//   layer1.0.se.fc2.weight (C, C/r, 1, 1), layer1.0.se.fc2.bias (C)
//   se(x) = x ⊙ sigmoid(fc2(relu(fc1(avgpool(x)))))   (r = 16 by default, C/r at least 1)
//
// Initialisation as the reference: every convolution weight (SE ones included) N(0, 0.1);
// BatchNorm γ = 1, β = 0; PReLU 0.25; fc and the SE biases PyTorch's default U(±1/√fan_in).
#pragma once

#include <memory>
#include <vector>

#include "layers/backbones/backbone.h"

namespace mf {

struct IResNetConfig {
  std::vector<int64_t> layers{2, 2, 2, 2};  // blocks per stage: r18; see iresnet_depth()
  double width = 1.0;                       // multiplies every channel count (0.25 → 16 … 128)
  int64_t embedding_size = 512;
  float dropout = 0.0f;      // before fc; arcface_torch trains with 0
  int64_t se_reduction = 0;  // 0: plain IResNet; r > 0: IR-SE with C/r hidden units
  int64_t input_height = 112, input_width = 112;
};

// Blocks per stage of IResNet-18, -34, -50, -100 (and -200); an error for any other depth.
std::vector<int64_t> iresnet_depth(int depth);

class SqueezeExcite : public Layer {
 public:
  SqueezeExcite(int64_t channels, int64_t reduction, Rng& rng);
  Var forward(const Var& x) override;
  std::shared_ptr<Conv2d> fc1, fc2;
};

class IBasicBlock : public Layer {
 public:
  IBasicBlock(int64_t inplanes, int64_t planes, int64_t stride, int64_t se_reduction, Rng& rng);
  Var forward(const Var& x) override;
  void count(MacCounter& counter) const;  // advances counter over this block

  std::shared_ptr<BatchNorm> bn1, bn2, bn3;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<PReLU> prelu;
  std::shared_ptr<SqueezeExcite> se;         // null without SE
  std::shared_ptr<Sequential> downsample;    // null for the identity shortcut
  std::shared_ptr<Conv2d> downsample_conv;   // downsample[0], kept typed for counting
  std::shared_ptr<BatchNorm> downsample_bn;  // downsample[1], for the fused inference forward
};

class IResNet : public Backbone {
 public:
  IResNet(const IResNetConfig& config, Rng& rng);
  Var forward(const Var& x) override;
  std::vector<StageInfo> stages() const override;
  const IResNetConfig config;

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm> bn1, bn2, features;
  std::shared_ptr<PReLU> prelu;
  std::vector<std::shared_ptr<Sequential>> layer;  // layer1 … layer4
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Linear> fc;
};

}  // namespace mf
