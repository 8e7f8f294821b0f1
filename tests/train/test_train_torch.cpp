// The training loop against PyTorch: the first steps' losses of every head
// (tests/fixtures/train_steps.h5, written by scripts/make_train_fixtures.py in float64).
//
// Each case runs mf::train itself — loader, param groups (weight decay on parameters with more
// than one dimension only), SGD, schedule, the head's after_step — on a tiny IResNet-18 (width
// 1/16, 16-d embedding) from the fixture's initial weights, on the fixture's 8 images (the file
// is also a packed training source), with no shuffling and no augmentation. The initial backbone
// and head go through load_module into registry-built modules, then into the checkpoint that
// model.init names. The logged losses must match PyTorch's within 1e-4 relative, and the
// accuracies exactly: step 1 checks the forward pass, step 2 backward and the SGD update. One
// case (softmax_decay_momentum: weight decay 0.05, three steps) also sees the decay split and
// the momentum buffer, which two steps at weight decay 5e-4 cannot.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "h5/file.h"
#include "io/checkpoint.h"
#include "io/module_io.h"
#include "layers/backbones/registry.h"
#include "losses/head.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "train/run_folder.h"
#include "train/trainer.h"
#include "util/params.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

constexpr char kFile[] = "train_steps.h5";
constexpr double kRtol = 1e-4;

// The cases of scripts/make_train_fixtures.py, named by head type (and variant).
const std::vector<std::string> kCases = {"softmax",
                                         "center",
                                         "sphereface",
                                         "normface",
                                         "cosface",
                                         "arcface_exact",
                                         "arcface_straight_through",
                                         "combined",
                                         "contrastive",
                                         "triplet_semi_hard",
                                         "triplet_batch_hard",
                                         "softmax_decay_momentum"};

std::string text(double v) {
  std::ostringstream s;
  s << std::setprecision(17) << v;
  return s.str();
}

// "key=value" strings as the script stores them.
std::vector<std::pair<std::string, std::string>> split_params(const std::vector<std::string>& kv) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : kv) {
    const auto eq = s.find('=');
    out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return out;
}

// The per-step records of log.jsonl.
std::vector<StepRecord> read_log(const fs::path& path) {
  return read_step_records(path.string());
}

class TrainTorch : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    tmp_ = std::make_unique<TempDir>();
    dir_ = tmp_->root();
  }
  std::unique_ptr<TempDir> tmp_;  // made in SetUp, where the test's name is known
  fs::path dir_;
};

TEST_P(TrainTorch, first_steps_match_torch) {
  const std::string fixture = fixture_path(kFile), group = "/cases/" + GetParam();
  std::string backbone_name, type, config;
  std::vector<double> ref_loss, ref_acc;
  {
    const h5::File fx(fixture, h5::File::Mode::kRead);
    ASSERT_TRUE(fx.exists(group)) << fixture << " has no case " << group;
    backbone_name = fx.read_attr_string("/", "backbone");
    const int64_t embedding_size = fx.read_attr_int("/", "embedding_size");
    const double width = fx.read_attr_double("/", "width");
    type = fx.read_attr_string(group, "type");
    const auto head_params = split_params(fx.read_strings(group + "/params"));
    ref_loss = fx.read_doubles(group + "/loss");
    ref_acc = fx.read_doubles(group + "/accuracy");
    const int64_t classes = static_cast<int64_t>(fx.read_strings("/identities").size());

    // The initial weights, loaded by name into freshly built modules, saved for model.init.
    Params bp("model"), hp("head");
    bp.set("width", text(width));
    bp.set("embedding_size", std::to_string(embedding_size));
    for (const auto& [k, v] : head_params) hp.set(k, v);
    Rng rng(1);
    auto backbone = builtin_backbones().create(backbone_name, bp, rng);
    auto head = head_registry().create(type, hp, embedding_size, classes, rng);
    load_module(fx, "/model", *backbone);
    if (fx.exists(group + "/head")) load_module(fx, group + "/head", *head);
    CheckpointContents c;
    c.meta.backbone = backbone_name;
    c.meta.embedding_size = embedding_size;
    c.meta.width = width;
    c.meta.head = type;
    c.model = backbone.get();
    c.head = head.get();
    save_checkpoint((dir_ / "init.h5").string(), c);

    std::ostringstream yaml;
    yaml << "seed: 1\n"
         << "data:\n  train: [" << fixture << "]\n  batch_size: " << fx.shape_of("/images")[0]
         << "\n  shuffle: false\n  augment: none\n  loader_threads: 1\n"
         << "model:\n  backbone: " << backbone_name << "\n  width: " << text(width)
         << "\n  embedding_size: " << embedding_size << "\n  init: " << (dir_ / "init.h5").string()
         << "\nhead:\n  type: " << type << "\n";
    for (const auto& [k, v] : head_params) yaml << "  " << k << ": " << v << "\n";
    yaml << "optim:\n  type: sgd\n  lr: " << text(fx.read_attr_double("/", "lr"))
         << "\n  momentum: " << text(fx.read_attr_double("/", "momentum"))
         << "\n  nesterov: false\n  weight_decay: "
         << text(fx.read_attr_double(group, "weight_decay")) << "\n  no_decay_bn_bias: true\n"
         << "schedule: {type: constant}\n"
         << "train:\n  max_steps: " << ref_loss.size()
         << "\n  output_dir: " << (dir_ / "run").string() << "\n  threads: 1\n  log_every: 1000\n";
    config = yaml.str();
  }
  std::ofstream(dir_ / "config.yaml") << config;

  TrainOptions o;
  o.config_path = (dir_ / "config.yaml").string();
  o.quiet = true;
  const TrainSummary summary = train(o);
  ASSERT_EQ(summary.steps, static_cast<int64_t>(ref_loss.size()));
  ASSERT_EQ(summary.skipped_steps, 0);

  const std::vector<StepRecord> log = read_log(dir_ / "run" / "log.jsonl");
  ASSERT_EQ(log.size(), ref_loss.size());
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i].step, static_cast<int64_t>(i + 1));
    const double rel = std::abs(log[i].loss - ref_loss[i]) / std::abs(ref_loss[i]);
    std::printf("[torch] %-26s step %zu  loss %.8f  torch %.8f  relative error %.2e\n",
                GetParam().c_str(), i + 1, log[i].loss, ref_loss[i], rel);
    EXPECT_LE(rel, kRtol) << GetParam() << " step " << i + 1 << ": loss " << log[i].loss
                          << ", PyTorch " << ref_loss[i];
    EXPECT_EQ(log[i].acc, ref_acc[i]) << GetParam() << " step " << i + 1 << ": accuracy";
  }
}

INSTANTIATE_TEST_SUITE_P(Heads, TrainTorch, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

TEST(TrainTorch, fixture_cases_are_all_tested_torch) {
  const h5::File fx(fixture_path(kFile), h5::File::Mode::kRead);
  std::vector<std::string> expected = kCases;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(fx.list("/cases"), expected);  // list() is sorted
}

}  // namespace
}  // namespace mf::test
