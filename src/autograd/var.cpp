#include "autograd/var.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "util/error.h"

namespace mf {

namespace {
thread_local bool g_grad_enabled = true;
thread_local OpTracer* g_tracer = nullptr;
bool g_anomaly = false;
}  // namespace

bool grad_enabled() {
  return g_grad_enabled;
}
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) {
  g_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  g_grad_enabled = previous_;
}
bool tracing() {
  return g_tracer != nullptr;
}

TraceGuard::TraceGuard(OpTracer& tracer) : previous_(g_tracer) {
  g_tracer = &tracer;
}
TraceGuard::~TraceGuard() {
  g_tracer = previous_;
}
void set_anomaly_detection(bool on) {
  g_anomaly = on;
}
bool anomaly_detection() {
  return g_anomaly;
}

namespace {
using ProfileClock = std::chrono::steady_clock;
bool g_profiling = false;
ProfileClock::time_point g_last_mark;
std::map<std::string, OpTiming>& profile_table() {
  static std::map<std::string, OpTiming> table;
  return table;
}
std::map<std::string, OpTiming>& layer_table() {
  static std::map<std::string, OpTiming> table;
  return table;
}
// "conv2d 3x3 64x56x56 -> 128x28x28": the op (with a convolution's kernel size and groups) and
// its first input's and output's per-sample shapes,
// which tell the layers of a backbone apart well enough for a time table.
std::string layer_key(const char* op, const std::vector<Var>& inputs, const Shape& out,
                      double groups) {
  const Var* first_input = inputs.empty() ? nullptr : &inputs[0];
  auto dims = [](const Shape& s) {
    std::string text;
    for (int i = 1; i < s.rank(); ++i) {
      if (i > 1) text.push_back('x');
      text.append(std::to_string(s[i]));
    }
    return text.empty() ? std::string("scalar") : text;
  };
  std::string key = op;
  // A convolution's kernel size (a 3×3 and a 1×1 stride-2 layer can share shapes); a grouped
  // (depthwise) one runs other kernels than a dense one of the same shapes.
  const std::string name = op;
  if (name.rfind("conv2d", 0) == 0 && inputs.size() >= 2 && inputs[1].shape().rank() == 4)
    key.append(" ")
        .append(std::to_string(inputs[1].shape()[2]))
        .append("x")
        .append(std::to_string(inputs[1].shape()[3]));
  if (groups > 1) key.append(" groups=").append(std::to_string(int64_t(groups)));
  key.push_back(' ');
  if (first_input) key.append(dims(first_input->shape())).append(" -> ");
  return key.append(dims(out));
}
void add_forward(std::map<std::string, OpTiming>& table, const std::string& key, double ms,
                 double flop) {
  OpTiming& t = table[key];
  t.op = key;
  t.forward_ms += ms;
  t.forward_flop += flop;
  ++t.forward_calls;
}
// 2 × multiply-adds of a matrix op's forward: each output value of conv2d (w (O, C/G, kH, kW)) or
// linear (w (out, in)) sums (weight size / output channels) products.
double forward_flop(const char* op, const std::vector<Var>& inputs, const Shape& out) {
  const std::string name = op;
  // conv2d, its fused inference forms ("conv2d+bn+prelu") and linear.
  if ((name.rfind("conv2d", 0) == 0 || name == "linear") && inputs.size() >= 2 &&
      inputs[1].shape().rank() >= 1)
    return 2.0 * double(out.numel()) *
           double(inputs[1].shape().numel() / std::max<int64_t>(1, inputs[1].shape()[0]));
  if (name == "matmul" && inputs.size() == 2) {
    // a (M, K), b (K, N), out (M, N) in any transposition: M·K · K·N · M·N = (M·N·K)².
    const double product =
        double(inputs[0].shape().numel()) * double(inputs[1].shape().numel()) * double(out.numel());
    return 2.0 * std::sqrt(product);
  }
  return 0;
}
void add_backward(std::map<std::string, OpTiming>& table, const std::string& key, double ms) {
  OpTiming& t = table[key];
  t.op = key;
  t.backward_ms += ms;
  ++t.backward_calls;
}
double ms_between(ProfileClock::time_point a, ProfileClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

void set_profiling(bool on) {
  g_profiling = on;
  g_last_mark = ProfileClock::now();
}
void profile_mark() {
  g_last_mark = ProfileClock::now();
}
void profile_reset() {
  profile_table().clear();
  layer_table().clear();
}
std::vector<OpTiming> profile_report(bool by_layer) {
  std::vector<OpTiming> out;
  for (auto& [name, t] : by_layer ? layer_table() : profile_table()) out.push_back(t);
  std::sort(out.begin(), out.end(), [](const OpTiming& a, const OpTiming& b) {
    return a.forward_ms + a.backward_ms > b.forward_ms + b.backward_ms;
  });
  return out;
}

Var::Var(Tensor value, bool requires_grad) : state_(std::make_shared<VarState>()) {
  MF_CHECK(value.defined(), "Var: cannot wrap an undefined tensor");
  state_->tape = std::make_shared<GradState>();
  state_->tape->shape = value.shape();
  state_->tape->requires_grad = requires_grad;
  state_->value = std::move(value);
}

void Var::zero_grad() {
  if (state_ && state_->tape->grad.defined()) state_->tape->grad.zero();
}

Tensor& GradSlots::grad(size_t i) {
  GradState& s = *inputs_[i];
  if (!s.grad.defined()) s.grad = Tensor::zeros(s.shape);
  return s.grad;
}

void GradSlots::add(size_t i, const Tensor& g, bool g_is_spare) {
  GradState& s = *inputs_[i];
  if (!s.requires_grad) return;
  MF_CHECK(g.shape() == s.shape, "GradSlots::add: gradient ", g.shape(), " for an input of shape ",
           s.shape);
  if (s.grad.defined())
    s.grad.add_(g);
  else
    s.grad = g_is_spare ? g : g.clone();
}

Var record(const char* op, Tensor value, const std::vector<Var>& inputs, BackwardFn backward,
           std::initializer_list<OpAttribute> attributes) {
  std::string layer;
  if (g_profiling) {
    const auto now = ProfileClock::now();
    const double ms = ms_between(g_last_mark, now);
    double groups = 1;
    for (const OpAttribute& a : attributes)
      if (std::string_view(a.name) == "groups") groups = a.number;
    layer = layer_key(op, inputs, value.shape(), groups);
    const double flop = forward_flop(op, inputs, value.shape());
    add_forward(profile_table(), op, ms, flop);
    add_forward(layer_table(), layer, ms, flop);
    g_last_mark = now;
  }
  if (g_anomaly) {
    const float* p = value.data();
    for (int64_t i = 0; i < value.numel(); ++i)
      MF_CHECK(std::isfinite(p[i]), "anomaly: op '", op, "' produced a non-finite value (", p[i],
               ") at flat index ", i, " of its output ", value.shape());
  }
  Var out(std::move(value), false);
  if (g_tracer) g_tracer->on_op(op, inputs, out, attributes);
  if (!g_grad_enabled) return out;
  bool any = false;
  for (const Var& v : inputs) any = any || v.requires_grad();
  if (!any) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs.reserve(inputs.size());
  for (const Var& v : inputs) node->inputs.push_back(v.state()->tape);
  node->backward = std::move(backward);
  node->layer = std::move(layer);
  out.state()->tape->producer = std::move(node);
  out.state()->tape->requires_grad = true;
  return out;
}

void backward(const Var& root, const Tensor& seed) {
  backward(root, seed, LeafReadyFn());
}

void backward(const Var& root, const Tensor& seed, const LeafReadyFn& leaf_ready) {
  MF_CHECK(root.defined(), "backward: undefined root");
  if (!root.requires_grad()) return;  // nothing upstream wants a gradient
  GradState* root_state = root.state()->tape.get();
  if (seed.defined()) {
    MF_CHECK(seed.shape() == root.shape(), "backward: seed gradient ", seed.shape(),
             " does not match the root ", root.shape());
  } else {
    MF_CHECK(root.value().numel() == 1, "backward: the root must be a single value (got ",
             root.shape(), "); pass a seed gradient for other shapes");
  }

  // Reverse topological order by an iterative depth-first search over producers. The order holds
  // owning pointers: freeing a consumer's node must not free an input still waiting its turn.
  std::vector<std::shared_ptr<GradState>> order;
  std::unordered_set<GradState*> seen;
  std::vector<std::pair<std::shared_ptr<GradState>, size_t>> stack{{root.state()->tape, 0}};
  seen.insert(root_state);
  while (!stack.empty()) {
    auto& [state, next] = stack.back();
    Node* node = state->producer.get();
    if (node && next < node->inputs.size()) {
      const std::shared_ptr<GradState>& input = node->inputs[next++];
      if (input->producer && input->requires_grad && seen.insert(input.get()).second)
        stack.push_back({input, 0});
      continue;
    }
    order.push_back(std::move(state));
    stack.pop_back();
  }

  // For leaf_ready: how many nodes still have to add into each leaf's gradient.
  std::unordered_map<const GradState*, int> pending_uses;
  if (leaf_ready)
    for (const auto& state : order)
      if (state->producer)
        for (const auto& input : state->producer->inputs)
          if (!input->producer && input->requires_grad) ++pending_uses[input.get()];

  Tensor seed_value = seed.defined() ? seed.clone() : Tensor::full(root.shape(), 1.0f);
  if (root_state->grad.defined())
    root_state->grad.add_(seed_value);
  else
    root_state->grad = seed_value;

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    GradState* state = it->get();
    std::shared_ptr<Node> node = std::move(state->producer);  // frees the node after this step
    if (!node) continue;
    if (state->grad.defined()) {
      GradSlots slots(node->inputs);
      const auto t0 = g_profiling ? ProfileClock::now() : ProfileClock::time_point();
      node->backward(state->grad, slots);
      if (g_profiling) {
        const double ms = ms_between(t0, ProfileClock::now());
        add_backward(profile_table(), node->op, ms);
        if (!node->layer.empty()) add_backward(layer_table(), node->layer, ms);
      }
    }
    state->grad = Tensor();  // an intermediate's gradient is consumed
    if (leaf_ready)
      for (const auto& input : node->inputs)
        if (!input->producer && input->requires_grad && --pending_uses[input.get()] == 0)
          leaf_ready(input.get());
  }
}

}  // namespace mf
