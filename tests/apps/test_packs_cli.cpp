// insightface packs from the command line: `pack --format rec|bin`, `pack --reindex`,
// `eval --bin` against `eval --lfw` on the same images, training from a .rec against training from
// the folder it was made of (identical losses), and two steps of configs/arcface_ir50.yaml on the
// shared sample pack.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "io/config.h"
#include "support/fixtures.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/file.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

CommandResult marginface(const std::string& args) {
  return run_command("cd " + shell_quote(MF_SOURCE_DIR) + " && OMP_NUM_THREADS=2 " +
                     shell_quote(MF_MARGINFACE_BIN) + " " + args);
}

std::string q(const fs::path& p) {
  return shell_quote(p.string());
}

std::string read_text(const fs::path& p) {
  return read_file(p.string(), "test output");
}

// The value of "key": in a one-line JSON text, as written (compared as text: same bits).
std::string json_field(const std::string& json, const std::string& key, size_t from = 0) {
  const size_t at = json.find("\"" + key + "\":", from);
  if (at == std::string::npos) return "<missing " + key + ">";
  const size_t start = at + key.size() + 3;
  const size_t end = json.find_first_of(",}\n", start);
  std::string v = json.substr(start, end - start);
  while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  return v;
}

bool have_shared() {
  return fs::exists(shared_data_dir() + "/packs/lfw_sample_pairs.txt") &&
         fs::is_directory(shared_data_dir() + "/aligned/lfw");
}

