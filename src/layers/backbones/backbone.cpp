#include "layers/backbones/backbone.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace mf {

Backbone::Backbone(int64_t input_height, int64_t input_width, int64_t embedding_size)
    : input_height_(input_height), input_width_(input_width), embedding_size_(embedding_size) {
  MF_CHECK(input_height > 0 && input_width > 0, "backbone: invalid input size ", input_height, "×",
           input_width);
  MF_CHECK(embedding_size > 0, "backbone: embedding size must be positive, got ", embedding_size);
}

void Backbone::check_input(const Var& x, const char* who) const {
  const Shape& s = x.shape();
  MF_CHECK(s.rank() == 4 && s[1] == 3 && s[2] == input_height_ && s[3] == input_width_, who,
           ": expected images (N, 3, ", input_height_, ", ", input_width_, "), got ", s);
}

void MacCounter::conv(const Conv2dConfig& c) {
  MF_CHECK(c.in == C, "MacCounter: a convolution over ", c.in, " channels applied to ", C);
  const int64_t Ho = conv_out(H, c.kernel, c.stride, c.pad);
  const int64_t Wo = conv_out(W, c.kernel, c.stride, c.pad);
  macs += c.out * Ho * Wo * (c.in / c.groups) * c.kernel * c.kernel;
  C = c.out;
  H = Ho;
  W = Wo;
}

void MacCounter::linear(const LinearConfig& c) {
  MF_CHECK(c.in == (H == 0 ? C : C * H * W), "MacCounter: a linear layer over ", c.in,
           " features applied to ", shape());
  macs += c.in * c.out;
  C = c.out;
  H = W = 0;
}

int64_t MacCounter::take() {
  const int64_t share = macs - taken_;
  taken_ = macs;
  return share;
}

int64_t scaled_channels(int64_t base, double width) {
  MF_CHECK(width > 0, "width multiplier must be positive, got ", width);
  return std::max<int64_t>(1, std::llround(static_cast<double>(base) * width));
}

int64_t count_parameters(const std::vector<const Module*>& modules) {
  int64_t n = 0;
  for (const Module* m : modules) n += m->num_parameters();
  return n;
}

}  // namespace mf
