// Partial FC (losses/partial_fc.h):
//  * with every class taking part (sample rate 1) it is the full head: loss, embedding gradient
//    and weight gradient equal, for every classifier head, to float rounding (1e-5 relative);
//  * on a sampled class subset it equals PyTorch's head formula on W[subset] with the labels
//    remapped (tests/fixtures/partial_fc.h5, scripts/make_partial_fc_fixtures.py; 1e-5 relative);
//  * the draw holds every positive, ⌈r·K⌉ distinct classes, is a function of (step, labels), and
//    draws the negatives uniformly (a frequency check);
//  * an optimizer step (SGD with momentum and weight decay, AdamW) changes only the sampled rows
//    and their state; every other row keeps its bits;
//  * heads it cannot serve (center loss, a bias, metric heads) are refused by name;
//  * for the class weights split over processes (tests/apps/test_data_parallel.cpp runs them):
//    a head built under ClassShardScope holds exactly its rows of the one-process head's weights
//    and leaves the random stream where the whole head leaves it; the sharded cross-entropy in
//    one process (every column counted) is the cross-entropy: loss, accuracy and gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "dist/communicator.h"
#include "head_test_util.h"
#include "losses/partial_fc.h"
#include "optim/optimizer.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"
#include "support/temp_dir.h"

