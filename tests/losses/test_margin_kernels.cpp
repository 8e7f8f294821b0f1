// The margin functions and metric-loss kernels in double precision: central differences (step
// 1e-6) against the hand-written derivatives, relative error below 1e-6 (support/gradcheck.h),
// plus their values against the closed forms. Cosines are drawn in [−0.98, 0.98] and kept 0.02
// from every branch switch (ArcFace's cos(π − m), easy_margin's 0, the combined guard cos θ*,
// SphereFace's cos(kπ/m)); |c| → 1 is left out because f′ ∝ 1/sin θ there (the clamp is checked
// by value instead).
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <string>

#include "support/gradcheck.h"
#include "tensor/kernels/margin.h"
#include "tensor/kernels/pair_losses.h"

namespace mf::test {
namespace {

using kernels::MarginKind;
using kernels::MarginSpec;

// n cosines in [−lim, lim], each at least `band` from every point of `kinks`.
Vec cosines_away_from(Rng& rng, size_t n, const std::vector<double>& kinks, double band = 0.02,
                      double lim = 0.98) {
  Vec c;
  while (c.size() < n) {
    const double v = rng.uniform(-lim, lim);
    bool ok = true;
    for (double k : kinks) ok = ok && std::abs(v - k) > band;
    if (ok) c.push_back(v);
  }
  return c;
}

// The checker's verdict, with its worst error printed for the log.
::testing::AssertionResult logged(const std::string& what, ::testing::AssertionResult result) {
  std::cout << "  [grad_double] " << what << ": " << result.message() << "\n";
  return result;
}

// Elementwise f(c) of `spec` as a KernelGradCheck.
::testing::AssertionResult check_margin(const MarginSpec& spec, const std::vector<double>& kinks,
                                        uint64_t seed, double lim = 0.98) {
  Rng rng(seed);
  KernelGradCheck op;
  op.inputs = {cosines_away_from(rng, 60, kinks, 0.02, lim)};
  op.forward = [spec](const std::vector<Vec>& in) {
    Vec y;
    for (double c : in[0]) y.push_back(kernels::apply_margin(spec, c).f);
    return y;
  };
  op.backward = [spec](const std::vector<Vec>& in, const Vec& dy) {
    Vec dc;
    for (size_t i = 0; i < in[0].size(); ++i)
      dc.push_back(kernels::apply_margin(spec, in[0][i]).df * dy[i]);
    return std::vector<Vec>{dc};
  };
  const char* kinds[] = {"none", "cosface", "arcface", "combined", "sphereface", "adaface"};
  ::testing::Message what;
  what << kinds[int(spec.kind)] << " m " << spec.m << " m1 " << spec.m1 << " m2 " << spec.m2
       << " m3 " << spec.m3 << " w " << spec.w << (spec.easy_margin ? " easy" : "")
       << (spec.guard ? "" : " unguarded");
  return logged(what.GetString(), check_kernel_gradients(op));
}

std::vector<double> sphere_kinks(int m) {
  std::vector<double> k;
  for (int j = 1; j < m; ++j) k.push_back(std::cos(j * M_PI / m));
  return k;
}

TEST(CosfaceHead, margin_kernel_grad_double) {
  EXPECT_TRUE(check_margin({.kind = MarginKind::kCosine, .m = 0.35}, {}, 1));
  EXPECT_TRUE(check_margin({.kind = MarginKind::kCosine, .m = 0.0}, {}, 2));
}

TEST(ArcfaceHead, margin_kernel_grad_double) {
  uint64_t seed = 10;
  for (double m : {0.1, 0.5, 0.9, 1.6, 2.5}) {
    SCOPED_TRACE(m);
    // Both branches are sampled: the fallback holds for c < −cos m.
    EXPECT_TRUE(check_margin({.kind = MarginKind::kArc, .m = m}, {-std::cos(m)}, seed++));
    EXPECT_TRUE(
        check_margin({.kind = MarginKind::kArc, .m = m, .easy_margin = true}, {0.0}, seed++));
  }
}

TEST(ArcfaceHead, margin_kernel_values) {
  const double m = 0.5;
  const MarginSpec spec{.kind = MarginKind::kArc, .m = m};
  for (double theta = 0.05; theta < M_PI - m - 1e-3; theta += 0.1) {  // θ + m < π: cos(θ + m)
    const auto v = kernels::apply_margin(spec, std::cos(theta));
    EXPECT_NEAR(v.f, std::cos(theta + m), 1e-12) << theta;
    EXPECT_NEAR(v.df, std::sin(theta + m) / std::sin(theta), 1e-9) << theta;
  }
  for (double theta = M_PI - m + 1e-3; theta <= M_PI; theta += 0.05) {  // the fallback
    const auto v = kernels::apply_margin(spec, std::cos(theta));
    EXPECT_NEAR(v.f, std::cos(theta) - m * std::sin(m), 1e-12) << theta;
    EXPECT_EQ(v.df, 1.0);
  }
  // |c| = 1 and beyond: sin θ = √1e-9 is a constant there, so f′(1) = cos m; f′ = 0 outside
  // [−1, 1] (the clamp); the fallback holds at c = −1.
  const auto at_one = kernels::apply_margin(spec, 1.0);
  EXPECT_NEAR(at_one.f, std::cos(m) - std::sqrt(1e-9) * std::sin(m), 1e-15);
  EXPECT_NEAR(at_one.df, std::cos(m), 1e-15);
  EXPECT_EQ(kernels::apply_margin(spec, 1.0 + 1e-7).df, 0.0);
  EXPECT_EQ(kernels::apply_margin(spec, 1.0 + 1e-7).f, at_one.f);
  EXPECT_NEAR(kernels::apply_margin(spec, -1.0).f, -1.0 - m * std::sin(m), 1e-15);
  // The jump of insightface#228 at θ = π − m: from −1 to −cos m − m·sin m.
  const double th = -std::cos(m);
  EXPECT_NEAR(kernels::apply_margin(spec, th + 1e-12).f, -1.0, 1e-9);
  EXPECT_NEAR(kernels::apply_margin(spec, th).f, -std::cos(m) - m * std::sin(m), 1e-12);
  // Straight-through: the same value, derivative 1.
  MarginSpec st = spec;
  st.straight_through = true;
  EXPECT_EQ(kernels::apply_margin(st, 0.3).f, kernels::apply_margin(spec, 0.3).f);
  EXPECT_EQ(kernels::apply_margin(st, 0.3).df, 1.0);
}

TEST(CombinedHead, margin_kernel_grad_double) {
  struct M {
    double m1, m2, m3;
  };
  uint64_t seed = 30;
  for (const M& m : {M{1.0, 0.3, 0.2}, M{0.9, 0.4, 0.15}, M{1.35, 0.0, 0.0}, M{1.2, 0.4, 0.0},
                     M{0.8, 0.2, 0.1}}) {
    SCOPED_TRACE(::testing::Message() << m.m1 << ", " << m.m2 << ", " << m.m3);
    const double theta_star = (M_PI - m.m2) / m.m1;
    const std::vector<double> kinks =
        theta_star < M_PI ? std::vector<double>{std::cos(theta_star)} : std::vector<double>{};
    EXPECT_TRUE(check_margin({.kind = MarginKind::kCombined, .m1 = m.m1, .m2 = m.m2, .m3 = m.m3},
                             kinks, seed++));
  }
}

TEST(CombinedHead, margin_kernel_matches_definition) {
  for (double c = -0.99; c < 0.99; c += 0.013) {
    // Main branch of cos(m1·θ + m2) − m3 with θ ≤ θ*.
    const double m1 = 1.35, theta = std::acos(c);
    const auto v = kernels::combined_margin(c, m1, 0.0, 0.0);
    if (theta < M_PI / m1 - 1e-9) {
      EXPECT_NEAR(v.f, std::cos(m1 * theta), 1e-12) << c;
    }
    // (1, m, 0) is ArcFace and (1, 0, m) CosFace. To rounding here: the compiler may fold
    // cos(0.5) for one call and not the other; the heads, built from runtime parameters, are
    // compared bit for bit in test_heads_cases.cpp.
    const auto arc = kernels::arcface_margin(c, 0.5, false);
    const auto comb_arc = kernels::combined_margin(c, 1.0, 0.5, 0.0);
    EXPECT_NEAR(arc.f, comb_arc.f, 1e-15);
    EXPECT_NEAR(arc.df, comb_arc.df, 1e-14);
    const auto cosf = kernels::cosface_margin(c, 0.35);
    const auto comb_cos = kernels::combined_margin(c, 1.0, 0.0, 0.35);
    EXPECT_DOUBLE_EQ(cosf.f, comb_cos.f);
    EXPECT_DOUBLE_EQ(cosf.df, comb_cos.df);
  }
  // The guard: past θ* = π/1.35 the target is c − m*·sin m*, m* = π − θ*, below the curve's −1.
  const double theta_star = M_PI / 1.35, m_star = M_PI - theta_star;
  const double c = std::cos(theta_star + 0.1);
  EXPECT_NEAR(kernels::combined_margin(c, 1.35, 0.0, 0.0).f, c - m_star * std::sin(m_star), 1e-12);
  EXPECT_LT(kernels::combined_margin(c, 1.35, 0.0, 0.0).f, -1.0);
}

TEST(SpherefaceHead, margin_kernel_grad_double) {
  uint64_t seed = 50;
  for (int m = 1; m <= 4; ++m)
    for (double w : {1.0 / 1001.0, 1.0 / 6.0, 1.0}) {
      SCOPED_TRACE(::testing::Message() << "m " << m << " w " << w);
      EXPECT_TRUE(check_margin({.kind = MarginKind::kSphere, .m = double(m), .w = w},
                               sphere_kinks(m), seed++));
    }
}

TEST(SpherefaceHead, psi_matches_definition_and_decreases) {
  for (int m = 1; m <= 4; ++m) {
    double previous = 2.0;
    for (double theta = 0.0; theta <= M_PI + 1e-12; theta += M_PI / 360) {
      const int k = std::min(m - 1, static_cast<int>(std::floor(m * theta / M_PI)));
      const double psi = (k % 2 ? -1.0 : 1.0) * std::cos(m * theta) - 2.0 * k;
      const double ours = kernels::sphereface_margin(std::cos(theta), m, 1.0).f;  // w = 1: ψ
      EXPECT_NEAR(ours, psi, 1e-9) << "m " << m << " θ " << theta;
      EXPECT_LE(ours, previous + 1e-12) << "ψ must decrease in θ (m " << m << ")";
      previous = ours;
    }
    // ψ(π) = 1 − 2m, with the one-sided derivative m² ≥ 0 (k capped at m − 1).
    EXPECT_NEAR(kernels::sphereface_margin(-1.0, m, 1.0).f, 1.0 - 2.0 * m, 1e-12);
    EXPECT_NEAR(kernels::sphereface_margin(-1.0, m, 1.0).df, double(m * m), 1e-12);
  }
  // Hand-computed: θ = 60°, m = 4: k = 1, ψ = −cos 240° − 2 = −1.5; λ = 5: (5·0.5 − 1.5)/6 = 1/6.
  EXPECT_NEAR(kernels::sphereface_margin(0.5, 4, 1.0 / 6.0).f, 1.0 / 6.0, 1e-12);
}

// The fused target-column op over (N, K), including the scale, in double.
TEST(MarginLogitsKernel, grad_double) {
  const int64_t N = 5, K = 4;
  const std::vector<int64_t> labels{0, 3, 1, 1, 2};
  uint64_t seed = 70;
  for (const MarginSpec& spec :
       {MarginSpec{.kind = MarginKind::kArc, .m = 0.5},
        MarginSpec{.kind = MarginKind::kCosine, .m = 0.35},
        MarginSpec{.kind = MarginKind::kCombined, .m1 = 0.9, .m2 = 0.4, .m3 = 0.15},
        MarginSpec{.kind = MarginKind::kSphere, .m = 4, .w = 0.25}}) {
    Rng rng(seed++);
    KernelGradCheck op;
    op.inputs = {cosines_away_from(rng, N * K,
                                   {-std::cos(0.5), std::cos((M_PI - 0.4) / 0.9),
                                    std::cos(M_PI / 4), 0.0, std::cos(3 * M_PI / 4)})};
    op.forward = [&, spec](const std::vector<Vec>& in) {
      Vec z(N * K), dfdc(N);
      kernels::margin_logits_forward<double>(z.data(), dfdc.data(), in[0].data(), labels.data(), N,
                                             K, &spec, 0, 2.5);
      return z;
    };
    op.backward = [&, spec](const std::vector<Vec>& in, const Vec& dz) {
      Vec z(N * K), dfdc(N), dc(N * K, 0.0);
      kernels::margin_logits_forward<double>(z.data(), dfdc.data(), in[0].data(), labels.data(), N,
                                             K, &spec, 0, 2.5);
      kernels::margin_logits_backward<double>(dc.data(), dz.data(), dfdc.data(), labels.data(), N,
                                              K, 2.5);
      return std::vector<Vec>{dc};
    };
    EXPECT_TRUE(logged("margin_logits", check_kernel_gradients(op)));
  }
}

// Straight-through keeps the forward and makes the backward that of scale·c.
TEST(ArcfaceHead, straight_through_kernel_backward_is_scale) {
  const int64_t N = 3, K = 4;
  const std::vector<int64_t> labels{2, 0, 3};
  const Vec c{0.1, -0.2, 0.6, 0.3, 0.5, 0.2, -0.4, 0.0, -0.9, 0.2, 0.1, 0.7};
  const Vec dz{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  MarginSpec exact{.kind = MarginKind::kArc, .m = 0.5}, st = exact;
  st.straight_through = true;
  Vec z1(N * K), z2(N * K), f1(N), f2(N), dc1(N * K, 0.0), dc2(N * K, 0.0);
  kernels::margin_logits_forward<double>(z1.data(), f1.data(), c.data(), labels.data(), N, K,
                                         &exact, 0, 3.0);
  kernels::margin_logits_forward<double>(z2.data(), f2.data(), c.data(), labels.data(), N, K, &st,
                                         0, 3.0);
  kernels::margin_logits_backward<double>(dc1.data(), dz.data(), f1.data(), labels.data(), N, K,
                                          3.0);
  kernels::margin_logits_backward<double>(dc2.data(), dz.data(), f2.data(), labels.data(), N, K,
                                          3.0);
  for (int64_t i = 0; i < N * K; ++i) {
    EXPECT_EQ(z1[i], z2[i]);
    EXPECT_DOUBLE_EQ(dc2[i], 3.0 * dz[i]);
  }
  // The exact backward differs only in the target column: there it carries φ′ ≠ 1.
  EXPECT_NE(dc1[0 * K + 2], dc2[0 * K + 2]);
  EXPECT_EQ(dc1[0 * K + 1], dc2[0 * K + 1]);
}

TEST(RowNormKernel, grad_double) {
  Rng rng(80);
  const int64_t N = 4, D = 5;
  KernelGradCheck op;
  op.inputs = {random_vec(rng, N * D)};
  op.forward = [=](const std::vector<Vec>& in) {
    Vec r(N);
    kernels::row_norm_forward<double>(r.data(), in[0].data(), N, D);
    return r;
  };
  op.backward = [=](const std::vector<Vec>& in, const Vec& dr) {
    Vec r(N), dx(N * D, 0.0);
    kernels::row_norm_forward<double>(r.data(), in[0].data(), N, D);
    kernels::row_norm_backward<double>(dx.data(), dr.data(), in[0].data(), r.data(), N, D);
    return std::vector<Vec>{dx};
  };
  EXPECT_TRUE(logged("row_norm", check_kernel_gradients(op)));
}

TEST(ContrastiveHead, kernel_grad_double) {
  const int64_t N = 6, D = 4;
  const std::vector<int64_t> labels{0, 1, 0, 2, 1, 0};
  Rng rng(90);
  for (double margin : {0.8, 1.5, 3.0}) {
    // Redraw until every different-identity pair is 0.05 from the hinge d = margin (0.8 leaves
    // most pairs past the hinge, 3.0 none, 1.5 some).
    Vec f;
    bool clear = false;
    while (!clear) {
      f = random_vec(rng, N * D);
      clear = true;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = i + 1; j < N; ++j)
          if (labels[i] != labels[j])
            clear =
                clear && std::abs(std::sqrt(kernels::row_dist2(f.data(), D, i, j)) - margin) > 0.05;
    }
    KernelGradCheck op;
    op.inputs = {f};
    op.forward = [&, margin](const std::vector<Vec>& in) {
      return Vec{kernels::contrastive_forward<double>(in[0].data(), labels.data(), N, D, margin)};
    };
    op.backward = [&, margin](const std::vector<Vec>& in, const Vec& dy) {
      Vec df(N * D, 0.0);
      kernels::contrastive_backward<double>(df.data(), dy[0], in[0].data(), labels.data(), N, D,
                                            margin);
      return std::vector<Vec>{df};
    };
    EXPECT_TRUE(logged("contrastive margin " + std::to_string(margin), check_kernel_gradients(op)));
  }
}

TEST(TripletHead, kernel_grad_double) {
  const int64_t N = 6, D = 3;
  Rng rng(100);
  const Vec f = random_vec(rng, N * D);
  const std::vector<kernels::Triplet> triplets{{0, 1, 2}, {0, 1, 3}, {3, 4, 5},
                                               {5, 4, 0}, {2, 1, 4}, {1, 2, 0}};
  const double alpha = 0.6;
  int active = 0;
  for (const auto& t : triplets) {
    const double h = kernels::row_dist2(f.data(), D, t.a, t.p) -
                     kernels::row_dist2(f.data(), D, t.a, t.n) + alpha;
    ASSERT_GT(std::abs(h), 0.05) << "triplet at the hinge";
    active += h > 0;
  }
  ASSERT_GE(active, 2);  // both active and inactive triplets are exercised
  ASSERT_LT(active, 6);
  KernelGradCheck op;
  op.inputs = {f};
  op.forward = [&](const std::vector<Vec>& in) {
    return Vec{kernels::triplet_forward<double>(in[0].data(), D, triplets, alpha)};
  };
  op.backward = [&](const std::vector<Vec>& in, const Vec& dy) {
    Vec df(N * D, 0.0);
    kernels::triplet_backward<double>(df.data(), dy[0], in[0].data(), D, triplets, alpha);
    return std::vector<Vec>{df};
  };
  EXPECT_TRUE(logged("triplet", check_kernel_gradients(op)));
}

}  // namespace
}  // namespace mf::test

