// `marginface ablate` from the command line: --help, and the committed ablation configs stay valid
// on the shared data (every head's config built and checked, the identity-disjointness rule
// applied), plus a few real steps of the ArcFace paper's ResNet-50 setup.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/fixtures.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

CommandResult ablate(const std::string& args, const fs::path& output) {
  return run_command("cd " + shell_quote(MF_SOURCE_DIR) + " && OMP_NUM_THREADS=2 " +
                     shell_quote(MF_MARGINFACE_BIN) + " ablate " + args + " --output " +
                     shell_quote(output.string()));
}

bool have_shared() {
  return fs::is_directory(shared_data_dir() + "/aligned/lfw");
}

TEST(AblateCli, help_names_the_options) {
  const CommandResult r = run_command(shell_quote(MF_MARGINFACE_BIN) + " ablate --help");
  EXPECT_EQ(r.status, 0) << r.output;
  for (const char* option : {"--config", "--only", "--fresh", "--check", "--set"})
    EXPECT_NE(r.output.find(option), std::string::npos) << option;
}

TEST(AblateCli, the_committed_configs_are_valid_on_the_shared_data) {
  if (!have_shared()) GTEST_SKIP() << "../shared/data not found at " << shared_data_dir();
  TempDir dir;
  const fs::path out = dir / "check";
  CommandResult r = ablate("--config configs/ablation_small.yaml --check", out);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(
      r.output.find("10 heads; configs valid; protocol lfw-view2 (training identities disjoint"),
      std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("sphereface_paper_row     combined: s=64, m1=1.35, m2=0.0, m3=0.0"),
            std::string::npos)
      << r.output;
  r = ablate("--config configs/ablation_toy.yaml --check", out);
  EXPECT_EQ(r.status, 0) << r.output;
  // View 1 on the real lists: peopleDevTrain is disjoint from pairsDevTest ...
  r = ablate("--config configs/ablation_small.yaml --check --set ablation.protocol=lfw-view1", out);
  EXPECT_EQ(r.status, 0) << r.output;
  std::ifstream list(out / "view1_train.txt");
  int64_t lines = 0;
  for (std::string line; std::getline(list, line);) ++lines;
  EXPECT_EQ(lines, 9525);  // the images of the 4,038 peopleDevTrain identities
  // ... but not from View 2's pairs.txt, which covers all of LFW: refused.
  r = ablate(
      "--config configs/ablation_small.yaml --check --set ablation.protocol=lfw-view1 "
      "--set ablation.lfw.pairs=../shared/data/lfw/pairs.txt",
      out);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("shares identities with the test pairs"), std::string::npos) << r.output;
  // The recipe study: View 1's test pairs, but the config's own (non-LFW) training data, so no
  // LFW training list is written.
  fs::remove_all(out);
  r = ablate("--config configs/recipe_study.yaml --check", out);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("6 heads; configs valid; protocol lfw-view1"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(out / "view1_train.txt"));
  fs::remove_all(out);
  r = ablate("--config configs/recipe_limits.yaml --check", out);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("5 heads; configs valid; protocol lfw-view1"), std::string::npos)
      << r.output;
  fs::remove_all(out);
}

TEST(AblateCli, the_paper_setup_runs_a_few_steps) {
  if (!have_shared()) GTEST_SKIP() << "../shared/data not found at " << shared_data_dir();
  TempDir dir;
  const fs::path out = dir / "paper";
  const CommandResult r = ablate(
      "--config configs/ablation_paper.yaml --only softmax,arcface "
      "--set data.train=[../shared/data/aligned/orl] --set data.batch_size=4 --set "
      "optim.grad_accum=2 "
      "--set train.max_steps=2 --set schedule.milestones=[1] --set ablation.protocol=none",
      out);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("training ir50 + arcface on 400 images of 40 identities: 2 steps"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("ablation incomplete"), std::string::npos)
      << r.output;  // 5 heads not run
  EXPECT_TRUE(fs::exists(out / "arcface" / "result.json"));
  EXPECT_TRUE(fs::exists(out / "results.md"));
  fs::remove_all(out);
}

}  // namespace
}  // namespace mf::test
