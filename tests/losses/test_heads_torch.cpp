// Every head against an independent PyTorch implementation (tests/fixtures/heads.h5, written by
// scripts/make_head_fixtures.py in float64 from float32 inputs). Each case builds the head through
// the registry from the stored "key=value" params (so the C++ defaults are checked against the
// script's), loads the stored parameters and buffers by state_dict name, runs forward and
// backward, and compares loss, logits, accuracy, d/dembeddings and d/d<every parameter> per
// tensor: max |ours − ref| ≤ 1e-5 · max |ref|. Cases cover random batches and an "edge" batch
// with cos θ = ±1, θ + m > π and a near-zero embedding (see the script's docstring).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>

#include "h5/file.h"
#include "head_test_util.h"
#include "losses/heads.h"
#include "support/fixtures.h"

namespace mf::test {
namespace {

constexpr char kFile[] = "heads.h5";
constexpr double kRtol = 1e-5;

// max |ours − ref| / max |ref|, the quantity the criterion bounds.
double relative_error(const Tensor& ours, const Tensor& ref) {
  double diff = 0, scale = 1e-30;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    diff = std::max(diff, std::abs(double(ours.data()[i]) - double(ref.data()[i])));
    scale = std::max(scale, std::abs(double(ref.data()[i])));
  }
  return diff / scale;
}

Tensor zero_diagonal(Tensor t) {
  Tensor out = t.clone();
  for (int64_t i = 0; i < out.dim(0); ++i) out.data()[i * out.dim(1) + i] = 0.0f;
  return out;
}

// Runs every case whose type is `type` and whose name starts with `prefix`; returns how many.
int run_cases(const std::string& type, const std::string& prefix = "") {
  h5::File file(fixture_path(kFile), h5::File::Mode::kRead);
  int count = 0;
  for (const std::string& name : file.list("/")) {
    const std::string group = "/" + name;
    if (file.read_attr_string(group, "type") != type || name.rfind(prefix, 0) != 0 ||
        name.find("_sequence") != std::string::npos)
      continue;
    ++count;
    SCOPED_TRACE(name);
    Fixture fx(kFile, group);
    const Tensor x = fx.tensor("embeddings");
    const Labels labels = fx.ints("labels");
    const std::vector<std::string> params = file.read_strings(group + "/params");
    int64_t rows_per_class = type == "subcenter_arcface" ? 3 : 1;  // "k", 3 by default
    for (const std::string& kv : params)
      if (kv.rfind("k=", 0) == 0) rows_per_class = std::stoll(kv.substr(2));
    const int64_t K = fx.has("weight") ? fx.tensor("weight").dim(0) / rows_per_class : 2;
    auto head = make_head(type, params, x.dim(1), K);
    for (auto& [pname, p] : head->named_parameters()) {
      EXPECT_TRUE(fx.has(pname)) << "fixture lacks parameter " << pname;
      if (fx.has(pname)) p.value().copy_from(fx.tensor(pname));
    }
    for (auto& [bname, b] : head->named_buffers()) {
      EXPECT_TRUE(fx.has(bname)) << "fixture lacks buffer " << bname;
      if (fx.has(bname)) b.copy_from(fx.tensor(bname));
    }

    Var xv(x.clone(), true);
    const HeadOutput out = head->forward(xv, labels, {.step = fx.attr_int("step")});
    backward(out.loss);

    double worst = 0;
    auto compare = [&](const Tensor& ours, const Tensor& ref, const std::string& what) {
      EXPECT_EQ(ours.numel(), ref.numel()) << what;
      EXPECT_TRUE(tensors_close(ours, ref, kRtol, name + " " + what));
      if (ours.numel() == ref.numel()) worst = std::max(worst, relative_error(ours, ref));
    };
    compare(out.loss.value(), fx.tensor("loss"), "loss");
    if (type == "triplet") {
      compare(zero_diagonal(out.logits), fx.tensor("logits"), "scores");
      // The mining on our float32 distances against the script's own mining in float64.
      Tensor d2 = zero_diagonal(out.logits);
      for (int64_t i = 0; i < d2.numel(); ++i) d2.data()[i] = -d2.data()[i];
      const auto kv = file.read_strings(group + "/params");
      const std::string mining =
          std::count(kv.begin(), kv.end(), "mining=batch_hard") ? "batch_hard" : "semi_hard";
      const auto triplets = mine_triplets(
          d2, labels,
          mining == "batch_hard" ? TripletMining::kBatchHard : TripletMining::kSemiHard);
      std::vector<int64_t> ours;
      for (const auto& t : triplets) ours.insert(ours.end(), {t.a, t.p, t.n});
      EXPECT_EQ(ours, fx.ints("triplets")) << mining;
    } else {
      compare(out.logits, fx.tensor("logits"), "logits");
    }
    EXPECT_DOUBLE_EQ(out.accuracy, fx.attr("accuracy"));
    compare(xv.grad(), fx.tensor("d_embeddings"), "d_embeddings");
    for (const auto& [pname, p] : head->named_parameters())
      if (p.requires_grad()) compare(p.grad(), fx.tensor("d_" + pname), "d_" + pname);
    // Buffers after the step (center loss's centers, the running statistics): after_step with
    // what this forward returned.
    bool stepped = false;
    for (const auto& [bname, b] : head->named_buffers()) {
      if (!fx.has(bname + "_after")) continue;
      if (!stepped) head->after_step(x, labels, out.batch_stats);
      stepped = true;
      compare(b, fx.tensor(bname + "_after"), bname + "_after");
    }
    std::cout << "  [heads.h5] " << name << ": worst relative error " << worst << "\n";
  }
  return count;
}

TEST(SoftmaxHead, torch_fixture) {
  EXPECT_EQ(run_cases("softmax"), 2);
}
TEST(CenterHead, torch_fixture) {
  EXPECT_EQ(run_cases("center"), 2);
}
TEST(SpherefaceHead, torch_fixture) {
  EXPECT_EQ(run_cases("sphereface"), 6);
}
TEST(NormfaceHead, torch_fixture) {
  EXPECT_EQ(run_cases("normface"), 2);
}
TEST(CosfaceHead, torch_fixture) {
  EXPECT_EQ(run_cases("cosface"), 3);
}
TEST(AmSoftmaxHead, torch_fixture_am_softmax) {
  EXPECT_EQ(run_cases("am_softmax"), 1);
}
TEST(ArcfaceHead, torch_fixture_exact) {
  EXPECT_EQ(run_cases("arcface", "arcface_exact"), 5);
}
TEST(ArcfaceHead, torch_fixture_straight_through) {
  EXPECT_EQ(run_cases("arcface", "arcface_straight_through"), 3);
}
TEST(CombinedHead, torch_fixture) {
  EXPECT_EQ(run_cases("combined"), 7);
}
TEST(ContrastiveHead, torch_fixture) {
  EXPECT_EQ(run_cases("contrastive"), 2);
}
TEST(TripletHead, torch_fixture) {
  EXPECT_EQ(run_cases("triplet"), 2);
}
TEST(LsoftmaxHead, torch_fixture) {
  EXPECT_EQ(run_cases("lsoftmax"), 3);
}
TEST(CurricularfaceHead, torch_fixture) {
  EXPECT_EQ(run_cases("curricularface", "curricularface_random"), 2);
  EXPECT_EQ(run_cases("curricularface", "curricularface_edge"), 1);
  EXPECT_EQ(run_cases("curricularface", "curricularface_m"), 1);
}
TEST(MagfaceHead, torch_fixture) {
  EXPECT_EQ(run_cases("magface"), 3);
}
TEST(AdafaceHead, torch_fixture) {
  EXPECT_EQ(run_cases("adaface", "adaface_random"), 1);
  EXPECT_EQ(run_cases("adaface", "adaface_clipped"), 1);
  EXPECT_EQ(run_cases("adaface", "adaface_edge"), 1);
  EXPECT_EQ(run_cases("adaface", "adaface_theta_clip"), 2);
}
TEST(SubcenterArcfaceHead, torch_fixture) {
  EXPECT_EQ(run_cases("subcenter_arcface"), 2);
}
TEST(ElasticfaceHead, torch_fixture) {
  EXPECT_EQ(run_cases("elasticface"), 5);
}
TEST(AdacosHead, torch_fixture) {
  EXPECT_EQ(run_cases("adacos", "adacos_dynamic"), 2);
  EXPECT_EQ(run_cases("adacos", "adacos_fixed"), 1);
}

// The running statistics over several steps on fixed weights: the loss of every step and the
// buffers after it, against the script's own state updates.
int run_sequence(const std::string& name) {
  h5::File file(fixture_path(kFile), h5::File::Mode::kRead);
  const std::string group = "/" + name;
  Fixture fx(kFile, group);
  const Tensor xs = fx.tensor("embeddings");    // (S, N, D)
  const Labels all_labels = fx.ints("labels");  // (S·N)
  const int64_t S = xs.dim(0), N = xs.dim(1), D = xs.dim(2);
  const Tensor weight = fx.tensor("weight");
  auto head = make_head(file.read_attr_string(group, "type"), file.read_strings(group + "/params"),
                        D, weight.dim(0));
  parameter(*head, "weight").value().copy_from(weight);
  for (auto& [bname, b] : head->named_buffers()) b.copy_from(fx.tensor(bname));
  const Tensor losses = fx.tensor("loss");
  for (int64_t step = 0; step < S; ++step) {
    SCOPED_TRACE(::testing::Message() << name << " step " << step);
    Tensor x = Tensor::empty({N, D});
    std::copy_n(xs.data() + step * N * D, N * D, x.data());
    const Labels labels(all_labels.begin() + step * N, all_labels.begin() + (step + 1) * N);
    const HeadOutput out = head->forward(Var(x), labels, {.step = step});
    EXPECT_NEAR(out.loss.value().item(), losses.data()[step],
                kRtol * std::abs(losses.data()[step]));
    head->after_step(x, labels, out.batch_stats);
    for (auto& [bname, b] : head->named_buffers()) {
      const Tensor after = fx.tensor(bname + "_after");  // (S, n)
      const int64_t n = b.numel();
      for (int64_t i = 0; i < n; ++i)
        EXPECT_NEAR(b.data()[i], after.data()[step * n + i],
                    kRtol * std::abs(after.data()[step * n + i]))
            << bname;
    }
  }
  return int(S);
}

TEST(CurricularfaceHead, running_t_matches_torch_over_steps) {
  EXPECT_EQ(run_sequence("curricularface_sequence"), 4);
}
TEST(AdafaceHead, running_norm_statistics_match_torch_over_steps) {
  EXPECT_EQ(run_sequence("adaface_sequence"), 4);
}
TEST(AdacosHead, running_scale_matches_torch_over_steps) {
  EXPECT_EQ(run_sequence("adacos_sequence"), 4);
}

}  // namespace
}  // namespace mf::test
