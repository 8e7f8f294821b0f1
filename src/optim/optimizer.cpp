#include "optim/optimizer.h"

#include <cmath>
#include <sstream>

#include "util/error.h"

namespace mf {

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& [name, p] : g.params) p.zero_grad();
  sparse_.clear();
}

void Optimizer::add_sparse_rows(const std::string& name, const std::vector<int64_t>& rows,
                                const Tensor& grad) {
  const Var* param = nullptr;
  for (const auto& g : groups_)
    for (const auto& [n, p] : g.params)
      if (n == name) param = &p;
  MF_CHECK(param, "add_sparse_rows: no parameter '", name, "' in the optimizer");
  const Shape& shape = param->value().shape();
  const int64_t R = static_cast<int64_t>(rows.size());
  MF_CHECK(
      shape.rank() == 2 && grad.shape().rank() == 2 && grad.dim(0) >= R && grad.dim(1) == shape[1],
      "add_sparse_rows: gradient ", grad.shape(), " for ", R, " rows of ", name, " ", shape);
  SparseGrad& s = sparse_[name];
  s.D = shape[1];
  for (int64_t r = 0; r < R; ++r) {
    MF_CHECK(rows[r] >= 0 && rows[r] < shape[0], "add_sparse_rows: row ", rows[r], " of ", name,
             " ", shape);
    auto [it, fresh] = s.slot.emplace(rows[r], int64_t(s.grad.size()) / s.D);
    if (fresh) s.grad.resize(s.grad.size() + size_t(s.D), 0.0f);
    float* dst = s.grad.data() + it->second * s.D;
    const float* src = grad.data() + r * s.D;
    for (int64_t d = 0; d < s.D; ++d) dst[d] += src[d];
  }
}

template <class Update>
void Optimizer::for_each_sparse_row(Update update) {
  for (auto& [name, s] : sparse_)
    for (auto& group : groups_)
      for (auto& [n, p] : group.params) {
        if (n != name) continue;
        for (const auto& [row, slot] : s.slot)
          update(name, row, s.grad.data() + slot * s.D, s.D, group, p);
      }
}

double Optimizer::grad_norm(const std::function<double(double)>& total_sparse) const {
  double sq = 0;
  for (const auto& g : groups_)
    for (const auto& [name, p] : g.params) {
      if (!p.grad().defined()) continue;
      const float* d = p.grad().data();
      for (int64_t i = 0; i < p.grad().numel(); ++i) sq += double(d[i]) * d[i];
    }
  double sparse_sq = 0;
  for (const auto& [name, s] : sparse_)
    for (const float v : s.grad) sparse_sq += double(v) * v;
  return std::sqrt(sq + (total_sparse ? total_sparse(sparse_sq) : sparse_sq));
}

double Optimizer::clip_grad_norm(double max_norm,
                                 const std::function<double(double)>& total_sparse) {
  const double norm = grad_norm(total_sparse);
  // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
  const double scale = max_norm / (norm + 1e-6);
  if (scale < 1.0)
    for (auto& g : groups_)
      for (auto& [name, p] : g.params) {
        if (!p.grad().defined()) continue;
        float* d = p.grad().data();
        for (int64_t i = 0; i < p.grad().numel(); ++i) d[i] = static_cast<float>(d[i] * scale);
      }
  if (scale < 1.0)
    for (auto& [name, s] : sparse_)
      for (float& v : s.grad) v = static_cast<float>(v * scale);
  return norm;
}

namespace {
void load_into(std::map<std::string, Tensor>& dst, const std::map<std::string, Tensor>& src,
               const std::string& prefix) {
  dst.clear();
  for (const auto& [key, t] : src)
    if (key.rfind(prefix, 0) == 0) dst[key.substr(prefix.size())] = t.clone();
}
}  // namespace

Sgd::Sgd(std::vector<ParamGroup> groups, double momentum, bool nesterov)
    : Optimizer(std::move(groups)), momentum_(momentum), nesterov_(nesterov) {
  MF_CHECK(!nesterov || momentum > 0, "sgd: nesterov needs momentum > 0");
}

