// Backbones: image batch (N, 3, H, W) → embeddings (N, D).
//
// Contract (in addition to Layer's, see layers/module.h):
//  * forward() takes exactly (N, 3, input_height(), input_width()) and returns (N, D),
//    D = embedding_size(); images are normalised as in insightface: RGB, (x − 127.5) / 127.5.
//  * Parameter and buffer names equal the PyTorch reference's state_dict keys (see each family's
//    header), so weights convert one-to-one.
//  * Construction is deterministic given the Rng state: the same seed gives the same weights.
//  * stages() describes the network for `marginface describe`: one entry per stage, in forward
//    order, whose parameter counts add up to num_parameters() and whose multiply-adds (convolutions
//    and fully connected layers only, per image) add up to the forward cost.
#pragma once

#include <string>
#include <vector>

#include "layers/layers.h"
#include "layers/module.h"

namespace mf {

struct StageInfo {
  std::string name;        // "layer1", or the module name in the state_dict
  std::string summary;     // "3 × IBasicBlock, stride 2"
  Shape output;            // per image: (C, H, W) or (D)
  int64_t parameters = 0;  // elements, frozen ones included (PyTorch's count)
  int64_t macs = 0;        // multiply-adds per image
  double gflops() const { return 2e-9 * static_cast<double>(macs); }
};

class Backbone : public Layer {
 public:
  int64_t input_height() const { return input_height_; }
  int64_t input_width() const { return input_width_; }
  int64_t embedding_size() const { return embedding_size_; }
  virtual std::vector<StageInfo> stages() const = 0;

 protected:
  Backbone(int64_t input_height, int64_t input_width, int64_t embedding_size);
  // Errors unless x is (N, 3, input_height(), input_width()); `who` names the backbone.
  void check_input(const Var& x, const char* who) const;

 private:
  int64_t input_height_, input_width_, embedding_size_;
};

// Follows one image's feature map (C, H, W) through a chain of layers, adding up multiply-adds.
// A branch (a shortcut) is counted on a copy taken before the main path moves on.
class MacCounter {
 public:
  MacCounter(int64_t channels, int64_t height, int64_t width) : C(channels), H(height), W(width) {}

  void conv(const Conv2dConfig& c);    // O·Ho·Wo·(C/groups)·k² ; the map becomes (O, Ho, Wo)
  void linear(const LinearConfig& c);  // in·out ; the map becomes (out)
  Shape shape() const { return H == 0 ? Shape{C} : Shape{C, H, W}; }
  // Returns the multiply-adds counted since the last call (a stage's share).
  int64_t take();

  int64_t C, H, W;  // the current map; H = W = 0 after a linear layer
  int64_t macs = 0;

 private:
  int64_t taken_ = 0;
};

// Output size of a convolution along one axis.
inline int64_t conv_out(int64_t size, int64_t kernel, int64_t stride, int64_t pad) {
  return (size + 2 * pad - kernel) / stride + 1;
}

// Channels after a width multiplier: round(base · width), at least 1.
int64_t scaled_channels(int64_t base, double width);

// Σ num_parameters() over some modules (a stage made of several named children).
int64_t count_parameters(const std::vector<const Module*>& modules);

}  // namespace mf
