// Reverse-mode automatic differentiation over a recorded tape of closures.
//
// A Var is a handle (copies share value, gradient and history). Each op computes its output with
// a kernel and records a Node holding its inputs and a backward closure. backward(loss) seeds
// ∂loss/∂loss = 1, visits nodes in reverse topological order and lets each closure ADD its input
// gradients; nodes are freed as they run (saved activations go with them), and gradients of
// intermediate values are dropped once consumed. Leaf gradients accumulate across backward calls
// until zero_grad().
//
// Contract for op closures: `dy` is the gradient of the op's output; for each input i with
// slots.wants(i), add ∂loss/∂input_i into slots.grad(i) (zero-initialised on first use).
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace mf {

struct Node;

// What the tape needs of a value: its gradient, whether it wants one, and the op that produced it.
// Nodes hold their inputs' GradState, not the values themselves, so an intermediate value is freed
// as soon as no Var handle and no backward closure keeps it: an op whose backward does not need
// its input (BN computing from its output, an add) does not keep that input alive.
struct GradState {
  Shape shape;  // of the value, for zero-initialising the gradient
  Tensor grad;  // undefined until a gradient arrives
  bool requires_grad = false;
  std::shared_ptr<Node> producer;  // null for leaves
};

struct VarState {
  Tensor value;
  std::shared_ptr<GradState> tape;
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false);

  bool defined() const { return state_ != nullptr; }
  const Tensor& value() const { return state_->value; }
  Tensor& value() { return state_->value; }
  const Shape& shape() const { return state_->value.shape(); }
  int64_t dim(int axis) const { return state_->value.dim(axis); }
  bool requires_grad() const { return state_ && state_->tape->requires_grad; }
  void set_requires_grad(bool on) { state_->tape->requires_grad = on; }
  bool is_leaf() const { return state_->tape->producer == nullptr; }

  // The accumulated gradient (undefined before the first backward that reaches this Var).
  const Tensor& grad() const { return state_->tape->grad; }
  Tensor& grad() { return state_->tape->grad; }
  void zero_grad();  // zeroes in place (keeps the buffer) when defined

  // Detached copy: same value storage, no history, no gradient.
  Var detach() const { return Var(state_->value, false); }

  const std::shared_ptr<VarState>& state() const { return state_; }

 private:
  std::shared_ptr<VarState> state_;
};

// Gives a backward closure access to its inputs' gradient buffers.
class GradSlots {
 public:
  explicit GradSlots(const std::vector<std::shared_ptr<GradState>>& inputs) : inputs_(inputs) {}
  bool wants(size_t i) const { return inputs_[i]->requires_grad; }
  Tensor& grad(size_t i);  // zero-initialised on first use
  float* data_or_null(size_t i) { return wants(i) ? grad(i).data() : nullptr; }
  // grad(i) += g (g has input i's shape). When input i has no gradient yet it takes g's storage
  // instead of a zeroed copy
  // (`g_is_spare`: the caller promises nothing else reads or writes g afterwards), else a clone.
  void add(size_t i, const Tensor& g, bool g_is_spare);

 private:
  const std::vector<std::shared_ptr<GradState>>& inputs_;
};

using BackwardFn = std::function<void(const Tensor& dy, GradSlots& slots)>;

struct Node {
  const char* op;  // "conv2d": named in errors and anomaly reports
  std::vector<std::shared_ptr<GradState>> inputs;
  BackwardFn backward;
  std::string layer;  // profiling only: op and shapes, the key of the per-layer time table
};

// An op setting its inputs do not carry (a convolution's stride, BatchNorm's eps and running
// statistics), passed to record() for a graph tracer (`marginface export`): a number, or a tensor
// when `tensor` is defined.
struct OpAttribute {
  OpAttribute(const char* attribute_name, double value) : name(attribute_name), number(value) {}
  OpAttribute(const char* attribute_name, Tensor value)
      : name(attribute_name), tensor(std::move(value)) {}
  const char* name;
  double number = 0;
  Tensor tensor;
};

// Wraps an op's output. Records a Node when grad mode is on and some input requires a gradient;
// otherwise the closure is dropped and the output is a constant. Every call is also reported to
// the installed OpTracer, if any, with `attributes`.
Var record(const char* op, Tensor value, const std::vector<Var>& inputs, BackwardFn backward,
           std::initializer_list<OpAttribute> attributes = {});

// Sees every op run on its thread while installed by a TraceGuard: the graph of one forward pass,
// with the handles of its inputs and output (Var::state() identifies a value) and the op's
// attributes. An op that returns its input unchanged (dropout in eval mode) reports nothing.
class OpTracer {
 public:
  virtual ~OpTracer() = default;
  virtual void on_op(const char* op, const std::vector<Var>& inputs, const Var& output,
                     std::initializer_list<OpAttribute> attributes) = 0;
};
// Whether a TraceGuard is active on this thread (export: layers then run their plain ops).
bool tracing();
class TraceGuard {
 public:
  explicit TraceGuard(OpTracer& tracer);
  ~TraceGuard();
  TraceGuard(const TraceGuard&) = delete;
  TraceGuard& operator=(const TraceGuard&) = delete;

 private:
  OpTracer* previous_;
};

// Runs the backward pass from a one-element Var (or from `seed`, its gradient, for any shape).
void backward(const Var& root, const Tensor& seed = Tensor());
// The same, calling `leaf_ready(leaf)` as soon as a leaf's gradient (a parameter's) is final: when
// the last node that feeds it has run. Data-parallel training starts the gradient allreduce of
// the layers whose backward is done while the earlier layers still compute (DDP's buckets).
// Leaves the graph never reaches are not reported.
using LeafReadyFn = std::function<void(const GradState* leaf)>;
void backward(const Var& root, const Tensor& seed, const LeafReadyFn& leaf_ready);

bool grad_enabled();
// While alive, ops record nothing (evaluation, optimizer updates). Nests.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Anomaly mode: every op output is checked for NaN/Inf as it is computed, and the error names the
// op (off by default: it costs a pass over every activation).
void set_anomaly_detection(bool on);
bool anomaly_detection();

// Op profiling (`marginface bench`'s per-op table, like `caffe time`). While on, each op's
// forward time is the wall time since the previous op finished (or since profile_mark()), and
// each backward closure is timed exactly; both are summed per op name. Off by default.
// flop: the multiply-adds × 2 of the matrix ops (conv2d, linear, matmul), summed over the forward
// calls; their backward does about twice as many (input and weight gradients); 0 for other ops.
struct OpTiming {
  std::string op;
  double forward_ms = 0, backward_ms = 0;
  int64_t forward_calls = 0, backward_calls = 0;
  double forward_flop = 0;
};
void set_profiling(bool on);
void profile_mark();  // start of a forward pass: what comes before is not charged to the first op
void profile_reset();
// Sorted by total time, largest first. by_layer: one row per op and shape signature
// ("conv2d 3x3 64x56x56 -> 128x28x28": kernel size for convolutions, per-sample shapes)
// instead of one per op name.
std::vector<OpTiming> profile_report(bool by_layer = false);

}  // namespace mf