// ---- the newer heads' kernels, in double ----

namespace mf::test {
namespace {

TEST(ElasticfaceHead, unguarded_arc_kernel_grad_double) {
  uint64_t seed = 90;
  for (double m : {0.3, 0.5, 1.1}) {
    SCOPED_TRACE(m);
    EXPECT_TRUE(check_margin({.kind = MarginKind::kArc, .m = m, .guard = false}, {}, seed++));
  }
  // No fallback: cos(θ + m) for every θ, rising again past π − m.
  const MarginSpec spec{.kind = MarginKind::kArc, .m = 0.5, .guard = false};
  for (double theta = 0.05; theta < M_PI - 0.05; theta += 0.1)
    EXPECT_NEAR(kernels::apply_margin(spec, std::cos(theta)).f, std::cos(theta + 0.5), 1e-12);
}

// AdaFace's target at fixed g = m·ẑ and h = m + m·ẑ: both clip ends and the inside.
TEST(AdafaceHead, margin_kernel_grad_double) {
  constexpr double eps = 1e-3;
  uint64_t seed = 95;
  for (double z : {-1.0, -0.4, 0.0, 0.25, 1.0}) {
    SCOPED_TRACE(z);
    const double m = 0.4, g = m * z;
    const std::vector<double> kinks{std::cos(g + eps), std::cos(g + M_PI - eps)};
    EXPECT_TRUE(
        check_margin({.kind = MarginKind::kAdaFace, .m = g, .m3 = m + m * z}, kinks, seed++, 0.97));
  }
  // Values: inside the clip cos(θ − g) − h; at the clip cos(ε) − h (resp. cos(π − ε) − h), f′ = 0.
  const double g = 0.4, h = 0.8;
  const auto inside = kernels::adaface_margin(std::cos(1.0), g, h);
  EXPECT_NEAR(inside.f, std::cos(1.0 - g) - h, 1e-12);
  EXPECT_NEAR(inside.df, std::sin(1.0 - g) / std::sin(1.0), 1e-12);
  const auto low = kernels::adaface_margin(std::cos(0.2), g, h);  // θ − g < ε
  EXPECT_NEAR(low.f, std::cos(eps) - h, 1e-12);
  EXPECT_EQ(low.df, 0.0);
  const auto high = kernels::adaface_margin(std::cos(3.0), -0.4, 0.0);  // θ + 0.4 > π − ε
  EXPECT_NEAR(high.f, std::cos(M_PI - eps), 1e-12);
  EXPECT_EQ(high.df, 0.0);
}

// A CurricularFace negative at fixed φ and t: easy (c ≤ φ) keeps c, hard becomes c·(t + c).
TEST(CurricularfaceHead, negative_kernel_grad_double) {
  uint64_t seed = 100;
  for (double t : {0.0, 0.3, 0.9}) {
    for (double phi : {-0.5, 0.2, 0.7}) {
      SCOPED_TRACE(::testing::Message() << "t " << t << " phi " << phi);
      Rng rng(seed++);
      KernelGradCheck op;
      op.inputs = {cosines_away_from(rng, 60, {phi})};
      op.forward = [=](const std::vector<Vec>& in) {
        Vec y;
        for (double c : in[0]) y.push_back(kernels::curricular_negative(c, phi, t).f);
        return y;
      };
      op.backward = [=](const std::vector<Vec>& in, const Vec& dy) {
        Vec dc;
        for (size_t i = 0; i < in[0].size(); ++i)
          dc.push_back(kernels::curricular_negative(in[0][i], phi, t).df * dy[i]);
        return std::vector<Vec>{dc};
      };
      EXPECT_TRUE(logged("curricular negative", check_kernel_gradients(op)));
    }
  }
  EXPECT_DOUBLE_EQ(kernels::curricular_negative(0.5, 0.2, 0.3).f, 0.5 * (0.3 + 0.5));
  EXPECT_DOUBLE_EQ(kernels::curricular_negative(0.1, 0.2, 0.3).f, 0.1);
  EXPECT_EQ(kernels::curricular_negative(1.2, 0.2, 0.3).df, 0.0);  // clamped
}

// The fused op over (N, K): target (with the guard), hard and easy negatives, with the scale.
TEST(CurricularfaceHead, logits_kernel_grad_double) {
  const int64_t N = 6, K = 5;
  const std::vector<int64_t> labels{0, 4, 1, 1, 2, 3};
  Rng rng(110);
  for (double t : {0.0, 0.6}) {
    KernelGradCheck op;
    Vec c;
    // Targets away from the guard; negatives away from their row's φ (checked below).
    for (bool ok = false; !ok;) {
      c = cosines_away_from(rng, N * K, {-std::cos(0.5)});
      ok = true;
      for (int64_t n = 0; n < N; ++n) {
        const double phi = kernels::arcface_margin(c[n * K + labels[n]], 0.5, false, false).f;
        for (int64_t k = 0; k < K; ++k)
          ok = ok && (k == labels[n] || std::abs(c[n * K + k] - phi) > 0.02);
      }
    }
    op.inputs = {c};
    auto run = [&, t](const Vec& in, Vec* dc, const Vec* dz) {
      Vec z(N * K), phi(N), dfdc(N);
      kernels::curricular_logits_forward<double>(z.data(), phi.data(), dfdc.data(), in.data(),
                                                 labels.data(), N, K, 0.5, t, 3.0);
      if (dc)
        kernels::curricular_logits_backward<double>(dc->data(), dz->data(), in.data(), phi.data(),
                                                    dfdc.data(), labels.data(), N, K, t, 3.0);
      return z;
    };
    op.forward = [&](const std::vector<Vec>& in) { return run(in[0], nullptr, nullptr); };
    op.backward = [&](const std::vector<Vec>& in, const Vec& dz) {
      Vec dc(N * K, 0.0);
      run(in[0], &dc, &dz);
      return std::vector<Vec>{dc};
    };
    EXPECT_TRUE(logged("curricular_logits", check_kernel_gradients(op)));
  }
}

// MagFace's target in both of its arguments (c and the margin m), on both sides of the guard.
TEST(MagfaceHead, target_kernel_grad_double_in_c_and_m) {
  Rng rng(120);
  KernelGradCheck op;
  Vec c, m;
  while (c.size() < 80) {
    const double cv = rng.uniform(-0.98, 0.98), mv = rng.uniform(0.3, 1.0);
    if (std::abs(cv + std::cos(mv)) > 0.02) c.push_back(cv), m.push_back(mv);
  }
  op.inputs = {c, m};
  op.forward = [](const std::vector<Vec>& in) {
    Vec y;
    for (size_t i = 0; i < in[0].size(); ++i)
      y.push_back(kernels::magface_target(in[0][i], in[1][i]).f);
    return y;
  };
  op.backward = [](const std::vector<Vec>& in, const Vec& dy) {
    Vec dc, dm;
    for (size_t i = 0; i < in[0].size(); ++i) {
      const auto v = kernels::magface_target(in[0][i], in[1][i]);
      dc.push_back(v.df * dy[i]);
      dm.push_back(v.dm * dy[i]);
    }
    return std::vector<Vec>{dc, dm};
  };
  EXPECT_TRUE(logged("magface target (c, m)", check_kernel_gradients(op)));
  // The same values as ArcFace at a fixed margin, both branches.
  for (double cv : {0.6, -0.2, -0.95}) {
    EXPECT_NEAR(kernels::magface_target(cv, 0.5).f, kernels::arcface_margin(cv, 0.5, false).f,
                1e-15);
    EXPECT_NEAR(kernels::magface_target(cv, 0.5).df, kernels::arcface_margin(cv, 0.5, false).df,
                1e-15);
  }
}

// Sub-centre pooling in double: the max of each group and the gradient to its winner.
TEST(SubcenterArcfaceHead, group_max_kernel_grad_double) {
  const int64_t N = 4, K = 3, G = 3;
  KernelGradCheck op;
  Vec x(N * K * G);
  for (size_t i = 0; i < x.size(); ++i) x[i] = double((i * 11) % x.size()) * 0.05 - 0.9;
  op.inputs = {x};
  op.forward = [](const std::vector<Vec>& in) {
    Vec y(N * K);
    std::vector<int64_t> arg(N * K);
    kernels::group_max_forward<double>(y.data(), arg.data(), in[0].data(), N, K, G);
    return y;
  };
  op.backward = [](const std::vector<Vec>& in, const Vec& dy) {
    Vec y(N * K), dx(N * K * G, 0.0);
    std::vector<int64_t> arg(N * K);
    kernels::group_max_forward<double>(y.data(), arg.data(), in[0].data(), N, K, G);
    kernels::group_max_backward<double>(dx.data(), dy.data(), arg.data(), N, K, G);
    return std::vector<Vec>{dx};
  };
  EXPECT_TRUE(logged("group_max", check_kernel_gradients(op)));
  // Ties go to the first sub-centre.
  const Vec tie{0.5, 0.5, 0.1};
  Vec y(1);
  std::vector<int64_t> arg(1);
  kernels::group_max_forward<double>(y.data(), arg.data(), tie.data(), 1, 1, 3);
  EXPECT_EQ(arg[0], 0);
  EXPECT_EQ(y[0], 0.5);
}

}  // namespace
}  // namespace mf::test