void Sgd::step(double lr) {
  for (auto& group : groups_) {
    const double group_lr = lr * group.lr_mult, wd = group.weight_decay;
    for (auto& [name, p] : group.params) {
      if (!p.grad().defined()) continue;
      float* w = p.value().data();
      const float* grad = p.grad().data();
      const int64_t n = p.value().numel();
      float* v = nullptr;
      bool first = false;
      if (momentum_ > 0) {
        auto it = velocity_.find(name);
        first = it == velocity_.end();
        if (first) it = velocity_.emplace(name, Tensor::zeros(p.value().shape())).first;
        v = it->second.data();
      }
      for (int64_t i = 0; i < n; ++i) {
        const float g = static_cast<float>(grad[i] + wd * w[i]);
        float d = g;
        if (v) {
          v[i] = first ? g : static_cast<float>(momentum_ * v[i] + g);
          d = nesterov_ ? static_cast<float>(g + momentum_ * v[i]) : v[i];
        }
        w[i] -= static_cast<float>(group_lr * d);
      }
    }
  }
  // Partial FC's rows: the same update on each row; a row's velocity starts at zero (v = g on its
  // first update, as above).
  for_each_sparse_row([&](const std::string& name, int64_t row, const float* grad, int64_t D,
                          const ParamGroup& group, Var& p) {
    const double group_lr = lr * group.lr_mult, wd = group.weight_decay;
    float* w = p.value().data() + row * D;
    float* v = nullptr;
    if (momentum_ > 0) {
      auto it = velocity_.find(name);
      if (it == velocity_.end())
        it = velocity_.emplace(name, Tensor::zeros(p.value().shape())).first;
      v = it->second.data() + row * D;
    }
    for (int64_t i = 0; i < D; ++i) {
      const float g = static_cast<float>(grad[i] + wd * w[i]);
      float d = g;
      if (v) {
        v[i] = static_cast<float>(momentum_ * v[i] + g);
        d = nesterov_ ? static_cast<float>(g + momentum_ * v[i]) : v[i];
      }
      w[i] -= static_cast<float>(group_lr * d);
    }
  });
}

std::map<std::string, Tensor> Sgd::state() const {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : velocity_) out["momentum/" + name] = t;
  return out;
}

void Sgd::load_state(const std::map<std::string, Tensor>& state) {
  load_into(velocity_, state, "momentum/");
}

AdamW::AdamW(std::vector<ParamGroup> groups, double beta1, double beta2, double eps)
    : Optimizer(std::move(groups)), beta1_(beta1), beta2_(beta2), eps_(eps) {}

void AdamW::step(double lr) {
  ++t_;
  const double c1 = 1 - std::pow(beta1_, double(t_)), c2 = 1 - std::pow(beta2_, double(t_));
  for (auto& group : groups_) {
    const double group_lr = lr * group.lr_mult, wd = group.weight_decay;
    for (auto& [name, p] : group.params) {
      if (!p.grad().defined()) continue;
      float* w = p.value().data();
      const float* grad = p.grad().data();
      const int64_t n = p.value().numel();
      if (!m_.count(name)) {
        m_.emplace(name, Tensor::zeros(p.value().shape()));
        v_.emplace(name, Tensor::zeros(p.value().shape()));
      }
      float* m = m_.at(name).data();
      float* v = v_.at(name).data();
      for (int64_t i = 0; i < n; ++i) {
        w[i] = static_cast<float>(w[i] * (1 - group_lr * wd));
        m[i] = static_cast<float>(beta1_ * m[i] + (1 - beta1_) * grad[i]);
        v[i] = static_cast<float>(beta2_ * v[i] + (1 - beta2_) * double(grad[i]) * grad[i]);
        w[i] -= static_cast<float>(group_lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps_));
      }
    }
  }
  // Partial FC's rows: the same update on each row, with the optimizer's step count t (a row
  // that sat out steps keeps its moments as they were).
  for_each_sparse_row([&](const std::string& name, int64_t row, const float* grad, int64_t D,
                          const ParamGroup& group, Var& p) {
    const double group_lr = lr * group.lr_mult, wd = group.weight_decay;
    if (!m_.count(name)) {
      m_.emplace(name, Tensor::zeros(p.value().shape()));
      v_.emplace(name, Tensor::zeros(p.value().shape()));
    }
    float* w = p.value().data() + row * D;
    float* m = m_.at(name).data() + row * D;
    float* v = v_.at(name).data() + row * D;
    for (int64_t i = 0; i < D; ++i) {
      w[i] = static_cast<float>(w[i] * (1 - group_lr * wd));
      m[i] = static_cast<float>(beta1_ * m[i] + (1 - beta1_) * grad[i]);
      v[i] = static_cast<float>(beta2_ * v[i] + (1 - beta2_) * double(grad[i]) * grad[i]);
      w[i] -= static_cast<float>(group_lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps_));
    }
  });
}