namespace mf::test {
namespace {

std::unique_ptr<PartialFcHead> make_partial_fc(const std::string& type,
                                               const std::vector<std::string>& params, int64_t D,
                                               int64_t K, double rate, uint64_t seed = 1) {
  std::unique_ptr<Head> head = make_head(type, params, D, K, seed);
  auto* classifier = dynamic_cast<ClassifierHead*>(head.get());
  EXPECT_NE(classifier, nullptr) << type;
  head.release();
  return std::make_unique<PartialFcHead>(std::unique_ptr<ClassifierHead>(classifier), rate);
}

Tensor random(Rng& rng, const Shape& shape) {
  return random_tensor(rng, shape, -1.0, 1.0);
}

struct Case {
  std::string type;
  std::vector<std::string> params;
};

const std::vector<Case>& classifier_heads() {
  static const std::vector<Case> cases{
      {"softmax", {}},       {"normface", {"s=16"}},
      {"cosface", {"s=16"}}, {"arcface", {"s=16"}},
      {"sphereface", {}},    {"combined", {"s=16", "m1=1", "m2=0.3", "m3=0.2"}},
      {"lsoftmax", {}},      {"curricularface", {"s=16"}},
      {"magface", {"s=16"}}, {"adaface", {"s=16"}},
      {"adacos", {}},        {"elasticface", {"s=16"}},
      {"contrastive", {}},   {"subcenter_arcface", {"s=16", "k=3"}}};
  return cases;
}

TEST(PartialFc, RateOneIsTheFullHeadForEveryClassifierHead) {
  const int64_t N = 6, D = 8, K = 7;
  for (const Case& c : classifier_heads()) {
    SCOPED_TRACE(c.type);
    Rng rng(3);
    const Tensor x = random(rng, {N, D});
    const Labels labels{0, 3, 3, 6, 1, 5};
    auto full = make_head(c.type, c.params, D, K, 9);
    auto partial = make_partial_fc(c.type, c.params, D, K, 1.0, 9);
    const StepInfo step{.step = 50};
    EXPECT_EQ(partial->draw_classes(labels, step).size(), size_t(K));

    Var xa(x.clone(), true), xb(x.clone(), true);
    const HeadOutput a = full->forward(xa, labels, step);
    const HeadOutput b = partial->forward(xb, labels, step);
    backward(a.loss);
    backward(b.loss);
    EXPECT_NEAR(a.loss.value().item(), b.loss.value().item(),
                1e-5 * std::max(1.0, std::abs(double(a.loss.value().item()))));
    EXPECT_TRUE(tensors_close(xb.grad(), xa.grad(), 1e-5, "d_embeddings"));
    ASSERT_TRUE(b.sparse.has_value());
    const Tensor& dw = parameter(*full, "weight").grad();
    EXPECT_EQ(b.sparse->rows.size(), size_t(dw.dim(0)));  // every row, in order
    EXPECT_TRUE(tensors_close(b.sparse->rows_weight.grad(), dw, 1e-5, "d_weight"));
    // The same checkpoint names as the head alone.
    std::set<std::string> names_a, names_b;
    for (const auto& [n, v] : full->named_parameters()) names_a.insert(n);
    for (const auto& [n, v] : partial->named_parameters()) names_b.insert(n);
    EXPECT_EQ(names_a, names_b);
  }
}

TEST(PartialFc, SampledClassesMatchPyTorch) {
  h5::File file(fixture_path("partial_fc.h5"), h5::File::Mode::kRead);
  int cases = 0;
  for (const std::string& name : file.list("/")) {
    SCOPED_TRACE(name);
    Fixture fx("partial_fc.h5", "/" + name);
    const std::string type = file.read_attr_string("/" + name, "type");
    const std::vector<std::string> params = file.read_strings("/" + name + "/params");
    const Tensor w = fx.tensor("weight");
    const int64_t G = type == "subcenter_arcface" ? 3 : 1;
    auto head = make_partial_fc(type, params, w.dim(1), w.dim(0) / G, 0.3);
    parameter(*head, "weight").value().copy_from(w);
    const std::vector<int64_t> classes = fx.ints("classes");
    Var x(fx.tensor("embeddings"), true);
    const HeadOutput out =
        head->forward_with_classes(x, fx.ints("labels"), {.step = fx.attr_int("step")}, classes);
    backward(out.loss);
    const double ref = fx.tensor("loss").item();  // float32
    EXPECT_NEAR(out.loss.value().item(), ref, 1e-5 * std::max(1.0, std::abs(ref)));
    EXPECT_TRUE(tensors_close(x.grad(), fx.tensor("d_embeddings"), 1e-5, "d_embeddings"));
    EXPECT_TRUE(tensors_close(out.sparse->rows_weight.grad(), fx.tensor("d_weight_rows"), 1e-5,
                              "d_weight_rows"));
    EXPECT_EQ(out.logits.dim(1), int64_t(classes.size()));  // (N, K') logits
    ++cases;
  }
  EXPECT_GE(cases, 7);
}

TEST(PartialFc, DrawHoldsThePositivesAndSamplesTheRestUniformly) {
  const int64_t K = 100;
  auto head = make_partial_fc("cosface", {}, 4, K, 0.2);
  const Labels labels{7, 7, 42, 99};
  std::map<int64_t, int> seen;
  const int draws = 3000;
  for (int s = 0; s < draws; ++s) {
    const std::vector<int64_t> c = head->draw_classes(labels, {.step = s});
    ASSERT_EQ(c.size(), 20u);
    ASSERT_TRUE(std::is_sorted(c.begin(), c.end()));
    ASSERT_EQ(std::set<int64_t>(c.begin(), c.end()).size(), c.size());
    for (int64_t l : labels) ASSERT_TRUE(std::binary_search(c.begin(), c.end(), l));
    for (int64_t v : c) ++seen[v];
  }
  // Each of the 97 negatives is drawn with probability 17/97 per step.
  const double expected = draws * 17.0 / 97.0;
  for (int64_t k = 0; k < K; ++k) {
    if (k == 7 || k == 42 || k == 99) continue;
    EXPECT_NEAR(seen[k], expected, 0.2 * expected) << "class " << k;
  }
  // A function of (step, labels): the same again; another step or batch draws others.
  EXPECT_EQ(head->draw_classes(labels, {.step = 5}), head->draw_classes(labels, {.step = 5}));
  EXPECT_NE(head->draw_classes(labels, {.step = 5}), head->draw_classes(labels, {.step = 6}));
  EXPECT_NE(head->draw_classes(labels, {.step = 5}),
            head->draw_classes(Labels{7, 7, 42, 98}, {.step = 5}));
  // More positives than ⌈r·K⌉: exactly the positives.
  Labels many;
  for (int64_t k = 0; k < 30; ++k) many.push_back(k * 3);
  EXPECT_EQ(head->draw_classes(many, {.step = 1}).size(), 30u);
}

TEST(PartialFc, AnOptimizerStepTouchesOnlyTheSampledRowsAndTheirState) {
  const int64_t N = 4, D = 6, K = 30;
  for (const std::string optimizer : {"sgd", "adamw"}) {
    SCOPED_TRACE(optimizer);
    auto head = make_partial_fc("arcface", {"s=16"}, D, K, 0.2);
    Var weight = parameter(*head, "weight");
    std::vector<ParamGroup> groups{{{{"head/weight", weight}}, 1.0f, 5e-4f}};
    Params p("optim");
    auto opt = optimizer_registry().create(optimizer, p, groups);
    Rng rng(5);
    std::set<int64_t> ever;
    for (int step = 0; step < 3; ++step) {
      const Tensor before = weight.value().clone();
      const auto state_before = opt->state();
      std::map<std::string, Tensor> state_copy;
      for (const auto& [k, t] : state_before) state_copy[k] = t.clone();
      opt->zero_grad();
      const Labels labels{1, 4, 4, 17};
      Var x(random(rng, {N, D}), true);
      const HeadOutput out = head->forward(x, labels, {.step = step});
      backward(out.loss);
      opt->add_sparse_rows("head/weight", out.sparse->rows, out.sparse->rows_weight.grad());
      opt->step(0.1);
      const std::set<int64_t> rows(out.sparse->rows.begin(), out.sparse->rows.end());
      EXPECT_EQ(rows.size(), 6u);  // ⌈0.2·30⌉
      ever.insert(rows.begin(), rows.end());
      const auto state_after = opt->state();
      for (int64_t r = 0; r < K; ++r) {
        const bool sampled = rows.count(r) > 0;
        bool weight_same = true;
        for (int64_t d = 0; d < D; ++d)
          weight_same &= before.data()[r * D + d] == weight.value().data()[r * D + d];
        EXPECT_EQ(weight_same, !sampled) << "row " << r;
        for (const auto& [key, t] : state_after) {
          if (t.rank() != 2) continue;  // AdamW's step counter
          const auto it = state_copy.find(key);
          bool same = true;
          for (int64_t d = 0; d < D; ++d)
            same &= (it == state_copy.end() ? 0.0f : it->second.data()[r * D + d]) ==
                    t.data()[r * D + d];
          if (!sampled) {
            EXPECT_TRUE(same) << key << " row " << r;
          }
        }
      }
    }
    EXPECT_GT(ever.size(), 6u);  // different negatives on different steps
  }
}

TEST(PartialFc, HeadsItCannotServeAreRefusedByName) {
  Rng rng(1);
  Params center("head"), bias("head"), triplet("head");
  center.set("partial_fc.sample_rate", "0.5");
  bias.set("partial_fc.sample_rate", "0.5");
  bias.set("bias", "true");
  triplet.set("partial_fc.sample_rate", "0.5");
  EXPECT_NE(error_of([&] { create_head("center", center, 8, 10, rng); }).find("center"),
            std::string::npos);
  EXPECT_NE(error_of([&] { create_head("softmax", bias, 8, 10, rng); }).find("head.bias: false"),
            std::string::npos);
  EXPECT_NE(error_of([&] { create_head("triplet", triplet, 8, 10, rng); }).find("no class weights"),
            std::string::npos);
  Params zero("head");
  zero.set("partial_fc.sample_rate", "0");
  EXPECT_NE(error_of([&] { create_head("arcface", zero, 8, 10, rng); }).find("sample_rate"),
            std::string::npos);
  // sample_rate 1 (the default) is the plain head.
  EXPECT_EQ(dynamic_cast<PartialFcHead*>(create_head("arcface", Params("head"), 8, 10, rng).get()),
            nullptr);
}

TEST(PartialFc, AShardHoldsExactlyItsRowsOfTheWholeHead) {
  const int64_t D = 5, K = 7;
  for (const Case& c : {Case{"arcface", {"s=16"}}, Case{"subcenter_arcface", {"s=16", "k=3"}}}) {
    SCOPED_TRACE(c.type);
    const int64_t G = c.type == "subcenter_arcface" ? 3 : 1;
    Rng whole_rng(4);
    const auto whole = head_registry().create(c.type, params_from(c.params), D, K, whole_rng);
    const Tensor& w = parameter(*whole, "weight").value();  // (K·G, D)
    for (const auto& [first, count] : {std::pair<int64_t, int64_t>{0, 2}, {2, 3}, {5, 2}}) {
      Rng rng(4);
      std::unique_ptr<Head> shard;
      {
        const ClassShardScope scope(first, count);
        shard = head_registry().create(c.type, params_from(c.params), D, K, rng);
      }
      const Tensor& rows = parameter(*shard, "weight").value();
      ASSERT_EQ(rows.shape(), Shape({count * G, D}));
      for (int64_t i = 0; i < rows.numel(); ++i)
        ASSERT_EQ(rows.data()[i], w.data()[first * G * D + i]) << first << " value " << i;
      EXPECT_EQ(dynamic_cast<ClassifierHead&>(*shard).num_classes(), count);
      Rng after(4);  // the whole head's draws were all taken
      const auto again = head_registry().create(c.type, params_from(c.params), D, K, after);
      EXPECT_EQ(rng.next_u64(), after.next_u64());
    }
  }
}

TEST(PartialFc, ShardedCrossEntropyInOneProcessIsTheCrossEntropy) {
  Rng rng(8);
  const int64_t N = 5, C = 6;
  const Tensor z = random_tensor(rng, {N, C}, -3.0, 3.0);
  const Labels labels{0, 5, 2, 2, 4};
  Var a(z.clone(), true), b(z.clone(), true);
  const HeadOutput plain = classification_output(a, labels);
  const HeadOutput sharded = sharded_classification_output(b, labels, C, dist::world());
  backward(plain.loss);
  backward(sharded.loss);
  EXPECT_NEAR(sharded.loss.value().item(), plain.loss.value().item(), 1e-6);
  EXPECT_EQ(sharded.accuracy, plain.accuracy);
  EXPECT_TRUE(sharded.global_batch);
  EXPECT_TRUE(tensors_close(b.grad(), a.grad(), 1e-6, "d_logits"));
}

TEST(PartialFc, ShardedCrossEntropyGradientMatchesFiniteDifferences) {
  // Four of six columns counted (the last two: another process's targets, counted there); the
  // labels point into the counted ones, as a process's own rows do.
  Rng rng(9);
  const Tensor z = random_tensor(rng, {4, 6}, -2.0, 2.0);
  const Labels labels{0, 3, 1, 3};
  EXPECT_TRUE(check_var_gradients(
      [&](const std::vector<Var>& in) {
        return sharded_classification_output(in[0], labels, 4, dist::world()).loss;
      },
      {z}));
}

TEST(PartialFc, EnabledDecidesAndDefaultsToARateBelowOne) {
  Rng rng(1);
  Params on("head"), off("head");
  on.set("partial_fc.enabled", "true");  // the memory split alone, at rate 1
  off.set("partial_fc.sample_rate", "0.5");
  off.set("partial_fc.enabled", "false");
  EXPECT_NE(dynamic_cast<PartialFcHead*>(create_head("arcface", on, 8, 10, rng).get()), nullptr);
  EXPECT_EQ(dynamic_cast<PartialFcHead*>(create_head("arcface", off, 8, 10, rng).get()), nullptr);
}

}  // namespace
}  // namespace mf::test
