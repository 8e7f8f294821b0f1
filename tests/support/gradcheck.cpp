#include "support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

namespace mf::test {

namespace {

// Indices to check: all when few, otherwise a seeded sample.
std::vector<size_t> sample_indices(size_t n, int max_coords, Rng& rng) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  if (static_cast<int>(n) <= max_coords) return idx;
  for (size_t i = 0; i < static_cast<size_t>(max_coords); ++i)
    std::swap(idx[i], idx[i + rng.below(n - i)]);
  idx.resize(max_coords);
  return idx;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

Vec random_vec(Rng& rng, size_t n, double lo, double hi) {
  Vec v(n);
  for (auto& x : v) x = rng.uniform(lo, hi);
  return v;
}

Vec random_away_from_zero(Rng& rng, size_t n, double margin) {
  Vec v(n);
  for (auto& x : v) {
    const double m = rng.uniform(margin, 1.0);
    x = rng.uniform() < 0.5 ? -m : m;
  }
  return v;
}

Tensor to_tensor(const Vec& v, const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  for (size_t i = 0; i < v.size(); ++i) t.data()[i] = static_cast<float>(v[i]);
  return t;
}

Tensor random_tensor(Rng& rng, const Shape& shape, double lo, double hi) {
  return to_tensor(random_vec(rng, shape.numel(), lo, hi), shape);
}

::testing::AssertionResult check_kernel_gradients(const KernelGradCheck& op,
                                                  const GradCheckOptions& options) {
  Rng rng(options.seed);
  std::vector<Vec> x = op.inputs;
  const Vec y = op.forward(x);
  const Vec r = random_vec(rng, y.size());
  const std::vector<Vec> analytic = op.backward(x, r);
  if (analytic.size() != x.size())
    return ::testing::AssertionFailure()
           << "backward returned " << analytic.size() << " gradients for " << x.size() << " inputs";
  double worst = 0;
  std::ostringstream report;
  int failures = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!op.check.empty() && !op.check[i]) continue;
    if (analytic[i].size() != x[i].size())
      return ::testing::AssertionFailure() << "gradient " << i << " has " << analytic[i].size()
                                           << " values for an input of " << x[i].size();
    for (size_t k : sample_indices(x[i].size(), options.max_coords, rng)) {
      const double saved = x[i][k];
      x[i][k] = saved + options.eps;
      const double plus = dot(op.forward(x), r);
      x[i][k] = saved - options.eps;
      const double minus = dot(op.forward(x), r);
      x[i][k] = saved;
      const double numeric = (plus - minus) / (2 * options.eps);
      const double a = analytic[i][k];
      const double err =
          std::abs(a - numeric) / std::max({std::abs(a), std::abs(numeric), options.floor});
      worst = std::max(worst, err);
      if (err > options.tolerance && failures++ < 5)
        report << "\n  input " << i << " index " << k << ": analytic " << a << " numeric "
               << numeric << " (error " << err << ")";
    }
  }
  if (failures)
    return ::testing::AssertionFailure()
           << failures << " gradient entries off (worst error " << worst << ", tolerance "
           << options.tolerance << "):" << report.str();
  return ::testing::AssertionSuccess() << "worst relative error " << worst;
}

::testing::AssertionResult check_var_gradients(const std::function<Var(const std::vector<Var>&)>& f,
                                               const std::vector<Tensor>& inputs,
                                               const VarGradCheckOptions& options) {
  Rng rng(options.seed);
  std::vector<Var> vars;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const bool constant = i < options.constant.size() && options.constant[i];
    vars.emplace_back(inputs[i].clone(), !constant);
  }
  Var y = f(vars);
  Tensor r = random_tensor(rng, y.shape());
  backward(y, r);

  auto objective = [&](const std::vector<Var>& point) {
    NoGradGuard no_grad;
    Var out = f(point);
    double s = 0;
    for (int64_t j = 0; j < out.value().numel(); ++j)
      s += double(out.value().data()[j]) * r.data()[j];
    return s;
  };

  double worst = 0;
  int failures = 0;
  std::ostringstream report;
  for (size_t i = 0; i < vars.size(); ++i) {
    if (!vars[i].requires_grad()) continue;
    if (!vars[i].grad().defined())
      return ::testing::AssertionFailure() << "input " << i << " received no gradient";
    Tensor analytic = vars[i].grad().clone();
    float* p = vars[i].value().data();
    for (size_t k : sample_indices(vars[i].value().numel(), options.max_coords, rng)) {
      const float saved = p[k];
      p[k] = static_cast<float>(saved + options.eps);
      const double plus = objective(vars);
      p[k] = static_cast<float>(saved - options.eps);
      const double minus = objective(vars);
      p[k] = saved;
      const double numeric = (plus - minus) / (2 * options.eps);
      const double a = analytic.data()[k];
      const double err =
          std::abs(a - numeric) / std::max({std::abs(a), std::abs(numeric), options.floor});
      worst = std::max(worst, err);
      if (err > options.tolerance && failures++ < 5)
        report << "\n  input " << i << " index " << k << ": analytic " << a << " numeric "
               << numeric << " (error " << err << ")";
    }
  }
  if (failures)
    return ::testing::AssertionFailure()
           << failures << " gradient entries off (worst error " << worst << ", tolerance "
           << options.tolerance << "):" << report.str();
  return ::testing::AssertionSuccess() << "worst relative error " << worst;
}

}  // namespace mf::test