std::map<std::string, Tensor> AdamW::state() const {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : m_) out["exp_avg/" + name] = t;
  for (const auto& [name, t] : v_) out["exp_avg_sq/" + name] = t;
  out["step"] = Tensor::scalar(static_cast<float>(t_));
  return out;
}

void AdamW::load_state(const std::map<std::string, Tensor>& state) {
  load_into(m_, state, "exp_avg/");
  load_into(v_, state, "exp_avg_sq/");
  auto it = state.find("step");
  t_ = it == state.end() ? 0 : static_cast<int64_t>(it->second.item());
}

const OptimizerRegistry& optimizer_registry() {
  static const OptimizerRegistry registry = [] {
    OptimizerRegistry r("optimizer");
    r.add(
        "sgd",
        [](const Params& p, std::vector<ParamGroup> groups) -> std::unique_ptr<Optimizer> {
          const double momentum = p.get_double("momentum", 0.9, 0.0, 0.999999);
          return std::make_unique<Sgd>(std::move(groups), momentum, p.get_bool("nesterov", false));
        },
        "SGD with momentum (PyTorch convention)");
    r.add(
        "adamw",
        [](const Params& p, std::vector<ParamGroup> groups) -> std::unique_ptr<Optimizer> {
          return std::make_unique<AdamW>(std::move(groups),
                                         p.get_double("beta1", 0.9, 0.0, 0.999999),
                                         p.get_double("beta2", 0.999, 0.0, 0.999999999),
                                         p.get_double_open_low("eps", 1e-8, 0.0, 1.0));
        },
        "AdamW (decoupled weight decay)");
    return r;
  }();
  return registry;
}

// ---------------------------------------------------------------- schedules
namespace {

class Warmup : public LrSchedule {
 public:
  Warmup(std::unique_ptr<LrSchedule> inner, double base_lr, int64_t steps)
      : inner_(std::move(inner)), base_lr_(base_lr), steps_(steps) {}
  double lr(int64_t step) const override {
    if (step < steps_) return base_lr_ * double(step + 1) / double(steps_);
    return inner_->lr(step);
  }

 private:
  std::unique_ptr<LrSchedule> inner_;
  double base_lr_;
  int64_t steps_;
};

class Constant : public LrSchedule {
 public:
  explicit Constant(double lr) : lr_(lr) {}
  double lr(int64_t) const override { return lr_; }

 private:
  double lr_;
};

// ×gamma at each milestone step passed.
class MultiStep : public LrSchedule {
 public:
  MultiStep(double base, std::vector<int64_t> milestones, double gamma)
      : base_(base), milestones_(std::move(milestones)), gamma_(gamma) {}
  double lr(int64_t step) const override {
    double lr = base_;
    for (int64_t m : milestones_)
      if (step >= m) lr *= gamma_;
    return lr;
  }

