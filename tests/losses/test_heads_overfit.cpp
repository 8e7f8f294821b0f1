// End to end: a tiny backbone (Linear 12 → 32, PReLU, Linear 32 → 8) with each head, trained by
// plain gradient descent (w ← w − lr·∂L/∂w on the backbone and the head) on one fixed batch of
// 16 random inputs, 4 identities × 4, must reach 100 % training accuracy (for the margin heads:
// with the margin, since the accuracy is read from the logits the loss sees) and cut the loss by
// the stated factor. Center loss runs its center step, and the heads with running statistics
// their state update, after every update; the margin heads use a margin warm-up where they have
// one, the usual cure for margin heads trained from scratch.
#include <gtest/gtest.h>

#include <iostream>

#include "head_test_util.h"
#include "layers/layers.h"

namespace mf::test {
namespace {

constexpr int64_t kN = 16, kIn = 12, kD = 8, kK = 4;

struct Run {
  double first_loss = 0, last_loss = 0, accuracy = 0;
  int64_t steps_to_full_accuracy = -1;
};

Run train(const std::string& type, const std::vector<std::string>& params, double lr,
          int64_t steps) {
  Rng rng(2024);
  Sequential backbone;
  backbone.add(std::make_shared<Linear>(LinearConfig{.in = kIn, .out = 32}, rng))
      .add(std::make_shared<PReLU>(32))
      .add(std::make_shared<Linear>(LinearConfig{.in = 32, .out = kD}, rng));
  auto head = make_head(type, params, kD, kK, 7);
  const Tensor x = random_tensor(rng, {kN, kIn});
  Labels labels;
  for (int64_t n = 0; n < kN; ++n) labels.push_back(n % kK);

  std::vector<Var> trainable = backbone.parameters();
  for (const Var& p : head->parameters()) trainable.push_back(p);
  Run run;
  for (int64_t step = 0; step <= steps; ++step) {
    for (Var& p : trainable) p.zero_grad();
    const Var embeddings = backbone.forward(Var(x));
    const HeadOutput out = head->forward(embeddings, labels, {.step = step});
    if (step == 0) run.first_loss = out.loss.value().item();
    run.last_loss = out.loss.value().item();
    run.accuracy = out.accuracy;
    if (out.accuracy == 1.0 && run.steps_to_full_accuracy < 0) run.steps_to_full_accuracy = step;
    if (step == steps) break;
    backward(out.loss);
    for (Var& p : trainable) {
      float* w = p.value().data();
      const float* g = p.grad().data();
      for (int64_t i = 0; i < p.value().numel(); ++i) w[i] -= float(lr) * g[i];
    }
    head->after_step(embeddings.value(), labels, out.batch_stats);
  }
  std::cout << "  [overfit] " << type << ": loss " << run.first_loss << " → " << run.last_loss
            << ", accuracy " << run.accuracy << " (100 % first at step "
            << run.steps_to_full_accuracy << " of " << steps << ")\n";
  return run;
}

void expect_overfits(const std::string& type, const std::vector<std::string>& params, double lr,
                     int64_t steps, double loss_factor) {
  const Run run = train(type, params, lr, steps);
  EXPECT_EQ(run.accuracy, 1.0) << type;
  EXPECT_LT(run.last_loss, loss_factor * run.first_loss) << type;
}

TEST(SoftmaxHead, overfits_tiny_batch) {
  expect_overfits("softmax", {}, 0.1, 300, 0.05);
}
TEST(CenterHead, overfits_tiny_batch) {
  expect_overfits("center", {"lambda=0.01", "alpha=0.5"}, 0.1, 300, 0.05);
}
TEST(SpherefaceHead, overfits_tiny_batch) {
  // λ anneals fast here (γ = 1: λ = 50 by step 19, λ_min = 5) so the margin is in force.
  expect_overfits("sphereface", {"gamma=1", "base=1000", "lambda_min=5"}, 0.05, 600, 0.2);
}
TEST(NormfaceHead, overfits_tiny_batch) {
  expect_overfits("normface", {"s=16", "learn_s=true"}, 0.1, 300, 0.1);
}
TEST(CosfaceHead, overfits_tiny_batch) {
  expect_overfits("cosface", {"s=30", "m=0.35", "margin_warmup_steps=50"}, 0.05, 300, 0.1);
}
TEST(ArcfaceHead, overfits_tiny_batch) {
  expect_overfits("arcface", {"s=30", "m=0.5", "margin_warmup_steps=50"}, 0.05, 300, 0.1);
}
TEST(ArcfaceHead, overfits_tiny_batch_straight_through) {
  expect_overfits("arcface",
                  {"s=30", "m=0.5", "margin_warmup_steps=50", "gradient=straight_through"}, 0.05,
                  300, 0.1);
}
TEST(CombinedHead, overfits_tiny_batch) {
  expect_overfits("combined", {"s=30", "m1=0.9", "m2=0.4", "m3=0.15", "margin_warmup_steps=50"},
                  0.05, 300, 0.1);
}
TEST(LsoftmaxHead, overfits_tiny_batch) {
  expect_overfits("lsoftmax", {"gamma=1", "base=1000", "lambda_min=5"}, 0.05, 600, 0.2);
}
// With 4 classes AdaCos's scale stays small (√2·log 3 = 1.55 at the start; the dynamic s is
// log(B_avg)/cos θ_med with B_avg ~ 3·e^(s·c)), which caps how far the loss can fall: about
// halved here, while the accuracy still reaches 100 %.
TEST(AdacosHead, overfits_tiny_batch) {
  expect_overfits("adacos", {}, 0.1, 300, 0.5);
}
TEST(SubcenterArcfaceHead, overfits_tiny_batch) {
  expect_overfits("subcenter_arcface", {"s=30", "m=0.5", "k=3"}, 0.05, 300, 0.1);
}
TEST(ElasticfaceHead, overfits_tiny_batch) {
  expect_overfits("elasticface", {"s=30", "m=0.5", "sigma=0.05"}, 0.05, 300, 0.1);
  expect_overfits("elasticface", {"s=30", "variant=cos", "plus=true"}, 0.05, 300, 0.1);
}
TEST(CurricularfaceHead, overfits_tiny_batch) {
  expect_overfits("curricularface", {"s=30", "m=0.5", "ema=0.1"}, 0.05, 300, 0.1);
}
TEST(MagfaceHead, overfits_tiny_batch) {
  // The tiny backbone's norms (~1–5) inside [0.5, 20]; λ_g scaled down with the range.
  expect_overfits("magface", {"s=30", "l_a=0.5", "u_a=20", "lambda_g=1"}, 0.05, 300, 0.2);
}
TEST(AdafaceHead, overfits_tiny_batch) {
  expect_overfits("adaface", {"s=30", "m=0.4", "ema=0.1"}, 0.05, 300, 0.1);
}
TEST(ContrastiveHead, overfits_tiny_batch) {
  expect_overfits("contrastive", {"lambda=0.5"}, 0.1, 300, 0.1);
}
TEST(TripletHead, overfits_tiny_batch) {
  expect_overfits("triplet", {"alpha=0.2", "mining=semi_hard"}, 0.1, 300, 0.1);
  expect_overfits("triplet", {"alpha=0.2", "mining=batch_hard"}, 0.1, 300, 0.1);
}

}  // namespace
}  // namespace mf::test
