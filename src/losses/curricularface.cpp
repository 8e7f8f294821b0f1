// curricularface: the adaptive curriculum loss (Huang et al., CVPR 2020, eq. 7–10; the authors'
// code: HuangYG123/CurricularFace, head/metrics.py).
//
//   target    z_y = s·cos(θ_y + m), ArcFace's guarded form (c_y − m·sin m beyond θ_y + m > π)
//   negatives z_j = s·c_j·(t + c_j) when c_j > cos(θ_y + m) (hard; eq. 8, the unguarded φ as in
//             the authors' code), else s·c_j
//   t ← α·mean_n c_{n,y_n} + (1 − α)·t  (eq. 10): an EMA of the batch's mean target cosine, taken
//             before use, without gradient; starts at 0, so early on hard negatives are damped
//             (t + c < 1: easy first) and later emphasised (t → 1: hard later).
//
// Gradient: the target as ArcFace's exact one (sin θ clamped as in kernels::safe_sin, where the
// authors' √(1 − c²) is unbounded at c = ±1); a hard negative ∂z_j/∂c_j = s·(t + 2c_j); t and the
// hard/easy mask are constants. State: the buffer "t" (1), advanced in after_step by the batch's
// mean target cosine (batch_stats (1)).
// Pitfalls (docs/heads.md): t is per process in the authors' code (no all-reduce); a resumed run
// without t restarts the curriculum — here t is in the checkpoint.
// margin_warmup_steps grows m linearly from 0 (ArcFace's warm-up; the curriculum in t is separate).
// Parameters: s (64), m (0.5), ema (0.01), margin_warmup_steps (0).
#include <cmath>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {
namespace {

class CurricularFaceHead final : public ClassifierHead {
 public:
  CurricularFaceHead(int64_t D, int64_t K, double s, double m, double ema, int64_t warmup, Rng& rng)
      : ClassifierHead("curricularface", D, K, rng), s_(s), m_(m), ema_(ema), warmup_(warmup) {
    t_ = register_buffer("t", Tensor::zeros({1}));
  }

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    const Var cos = cosine(x);  // (N, K)
    const int64_t N = x.dim(0);
    double mean_target = 0;  // of the clamped target cosines, as the authors' code
    for (int64_t n = 0; n < N; ++n)
      mean_target +=
          std::clamp(double(cos.value().data()[n * classes_in_use() + labels[n]]), -1.0, 1.0);
    mean_target /= double(N);
    HeadOutput out = output(
        curricular_logits(cos, labels, margin(step), updated_t(mean_target), float(s_)), labels);
    out.batch_stats = Tensor::full({1}, float(mean_target));
    return out;
  }

  void after_step(const Tensor&, const Labels&, const Tensor& batch_stats) override {
    if (batch_stats.defined()) t_.data()[0] = updated_t(batch_stats.data()[0]);
  }

  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    return kernels::apply_margin(
               kernels::MarginSpec{.kind = kernels::MarginKind::kArc, .m = margin(step)},
               std::cos(theta))
        .f;
  }

 private:
  double margin(const StepInfo& step) const { return m_ * warmup_ratio(warmup_, step); }

  float updated_t(double mean_target) const {
    return float(ema_ * mean_target + (1.0 - ema_) * double(t_.data()[0]));
  }

  double s_, m_, ema_;
  int64_t warmup_;
  Tensor t_;
};

}  // namespace

void register_curricularface(HeadRegistry& registry) {
  registry.add(
      "curricularface",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        const double s = p.get_double_open_low("s", 64.0, 0.0);
        const double m = p.get_double("m", 0.5);
        MF_CHECK(m >= 0 && m < M_PI, p.describe("m"), " = ", m, " is out of range [0, π)");
        const double ema = p.get_double("ema", 0.01, 0.0, 1.0);
        const int64_t warmup = p.get_int("margin_warmup_steps", 0, 0);
        return std::make_unique<CurricularFaceHead>(D, K, s, m, ema, warmup, rng);
      },
      "CurricularFace (Huang et al. 2020): ArcFace target, hard negatives c·(t + c), t an EMA");
}

}  // namespace mf
