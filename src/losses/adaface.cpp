// adaface: the quality-adaptive margin (Kim et al., CVPR 2022, eq. 8–11; the authors' code:
// mk-minchul/AdaFace, head.py class AdaFace).
//
//   c clamped to [−1 + ε, 1 − ε] in every column (ε = 1e-3, the authors' "for stability")
//   a_n = clip(‖x_n‖, 0.001, 100), no gradient; μ, σ: EMAs of the batch's mean and unbiased std
//         of a, taken before use: μ ← α·mean + (1 − α)·μ, σ ← α·std + (1 − α)·σ (start 20, 100)
//   ẑ_n = clip(h·(a_n − μ)/(σ + ε), −1, 1)                                      (eq. 9–10)
//   z_y = s·(cos(clip(θ_y − m·ẑ, ε, π − ε)) − (m + m·ẑ)),   z_j = s·c_j          (eq. 11)
// ẑ = −1 (a low-norm, low-quality face) gives ArcFace's cos(θ + m); ẑ = +1 gives
// cos(θ − m) − 2m, a CosFace-like push that emphasises hard but good faces; ẑ = 0 is CosFace.
//
// Gradient: through the cosines (kernels::adaface_margin: sin θ'/sin θ inside the clip, 0 where
// it is active; 0 where c is clamped); ẑ, μ and σ are constants. State: the buffers
// "batch_mean" and "batch_std" (1), advanced in after_step by batch_stats (2) = (mean, std). A
// batch of one has no std: σ stays as it is.
// Pitfalls (docs/heads.md): the authors' model divides the backbone output by its norm itself
// and passes the norm in; here the head takes the raw embedding and does both. h = 0.333 makes
// about 68 % of ẑ fall inside (−0.333, 0.333).
// margin_warmup_steps grows m linearly from 0 (both of its uses: the angular and the additive).
// Parameters: s (64), m (0.4), h (0.333), ema (0.01), margin_warmup_steps (0).
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {
namespace {

constexpr double kEps = 1e-3;

class AdaFaceHead final : public ClassifierHead {
 public:
  AdaFaceHead(int64_t D, int64_t K, double s, double m, double h, double ema, int64_t warmup,
              Rng& rng)
      : ClassifierHead("adaface", D, K, rng), s_(s), m_(m), h_(h), ema_(ema), warmup_(warmup) {
    mean_ = register_buffer("batch_mean", Tensor::full({1}, 20.0f));
    std_ = register_buffer("batch_std", Tensor::full({1}, 100.0f));
  }

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    const int64_t N = x.dim(0);
    const double m = m_ * warmup_ratio(warmup_, step);
    const std::vector<double> a = clipped_norms(x.value());
    double batch_mean = 0, batch_var = 0;
    for (double v : a) batch_mean += v / double(N);
    for (double v : a) batch_var += (v - batch_mean) * (v - batch_mean);
    const double batch_std = N > 1 ? std::sqrt(batch_var / double(N - 1)) : std::nan("");
    const auto [mu, sigma] = updated(batch_mean, batch_std);
    std::vector<kernels::MarginSpec> specs(N);
    for (int64_t n = 0; n < N; ++n) {
      const double z = std::clamp(h_ * (a[n] - mu) / (sigma + kEps), -1.0, 1.0);
      specs[n] = {.kind = kernels::MarginKind::kAdaFace, .m = m * z, .m3 = m + m * z};
    }
    const Var cos = clamp(cosine(x), float(-1 + kEps), float(1 - kEps));  // (N, K)
    HeadOutput out = output(margin_logits(cos, labels, specs, float(s_)), labels);
    out.batch_stats = Tensor::empty({2});
    out.batch_stats.data()[0] = float(batch_mean);
    out.batch_stats.data()[1] = float(batch_std);
    return out;
  }

  void after_step(const Tensor&, const Labels&, const Tensor& batch_stats) override {
    if (!batch_stats.defined()) return;
    const auto [mu, sigma] = updated(batch_stats.data()[0], batch_stats.data()[1]);
    mean_.data()[0] = float(mu);
    std_.data()[0] = float(sigma);
  }

  // At ẑ = 0 (a face of the running mean norm): cos θ − m.
  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    const double c = std::clamp(std::cos(theta), -1 + kEps, 1 - kEps);
    return kernels::adaface_margin(c, 0.0, m_ * warmup_ratio(warmup_, step)).f;
  }

 private:
  static std::vector<double> clipped_norms(const Tensor& x) {
    const int64_t N = x.dim(0), D = x.dim(1);
    std::vector<double> a(N);
    for (int64_t n = 0; n < N; ++n) {
      double sq = 0;
      for (int64_t d = 0; d < D; ++d) sq += double(x.data()[n * D + d]) * x.data()[n * D + d];
      a[n] = std::clamp(std::sqrt(sq), 0.001, 100.0);
    }
    return a;
  }

  // The running mean and std as this batch's statistics update them (a NaN std: unchanged).
  std::pair<double, double> updated(double batch_mean, double batch_std) const {
    const double mu = ema_ * batch_mean + (1.0 - ema_) * double(mean_.data()[0]);
    const double sigma = std::isnan(batch_std)
                             ? double(std_.data()[0])
                             : ema_ * batch_std + (1.0 - ema_) * double(std_.data()[0]);
    return {mu, sigma};
  }

  double s_, m_, h_, ema_;
  int64_t warmup_;
  Tensor mean_, std_;
};

}  // namespace

void register_adaface(HeadRegistry& registry) {
  registry.add(
      "adaface",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        const double s = p.get_double_open_low("s", 64.0, 0.0);
        const double m = p.get_double("m", 0.4, 0.0, 1.5);
        const double h = p.get_double("h", 0.333, 0.0);
        const double ema = p.get_double("ema", 0.01, 0.0, 1.0);
        const int64_t warmup = p.get_int("margin_warmup_steps", 0, 0);
        return std::make_unique<AdaFaceHead>(D, K, s, m, h, ema, warmup, rng);
      },
      "AdaFace (Kim et al. 2022): margin between angular and additive by the feature norm");
}

}  // namespace mf
