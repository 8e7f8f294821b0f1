// Hand-computed cases (center step, SphereFace's λ schedule, triplet mining), the registry and
// parameter validation, the identities between heads (combined (1, m, 0) = arcface, (1, 0, m) =
// cosface, am_softmax = cosface), the margin warm-up, and target_logit against forward.
#include <gtest/gtest.h>

#include <cmath>

#include "head_test_util.h"
#include "losses/heads.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace mf::test {
namespace {

using kernels::Triplet;

// ---- center loss ----

// K = 3, D = 2, α = 0.5; class 2 has no sample and keeps its center.
//   Δc0 = ((1,0) − (3,0) + (1,0) − (1,2)) / (1 + 2) = (−2, −2)/3 → c0 = (1,0) + (1/3, 1/3)
//   Δc1 = ((0,2) − (0,0)) / (1 + 1) = (0, 1)               → c1 = (0,2) − (0, 0.5)
TEST(CenterHead, center_update_hand_computed) {
  const Tensor x = Tensor::from({3, 2}, {3, 0, 1, 2, 0, 0});
  const Labels labels{0, 0, 1};
  const std::vector<float> expected{4.0f / 3, 1.0f / 3, 0.0f, 1.5f, 5.0f, 5.0f};
  Tensor centers = Tensor::from({3, 2}, {1, 0, 0, 2, 5, 5});
  update_centers(centers, x, labels, 0.5);
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(centers.data()[i], expected[i]) << i;

  // The same through the head: the buffer "centers", updated only by after_step.
  auto head = make_head("center", {"alpha=0.5"}, 2, 3);
  auto buffers = head->named_buffers();
  ASSERT_EQ(buffers.size(), 1u);
  EXPECT_EQ(buffers[0].first, "centers");
  buffers[0].second.copy_from(Tensor::from({3, 2}, {1, 0, 0, 2, 5, 5}));
  const HeadOutput out = head->forward(Var(x, true), labels, {});
  backward(out.loss);
  EXPECT_EQ(buffers[0].second.data()[0], 1.0f) << "forward and backward must not move centers";
  head->after_step(x, labels, Tensor());
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(buffers[0].second.data()[i], expected[i]) << i;
}

// The center term: λ/(2N)·Σ‖x − c_y‖² on top of the softmax loss.
TEST(CenterHead, center_term_hand_computed) {
  auto with = make_head("center", {"lambda=0.1"}, 2, 3, 9);
  auto without = make_head("softmax", {}, 2, 3, 9);  // same seed: same class weights
  with->named_buffers()[0].second.copy_from(Tensor::from({3, 2}, {1, 0, 0, 2, 5, 5}));
  const Tensor x = Tensor::from({3, 2}, {3, 0, 1, 2, 0, 0});
  const Labels labels{0, 0, 1};
  // ‖(3,0)−(1,0)‖² + ‖(1,2)−(1,0)‖² + ‖(0,0)−(0,2)‖² = 4 + 4 + 4 = 12 → 0.1/(2·3)·12 = 0.2
  const double extra = with->forward(Var(x), labels, {}).loss.value().item() -
                       without->forward(Var(x), labels, {}).loss.value().item();
  EXPECT_NEAR(extra, 0.2, 1e-6);
}

// ---- SphereFace ----

TEST(SpherefaceHead, lambda_schedule_hand_computed) {
  const SphereFaceLambda lambda;  // base 1000, γ 0.12, power 1, λ_min 5
  EXPECT_DOUBLE_EQ(lambda.at(0), 1000.0);
  EXPECT_NEAR(lambda.at(1), 1000.0 / 1.12, 1e-9);
  EXPECT_NEAR(lambda.at(100), 1000.0 / 13.0, 1e-9);
  // 1000/(1 + 0.12·s) = 5 at s = 1658.33: step 1658 is still above λ_min, 1659 is clamped.
  EXPECT_NEAR(lambda.at(1658), 1000.0 / 199.96, 1e-9);
  EXPECT_GT(lambda.at(1658), 5.0);
  EXPECT_DOUBLE_EQ(lambda.at(1659), 5.0);
  EXPECT_DOUBLE_EQ(lambda.at(28000), 5.0);
  const SphereFaceLambda squared{.base = 100, .gamma = 1, .power = 2, .lambda_min = 0};
  EXPECT_DOUBLE_EQ(squared.at(4), 4.0);  // 100·5^−2
}

// θ = 60°, m = 4: k = 1, ψ = −cos 240° − 2 = −1.5. Target (λ·0.5 − 1.5)/(1 + λ).
TEST(SpherefaceHead, target_logit_follows_lambda) {
  auto head = make_head("sphereface", {}, 4, 3);
  const double theta = M_PI / 3;
  EXPECT_NEAR(*head->target_logit(theta, {.step = 0}), (1000 * 0.5 - 1.5) / 1001, 1e-12);
  EXPECT_NEAR(*head->target_logit(theta, {.step = 100}),
              (1000.0 / 13 * 0.5 - 1.5) / (1 + 1000.0 / 13), 1e-12);
  EXPECT_NEAR(*head->target_logit(theta, {.step = 5000}), 1.0 / 6.0, 1e-12);
  // The warm-up scales the margin term: half-way, half of (ψ − c)/(1 + λ).
  auto warm = make_head("sphereface", {"margin_warmup_steps=10000"}, 4, 3);
  EXPECT_NEAR(*warm->target_logit(theta, {.step = 5000}), 0.5 + 0.5 * (-1.5 - 0.5) / 6, 1e-12);
}

// ---- triplet mining ----

// Labels {0, 0, 0, 1, 1, 2} and hand-made squared distances (row 5 is alone: never an anchor).
Tensor mining_distances() {
  return Tensor::from({6, 6}, {0.00f, 0.20f, 0.50f, 0.30f, 0.90f, 0.99f,  //
                               0.20f, 0.00f, 0.40f, 0.60f, 0.10f, 0.99f,  //
                               0.50f, 0.40f, 0.00f, 0.70f, 0.80f, 0.99f,  //
                               0.30f, 0.60f, 0.70f, 0.00f, 0.95f, 0.99f,  //
                               0.90f, 0.10f, 0.80f, 0.95f, 0.00f, 0.99f,  //
                               0.99f, 0.99f, 0.99f, 0.99f, 0.99f, 0.00f});
}
const Labels kMiningLabels{0, 0, 0, 1, 1, 2};

// Per anchor: farthest positive, nearest negative.
//   a0: p ∈ {1 .2, 2 .5} → 2; n ∈ {3 .3, 4 .9, 5 .99} → 3.   a1: p 2 (.4); n 4 (.1).
//   a2: p 0 (.5); n 3 (.7).   a3: p 4 (.95); n 0 (.3).   a4: p 3 (.95); n 1 (.1).
TEST(TripletHead, batch_hard_mining_hand_computed) {
  const std::vector<Triplet> expected{{0, 2, 3}, {1, 2, 4}, {2, 0, 3}, {3, 4, 0}, {4, 3, 1}};
  EXPECT_EQ(mine_triplets(mining_distances(), kMiningLabels, TripletMining::kBatchHard), expected);
}

// Per anchor-positive pair: the nearest negative farther than the positive, else the farthest.
//   (0,1 .2): n with d > .2 → 3 (.3).  (0,2 .5): → 4 (.9).  (1,0 .2): → 3 (.6) (4 is .1).
//   (1,2 .4): → 3 (.6).  (2,0 .5): → 3 (.7).  (2,1 .4): → 3 (.7).
//   (3,4 .95): none beyond .95 but 5 (.99) → 5.  (4,3 .95): → 5 (.99).
TEST(TripletHead, semi_hard_mining_hand_computed) {
  const std::vector<Triplet> expected{{0, 1, 3}, {0, 2, 4}, {1, 0, 3}, {1, 2, 3},
                                      {2, 0, 3}, {2, 1, 3}, {3, 4, 5}, {4, 3, 5}};
  EXPECT_EQ(mine_triplets(mining_distances(), kMiningLabels, TripletMining::kSemiHard), expected);
}

// Without a negative farther than the positive, semi-hard falls back to the farthest negative.
TEST(TripletHead, semi_hard_falls_back_to_farthest_negative) {
  const Tensor d2 = Tensor::from({3, 3}, {0.0f, 0.9f, 0.3f,  //
                                          0.9f, 0.0f, 0.5f,  //
                                          0.3f, 0.5f, 0.0f});
  // Anchor 0: positive 1 at .9, only negative 2 at .3 < .9 → fallback 2. Anchor 1 likewise.
  const std::vector<Triplet> expected{{0, 1, 2}, {1, 0, 2}};
  EXPECT_EQ(mine_triplets(d2, {0, 0, 1}, TripletMining::kSemiHard), expected);
}

TEST(TripletHead, batch_without_triplet_is_an_error) {
  auto head = make_head("triplet", {}, 3, 2);
  const std::string msg = error_of([&] {
    head->forward(Var(Tensor::full({3, 3}, 1.0f)), {0, 1, 2}, {});
  });
  EXPECT_NE(msg.find("P×K"), std::string::npos) << msg;
}

// Accuracy: the nearest other embedding's identity. Angles from (1, 0): rows 0, 1 (id 0) at 0° and
// 3.0°, row 2 (id 1) at 90°, row 3 (id 1) at 23.2°. Nearest: 0 → 1 (right), 1 → 0 (right),
// 2 → 3 (right), 3 → 1 (wrong): 3/4.
TEST(TripletHead, accuracy_is_nearest_neighbour) {
  auto head = make_head("triplet", {}, 2, 2);
  const Tensor x = Tensor::from({4, 2}, {1.0f, 0.0f, 0.95f, 0.05f, 0.0f, 1.0f, 0.7f, 0.3f});
  const HeadOutput out = head->forward(Var(x), {0, 0, 1, 1}, {});
  EXPECT_DOUBLE_EQ(out.accuracy, 0.75);
  EXPECT_TRUE(std::isinf(out.logits.data()[0]) && out.logits.data()[0] < 0);  // self excluded
}

// ---- registry and validation ----

TEST(HeadRegistry, lists_every_head) {
  const std::vector<std::string> expected{
      "adacos",      "adaface", "am_softmax",     "arcface",           "center",   "combined",
      "contrastive", "cosface", "curricularface", "elasticface",       "lsoftmax", "magface",
      "normface",    "softmax", "sphereface",     "subcenter_arcface", "triplet"};
  EXPECT_EQ(head_registry().names(), expected);
}

TEST(HeadRegistry, unknown_head_lists_known_ones) {
  const std::string msg = error_of([] { make_head("arcfce", {}, 8, 4); });
  EXPECT_NE(msg.find("unknown head 'arcfce'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("arcface, center, combined"), std::string::npos) << msg;
}

TEST(HeadRegistry, unknown_key_is_an_error) {
  const std::string msg = error_of([] { make_head("arcface", {"marign=0.5"}, 8, 4); });
  EXPECT_NE(msg.find("marign"), std::string::npos) << msg;
}

// Each invalid value names its key and the allowed range.
void expect_rejected(const std::string& type, const std::string& kv, const std::string& range) {
  const std::string msg = error_of([&] { make_head(type, {kv}, 8, 4); });
  const std::string key = kv.substr(0, kv.find('='));
  EXPECT_NE(msg.find("head." + key), std::string::npos) << type << " " << kv << ": " << msg;
  EXPECT_NE(msg.find(range), std::string::npos) << type << " " << kv << ": " << msg;
}

TEST(ArcfaceHead, params_validated) {
  expect_rejected("arcface", "s=0", "(0, ");
  expect_rejected("arcface", "m=-0.1", "[0, π)");
  expect_rejected("arcface", "m=3.2", "[0, π)");
  expect_rejected("arcface", "m=3.141592653589793", "[0, π)");
  expect_rejected("arcface", "gradient=approx", "straight_through");
  expect_rejected("arcface", "margin_warmup_steps=-1", "[0, ");
}
TEST(SpherefaceHead, params_validated) {
  expect_rejected("sphereface", "m=5", "[1, 4]");
  expect_rejected("sphereface", "m=0", "[1, 4]");
  expect_rejected("sphereface", "m=2.5", "expected an integer");
  expect_rejected("sphereface", "base=0", "(0, ");
}
TEST(CenterHead, params_validated) {
  expect_rejected("center", "alpha=0", "(0, 1]");
  expect_rejected("center", "alpha=1.5", "(0, 1]");
  expect_rejected("center", "lambda=-1", "[0, ");
}
TEST(CosfaceHead, params_validated) {
  expect_rejected("cosface", "s=-64", "(0, ");
  expect_rejected("am_softmax", "m=3", "[0, 2]");
}
TEST(NormfaceHead, params_validated) {
  expect_rejected("normface", "s=0", "(0, ");
}
TEST(CombinedHead, params_validated) {
  expect_rejected("combined", "m1=0", "(0, 10]");
  expect_rejected("combined", "m2=4", "[0, π)");
  expect_rejected("combined", "m3=-0.2", "[0, 2]");
}
TEST(ContrastiveHead, params_validated) {
  expect_rejected("contrastive", "margin=0", "(0, ");
}
TEST(NewerHeads, params_validated) {
  expect_rejected("curricularface", "ema=1.5", "[0, 1]");
  expect_rejected("curricularface", "m=4", "[0, π)");
  expect_rejected("magface", "u_a=5", "must exceed l_a = 10");
  expect_rejected("magface", "u_m=0.3", "[l_m, π)");
  expect_rejected("adaface", "m=2", "[0, 1.5]");
  expect_rejected("subcenter_arcface", "k=0", "[1, 64]");
  expect_rejected("elasticface", "variant=both", "arc");
  expect_rejected("elasticface", "sigma=-0.1", "[0, 1]");
  expect_rejected("lsoftmax", "m=5", "[1, 4]");
  expect_rejected("adacos", "dynamic=maybe", "true");
  const std::string msg = error_of([] { make_head("adacos", {}, 8, 2); });
  EXPECT_NE(msg.find("at least three classes"), std::string::npos) << msg;
}
TEST(TripletHead, params_validated) {
  expect_rejected("triplet", "mining=hardest", "semi_hard");
  expect_rejected("triplet", "alpha=-0.2", "[0, 4]");
}

TEST(ArcfaceHead, input_errors_name_the_head) {
  auto head = make_head("arcface", {}, 8, 4);
  std::string msg = error_of([&] { head->forward(Var(Tensor::zeros({2, 7})), {0, 1}, {}); });
  EXPECT_NE(msg.find("head 'arcface': expected embeddings (N, 8)"), std::string::npos) << msg;
  msg = error_of([&] { head->forward(Var(Tensor::full({2, 8}, 1.0f)), {0, 4}, {}); });
  EXPECT_NE(msg.find("label 4 of row 1 is outside [0, 4)"), std::string::npos) << msg;
}

// State-dict names and shapes, for checkpoints under /head.
TEST(SoftmaxHead, parameter_names) {
  auto head = make_head("softmax", {"bias=true"}, 8, 5);
  const auto params = head->named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].first, "weight");
  EXPECT_EQ(params[0].second.shape(), Shape({5, 8}));
  EXPECT_EQ(params[1].first, "bias");
  EXPECT_EQ(params[1].second.shape(), Shape({5}));
  EXPECT_EQ(make_head("softmax", {}, 8, 5)->named_parameters().size(), 1u);
}
TEST(NormfaceHead, learned_scale_is_parameter_s) {
  auto head = make_head("normface", {"s=10", "learn_s=true"}, 8, 5);
  const Var s = parameter(*head, "s");
  ASSERT_TRUE(s.defined());
  EXPECT_EQ(s.shape(), Shape({1}));
  EXPECT_EQ(s.value().item(), 10.0f);
  EXPECT_FALSE(parameter(*make_head("normface", {}, 8, 5), "s").defined());
}
TEST(TripletHead, has_no_parameters) {
  auto head = make_head("triplet", {}, 8, 5);
  EXPECT_TRUE(head->named_parameters().empty());
  EXPECT_FALSE(head->target_logit(1.0, {}).has_value());
  EXPECT_THROW(target_logit_curve(*head, {0.5}, {}), Error);
}

// ---- identities between heads ----

struct Result {
  Tensor loss, logits, dx, dw;
};
Result run(const std::string& type, const std::vector<std::string>& params, int64_t step = 0) {
  auto head = make_head(type, params, 6, 5, 21);  // same seed → same class weights
  Rng rng(22);
  Var x(random_tensor(rng, {7, 6}), true);
  const Labels labels{0, 1, 2, 3, 4, 0, 2};
  const HeadOutput out = head->forward(x, labels, {.step = step});
  backward(out.loss);
  return {out.loss.value(), out.logits, x.grad(), parameter(*head, "weight").grad()};
}
void expect_identical(const Result& a, const Result& b) {
  for (const auto& [ta, tb] : {std::pair{a.loss, b.loss}, std::pair{a.logits, b.logits},
                               std::pair{a.dx, b.dx}, std::pair{a.dw, b.dw}}) {
    ASSERT_EQ(ta.numel(), tb.numel());
    for (int64_t i = 0; i < ta.numel(); ++i) ASSERT_EQ(ta.data()[i], tb.data()[i]) << i;
  }
}

TEST(CombinedHead, equals_arcface_cosface_normface) {
  expect_identical(run("combined", {"s=20", "m1=1", "m2=0.5", "m3=0"}),
                   run("arcface", {"s=20", "m=0.5"}));
  expect_identical(run("combined", {"s=20", "m1=1", "m2=0", "m3=0.35"}),
                   run("cosface", {"s=20", "m=0.35"}));
  expect_identical(run("combined", {"s=20", "m1=1", "m2=0", "m3=0"}), run("normface", {"s=20"}));
}

TEST(AmSoftmaxHead, am_softmax_is_cosface) {
  expect_identical(run("am_softmax", {"s=30"}), run("cosface", {"s=30"}));
}

TEST(ArcfaceHead, straight_through_same_forward_other_gradient) {
  const Result exact = run("arcface", {"s=16"});
  const Result st = run("arcface", {"s=16", "gradient=straight_through"});
  EXPECT_EQ(exact.loss.item(), st.loss.item());
  for (int64_t i = 0; i < exact.logits.numel(); ++i)
    ASSERT_EQ(exact.logits.data()[i], st.logits.data()[i]);
  double diff = 0;
  for (int64_t i = 0; i < exact.dx.numel(); ++i)
    diff = std::max(diff, double(std::abs(exact.dx.data()[i] - st.dx.data()[i])));
  EXPECT_GT(diff, 1e-3);
}

// ---- margin warm-up ----

TEST(ArcfaceHead, margin_warmup_grows_linearly) {
  // Step 0: no margin (NormFace); half-way: m/2; at and after the end: the full margin.
  expect_identical(run("arcface", {"s=20", "margin_warmup_steps=100"}, 0),
                   run("normface", {"s=20"}));
  expect_identical(run("arcface", {"s=20", "margin_warmup_steps=100"}, 50),
                   run("arcface", {"s=20", "m=0.25"}));
  expect_identical(run("arcface", {"s=20", "margin_warmup_steps=100"}, 100),
                   run("arcface", {"s=20"}));
  expect_identical(run("arcface", {"s=20", "margin_warmup_steps=100"}, 5000),
                   run("arcface", {"s=20"}));
  auto head = make_head("arcface", {"margin_warmup_steps=100"}, 4, 3);
  EXPECT_NEAR(*head->target_logit(1.0, {.step = 25}), std::cos(1.0 + 0.125), 1e-12);
}
TEST(CosfaceHead, margin_warmup_grows_linearly) {
  auto head = make_head("cosface", {"margin_warmup_steps=10"}, 4, 3);
  EXPECT_NEAR(*head->target_logit(1.0, {.step = 0}), std::cos(1.0), 1e-15);
  EXPECT_NEAR(*head->target_logit(1.0, {.step = 3}), std::cos(1.0) - 0.3 * 0.35, 1e-15);
  EXPECT_NEAR(*head->target_logit(1.0, {.step = 10}), std::cos(1.0) - 0.35, 1e-15);
}
TEST(CombinedHead, margin_warmup_grows_linearly) {
  auto head = make_head("combined", {"m1=1.2", "m2=0.4", "m3=0.1", "margin_warmup_steps=4"}, 4, 3);
  // Half-way: (m1, m2, m3) = (1.1, 0.2, 0.05).
  EXPECT_NEAR(*head->target_logit(1.0, {.step = 2}), std::cos(1.1 + 0.2) - 0.05, 1e-12);
  EXPECT_NEAR(*head->target_logit(1.0, {.step = 0}), std::cos(1.0), 1e-15);
}

// The newer heads' warm-up scales every margin parameter by r = step / margin_warmup_steps (capped
// at 1); with r = 0, 1/2 and 1 (all exact in binary) the warmed-up head must match, bit for bit,
// the same head built with the margin parameters scaled by hand.
TEST(NewerHeads, margin_warmup_scales_the_margin) {
  struct Case {
    std::string type;
    std::vector<std::string> fixed, zero, half, full;
  };
  const std::vector<Case> cases{
      {"subcenter_arcface", {"s=20", "k=2"}, {"m=0"}, {"m=0.25"}, {"m=0.5"}},
      {"curricularface", {"s=20"}, {"m=0"}, {"m=0.25"}, {"m=0.5"}},
      {"adaface", {"s=20"}, {"m=0"}, {"m=0.2"}, {"m=0.4"}},
      {"elasticface", {"s=20"}, {"m=0", "sigma=0"}, {"m=0.25", "sigma=0.025"}, {"m=0.5"}},
      {"elasticface",
       {"s=20", "variant=cos", "plus=true"},
       {"m=0", "sigma=0"},
       {"m=0.175", "sigma=0.025"},
       {"m=0.35"}},
      {"magface",
       {"s=20", "l_a=1", "u_a=5"},
       {"l_m=0", "u_m=0"},
       {"l_m=0.225", "u_m=0.4"},
       {"l_m=0.45", "u_m=0.8"}},
  };
  auto with = [](std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type + " " + c.fixed.back());
    const auto warm = with(c.fixed, with(c.full, {"margin_warmup_steps=100"}));
    // Each run is the head's first forward (the EMA-state heads start from the same buffers), at
    // the step whose margin it checks.
    expect_identical(run(c.type, warm, 0), run(c.type, with(c.fixed, c.zero), 0));
    expect_identical(run(c.type, warm, 50), run(c.type, with(c.fixed, c.half), 50));
    expect_identical(run(c.type, warm, 100), run(c.type, with(c.fixed, c.full), 100));
    expect_identical(run(c.type, warm, 7000), run(c.type, with(c.fixed, c.full), 7000));
    // And it does change the result: half-way is not the full margin.
    const Result half = run(c.type, warm, 50), full = run(c.type, with(c.fixed, c.full), 50);
    EXPECT_NE(half.loss.item(), full.loss.item());
    auto head = make_head(c.type, warm, 4, 3);
    EXPECT_NE(*head->target_logit(1.0, {.step = 0}), *head->target_logit(1.0, {.step = 100}));
    expect_rejected(c.type, "margin_warmup_steps=-1", "[0, ");
  }
}

