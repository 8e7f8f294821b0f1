// `marginface clean`: a Sub-center ArcFace run on synthetic faces, cleaned into a list that
// training reads; and its refusals.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/faces.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

CommandResult marginface(const std::string& args) {
  return run_command("OMP_NUM_THREADS=1 " + shell_quote(MF_MARGINFACE_BIN) + " " + args + " 2>&1");
}

// A tiny subcenter_arcface (or `head`) run on dir/faces; returns its last checkpoint.
std::string train_tiny(const TempDir& dir, const std::string& name, const std::string& head) {
  const fs::path faces = dir / "faces";
  if (!fs::exists(faces)) make_faces(faces);
  const fs::path cfg = dir / (name + ".yaml");
  std::ofstream(cfg) << "seed: 1\ndata: {train: [" << faces.string()
                     << "], batch_size: 8, loader_threads: 1}\n"
                     << "model: {backbone: ir18, width: 0.0625, embedding_size: 16}\n"
                     << "head: " << head << "\n"
                     << "optim: {type: sgd, lr: 0.05}\nschedule: {type: constant}\n"
                     << "train: {max_steps: 6, output_dir: " << (dir / name).string()
                     << ", log_every: 100}\n";
  const CommandResult r = marginface("train --config " + shell_quote(cfg.string()));
  EXPECT_EQ(r.status, 0) << r.output;
  return (dir / name / "checkpoints" / "last.h5").string();
}

TEST(CleanCli, writes_a_list_that_training_reads) {
  TempDir dir;
  const std::string ck = train_tiny(dir, "sub", "{type: subcenter_arcface, s: 8, m: 0.2, k: 2}");
  const std::string out = dir.path("kept.txt");
  // 180°: nothing can be farther, so every image is kept with its label.
  CommandResult r = marginface("clean --checkpoint " + shell_quote(ck) + " --data " +
                               shell_quote((dir / "faces").string()) + " --max-angle 180 --out " +
                               shell_quote(out));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("kept 24 of 24 images"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
  std::ifstream in(out);
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    std::istringstream fields(line);
    std::string path;
    int label = -1;
    fields >> path >> label;
    EXPECT_TRUE(fs::exists(path)) << line;
    EXPECT_EQ(label, lines / 6) << line;  // 4 identities × 6 images, in order
  }
  EXPECT_EQ(lines, 24);
  // A tiny angle drops images; the list still trains (labels renumbered without gaps).
  r = marginface("clean --checkpoint " + shell_quote(ck) + " --data " +
                 shell_quote((dir / "faces").string()) + " --max-angle 1 --out " +
                 shell_quote(dir.path("few.txt")));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("dropped"), std::string::npos) << r.output;
  // Most images dropped by a 6-step model: the command says the model may be unconverged.
  EXPECT_NE(r.output.find("trained to convergence?"), std::string::npos) << r.output;
  const fs::path cfg = dir / "again.yaml";
  std::ofstream(cfg) << "data: {train: [" << out << "], batch_size: 8, loader_threads: 1}\n"
                     << "model: {backbone: ir18, width: 0.0625, embedding_size: 16}\n"
                     << "head: {type: arcface, s: 8}\noptim: {lr: 0.05}\n"
                     << "schedule: {type: constant}\n"
                     << "train: {max_steps: 2, output_dir: " << (dir / "again").string() << "}\n";
  r = marginface("train --config " + shell_quote(cfg.string()));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("24 images of 4 identities"), std::string::npos) << r.output;
}

TEST(CleanCli, refuses_other_heads_and_other_data) {
  TempDir dir;
  const std::string arc = train_tiny(dir, "arc", "{type: arcface, s: 8}");
  CommandResult r = marginface("clean --checkpoint " + shell_quote(arc) + " --data " +
                               shell_quote((dir / "faces").string()) + " --out " +
                               shell_quote(dir.path("k.txt")));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("needs a subcenter_arcface checkpoint"), std::string::npos) << r.output;
  const std::string sub = train_tiny(dir, "sub", "{type: subcenter_arcface, s: 8, k: 3}");
  make_people(dir / "others", {"x0", "x1", "x2", "x3"}, 2, 5);
  r = marginface("clean --checkpoint " + shell_quote(sub) + " --data " +
                 shell_quote((dir / "others").string()) + " --out " +
                 shell_quote(dir.path("k.txt")));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("does not hold the identities"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "k.txt"));
  r = marginface("clean --checkpoint " + shell_quote(sub) + " --data " +
                 shell_quote((dir / "faces").string()) + " --out " + shell_quote(sub));
  EXPECT_EQ(r.status, 1) << r.output;
}

}  // namespace
}  // namespace mf::test
