// Data-parallel training over MPI on loopback (`mpirun --oversubscribe -np N marginface train`):
//  * with model.sync_bn, 2 and 3 processes end K = 3 steps with the weights one process reaches on
//  the
//    same global batch, to float rounding amplified by K steps of training (tolerance below);
//  * without sync_bn, N processes compute what one process computes with the global batch cut
//    into N micro-batches (optim.grad_accum = N, batch B/N): BatchNorm's per-process statistics
//    are the only difference, and it is exactly that one;
//  * a 2-process checkpoint resumes on 1 and on 3 processes and ends where an uninterrupted
//    one-process run ends;
//  * a process that hangs (SIGSTOP) makes the others stop within train.dist_timeout with a
//    message naming the wait, and the job exits non-zero; one that never starts stops the others
//    inside MPI_Init within the same bound;
//  * Partial FC with the class weights split over the processes: at sample_rate 1 on 1, 2 and 3
//    processes it ends where the full head ends in one process; at sample_rate 0.5 on 2 and 3
//    where one process ends (the same classes are drawn for any number of processes); a 2-process
//    Partial FC checkpoint (whole class weights and momentum) resumes on 1 and 3; MagFace,
//    contrastive and AdaCos (terms outside the softmax, a statistic over all classes) split too.
//    Same tolerance, with model.sync_bn.
// Skipped (with the reason) where mpirun is not installed; CI installs OpenMPI.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "h5/file.h"
#include "support/faces.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

// K = 3 SGD steps at lr 0.02 of a width-1/16 IResNet-18 with an ArcFace head on synthetic faces.
// Float sums in another order are all that differs, but this tiny network amplifies them fast
// (measured: one process at 1 vs 2 kernel threads differs by 1.4e-5 of the weights' scale after 3
// steps, by 1e-3 after 4). N processes add yet another order. Bound after 3 steps: 1e-4 of the
// largest rms of any tensor (measured 1.4e-5 for 2 processes, 2.3e-5 for 3).
constexpr int kSteps = 3;
constexpr double kTolerance = 1e-4;

bool have_mpirun() {
  return run_command("command -v mpirun").status == 0;
}

// mpirun as CI runs it: as root allowed, more processes than cores allowed, one kernel thread each.
std::string mpirun(int n) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 mpirun "
         "--oversubscribe --mca btl self,vader -np " +
         std::to_string(n) + " ";
}

CommandResult train(const std::string& launcher, const std::string& config,
                    const std::string& extra) {
  return run_command("OMP_NUM_THREADS=1 " + launcher + shell_quote(MF_MARGINFACE_BIN) +
                     " train --config " + shell_quote(config) + " " + extra);
}

// The parameters (and, with buffers, the BatchNorm running statistics) of a checkpoint.
std::map<std::string, std::vector<float>> weights(const std::string& path, bool buffers) {
  h5::File f(path, h5::File::Mode::kRead);
  std::map<std::string, std::vector<float>> out;
  for (const std::string group : {"model", "head"})
    for (const std::string& name : f.list(group)) {
      const bool buffer = name.find("running_") != std::string::npos ||
                          name.find("num_batches") != std::string::npos;
      if (buffer && !buffers) continue;
      const Tensor t = f.read_tensor(group + "/" + name);
      out[group + "/" + name].assign(t.data(), t.data() + t.numel());
    }
  return out;
}