 private:
  double base_;
  std::vector<int64_t> milestones_;
  double gamma_;
};

// Half-cosine from base to min over [warmup, total).
class Cosine : public LrSchedule {
 public:
  Cosine(double base, double min_lr, int64_t start, int64_t total)
      : base_(base), min_(min_lr), start_(start), total_(total) {}
  double lr(int64_t step) const override {
    const double span = std::max<int64_t>(1, total_ - start_);
    const double t = std::clamp(double(step - start_) / span, 0.0, 1.0);
    return min_ + 0.5 * (base_ - min_) * (1 + std::cos(M_PI * t));
  }

 private:
  double base_, min_;
  int64_t start_, total_;
};

// arcface_torch's PolynomialLRWarmup after warm-up: base · (1 − t)^power, t over [warmup, total).
class Poly : public LrSchedule {
 public:
  Poly(double base, double power, int64_t start, int64_t total)
      : base_(base), power_(power), start_(start), total_(total) {}
  double lr(int64_t step) const override {
    const double span = std::max<int64_t>(1, total_ - start_);
    const double t = std::clamp(double(step - start_) / span, 0.0, 1.0);
    return base_ * std::pow(1 - t, power_);
  }

 private:
  double base_, power_;
  int64_t start_, total_;
};

std::vector<int64_t> parse_milestones(const Params& p, int64_t total) {
  const std::string text = p.get_string("milestones", "");
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.find_first_not_of(" []") == std::string::npos) continue;
    size_t start = item.find_first_not_of(" ["), used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(item.substr(start), &used);
    } catch (...) {
    }
    MF_CHECK(v >= 0, p.describe("milestones"), ": '", item, "' is not a step number");
    MF_CHECK(out.empty() || v > out.back(), p.describe("milestones"), ": steps must increase");
    MF_CHECK(total <= 0 || v <= total, p.describe("milestones"), ": ", v,
             " is beyond the last step ", total);
    out.push_back(v);
  }
  return out;
}

template <class Make>
ScheduleRegistry::Builder with_warmup(Make make) {
  return [make](const Params& p, double base, int64_t total) -> std::unique_ptr<LrSchedule> {
    const int64_t warmup = p.get_int("warmup_steps", 0, 0);
    MF_CHECK(total <= 0 || warmup < total, p.describe("warmup_steps"), " = ", warmup,
             " must be below the number of steps ", total);
    std::unique_ptr<LrSchedule> inner = make(p, base, warmup, total);
    if (warmup == 0) return inner;
    return std::make_unique<Warmup>(std::move(inner), base, warmup);
  };
}

}  // namespace

const ScheduleRegistry& schedule_registry() {
  static const ScheduleRegistry registry = [] {
    ScheduleRegistry r("schedule");
    r.add("constant", with_warmup([](const Params&, double base, int64_t, int64_t) {
            return std::unique_ptr<LrSchedule>(new Constant(base));
          }),
          "fixed learning rate");
    r.add("multistep", with_warmup([](const Params& p, double base, int64_t, int64_t total) {
            auto milestones = parse_milestones(p, total);
            return std::unique_ptr<LrSchedule>(
                new MultiStep(base, milestones, p.get_double_open_low("gamma", 0.1, 0.0, 1.0)));
          }),
          "×gamma at each milestone");
    r.add("cosine", with_warmup([](const Params& p, double base, int64_t warmup, int64_t total) {
            MF_CHECK(total > 0, "schedule cosine needs a known number of steps");
            return std::unique_ptr<LrSchedule>(
                new Cosine(base, p.get_double("min_lr", 0.0, 0.0, base), warmup, total));
          }),
          "half cosine to min_lr");
    r.add("poly", with_warmup([](const Params& p, double base, int64_t warmup, int64_t total) {
            MF_CHECK(total > 0, "schedule poly needs a known number of steps");
            return std::unique_ptr<LrSchedule>(
                new Poly(base, p.get_double_open_low("power", 1.0, 0.0, 10.0), warmup, total));
          }),
          "polynomial decay to 0 (arcface_torch)");
    return r;
  }();
  return registry;
}

}  // namespace mf
