// SphereFace-20 (Liu et al. 2017, "SphereFace", Table 2): a 20-layer residual CNN without batch
// normalization, on 112×96 faces (the central 112×96 crop of our 112×112 aligned faces: the 112×96
// template is the 112×112 one shifted 8 px left).
//
//   stage S (S = 1..4): convS_1 3×3/2 (with bias) → reluS_1 (PReLU)          (N, C_S, H/2^S, W/2^S)
//                       then units[S] residual units, unit k (k = 1, 2, …):
//                       x + reluS_{2k+1}(convS_{2k+1}(reluS_{2k}(convS_{2k}(x))))
//   C = 64, 128, 256, 512; units (1, 2, 4, 1) for SphereFace-20 (20 conv layers)
//   fc5: Linear(512·7·6 → D, bias)                                             (N, D)
//
// State-dict names are those of the PyTorch port (clcarwin/sphereface_pytorch `sphere20a`, which
// is what people convert): conv1_1.weight, conv1_1.bias, relu1_1.weight, conv1_2.*, …,
// conv4_3.*, relu4_3.weight, fc5.weight, fc5.bias.
// Initialisation as the Caffe prototxt: stage convolutions and fc5 Xavier (U(±√(3/fan_in))),
// residual-unit convolutions N(0, 0.01), biases 0, PReLU 0.25.
#pragma once

#include <memory>
#include <vector>

#include "layers/backbones/backbone.h"

namespace mf {

struct SphereNetConfig {
  std::vector<int64_t> units{1, 2, 4, 1};  // residual units per stage: SphereFace-20
  double width = 1.0;                      // multiplies every channel count
  int64_t embedding_size = 512;
  int64_t input_height = 112, input_width = 96;
};

class SphereNet : public Backbone {
 public:
  SphereNet(const SphereNetConfig& config, Rng& rng);
  Var forward(const Var& x) override;
  std::vector<StageInfo> stages() const override;
  const SphereNetConfig config;

 private:
  struct ConvPReLU {
    std::shared_ptr<Conv2d> conv;
    std::shared_ptr<PReLU> relu;
    Var forward(const Var& x) const { return relu->forward(conv->forward(x)); }
  };
  struct Stage {
    ConvPReLU down;
    std::vector<std::pair<ConvPReLU, ConvPReLU>> units;
  };
  ConvPReLU make(int stage, int index, int64_t in, int64_t out, int64_t stride, Rng& rng);
  std::vector<Stage> stages_;
  std::shared_ptr<Linear> fc5_;
};

}  // namespace mf