// ---- target_logit is what forward puts in the target column ----

// With unit class weights and a unit embedding at angle θ to W_y, logits[y] / scale must equal
// target_logit(θ) for every classifier head (scale = s, or 1 where the head has none).
// The heads the target-logit figure draws as one curve (marginface describe --target-logits).
TEST(HeadRegistry, target_logits_that_the_figure_shares) {
  const std::vector<std::pair<std::string, std::string>> same{{"softmax", "adacos"},
                                                              {"sphereface", "lsoftmax"},
                                                              {"arcface", "curricularface"},
                                                              {"arcface", "subcenter_arcface"}};
  for (const auto& [a, b] : same) {
    auto ha = make_head(a, {}, 4, 3), hb = make_head(b, {}, 4, 3);
    for (double theta = 0; theta <= M_PI; theta += 0.05)
      EXPECT_EQ(*ha->target_logit(theta, {.step = 1000000}),
                *hb->target_logit(theta, {.step = 1000000}))
          << a << " vs " << b << " at " << theta;
  }
}

TEST(HeadRegistry, target_logit_matches_forward) {
  struct C {
    std::string type;
    std::vector<std::string> params;
    double scale;
    int64_t step;
  };
  const std::vector<C> cases{{"softmax", {}, 1, 0},
                             {"center", {}, 1, 0},
                             {"contrastive", {}, 1, 0},
                             {"normface", {"s=10"}, 10, 0},
                             {"cosface", {"s=10"}, 10, 0},
                             {"am_softmax", {"s=10"}, 10, 0},
                             {"arcface", {"s=10"}, 10, 0},
                             {"arcface", {"s=10", "easy_margin=true"}, 10, 0},
                             {"combined", {"s=10"}, 10, 0},
                             {"combined", {"s=10", "m1=0.9", "m2=0.4", "m3=0.15"}, 10, 0},
                             {"combined", {"s=10", "m1=1.35", "m2=0", "m3=0"}, 10, 0},
                             {"sphereface", {}, 1, 0},
                             {"sphereface", {}, 1, 5000},
                             {"sphereface", {"m=3"}, 1, 200},
                             {"lsoftmax", {}, 1, 0},  // ‖W_j‖ = ‖x‖ = 1 here
                             {"lsoftmax", {"m=2"}, 1, 5000},
                             {"curricularface", {"s=10"}, 10, 0},
                             {"subcenter_arcface", {"s=10", "k=1"}, 10, 0},
                             {"elasticface", {"s=10", "sigma=0"}, 10, 7},
                             {"elasticface", {"s=10", "sigma=0", "variant=cos"}, 10, 7},
                             // ‖x‖ = 1, the middle of [0.5, 1.5]: m = (l_m + u_m)/2
                             {"magface", {"s=10", "l_a=0.5", "u_a=1.5"}, 10, 0},
                             {"adaface", {"s=10", "h=0"}, 10, 0},  // ẑ = 0
                             {"adacos", {"dynamic=false"}, std::sqrt(2.0) * std::log(2.0), 0}};
  const int64_t D = 4, K = 3;
  for (const C& c : cases) {
    SCOPED_TRACE(c.type + " " + (c.params.empty() ? "" : c.params.back()));
    auto head = make_head(c.type, c.params, D, K);
    // Unit rows e_0, e_1, e_2; embeddings at angle θ to e_0 in the (e_0, e_3) plane.
    Var w = parameter(*head, "weight");
    w.value().zero();
    for (int64_t k = 0; k < K; ++k) w.value().data()[k * D + k] = 1.0f;
    std::vector<double> thetas;
    for (double deg = 5; deg < 180; deg += 10) thetas.push_back(deg * M_PI / 180);
    Tensor x = Tensor::zeros({int64_t(thetas.size()), D});
    for (size_t n = 0; n < thetas.size(); ++n) {
      x.data()[n * D + 0] = float(std::cos(thetas[n]));
      x.data()[n * D + 3] = float(std::sin(thetas[n]));
    }
    const HeadOutput out = head->forward(Var(x), Labels(thetas.size(), 0), {.step = c.step});
    const auto curve = target_logit_curve(*head, thetas, {.step = c.step});
    for (size_t n = 0; n < thetas.size(); ++n)
      EXPECT_NEAR(out.logits.data()[n * K] / c.scale, curve[n], 2e-6) << thetas[n];
  }
}

}  // namespace
}  // namespace mf::test
