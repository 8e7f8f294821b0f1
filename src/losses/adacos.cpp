// adacos: the adaptive scale (Zhang et al., CVPR 2019, eq. 12, 15–16 and Algorithm 1).
//
//   z_j = s·cos θ_j, no margin
//   fixed:   s = √2·log(C − 1)                                            (eq. 12)
//   dynamic: s starts there; each batch, before use,
//            s ← log(B_avg) / cos(min(π/4, θ_med))                        (eq. 15–16)
//            B_avg = (1/N)·Σ_n Σ_{j ≠ y_n} exp(s_old·cos θ_nj),  θ_med the median target angle
//            (the lower middle of an even count, as torch.median)
//
// Gradient: through the cosines only; s is a constant (no gradient through s, as the paper). State:
// the buffer "s" (1), set in after_step to the batch's new s (batch_stats (1)).
// Pitfalls (docs/heads.md): C = 2 gives s = 0 (log 1), so AdaCos needs three classes or more; s
// falls as the target angles shrink, which is the point (it keeps the target posterior from
// saturating) but makes the loss values of different steps incomparable.
// Parameters: dynamic (true).
#include <algorithm>
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {

double adacos_scale(const Tensor& cos, const Labels& labels, double previous_s, int64_t counted,
                    const std::function<double(double)>& total) {
  const int64_t N = cos.dim(0), K = cos.dim(1), C = counted < 0 ? K : counted;
  double b_sum = 0;
  std::vector<double> theta(N);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < C; ++k)
      if (k != labels[n]) b_sum += std::exp(previous_s * double(cos.data()[n * K + k]));
    theta[n] = std::acos(std::clamp(double(cos.data()[n * K + labels[n]]), -1.0, 1.0));
  }
  if (total) b_sum = total(b_sum);
  std::nth_element(theta.begin(), theta.begin() + (N - 1) / 2, theta.end());
  const double median = theta[(N - 1) / 2];
  return std::log(b_sum / double(N)) / std::cos(std::min(M_PI / 4, median));
}

namespace {

class AdaCosHead final : public ClassifierHead {
 public:
  AdaCosHead(int64_t D, int64_t K, bool dynamic, Rng& rng)
      : ClassifierHead("adacos", D, K, rng), dynamic_(dynamic) {
    s_ = register_buffer("s", Tensor::full({1}, float(std::sqrt(2.0) * std::log(double(K - 1)))));
  }

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo&) override {
    check_input(x, labels);
    const Var cos = cosine(x);  // (N, K)
    const float s =
        dynamic_
            ? float(adacos_scale(cos.value(), labels, s_.data()[0], counted_columns(cos.dim(1)),
                                 [this](double partial) { return sum_over_processes(partial); }))
            : s_.data()[0];
    HeadOutput out = output(affine(cos, s), labels);
    if (dynamic_) out.batch_stats = Tensor::full({1}, s);
    return out;
  }

  void after_step(const Tensor&, const Labels&, const Tensor& batch_stats) override {
    if (batch_stats.defined()) s_.data()[0] = batch_stats.data()[0];
  }

  std::optional<double> target_logit(double theta, const StepInfo&) const override {
    return std::cos(theta);
  }

 private:
  bool dynamic_;
  Tensor s_;
};

}  // namespace

void register_adacos(HeadRegistry& registry) {
  registry.add(
      "adacos",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        MF_CHECK(K >= 3, "head 'adacos' needs at least three classes (s = √2·log(C − 1) is 0 for ",
                 "C = 2), got ", K);
        return std::make_unique<AdaCosHead>(D, K, p.get_bool("dynamic", true), rng);
      },
      "AdaCos (Zhang et al. 2019): no margin, the scale s set from the batch");
}

}  // namespace mf
