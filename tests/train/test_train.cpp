// The training loop end to end on a tiny synthetic face set: run folder, checkpoints, resume
// bit-for-bit, config errors, and `eval` on the result.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "io/checkpoint.h"
#include "tensor/hdf5.h"
#include "tensor/rng.h"
#include "train/trainer.h"
#include "util/error.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::temp_directory_path() / "mf_test_train";

// 4 identities × 6 noisy 112×112 images around an identity-specific colour pattern.
fs::path make_faces() {
  const fs::path root = kDir / "faces";
  if (fs::exists(root)) return root;
  Rng rng(5);
  for (int id = 0; id < 4; ++id) {
    fs::create_directories(root / ("id" + std::to_string(id)));
    for (int j = 0; j < 6; ++j) {
      cv::Mat img(112, 112, CV_8UC3);
      for (int y = 0; y < 112; ++y)
        for (int x = 0; x < 112; ++x)
          for (int c = 0; c < 3; ++c)
            img.at<cv::Vec3b>(y, x)[c] = cv::saturate_cast<uchar>(
                60 * id * ((x / 28 + y / 28 + c) % 2) + 40 + rng.uniform(0, 30));
      cv::imwrite((root / ("id" + std::to_string(id)) / (std::to_string(j) + ".png")).string(),
                  img);
    }
  }
  return root;
}

fs::path write_config(const std::string& name, const std::string& extra = "") {
  const fs::path faces = make_faces();
  const fs::path path = kDir / (name + ".yaml");
  std::ofstream(path) << "seed: 3\n"
                      << "data:\n  train: [" << faces.string() << "]\n  batch_size: 8\n"
                      << "  augment: {flip: true, crop: 2}\n  loader_threads: 2\n"
                      << "model: {backbone: ir18, width: 0.0625, embedding_size: 16}\n"
                      << "head: {type: arcface, s: 8, m: 0.2}\n"
                      << "optim: {type: sgd, lr: 0.05, momentum: 0.9}\n"
                      << "schedule: {type: poly, warmup_steps: 2}\n"
                      << "train:\n  epochs: 3\n  output_dir: " << (kDir / name).string()
                      << "\n  checkpoint_every: 3\n  keep_checkpoints: 2\n  log_every: 100\n"
                      << extra;
  fs::remove_all(kDir / name);
  return path;
}

std::vector<float> weights_of(const std::string& checkpoint) {
  h5::File f(checkpoint, h5::File::Mode::kRead);
  std::vector<float> all;
  for (const char* group : {"/model", "/head"})
    for (const auto& name : f.list(group)) {
      Tensor t = f.read_tensor(std::string(group) + "/" + name);
      all.insert(all.end(), t.data(), t.data() + t.numel());
    }
  return all;
}

TrainOptions options(const fs::path& config, std::vector<std::string> overrides = {},
                     std::string resume = "", int64_t stop_after = 0) {
  TrainOptions o;
  o.config_path = config.string();
  o.overrides = std::move(overrides);
  o.resume = std::move(resume);
  o.quiet = true;
  o.stop_after = stop_after;
  return o;
}

TEST(Train, writes_the_run_folder_and_checkpoints) {
  const fs::path cfg = write_config("run");
  const TrainOptions o = options(cfg);
  const TrainSummary s = train(o);
  EXPECT_EQ(s.steps, 9);  // 24 images / batch 8 = 3 steps per epoch × 3 epochs
  const fs::path run = kDir / "run";
  EXPECT_TRUE(fs::exists(run / "config.yaml"));
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "last.h5"));
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "step_9.h5"));
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "step_6.h5"));
  EXPECT_FALSE(fs::exists(run / "checkpoints" / "step_3.h5"));  // keep_checkpoints: 2
  std::ifstream log(run / "log.jsonl");
  int lines = 0;
  std::string line;
  while (std::getline(log, line)) {
    ++lines;
    EXPECT_NE(line.find("\"loss\""), std::string::npos) << line;
  }
  EXPECT_EQ(lines, 9);
  const CheckpointMeta meta = read_checkpoint_meta((run / "checkpoints" / "last.h5").string());
  EXPECT_EQ(meta.step, 9);
  EXPECT_EQ(meta.backbone, "ir18");
  EXPECT_EQ(meta.head, "arcface");
  EXPECT_DOUBLE_EQ(meta.width, 0.0625);
  // A second start on the same folder refuses to overwrite it.
  EXPECT_THROW(train(o), Error);
}

