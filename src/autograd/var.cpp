#include "autograd/var.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <unordered_set>

#include "util/error.h"

namespace mf {

namespace {
thread_local bool g_grad_enabled = true;
bool g_anomaly = false;
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }
void set_anomaly_detection(bool on) { g_anomaly = on; }
bool anomaly_detection() { return g_anomaly; }

namespace {
using ProfileClock = std::chrono::steady_clock;
bool g_profiling = false;
ProfileClock::time_point g_last_mark;
std::map<std::string, OpTiming>& profile_table() {
  static std::map<std::string, OpTiming> table;
  return table;
}
double ms_between(ProfileClock::time_point a, ProfileClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

void set_profiling(bool on) {
  g_profiling = on;
  g_last_mark = ProfileClock::now();
}
void profile_mark() { g_last_mark = ProfileClock::now(); }
void profile_reset() { profile_table().clear(); }
std::vector<OpTiming> profile_report() {
  std::vector<OpTiming> out;
  for (auto& [name, t] : profile_table()) out.push_back(t);
  std::sort(out.begin(), out.end(), [](const OpTiming& a, const OpTiming& b) {
    return a.forward_ms + a.backward_ms > b.forward_ms + b.backward_ms;
  });
  return out;
}

Var::Var(Tensor value, bool requires_grad) : state_(std::make_shared<VarState>()) {
  MF_CHECK(value.defined(), "Var: cannot wrap an undefined tensor");
  state_->value = std::move(value);
  state_->requires_grad = requires_grad;
}

void Var::zero_grad() {
  if (state_ && state_->grad.defined()) state_->grad.zero();
}

Tensor& GradSlots::grad(size_t i) {
  VarState& s = *inputs_[i];
  if (!s.grad.defined()) s.grad = Tensor::zeros(s.value.shape());
  return s.grad;
}

Var record(const char* op, Tensor value, const std::vector<Var>& inputs, BackwardFn backward) {
  if (g_profiling) {
    const auto now = ProfileClock::now();
    OpTiming& t = profile_table()[op];
    t.op = op;
    t.forward_ms += ms_between(g_last_mark, now);
    ++t.forward_calls;
    g_last_mark = now;
  }
  if (g_anomaly) {
    const float* p = value.data();
    for (int64_t i = 0; i < value.numel(); ++i)
      MF_CHECK(std::isfinite(p[i]), "anomaly: op '", op, "' produced a non-finite value (", p[i],
               ") at flat index ", i, " of its output ", value.shape());
  }
  Var out(std::move(value), false);
  if (!g_grad_enabled) return out;
  bool any = false;
  for (const Var& v : inputs) any = any || v.requires_grad();
  if (!any) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs.reserve(inputs.size());
  for (const Var& v : inputs) node->inputs.push_back(v.state());
  node->backward = std::move(backward);
  out.state()->producer = std::move(node);
  out.state()->requires_grad = true;
  return out;
}

void backward(const Var& root, const Tensor& seed) {
  MF_CHECK(root.defined(), "backward: undefined root");
  if (!root.requires_grad()) return;  // nothing upstream wants a gradient
  VarState* root_state = root.state().get();
  if (seed.defined()) {
    MF_CHECK(seed.shape() == root.shape(), "backward: seed gradient ", seed.shape(),
             " does not match the root ", root.shape());
  } else {
    MF_CHECK(root.value().numel() == 1, "backward: the root must be a single value (got ",
             root.shape(), "); pass a seed gradient for other shapes");
  }

  // Reverse topological order by an iterative depth-first search over producers. The order holds
  // owning pointers: freeing a consumer's node must not free an input still waiting its turn.
  std::vector<std::shared_ptr<VarState>> order;
  std::unordered_set<VarState*> seen;
  std::vector<std::pair<std::shared_ptr<VarState>, size_t>> stack{{root.state(), 0}};
  seen.insert(root_state);
  while (!stack.empty()) {
    auto& [state, next] = stack.back();
    Node* node = state->producer.get();
    if (node && next < node->inputs.size()) {
      const std::shared_ptr<VarState>& input = node->inputs[next++];
      if (input->producer && input->requires_grad && seen.insert(input.get()).second)
        stack.push_back({input, 0});
      continue;
    }
    order.push_back(std::move(state));
    stack.pop_back();
  }

  Tensor seed_value = seed.defined() ? seed.clone() : Tensor::full(root.shape(), 1.0f);
  if (root_state->grad.defined())
    root_state->grad.add_(seed_value);
  else
    root_state->grad = seed_value;

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    VarState* state = it->get();
    std::shared_ptr<Node> node = std::move(state->producer);  // frees the node after this step
    if (!node) continue;
    if (state->grad.defined()) {
      GradSlots slots(node->inputs);
      const auto t0 = g_profiling ? ProfileClock::now() : ProfileClock::time_point();
      node->backward(state->grad, slots);
      if (g_profiling) {
        OpTiming& t = profile_table()[node->op];
        t.op = node->op;
        t.backward_ms += ms_between(t0, ProfileClock::now());
        ++t.backward_calls;
      }
    }
    state->grad = Tensor();  // an intermediate's gradient is consumed
  }
}

}  // namespace mf