// max |a − b| over every value, divided by the largest rms of any tensor of `a`.
double relative_difference(const std::map<std::string, std::vector<float>>& a,
                           const std::map<std::string, std::vector<float>>& b) {
  double diff = 0, scale = 0;
  for (const auto& [name, x] : a) {
    const auto it = b.find(name);
    if (it == b.end() || it->second.size() != x.size()) {
      ADD_FAILURE() << name << " missing or of another size";
      return 1e9;
    }
    double sq = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      diff = std::max(diff, std::abs(double(x[i]) - double(it->second[i])));
      sq += double(x[i]) * double(x[i]);
    }
    if (!x.empty()) scale = std::max(scale, std::sqrt(sq / double(x.size())));
  }
  return diff / scale;
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_mpirun()) GTEST_SKIP() << "mpirun not found (apt-get install openmpi-bin)";
    make_people(dir_ / "faces", {"a", "b", "c", "d", "e", "f", "g", "h"}, 6, 11);
    // lr 0.005: at 0.02 this tiny net's three steps amplified rounding ~1000× per step (the
    // loss rose 9.6 → 11.3), so two correct summation orders drifted 2e-3 apart; at 0.005 the
    // process counts agree to 1e-5 under every GEMM backend, ten times inside kTolerance.
    config_ = dir_.write("run.yaml",
                         "seed: 5\n"
                         "data:\n"
                         "  train: [" +
                             (dir_ / "faces").string() +
                             "]\n"
                             "  batch_size: 24\n"
                             "  augment: {flip: true}\n"
                             "  loader_threads: 1\n"
                             "model: {backbone: ir18, width: 0.0625, embedding_size: "
                             "16}\n"
                             "head: {type: arcface, s: 16, m: 0.3}\n"
                             "optim: {type: sgd, lr: 0.005}\n"
                             "train: {max_steps: " +
                             std::to_string(kSteps) +
                             ", checkpoint_every: 2, threads: 1, "
                             "log_every: 1}\n");
  }
  std::string run(const std::string& name) const { return dir_.path(name); }

  // mpirun -np 2 of `marginface train --config config_ args`, rank 1 running the shell code
  // `rank1` first (ending in ';' or '&'; $$ is its PID, the training's once exec'd); the
  // result and its wall time.
  struct Job {
    CommandResult result;
    double seconds = 0;
  };
  Job two_process_job(const std::string& rank1, const std::string& args) const {
    const auto t0 = std::chrono::steady_clock::now();
    Job job;
    job.result = run_command(mpirun(2) + "sh -c " +
                             shell_quote("if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then " + rank1 +
                                         " fi; exec env OMP_NUM_THREADS=1 " +
                                         std::string(MF_MARGINFACE_BIN) + " train --config " +
                                         config_ + " " + args) +
                             " 2>&1");
    job.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return job;
  }
  std::string last(const std::string& name) const {
    return dir_.path(name + "/checkpoints/last.h5");
  }

  TempDir dir_;
  std::string config_;
};