TEST(PacksCli, EvalBinEqualsEvalLfwOnTheSameImages) {
  if (!have_shared())
    GTEST_SKIP() << "../shared/data (packs, aligned/lfw) not found at " << shared_data_dir();
  TempDir dir;
  const std::string pairs = shared_data_dir() + "/packs/lfw_sample_pairs.txt";
  const std::string root = shared_data_dir() + "/aligned/lfw";
  const std::string model = fixture_path("embed/model.h5");
  CommandResult r = marginface("pack --format bin --pairs " + shell_quote(pairs) + " --root " +
                               shell_quote(root) + " --out " + q(dir / "sample.bin"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("packed 60 pairs (120 images"), std::string::npos) << r.output;
  r = marginface("eval --checkpoint " + shell_quote(model) + " --lfw " + shell_quote(pairs) +
                 " --root " + shell_quote(root) + " --json " + q(dir / "lfw.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = marginface("eval --checkpoint " + shell_quote(model) + " --bin " + q(dir / "sample.bin") +
                 " --bin " + shell_quote(shared_data_dir() + "/packs/lfw_sample_py2.bin") +
                 " --json " + q(dir / "bin.json") + " --roc " + q(dir / "roc.png"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("== sample =="), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("== lfw_sample_py2 =="), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "roc_sample.png") && fs::exists(dir / "roc_lfw_sample_py2.png"));
  const std::string lfw = read_text(dir / "lfw.json"), bin = read_text(dir / "bin.json");
  const size_t second = bin.find("\"lfw_sample_py2\"");
  ASSERT_NE(second, std::string::npos) << bin;
  for (const char* key : {"accuracy_mean", "accuracy_std", "auc", "eer"}) {
    // Our pack and the independent writer's Python 2 pack both equal the folder evaluation.
    EXPECT_EQ(json_field(bin, key), json_field(lfw, key)) << key;
    EXPECT_EQ(json_field(bin, key, second), json_field(lfw, key)) << key;
  }
  // The thresholds are midpoints of scores; the folder list embeds each distinct image once, the
  // packs every copy, so the GEMMs see other batch shapes and the last float bits may differ.
  EXPECT_NEAR(std::stod(json_field(bin, "threshold_mean")),
              std::stod(json_field(lfw, "threshold_mean")), 1e-5);
  EXPECT_EQ(json_field(bin, "protocol"), "\"bin\"");
}

TEST(PacksCli, PackRecReindexAndErrors) {
  TempDir dir;
  const fs::path faces = dir / "faces";
  for (int id = 0; id < 2; ++id) {
    fs::create_directories(faces / ("p" + std::to_string(id)));
    for (int j = 0; j < 2; ++j)
      cv::imwrite((faces / ("p" + std::to_string(id)) / (std::to_string(j) + ".png")).string(),
                  cv::Mat(112, 112, CV_8UC3, cv::Scalar(10 * id, 20 * j, 30)));
  }
  CommandResult r =
      marginface("pack --format rec --in " + q(faces) + " --out " + q(dir / "out" / "train"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("packed 4 images of 2 identities"), std::string::npos) << r.output;
  const std::string idx = read_text(dir / "out" / "train.idx");
  fs::remove(dir / "out" / "train.idx");
  // Training from a pack without its index says how to rebuild it.
  std::ofstream(dir / "c.yaml") << "data: {train: [" << (dir / "out" / "train.rec").string()
                                << "], batch_size: 2}\nmodel: {backbone: ir18, width: 0.0625, "
                                   "embedding_size: 8}\nhead: {type: softmax}\ntrain: {max_steps: "
                                   "1, output_dir: "
                                << (dir / "run").string() << "}\n";
  r = marginface("train --config " + q(dir / "c.yaml"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("marginface pack --reindex"), std::string::npos) << r.output;
  r = marginface("pack --reindex " + q(dir / "out" / "train.rec"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_text(dir / "out" / "train.idx"), idx);
  // A pair list with a missing image is an error naming it (a pair cannot lose an image).
  {
    std::ofstream pairs(dir / "pairs.txt");
    for (int i = 0; i < 9; ++i) pairs << "p0/0.png p" << i % 2 << "/1.png " << (i % 2 == 0) << "\n";
    pairs << "p0/0.png gone.png 0\n";
  }
  r = marginface("pack --format bin --pairs " + q(dir / "pairs.txt") + " --root " + q(faces) +
                 " --out " + q(dir / "x.bin"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("gone.png"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "x.bin"));
}

// 4 identities × 6 images of 112×112, written as PNG (lossless: both sources give the same pixels).
fs::path make_faces(const fs::path& root) {
  for (int id = 0; id < 4; ++id) {
    fs::create_directories(root / ("id" + std::to_string(id)));
    for (int j = 0; j < 6; ++j) {
      cv::Mat img(112, 112, CV_8UC3);
      for (int y = 0; y < 112; ++y)
        for (int x = 0; x < 112; ++x)
          for (int c = 0; c < 3; ++c)
            img.at<cv::Vec3b>(y, x)[c] = cv::saturate_cast<uchar>(
                60 * id * ((x / 28 + y / 28 + c) % 2) + 40 + (x * 7 + y * 13 + j * 31 + c) % 30);
      cv::imwrite((root / ("id" + std::to_string(id)) / (std::to_string(j) + ".png")).string(),
                  img);
    }
  }
  return root;
}

TEST(PacksCli, TrainingFromARecLogsTheSameLossesAsFromTheFolder) {
  TempDir dir;
  const fs::path faces = make_faces(dir / "faces");
  CommandResult r =
      marginface("pack --format rec --in " + q(faces) + " --out " + q(dir / "pack" / "train"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto config = [&](const std::string& name, const fs::path& source) {
    const fs::path path = dir / (name + ".yaml");
    std::ofstream(path) << "seed: 3\ndata:\n  train: [" << source.string()
                        << "]\n  batch_size: 8\n  augment: {flip: true, crop: 2}\n"
                        << "model: {backbone: ir18, width: 0.0625, embedding_size: 16}\n"
                        << "head: {type: arcface, s: 8, m: 0.2}\n"
                        << "optim: {type: sgd, lr: 0.05, momentum: 0.9}\n"
                        << "train: {max_steps: 3, output_dir: " << (dir / name).string() << "}\n";
    return path;
  };
  r = marginface("train --config " + q(config("folder", faces)));
  ASSERT_EQ(r.status, 0) << r.output;
  r = marginface("train --config " + q(config("rec", dir / "pack" / "train.rec")));
  ASSERT_EQ(r.status, 0) << r.output;
  std::istringstream a(read_text(dir / "folder" / "log.jsonl")),
      b(read_text(dir / "rec" / "log.jsonl"));
  int steps = 0;
  for (std::string la, lb; std::getline(a, la) && std::getline(b, lb); ++steps) {
    EXPECT_EQ(json_field(la, "loss"), json_field(lb, "loss")) << "step " << steps + 1;
    EXPECT_EQ(json_field(la, "acc"), json_field(lb, "acc")) << "step " << steps + 1;
  }
  EXPECT_EQ(steps, 3);
}

TEST(PacksCli, ArcfaceIr50ConfigRunsTwoStepsOnTheSamplePack) {
  const std::string rec = shared_data_dir() + "/packs/orl/train.rec";
  const std::string bin = shared_data_dir() + "/packs/lfw_sample_py2.bin";
  if (!fs::exists(rec) || !fs::exists(bin))
    GTEST_SKIP() << "../shared/data/packs not found at " << shared_data_dir();
  TempDir dir;
  // The committed recipe as it stands, pointed at the sample pack; 16 images per step keep the
  // test short (the recipe's 128 differ only in time).
  const CommandResult r = marginface(
      "train --config configs/arcface_ir50.yaml --set " + shell_quote("data.train=[" + rec + "]") +
      " --set " + shell_quote("eval.targets=[" + bin + "]") +
      " --set train.max_steps=2 --set data.batch_size=16 --set train.output_dir=" + q(dir / "run"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("training ir50 + arcface on 400 images of 40 identities"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("[eval] step 2  lfw_sample_py2 "), std::string::npos) << r.output;
  const std::string log = read_text(dir / "run" / "log.jsonl");
  EXPECT_NE(log.find("\"target\":\"lfw_sample_py2\""), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "best.h5"));
}

// Regression (issue "Nothing lost, nothing silently wrong", item 1): with one missing image whose
// partner occurs in no other pair, `eval --skip-missing` copied the embeddings of the kept images
// in the original order into a smaller table — a heap overflow (SIGABRT) and pairs scored with the
// wrong images. Now it must equal the evaluation of the list without that pair.
TEST(EvalCli, SkipMissingEqualsTheListWithoutThosePairs) {
  TempDir dir;
  const fs::path faces = make_faces(dir / "faces");
  std::vector<std::string> lines;
  for (int i = 0; i < 20; ++i) {
    const int a = i % 4, b = (i / 4 + i) % 4;
    lines.push_back("id" + std::to_string(a) + "/" + std::to_string(i % 6) + ".png id" +
                    std::to_string(b) + "/" + std::to_string((i + 1) % 6) + ".png " +
                    std::to_string(a == b));
  }
  {
    std::ofstream full(dir / "full.txt"), kept(dir / "kept.txt");
    for (size_t i = 0; i < lines.size(); ++i) {
      full << lines[i] << "\n";
      kept << lines[i] << "\n";
      // The missing image, paired with one used by no other pair, early in the list.
      if (i == 1) full << "id0/missing.png id3/extra.png 0\n";
    }
  }
  fs::copy_file(faces / "id3" / "0.png", faces / "id3" / "extra.png");  // in no other pair
  const std::string model = fixture_path("embed/model.h5");
  CommandResult r =
      marginface("eval --checkpoint " + shell_quote(model) + " --pairs " + q(dir / "full.txt") +
                 " --root " + q(faces) + " --skip-missing --json " + q(dir / "full.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = marginface("eval --checkpoint " + shell_quote(model) + " --pairs " + q(dir / "kept.txt") +
                 " --root " + q(faces) + " --json " + q(dir / "kept.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string full = read_text(dir / "full.json"), kept = read_text(dir / "kept.json");
  EXPECT_EQ(json_field(full, "missing"), "1");
  EXPECT_EQ(json_field(full, "pairs"), "20");
  EXPECT_NEAR(std::stod(json_field(full, "auc")), std::stod(json_field(kept, "auc")), 1e-9);
  EXPECT_NEAR(std::stod(json_field(full, "eer")), std::stod(json_field(kept, "eer")), 1e-9);
}

}  // namespace
}  // namespace mf::test

namespace mf::test {
namespace {

// The documented keys (reference.yaml, eval.targets among them) and the CASIA recipe are valid
// configs: every key known, every value in range, the backbone and head buildable.
TEST(ConfigFiles, ReferenceAndArcfaceIr50AreValid) {
  for (const char* file : {"configs/reference.yaml", "configs/arcface_ir50.yaml"}) {
    SCOPED_TRACE(file);
    EXPECT_NO_THROW(check_config(Config::load(std::string(MF_SOURCE_DIR) + "/" + file, {})));
  }
  // And a wrong eval.best is caught by name.
  try {
    check_config(
        Config::load(std::string(MF_SOURCE_DIR) + "/configs/arcface_ir50.yaml", {"eval.best=cfp"}));
    ADD_FAILURE() << "eval.best=cfp accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("eval.best must be 'mean' or one of the targets' names"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace mf::test
