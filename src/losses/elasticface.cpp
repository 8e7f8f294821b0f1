// elasticface: the elastic margin (Boutros et al., CVPRW 2022, eq. 4–7; the authors' code:
// fdbtrs/ElasticFace, utils/losses.py ElasticArcFace / ElasticCosFace).
//
//   m̃_n ~ N(m, σ), one draw per sample and step
//   variant arc: z_y = s·cos(θ_y + m̃_n)  (no θ + m > π fallback: the authors' code has none)
//   variant cos: z_y = s·(cos θ_y − m̃_n);   z_j = s·cos θ_j
//   plus (ElasticFace+, §3.3): the batch's draws, sorted, are handed out by target cosine — the
//        largest cos θ_y (the sample nearest its centre) gets the smallest margin. The authors'
//        code indexes the sorted margins by the cosines' sort order instead of its inverse
//        (margin[argsort] where the pairing needs margin[rank]), which pairs them differently
//        for N > 2; this follows the paper's pairing.
// Draws are a function of (draw_seed, step) (elastic_margins), so a resumed run sees the same
// margins; "draw_seed" (1) is a buffer, taken from the model seed at construction and stored in
// checkpoints (an integer below 2^24, exact in float).
//
// Gradient: arc: φ′ = cos m̃ + sin m̃·c/sin θ with sin θ = √clamp(1 − c², 1e-9, 1) (finite at
// |c| = 1, where the authors' acos is not); cos: 1. The draws are constants.
// margin_warmup_steps scales every draw by the warm-up ratio r (m̃ ~ N(r·m, r·σ)), growing from 0.
// Parameters: variant (arc | cos), s (64), m (0.5 for arc, 0.35 for cos), sigma (0.05, the
// authors' config for both), plus (false), margin_warmup_steps (0).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/margin_ops.h"
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {

std::vector<double> elastic_margins(uint64_t seed, int64_t step, int64_t N, double m,
                                    double sigma) {
  Rng rng(seed + 0x9e3779b97f4a7c15ULL * uint64_t(step + 1));
  std::vector<double> draws(N);
  for (double& d : draws) d = rng.normal(m, sigma);
  return draws;
}

namespace {

struct ElasticOptions {
  bool arc = true, plus = false;
  double s = 64, m = 0.5, sigma = 0.05;
  int64_t margin_warmup_steps = 0;
};

class ElasticFaceHead final : public ClassifierHead {
 public:
  ElasticFaceHead(int64_t D, int64_t K, const ElasticOptions& options, Rng& rng)
      : ClassifierHead("elasticface", D, K, rng), o_(options) {
    seed_ = register_buffer("draw_seed", Tensor::full({1}, float(rng.next_u64() >> 40)));
  }

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo& step) override {
    check_input(x, labels);
    const int64_t N = x.dim(0);
    const Var cos = cosine(x);  // (N, K)
    std::vector<double> margins =
        elastic_margins(uint64_t(seed_.data()[0]), step.step, N, o_.m, o_.sigma);
    const double r = warmup_ratio(o_.margin_warmup_steps, step);
    for (double& m : margins) m *= r;
    if (o_.plus) margins = paired_by_cosine(margins, cos.value(), labels);
    std::vector<kernels::MarginSpec> specs(N);
    for (int64_t n = 0; n < N; ++n) specs[n] = spec(margins[n]);
    return output(margin_logits(cos, labels, specs, float(o_.s)), labels);
  }

  // At the mean margin m (times the warm-up ratio).
  std::optional<double> target_logit(double theta, const StepInfo& step) const override {
    return kernels::apply_margin(spec(o_.m * warmup_ratio(o_.margin_warmup_steps, step)),
                                 std::cos(theta))
        .f;
  }

 private:
  // The arc form without the fallback, or the cosine form, at margin m.
  kernels::MarginSpec spec(double m) const {
    if (o_.arc) return {.kind = kernels::MarginKind::kArc, .m = m, .guard = false};
    return {.kind = kernels::MarginKind::kCosine, .m = m};
  }

  // ElasticFace+: the r-th largest target cosine gets the r-th smallest margin (stable on ties).
  std::vector<double> paired_by_cosine(std::vector<double> margins, const Tensor& cos,
                                       const Labels& labels) const {
    const int64_t N = int64_t(margins.size());
    std::vector<int64_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    auto target = [&](int64_t n) {
      return std::clamp(cos.data()[n * classes_in_use() + labels[n]], -1.0f, 1.0f);
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return target(a) > target(b); });
    std::sort(margins.begin(), margins.end());
    std::vector<double> paired(N);
    for (int64_t r = 0; r < N; ++r) paired[order[r]] = margins[r];
    return paired;
  }

  ElasticOptions o_;
  Tensor seed_;
};

}  // namespace

void register_elasticface(HeadRegistry& registry) {
  registry.add(
      "elasticface",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        ElasticOptions o;
        o.arc = p.get_string("variant", "arc", {"arc", "cos"}) == "arc";
        o.s = p.get_double_open_low("s", 64.0, 0.0);
        o.m = p.get_double("m", o.arc ? 0.5 : 0.35, 0.0, 1.5);
        o.sigma = p.get_double("sigma", 0.05, 0.0, 1.0);
        o.plus = p.get_bool("plus", false);
        o.margin_warmup_steps = p.get_int("margin_warmup_steps", 0, 0);
        return std::make_unique<ElasticFaceHead>(D, K, o, rng);
      },
      "ElasticFace (Boutros et al. 2022): ArcFace/CosFace with a margin drawn from N(m, σ)");
}

}  // namespace mf
