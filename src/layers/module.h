// Modules: named parameters and buffers in a tree, with PyTorch's state_dict names.
//
// Contract (as in dlib's layers_abstract.h, written down once):
//  * Names are dotted paths equal to the PyTorch reference's state_dict keys
//    ("layer1.0.conv1.weight", "bn1.running_mean"), so checkpoints convert one-to-one.
//  * forward() never mutates parameters. In training mode it may update buffers (BatchNorm
//    running statistics), in place, so handles to them stay valid.
//  * Parameter gradients accumulate in Var::grad() across backward calls until zero_grad().
//  * Loading copies into the existing storage; shapes must match exactly.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"

namespace mf {

class Module {
 public:
  virtual ~Module() = default;

  std::vector<std::pair<std::string, Var>> named_parameters() const;  // trainable or frozen
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;  // running statistics
  std::vector<Var> parameters() const;  // only those that require a gradient
  int64_t num_parameters() const;       // all parameter elements (PyTorch's count)

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

 protected:
  Var register_parameter(const std::string& name, Tensor init, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor init);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    children_.emplace_back(name, module);
    return module;
  }

 private:
  void collect_parameters(const std::string& prefix,
                          std::vector<std::pair<std::string, Var>>& out) const;
  void collect_buffers(const std::string& prefix,
                       std::vector<std::pair<std::string, Tensor>>& out) const;

  std::vector<std::pair<std::string, Var>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A module with one input and one output.
class Layer : public Module {
 public:
  virtual Var forward(const Var& x) = 0;
  Var operator()(const Var& x) { return forward(x); }
};

// Layers applied in order; children are named "0", "1", ... as in torch.nn.Sequential.
class Sequential : public Layer {
 public:
  Sequential& add(std::shared_ptr<Layer> layer);
  Var forward(const Var& x) override;
  size_t size() const { return layers_.size(); }
  const std::shared_ptr<Layer>& operator[](size_t i) const { return layers_[i]; }

 private:
  std::vector<std::shared_ptr<Layer>> layers_;
};

}  // namespace mf
