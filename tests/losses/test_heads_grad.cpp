// Float32 gradient checks of every head's loss with respect to the embeddings and all of its
// trainable parameters (class weights, bias, learned s), through the registry-built head and the
// autograd tape: central differences against backward().
//
// Tolerance: relative error 2e-2 with floor 1e-2 and step 1e-2 (VarGradCheckOptions' defaults),
// or step 3e-3 where a kink is closer (contrastive, triplet). The margin heads use s = 4 so the
// central-difference truncation, about step²·|L‴|/6 with |L‴| ~ s³, stays near 1e-3; the float32
// rounding of the loss (~1e-6 absolute) divided by the step adds ≤ 1e-4. Both sit well below the
// O(1) errors a wiring mistake gives. The margin math itself is checked in double to 1e-6 in
// test_margin_kernels.cpp. Inputs are redrawn until every target cosine is 0.05 from the head's
// branch switches and |cos| < 0.95.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "head_test_util.h"
#include "losses/heads.h"

namespace mf::test {
namespace {

constexpr int64_t N = 6, D = 5, K = 4;
const Labels kLabels{0, 1, 2, 3, 1, 2};

// Target cosines of x (N, D) against the head's "weight", in double.
std::vector<double> target_cosines(const Head& head, const Tensor& x, const Labels& labels) {
  const Tensor w = parameter(head, "weight").value();
  std::vector<double> c;
  for (int64_t n = 0; n < x.dim(0); ++n) {
    double dot = 0, xx = 0, ww = 0;
    for (int64_t d = 0; d < x.dim(1); ++d) {
      const double a = x.data()[n * x.dim(1) + d], b = w.data()[labels[n] * x.dim(1) + d];
      dot += a * b, xx += a * a, ww += b * b;
    }
    c.push_back(dot / std::sqrt(xx * ww));
  }
  return c;
}

// The checker's verdict, with its worst error printed for the log.
::testing::AssertionResult report(const std::string& what, ::testing::AssertionResult result) {
  std::cout << "  [grad_float] " << what << ": " << result.message() << "\n";
  return result;
}

// Embeddings whose target cosines keep 0.05 from `kinks` and from ±1 (redrawn until they do).
Tensor embeddings_away_from(const Head& head, const std::vector<double>& kinks, Rng& rng,
                            double lo = -1.0, double hi = 1.0) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    Tensor x = random_tensor(rng, {N, D}, lo, hi);
    bool ok = true;
    for (double c : target_cosines(head, x, kLabels)) {
      ok = ok && std::abs(c) < 0.95;
      for (double k : kinks) ok = ok && std::abs(c - k) > 0.05;
    }
    if (ok) return x;
  }
  ADD_FAILURE() << "no embeddings away from the kinks";
  return random_tensor(rng, {N, D});
}

::testing::AssertionResult check(const std::string& type, const std::vector<std::string>& params,
                                 const std::vector<double>& kinks, int64_t step = 0,
                                 uint64_t seed = 7) {
  auto head = make_head(type, params, D, K, seed);
  Rng rng(seed + 100);
  const Tensor x = embeddings_away_from(*head, kinks, rng);
  std::string what = type;
  for (const auto& p : params) what += " " + p;
  return report(what, check_head_gradients(*head, x, kLabels, {.step = step}, {}));
}

TEST(SoftmaxHead, grad_float) {
  EXPECT_TRUE(check("softmax", {}, {}));
  EXPECT_TRUE(check("softmax", {"bias=true"}, {}));
}

TEST(CenterHead, grad_float) {
  auto head = make_head("center", {"lambda=0.5", "bias=true"}, D, K);
  Rng rng(3);
  const Tensor x = random_tensor(rng, {N, D});
  head->after_step(random_tensor(rng, {N, D}), kLabels, Tensor());  // move the centers off zero
  EXPECT_TRUE(
      report("center lambda=0.5 bias=true", check_head_gradients(*head, x, kLabels, {}, {})));
}

TEST(SpherefaceHead, grad_float) {
  const std::vector<double> kinks{std::cos(M_PI / 4), 0.0, std::cos(3 * M_PI / 4)};
  EXPECT_TRUE(check("sphereface", {}, kinks, 0));     // λ = 1000
  EXPECT_TRUE(check("sphereface", {}, kinks, 5000));  // λ = 5
  EXPECT_TRUE(check("sphereface", {"m=2"}, {0.0}, 5000));
  EXPECT_TRUE(check("sphereface", {"m=3", "lambda_min=0"}, {0.5, -0.5}, 1000000));
}