// Regression (issue "Nothing lost, nothing silently wrong", item 2): grad_accum 2 with 3 batches
// per epoch aborted at the first epoch boundary ("internal: the loader ran out of batches within
// an epoch"). Each epoch now holds whole steps (1 here; its third batch is left out), and a run
// resumed in the middle ends with the same bits.
TEST(Train, grad_accum_not_dividing_the_epoch_runs_and_resumes) {
  const fs::path a = write_config("accum");
  const TrainSummary s = train(options(a, {"optim.grad_accum=2"}));
  EXPECT_EQ(s.steps, 3);  // 3 epochs × 1 step
  EXPECT_TRUE(s.finished);
  std::ifstream log(kDir / "accum" / "log.jsonl");
  std::string line;
  int epoch = 0;
  while (std::getline(log, line)) {
    EXPECT_NE(line.find("\"epoch\":" + std::to_string(epoch)), std::string::npos) << line;
    ++epoch;
  }
  EXPECT_EQ(epoch, 3);
  const fs::path b = write_config("accum_killed");
  train(options(b, {"optim.grad_accum=2"}, "", 2));
  train(options(b, {"optim.grad_accum=2"}, "auto"));
  EXPECT_TRUE(weights_of((kDir / "accum" / "checkpoints" / "last.h5").string()) ==
              weights_of((kDir / "accum_killed" / "checkpoints" / "last.h5").string()));
}

TEST(Train, a_killed_run_resumes_bit_for_bit) {
  const fs::path a = write_config("straight"), b = write_config("killed");
  train(options(a));
  train(options(b, {}, "", 3));  // "killed" after step 3
  EXPECT_EQ(read_checkpoint_meta((kDir / "killed" / "checkpoints" / "last.h5").string()).step, 3);
  train(options(b, {}, "auto"));
  const auto wa = weights_of((kDir / "straight" / "checkpoints" / "last.h5").string());
  const auto wb = weights_of((kDir / "killed" / "checkpoints" / "last.h5").string());
  ASSERT_EQ(wa.size(), wb.size());
  EXPECT_TRUE(wa == wb) << "resumed weights differ from the uninterrupted run";
  // The logs agree step by step: same losses, each step logged once.
  auto losses = [](const fs::path& log) {
    std::vector<std::string> out;
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) {
      const auto from = line.find("\"loss\":"), to = line.find(',', from);
      out.push_back(line.substr(from, to - from));
    }
    return out;
  };
  const auto la = losses(kDir / "straight" / "log.jsonl"),
             lb = losses(kDir / "killed" / "log.jsonl");
  EXPECT_EQ(la.size(), 9u);
  EXPECT_EQ(la, lb);
  // "time" counts training seconds across the resume: it never goes back.
  std::ifstream in(kDir / "killed" / "log.jsonl");
  double previous = 0;
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("\"time\":");
    ASSERT_NE(at, std::string::npos) << line;
    const double t = std::atof(line.c_str() + at + 7);
    EXPECT_GE(t, previous) << line;
    previous = t;
  }
  EXPECT_GT(previous, 0.0);
}

TEST(Train, config_mistakes_name_file_line_and_key) {
  const fs::path cfg = write_config("bad", "  epochz: 3\n");
  try {
    train(options(cfg));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train.epochz"), std::string::npos) << m;
    EXPECT_NE(m.find(cfg.string() + ":"), std::string::npos) << m;
  }
  EXPECT_THROW(train(options(write_config("bad2"), {"head.type=arcfce"})), Error);
  EXPECT_THROW(train(options(write_config("bad3"), {"head.m=4"})), Error);
}

}  // namespace
}  // namespace mf::test