TEST_F(DataParallel, SyncBnOnTwoAndThreeProcessesEqualsOneProcess) {
  CommandResult r = train("", config_, "--set train.output_dir=" + run("one"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto one = weights(last("one"), true);
  for (int n : {2, 3}) {
    const std::string name = "sync" + std::to_string(n);
    r = train(mpirun(n), config_, "--set model.sync_bn=true --set train.output_dir=" + run(name));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(std::to_string(n) + " processes"), std::string::npos) << r.output;
    // Running statistics included: SyncBN's are those of the global batch too.
    EXPECT_LT(relative_difference(one, weights(last(name), true)), kTolerance) << n << " processes";
  }
  // Only rank 0 wrote the run: one log line per step.
  std::ifstream log(run("sync3") + "/log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) lines += line.find("\"step\"") != line.npos;
  EXPECT_EQ(lines, kSteps);
}

TEST_F(DataParallel, WithoutSyncBnTwoProcessesEqualOneProcessWithTwoMicroBatches) {
  CommandResult r = train(mpirun(2), config_, "--set train.output_dir=" + run("two"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = train(
      "", config_,
      "--set data.batch_size=12 --set optim.grad_accum=2 --set train.output_dir=" + run("accum"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto two = weights(last("two"), false);
  EXPECT_LT(relative_difference(weights(last("accum"), false), two), kTolerance);
  // …and that difference is real: one process on the whole batch ends elsewhere.
  r = train("", config_, "--set train.output_dir=" + run("one"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_GT(relative_difference(weights(last("one"), false), two), 10 * kTolerance);
}

TEST_F(DataParallel, TwoProcessCheckpointResumesOnOneAndThree) {
  // A constant learning rate: a 2-step run continued to 3 steps is then the 3-step run.
  const std::string same = "--set model.sync_bn=true --set schedule.type=constant ";
  CommandResult r = train("", config_, same + "--set train.output_dir=" + run("whole"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto whole = weights(last("whole"), true);
  r = train(mpirun(2), config_,
            same + "--set train.max_steps=2 --set train.output_dir=" + run("half"));
  ASSERT_EQ(r.status, 0) << r.output;
  for (int n : {1, 3}) {
    const std::string name = "resumed" + std::to_string(n);
    fs::copy(run("half"), run(name), fs::copy_options::recursive);
    r = train(n == 1 ? "" : mpirun(n), config_,
              same + "--resume auto --set train.output_dir=" + run(name));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("resuming"), std::string::npos) << r.output;
    EXPECT_LT(relative_difference(whole, weights(last(name), true)), kTolerance) << n;
  }
}

// The training loss logged for each step of a run (log.jsonl, rank 0's).
std::vector<double> logged_losses(const std::string& run_dir) {
  std::ifstream log(run_dir + "/log.jsonl");
  std::vector<double> out;
  for (std::string line; std::getline(log, line);) {
    const size_t at = line.find("\"loss\":");
    if (line.find("\"step\"") != line.npos && at != line.npos)
      out.push_back(std::atof(line.c_str() + at + 7));
  }
  return out;
}

// Partial FC: the class weights of the 8 identities split 4/4 over 2 processes, 2/3/3 over 3.
const std::string kSplit = "--set model.sync_bn=true --set head.partial_fc.enabled=true ";

TEST_F(DataParallel, PartialFcAtRateOneOnOneTwoThreeProcessesEqualsTheFullHead) {
  CommandResult r = train("", config_, "--set train.output_dir=" + run("full"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto full = weights(last("full"), true);
  for (int n : {1, 2, 3}) {
    const std::string name = "pfc" + std::to_string(n);
    r = train(mpirun(n), config_, kSplit + "--set train.output_dir=" + run(name));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Partial FC: 8 of 8"), std::string::npos) << r.output;
    if (n > 1) {
      EXPECT_NE(r.output.find("class weights split over the processes"), std::string::npos);
    }
    // The checkpoint holds the whole (8, 16) class weights, as the full head's.
    EXPECT_LT(relative_difference(full, weights(last(name), true)), kTolerance) << n;
    // The loss of the global batch at each step (the first before any update: 1e-5 relative).
    const auto a = logged_losses(run("full")), b = logged_losses(run(name));
    ASSERT_EQ(a.size(), size_t(kSteps));
    ASSERT_EQ(b.size(), size_t(kSteps));
    EXPECT_NEAR(b[0], a[0], 1e-5 * a[0]) << n;
    for (int k = 1; k < kSteps; ++k) EXPECT_NEAR(b[k], a[k], 1e-3 * a[k]) << n << " step " << k;
  }
}

TEST_F(DataParallel, PartialFcSampledOnTwoAndThreeProcessesEqualsOneProcess) {
  const std::string sampled = kSplit + "--set head.partial_fc.sample_rate=0.5 ";
  CommandResult r = train("", config_, sampled + "--set train.output_dir=" + run("one"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto one = weights(last("one"), true);
  for (int n : {2, 3}) {
    const std::string name = "sampled" + std::to_string(n);
    r = train(mpirun(n), config_, sampled + "--set train.output_dir=" + run(name));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_LT(relative_difference(one, weights(last(name), true)), kTolerance) << n;
  }
}

TEST_F(DataParallel, PartialFcTwoProcessCheckpointResumesOnOneAndThree) {
  // SGD momentum 0.9: the velocity of the class weights is split and gathered too.
  const std::string same =
      kSplit + "--set head.partial_fc.sample_rate=0.5 --set schedule.type=constant ";
  CommandResult r = train("", config_, same + "--set train.output_dir=" + run("whole"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto whole = weights(last("whole"), true);
  r = train(mpirun(2), config_,
            same + "--set train.max_steps=2 --set train.output_dir=" + run("half"));
  ASSERT_EQ(r.status, 0) << r.output;
  {
    h5::File f(last("half"), h5::File::Mode::kRead);
    EXPECT_EQ(f.read_tensor("head/weight").shape(), Shape({8, 16}));
    EXPECT_EQ(f.read_tensor("optimizer/momentum/head/weight").shape(), Shape({8, 16}));
  }
  for (int n : {1, 3}) {
    const std::string name = "resumed" + std::to_string(n);
    fs::copy(run("half"), run(name), fs::copy_options::recursive);
    r = train(n == 1 ? "" : mpirun(n), config_,
              same + "--resume auto --set train.output_dir=" + run(name));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_LT(relative_difference(whole, weights(last(name), true)), kTolerance) << n;
  }
}

TEST_F(DataParallel, PartialFcSplitsTheHeadsWithTermsOutsideTheSoftmax) {
  // MagFace's g(a) and the contrastive term count once over the processes; AdaCos's dynamic s
  // sums B_avg over every process's classes.
  std::ifstream in(config_);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string arcface = "head: {type: arcface, s: 16, m: 0.3}";
  ASSERT_NE(text.find(arcface), std::string::npos);
  for (const std::string name : {"magface", "contrastive", "adacos"}) {
    std::string head_text = text;
    head_text.replace(text.find(arcface), arcface.size(),
                      "head: {type: " + name +
                          // ‖x‖ inside [l_a, u_a], so g(a) has a gradient here
                          (name == "magface" ? ", s: 16, l_a: 0.01, u_a: 100}" : "}"));
    const std::string config = dir_.write(name + ".yaml", head_text);
    // One step: the contrastive hinge and MagFace's clamp have kinks that a rounding difference
    // can cross in later steps on this tiny network (measured on LFW-free ORL faces over 3 steps:
    // 2e-7 for contrastive, against 1e-4 between 1 and 2 threads in one process).
    // lr 0.5: the step is mostly the gradient, so a term counted twice shows.
    const std::string set = "--set model.sync_bn=true --set train.max_steps=1 --set optim.lr=0.5 ";
    CommandResult r = train("", config, set + "--set train.output_dir=" + run(name + "1"));
    ASSERT_EQ(r.status, 0) << r.output;
    r = train(mpirun(2), config,
              set + "--set head.partial_fc.enabled=true --set train.output_dir=" + run(name + "2"));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_LT(relative_difference(weights(last(name + "1"), true), weights(last(name + "2"), true)),
              kTolerance)
        << name;
    const auto a = logged_losses(run(name + "1")), b = logged_losses(run(name + "2"));
    ASSERT_EQ(b.size(), a.size());
    EXPECT_NEAR(b[0], a[0], 1e-5 * std::abs(a[0])) << name;
  }
}

TEST_F(DataParallel, AHungProcessStopsTheJobWithinTheTimeout) {
  // Rank 1 stops itself (SIGSTOP) once training runs (the log has a step; the bound covers
  // training, not MPI's own start-up): the others wait at most dist_timeout (3 s).
  const Job job = two_process_job(
      "(while [ ! -s " + run("hung") + "/log.jsonl ]; do sleep 0.1; done; kill -STOP $$) &",
      "--set train.max_steps=100000 --set train.dist_timeout=3 --set train.output_dir=" +
          run("hung"));
  EXPECT_NE(job.result.status, 0) << job.result.output;
  EXPECT_NE(job.result.output.find("no answer from the other ranks within"), std::string::npos)
      << job.result.output;
  EXPECT_LT(job.seconds, 60) << job.result.output;
}

TEST_F(DataParallel, AProcessThatNeverStartsStopsTheOthersInMpiInit) {
  // Rank 1 sleeps before it starts marginface: rank 0 waits in MPI_Init, bounded by
  // train.dist_timeout (3 s), then exits and mpirun ends the job (rank 1's sleep included).
  const Job job = two_process_job(
      "sleep 60;", "--set train.dist_timeout=3 --set train.output_dir=" + run("late"));
  EXPECT_NE(job.result.status, 0) << job.result.output;
  EXPECT_NE(job.result.output.find("MPI did not start within 3 s"), std::string::npos)
      << job.result.output;
  EXPECT_LT(job.seconds, 45) << job.result.output;
}

TEST_F(DataParallel, AKilledProcessEndsTheJob) {
  const Job job =
      two_process_job("(sleep 1; kill -KILL $$) &",
                      "--set train.max_steps=100000 --set train.output_dir=" + run("killed"));
  EXPECT_NE(job.result.status, 0) << job.result.output;
  EXPECT_NE(job.result.output.find("signal 9"), std::string::npos) << job.result.output;  // mpirun
  EXPECT_LT(job.seconds, 30) << job.result.output;
}

TEST_F(DataParallel, SigintToOneProcessStopsAllWithACheckpoint) {
  const Job job =
      two_process_job("(sleep 2; kill -INT $$) &",
                      "--set train.max_steps=100000 --set train.checkpoint_every=100000 "
                      "--set train.output_dir=" +
                          run("interrupted"));
  // Every process stopped at the same step, and rank 0 saved it.
  EXPECT_EQ(job.result.status, 3) << job.result.output;
  EXPECT_NE(job.result.output.find("stopped by signal 2"), std::string::npos) << job.result.output;
  EXPECT_TRUE(fs::exists(last("interrupted"))) << job.result.output;
}

}  // namespace
}  // namespace mf::test