TEST(NormfaceHead, grad_float) {
  EXPECT_TRUE(check("normface", {"s=4"}, {}));
  EXPECT_TRUE(check("normface", {"s=4", "learn_s=true"}, {}));  // d/ds included
}

TEST(CosfaceHead, grad_float) {
  EXPECT_TRUE(check("cosface", {"s=4"}, {}));
}

TEST(ArcfaceHead, grad_float) {
  EXPECT_TRUE(check("arcface", {"s=4"}, {-std::cos(0.5)}));
  EXPECT_TRUE(check("arcface", {"s=4", "easy_margin=true"}, {0.0}));
  EXPECT_TRUE(check("arcface", {"s=4", "m=1.2"}, {-std::cos(1.2)}));  // wide fallback region
  EXPECT_TRUE(check("arcface", {"s=4", "margin_warmup_steps=10"}, {-std::cos(0.2)}, 4));
}

// θ + m > π for every row: embeddings near −W_y, all on the fallback branch c − m·sin m.
TEST(ArcfaceHead, grad_float_fallback_branch) {
  auto head = make_head("arcface", {"s=4"}, D, K);
  const Tensor w = parameter(*head, "weight").value();
  Rng rng(5);
  Tensor x = Tensor::empty({N, D});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d)
      x.data()[n * D + d] = -w.data()[kLabels[n] * D + d] + float(rng.uniform(-0.25, 0.25));
  for (double c : target_cosines(*head, x, kLabels)) {
    ASSERT_LT(c, -std::cos(0.5) - 0.05);
    ASSERT_GT(c, -0.999);
  }
  EXPECT_TRUE(report("arcface fallback", check_head_gradients(*head, x, kLabels, {}, {})));
}

// Straight-through is not the derivative of its forward: finite differences must reject it
// (only `exact` is a derivative of the forward, so only it can be verified numerically).
TEST(ArcfaceHead, straight_through_is_not_the_numerical_gradient) {
  EXPECT_FALSE(check("arcface", {"s=4", "gradient=straight_through"}, {-std::cos(0.5)}));
}

TEST(CombinedHead, grad_float) {
  EXPECT_TRUE(check("combined", {"s=4"}, {-std::cos(0.3)}));  // CM1 (1, 0.3, 0.2)
  EXPECT_TRUE(
      check("combined", {"s=4", "m1=0.9", "m2=0.4", "m3=0.15"}, {std::cos((M_PI - 0.4) / 0.9)}));
  EXPECT_TRUE(check("combined", {"s=4", "m1=1.35", "m2=0", "m3=0"}, {std::cos(M_PI / 1.35)}));
}

TEST(ContrastiveHead, grad_float) {
  VarGradCheckOptions options;
  options.eps = 3e-3;  // pairs come within ~0.05 of the hinge; a 1e-2 step could cross it
  for (const auto& params :
       {std::vector<std::string>{"lambda=1"},
        std::vector<std::string>{"lambda=1", "margin=1.6", "normalize=false"}}) {
    auto head = make_head("contrastive", params, D, K);
    Rng rng(11);
    const double margin = params.size() > 1 ? 1.6 : 1.0;
    const bool normalize = params.size() == 1;
    Tensor x;
    for (bool clear = false; !clear;) {  // every different pair 0.05 from the hinge
      x = random_tensor(rng, {N, D});
      clear = true;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = i + 1; j < N; ++j) {
          if (kLabels[i] == kLabels[j]) continue;
          double d2 = 0, ni = 0, nj = 0;
          for (int64_t k = 0; k < D; ++k) {
            ni += double(x.data()[i * D + k]) * x.data()[i * D + k];
            nj += double(x.data()[j * D + k]) * x.data()[j * D + k];
          }
          const double si = normalize ? std::sqrt(ni) : 1.0, sj = normalize ? std::sqrt(nj) : 1.0;
          for (int64_t k = 0; k < D; ++k) {
            const double e = x.data()[i * D + k] / si - x.data()[j * D + k] / sj;
            d2 += e * e;
          }
          clear = clear && std::abs(std::sqrt(d2) - margin) > 0.05;
        }
    }
    EXPECT_TRUE(report("contrastive", check_head_gradients(*head, x, kLabels, {}, options)));
  }
}

