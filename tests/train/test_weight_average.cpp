// train.ema_decay: the weight average by hand, its resume, and load_backbone taking it.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "h5/file.h"
#include "io/checkpoint.h"
#include "layers/backbones/registry.h"
#include "support/faces.h"
#include "support/temp_dir.h"
#include "train/trainer.h"
#include "train/weight_average.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

class OneWeight : public Module {
 public:
  OneWeight() {
    w = register_parameter("w", Tensor::full({1}, 1.0f));
    stat = register_buffer("stat", Tensor::full({1}, 10.0f));
  }
  Var w;
  Tensor stat;
};

TEST(WeightAverage, follows_the_ramped_decay_worked_by_hand) {
  OneWeight live, average;
  WeightAverage ema(live, average, 0.9);
  ema.reset();
  EXPECT_EQ(average.w.value().data()[0], 1.0f);
  EXPECT_EQ(average.stat.data()[0], 10.0f);
  // Step 0: d = min(0.9, 1/10) = 0.1 → 0.1·1 + 0.9·3 = 2.8 (buffer: 0.1·10 + 0.9·20 = 19).
  live.w.value().data()[0] = 3.0f;
  live.stat.data()[0] = 20.0f;
  ema.update(0);
  EXPECT_NEAR(average.w.value().data()[0], 2.8f, 1e-6f);
  EXPECT_NEAR(average.stat.data()[0], 19.0f, 1e-5f);
  // Step 1: d = 2/11 → (2/11)·2.8 + (9/11)·5 = 4.6.
  live.w.value().data()[0] = 5.0f;
  ema.update(1);
  EXPECT_NEAR(average.w.value().data()[0], 4.6f, 1e-6f);
  // Late steps use d itself: (1 + t)/(10 + t) = 101/110 > 0.9.
  EXPECT_DOUBLE_EQ(WeightAverage::decay_at(0.9, 100), 0.9);
  EXPECT_DOUBLE_EQ(WeightAverage::decay_at(0.999, 0), 0.1);
  EXPECT_THROW(WeightAverage(live, average, 1.0), Error);
}

fs::path write_config(const TempDir& dir, const std::string& name) {
  const fs::path faces = dir / "faces";
  if (!fs::exists(faces)) make_faces(faces);
  const fs::path path = dir / (name + ".yaml");
  std::ofstream(path) << "seed: 3\n"
                      << "data:\n  train: [" << faces.string() << "]\n  batch_size: 8\n"
                      << "  augment: {flip: true, grayscale: 0.5, low_resolution: 0.5, "
                         "rotation: 10}\n  loader_threads: 2\n"
                      << "model: {backbone: ir18, width: 0.0625, embedding_size: 16}\n"
                      << "head: {type: cosface, s: 8, m: 0.2}\n"
                      << "optim: {type: sgd, lr: 0.05, momentum: 0.9}\n"
                      << "train:\n  epochs: 3\n  output_dir: " << (dir / name).string()
                      << "\n  checkpoint_every: 3\n  log_every: 100\n  ema_decay: 0.9\n";
  return path;
}

TrainOptions options(const fs::path& config, std::string resume = "", int64_t stop_after = 0) {
  TrainOptions o;
  o.config_path = config.string();
  o.resume = std::move(resume);
  o.quiet = true;
  o.stop_after = stop_after;
  return o;
}

std::vector<float> group_values(const std::string& checkpoint, const std::string& group) {
  h5::File f(checkpoint, h5::File::Mode::kRead);
  std::vector<float> all;
  for (const auto& name : f.list(group)) {
    if (f.is_group(group + "/" + name)) continue;
    Tensor t = f.read_tensor(group + "/" + name);
    all.insert(all.end(), t.data(), t.data() + t.numel());
  }
  return all;
}

// With the new augmentations on too: a killed run's average (and weights) continue exactly.
TEST(WeightAverage, a_killed_run_resumes_its_average_bit_for_bit_and_load_backbone_takes_it) {
  TempDir dir;
  const fs::path a = write_config(dir, "straight"), b = write_config(dir, "killed");
  train(options(a));
  train(options(b, "", 4));
  train(options(b, "auto"));
  const std::string last_a = (dir / "straight" / "checkpoints" / "last.h5").string();
  const std::string last_b = (dir / "killed" / "checkpoints" / "last.h5").string();
  EXPECT_TRUE(group_values(last_a, "/ema") == group_values(last_b, "/ema"));
  EXPECT_TRUE(group_values(last_a, "/model") == group_values(last_b, "/model"));
  EXPECT_FALSE(group_values(last_a, "/ema") == group_values(last_a, "/model"))
      << "the average should lag the trained weights";
  // eval, embed and export load the average.
  auto net = load_backbone(last_a);
  h5::File f(last_a, h5::File::Mode::kRead);
  for (const auto& [name, v] : net->named_parameters()) {
    const Tensor want = f.read_tensor("/ema/" + name);
    ASSERT_EQ(0, std::memcmp(want.data(), v.value().data(), sizeof(float) * want.numel())) << name;
  }
}

}  // namespace
}  // namespace mf::test
