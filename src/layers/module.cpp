#include "layers/module.h"

#include "layers/layers.h"
#include "util/error.h"

namespace mf {

Var Module::register_parameter(const std::string& name, Tensor init, bool requires_grad) {
  for (const auto& [n, v] : params_) MF_CHECK(n != name, "parameter '", name, "' registered twice");
  Var v(std::move(init), requires_grad);
  params_.emplace_back(name, v);
  return v;
}

Tensor Module::register_buffer(const std::string& name, Tensor init) {
  for (const auto& [n, b] : buffers_) MF_CHECK(n != name, "buffer '", name, "' registered twice");
  buffers_.emplace_back(name, init);
  return init;
}

void Module::collect_parameters(const std::string& prefix,
                                std::vector<std::pair<std::string, Var>>& out) const {
  for (const auto& [name, v] : params_) out.emplace_back(prefix + name, v);
  for (const auto& [name, child] : children_)  // an unnamed child shares its parent's names
    child->collect_parameters(name.empty() ? prefix : prefix + name + ".", out);
}

void Module::collect_buffers(const std::string& prefix,
                             std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, b] : buffers_) out.emplace_back(prefix + name, b);
  for (const auto& [name, child] : children_)
    child->collect_buffers(name.empty() ? prefix : prefix + name + ".", out);
}

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> out;
  collect_parameters("", out);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect_buffers("", out);
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (const auto& [name, v] : named_parameters())
    if (v.requires_grad()) out.push_back(v);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, v] : named_parameters()) n += v.value().numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, v] : named_parameters()) v.zero_grad();
}

Sequential& Sequential::add(std::shared_ptr<Layer> layer) {
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
  return *this;
}

Var Sequential::forward(const Var& x) {
  Var h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    // Conv2d → BatchNorm [→ PReLU] (MobileFaceNet's blocks): conv_bn, one fused op at inference
    // and the separate ops (BN + PReLU as batch_norm_prelu) otherwise.
    auto* conv = dynamic_cast<Conv2d*>(layers_[i].get());
    auto* conv_bn_norm =
        conv && i + 1 < layers_.size() ? dynamic_cast<BatchNorm*>(layers_[i + 1].get()) : nullptr;
    if (conv_bn_norm) {
      auto* act = i + 2 < layers_.size() ? dynamic_cast<PReLU*>(layers_[i + 2].get()) : nullptr;
      h = conv_bn(*conv, *conv_bn_norm, act, h);
      i += act ? 2 : 1;
      continue;
    }
    // BatchNorm followed by PReLU runs as one op: one pass over the activation, and only its
    // output is kept for the backward (batch_norm_prelu).
    auto* bn = dynamic_cast<BatchNorm*>(layers_[i].get());
    auto* act = i + 1 < layers_.size() ? dynamic_cast<PReLU*>(layers_[i + 1].get()) : nullptr;
    if (bn && act) {
      h = batch_norm_prelu(*bn, *act, h);
      ++i;
      continue;
    }
    h = layers_[i]->forward(h);
  }
  return h;
}

}  // namespace mf