// Mining must not change under the perturbation: distances compared during mining differ by
// more than 0.05 and every hinge is 0.05 from 0, so a 3e-3 step keeps the same triplets.
TEST(TripletHead, grad_float) {
  const Labels labels{0, 0, 0, 1, 1, 2};
  for (const char* mining : {"semi_hard", "batch_hard"}) {
    auto head = make_head("triplet", {"alpha=0.5", std::string("mining=") + mining}, D, 2);
    Rng rng(13);
    Tensor x;
    for (bool stable = false; !stable;) {
      x = random_tensor(rng, {N, D});
      Tensor d2 = Tensor::empty({N, N});
      std::vector<double> u(N * D);
      for (int64_t i = 0; i < N; ++i) {
        double n2 = 0;
        for (int64_t k = 0; k < D; ++k) n2 += double(x.data()[i * D + k]) * x.data()[i * D + k];
        for (int64_t k = 0; k < D; ++k) u[i * D + k] = x.data()[i * D + k] / std::sqrt(n2);
      }
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j)
          d2.data()[i * N + j] = float(kernels::row_dist2(u.data(), D, i, j));
      stable = true;
      for (int64_t a = 0; a < N; ++a)
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = i + 1; j < N; ++j)
            if (i != a && j != a)
              stable = stable && std::abs(d2.data()[a * N + i] - d2.data()[a * N + j]) > 0.05;
      for (const auto& t : mine_triplets(d2, labels, TripletMining::kSemiHard))
        stable =
            stable && std::abs(d2.data()[t.a * N + t.p] - d2.data()[t.a * N + t.n] + 0.5) > 0.05;
      for (const auto& t : mine_triplets(d2, labels, TripletMining::kBatchHard))
        stable =
            stable && std::abs(d2.data()[t.a * N + t.p] - d2.data()[t.a * N + t.n] + 0.5) > 0.05;
    }
    VarGradCheckOptions options;
    options.eps = 3e-3;
    EXPECT_TRUE(report(std::string("triplet ") + mining,
                       check_head_gradients(*head, x, labels, {}, options)));
  }
}

// ---- the newer heads. Running statistics (CurricularFace's t, AdaFace's μ and σ, AdaCos's s)
// and AdaFace's norm score ẑ carry no gradient, so finite differences would see them move: the
// checks hold them still (ema = 0; ẑ constant through h = 0 or a saturating h; AdaCos fixed).
// Their moving parts are checked in double (test_margin_kernels.cpp) and against PyTorch.

TEST(LsoftmaxHead, grad_float) {
  const std::vector<double> kinks{std::cos(M_PI / 4), 0.0, std::cos(3 * M_PI / 4)};
  EXPECT_TRUE(check("lsoftmax", {}, kinks, 0));
  EXPECT_TRUE(check("lsoftmax", {}, kinks, 5000));
  EXPECT_TRUE(check("lsoftmax", {"m=2"}, {0.0}, 5000));
}

TEST(CurricularfaceHead, grad_float) {
  for (float t : {0.0f, 0.8f}) {
    auto head = make_head("curricularface", {"s=4", "ema=0"}, D, K);
    head->named_buffers().at(0).second.data()[0] = t;  // "t"
    Rng rng(21);
    const Tensor x = embeddings_away_from(*head, {-std::cos(0.5)}, rng);
    EXPECT_TRUE(report("curricularface t=" + std::to_string(t),
                       check_head_gradients(*head, x, kLabels, {}, {})));
  }
}

TEST(MagfaceHead, grad_float) {
  // ‖x‖ ≈ 1.3 here: inside [0.5, 3] the margin and g follow the norm; with the defaults
  // (l_a = 10) every norm is clamped and only the cosines carry gradient.
  EXPECT_TRUE(check("magface", {"s=4", "l_a=0.5", "u_a=3", "lambda_g=2"}, {}));
  EXPECT_TRUE(check("magface", {"s=4"}, {-std::cos(0.45)}));
}

TEST(AdafaceHead, grad_float) {
  EXPECT_TRUE(check("adaface", {"s=4", "ema=0", "h=0"}, {}));  // ẑ = 0
  // ẑ = ±1 for every row (norms far from μ = 20 in units of σ/h)
  EXPECT_TRUE(check("adaface", {"s=4", "ema=0", "h=1000"}, {}));
}

TEST(SubcenterArcfaceHead, grad_float) {
  EXPECT_TRUE(check("subcenter_arcface", {"s=4"}, {-std::cos(0.5)}));
  EXPECT_TRUE(check("subcenter_arcface", {"s=4", "k=2", "m=0.3"}, {-std::cos(0.3)}));
}

TEST(ElasticfaceHead, grad_float) {
  EXPECT_TRUE(check("elasticface", {"s=4"}, {}, 3));
  EXPECT_TRUE(check("elasticface", {"s=4", "variant=cos"}, {}, 4));
  EXPECT_TRUE(check("elasticface", {"s=4", "plus=true", "sigma=0.2"}, {}, 5));
}

TEST(AdacosHead, grad_float) {
  EXPECT_TRUE(check("adacos", {"dynamic=false"}, {}));
}

}  // namespace
}  // namespace mf::test
