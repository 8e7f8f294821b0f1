// Optimizers and learning-rate schedules.
//
// An optimizer owns its per-parameter state (momentum, Adam moments) keyed by parameter name, so
// a checkpoint can store it by name and a resumed run continues bit for bit. The schedule owns the
// learning rate: step(lr) takes it as an argument each step. Updates run under NoGradGuard-free
// raw loops over the values (they never touch the tape).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "util/params.h"
#include "util/registry.h"

namespace mf {

struct ParamGroup {
  std::vector<std::pair<std::string, Var>> params;  // names as in the checkpoint
  float lr_mult = 1.0f;
  float weight_decay = 0.0f;
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;

  // One update with learning rate `lr` (times each group's lr_mult). Parameters without a
  // gradient are skipped.
  virtual void step(double lr) = 0;
  void zero_grad();
  // Scales all gradients so their global L2 norm is at most max_norm; returns the norm before.
  // `total_sparse`, when given, turns this process's squared norm of the sparse rows into that
  // of every process (Partial FC over several processes: each holds other rows).
  double clip_grad_norm(double max_norm,
                        const std::function<double(double)>& total_sparse = nullptr);
  double grad_norm(const std::function<double(double)>& total_sparse = nullptr) const;

  // Partial FC (losses/partial_fc.h): for the next step, parameter `name` (K, D) takes part with
  // only `rows` (ascending), whose gradient is the first R rows of `grad` (≥ R, D; Partial FC over
  // several processes adds rows that are not this parameter's) — added to what an earlier call of
  // this step gave for the same rows. Those rows and their state are updated; the other rows and
  // their state stay as they are. zero_grad() forgets them.
  void add_sparse_rows(const std::string& name, const std::vector<int64_t>& rows,
                       const Tensor& grad);

  // State for checkpoints: "<kind>/<param name>" → tensor, plus a step counter.
  virtual std::map<std::string, Tensor> state() const = 0;
  virtual void load_state(const std::map<std::string, Tensor>& state) = 0;
  const std::vector<ParamGroup>& groups() const { return groups_; }

 protected:
  // Row gradients of one parameter for this step (add_sparse_rows).
  struct SparseGrad {
    std::map<int64_t, int64_t> slot;  // row → position in grad
    std::vector<float> grad;          // (slots, D)
    int64_t D = 0;
  };
  // Calls update(row, its gradient (D), the group's lr multiplier and weight decay, the parameter)
  // for each sparse row of each parameter, in ascending row order.
  template <class Update>
  void for_each_sparse_row(Update update);

  std::vector<ParamGroup> groups_;
  std::map<std::string, SparseGrad> sparse_;
};

// SGD with PyTorch's conventions, so parity is exact (torch.optim.SGD, dampening 0):
//   g ← ∇ + λ·w;  v ← μ·v + g (v = g on the first step);  d = g + μ·v (Nesterov) or v;  w ← w −
//   lr·d
class Sgd : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, double momentum, bool nesterov);
  void step(double lr) override;
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;

 private:
  double momentum_;
  bool nesterov_;
  std::map<std::string, Tensor> velocity_;
};

// AdamW (Loshchilov & Hutter 2019) as torch.optim.AdamW:
//   w ← w·(1 − lr·λ);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;
//   w ← w − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, double beta1, double beta2, double eps);
  void step(double lr) override;
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;

 private:
  double beta1_, beta2_, eps_;
  int64_t t_ = 0;
  std::map<std::string, Tensor> m_, v_;
};

using OptimizerRegistry = Registry<Optimizer, std::vector<ParamGroup>>;
// sgd (momentum 0.9, nesterov false), adamw (beta1 0.9, beta2 0.999, eps 1e-8).
const OptimizerRegistry& optimizer_registry();

// Learning rate as a function of the (0-based) step: the schedule is stateless, so resuming only
// needs the step.
class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr(int64_t step) const = 0;
};

// Built from params: type multistep (milestones "a,b,c", gamma 0.1) | cosine (min_lr 0) |
// poly (power 1, to 0 at total_steps) | constant; warmup_steps (0): linear ramp from
// base_lr/warmup_steps to base_lr over the first warmup_steps steps.
using ScheduleRegistry = Registry<LrSchedule, double /*base_lr*/, int64_t /*total_steps*/>;
const ScheduleRegistry& schedule_registry();

}  // namespace mf
