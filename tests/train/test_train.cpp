// The training loop end to end on a tiny synthetic face set: run folder, checkpoints, resume
// bit-for-bit, config errors, and `eval` on the result.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>

#include "h5/file.h"
#include "io/checkpoint.h"
#include "support/checkpoints.h"
#include "support/faces.h"
#include "support/file_size_limit.h"
#include "support/temp_dir.h"
#include "train/run_folder.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/file.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

// A training config NAME.yaml in `dir` for the faces in dir/faces, with its run in dir/NAME.
fs::path write_config(const TempDir& dir, const std::string& name, const std::string& extra = "",
                      const std::string& head = "{type: arcface, s: 8, m: 0.2}") {
  const fs::path faces = dir / "faces";
  if (!fs::exists(faces)) make_faces(faces);
  const fs::path path = dir / (name + ".yaml");
  std::ofstream(path) << "seed: 3\n"
                      << "data:\n  train: [" << faces.string() << "]\n  batch_size: 8\n"
                      << "  augment: {flip: true, crop: 2}\n  loader_threads: 2\n"
                      << "model: {backbone: ir18, width: 0.0625, embedding_size: 16}\n"
                      << "head: " << head << "\n"
                      << "optim: {type: sgd, lr: 0.05, momentum: 0.9}\n"
                      << "schedule: {type: poly, warmup_steps: 2}\n"
                      << "train:\n  epochs: 3\n  output_dir: " << (dir / name).string()
                      << "\n  checkpoint_every: 3\n  keep_checkpoints: 2\n  log_every: 100\n"
                      << extra;
  return path;
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
  TempDir dir;
  const fs::path cfg = write_config(dir, "run");
  const TrainOptions o = options(cfg);
  const TrainSummary s = train(o);
  EXPECT_EQ(s.steps, 9);  // 24 images / batch 8 = 3 steps per epoch × 3 epochs
  const fs::path run = dir / "run";
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
  TempDir dir;
  const fs::path a = write_config(dir, "accum");
  const TrainSummary s = train(options(a, {"optim.grad_accum=2"}));
  EXPECT_EQ(s.steps, 3);  // 3 epochs × 1 step
  EXPECT_TRUE(s.finished);
  std::ifstream log(dir / "accum" / "log.jsonl");
  std::string line;
  int epoch = 0;
  while (std::getline(log, line)) {
    EXPECT_NE(line.find("\"epoch\":" + std::to_string(epoch)), std::string::npos) << line;
    ++epoch;
  }
  EXPECT_EQ(epoch, 3);
  const fs::path b = write_config(dir, "accum_killed");
  train(options(b, {"optim.grad_accum=2"}, "", 2));
  train(options(b, {"optim.grad_accum=2"}, "auto"));
  EXPECT_TRUE(checkpoint_values((dir / "accum" / "checkpoints" / "last.h5").string()) ==
              checkpoint_values((dir / "accum_killed" / "checkpoints" / "last.h5").string()));
}

TEST(Train, a_killed_run_resumes_bit_for_bit) {
  TempDir dir;
  const fs::path a = write_config(dir, "straight"), b = write_config(dir, "killed");
  train(options(a));
  train(options(b, {}, "", 3));  // "killed" after step 3
  EXPECT_EQ(read_checkpoint_meta((dir / "killed" / "checkpoints" / "last.h5").string()).step, 3);
  train(options(b, {}, "auto"));
  const auto wa = checkpoint_values((dir / "straight" / "checkpoints" / "last.h5").string());
  const auto wb = checkpoint_values((dir / "killed" / "checkpoints" / "last.h5").string());
  ASSERT_EQ(wa.size(), wb.size());
  EXPECT_TRUE(wa == wb) << "resumed weights differ from the uninterrupted run";
  // The logs agree step by step: same losses, each step logged once.
  auto losses = [](const fs::path& log) {
    std::vector<double> out;
    for (const StepRecord& r : read_step_records(log.string())) out.push_back(r.loss);
    return out;
  };
  const auto la = losses(dir / "straight" / "log.jsonl"), lb = losses(dir / "killed" / "log.jsonl");
  EXPECT_EQ(la.size(), 9u);
  EXPECT_EQ(la, lb);
  // "time" counts training seconds across the resume: it never goes back.
  std::ifstream in(dir / "killed" / "log.jsonl");
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

// The heads with state outside the optimizer (CurricularFace's t, AdaFace's norm statistics,
// AdaCos's s, ElasticFace's draws) resume bit-for-bit: the state is in the checkpoint under /head,
// and the state a resumed run starts from is the one the killed run had reached.
TEST(Train, heads_with_running_state_resume_bit_for_bit) {
  const std::vector<std::pair<std::string, std::string>> heads{
      {"{type: curricularface, s: 8, m: 0.2, ema: 0.3}", "t"},
      {"{type: adaface, s: 8, m: 0.3, ema: 0.3}", "batch_mean"},
      {"{type: adacos}", "s"},
      {"{type: elasticface, s: 8, m: 0.2, sigma: 0.1, plus: true}", "draw_seed"}};
  for (const auto& [head, buffer] : heads) {
    SCOPED_TRACE(head);
    TempDir dir;
    const fs::path a = write_config(dir, "straight", "", head);
    const fs::path b = write_config(dir, "killed", "", head);
    train(options(a));
    train(options(b, {}, "", 4));
    const std::string killed_last = (dir / "killed" / "checkpoints" / "last.h5").string();
    const float state_at_4 =
        h5::File(killed_last, h5::File::Mode::kRead).read_tensor("/head/" + buffer).data()[0];
    train(options(b, {}, "auto"));
    const std::string last_a = (dir / "straight" / "checkpoints" / "last.h5").string();
    EXPECT_TRUE(checkpoint_values(last_a) == checkpoint_values(killed_last))
        << "resumed run differs";
    std::vector<double> la, lb;
    for (const StepRecord& r : read_step_records((dir / "straight" / "log.jsonl").string()))
      la.push_back(r.loss);
    for (const StepRecord& r : read_step_records((dir / "killed" / "log.jsonl").string()))
      lb.push_back(r.loss);
    EXPECT_EQ(la.size(), 9u);
    EXPECT_EQ(la, lb);
    const float state_at_9 =
        h5::File(last_a, h5::File::Mode::kRead).read_tensor("/head/" + buffer).data()[0];
    if (buffer != "draw_seed") {  // the running statistics moved, so resuming had something to keep
      EXPECT_NE(state_at_4, state_at_9) << buffer;
    }
  }
}

// head.partial_fc through the trainer: a killed run resumes bit for bit (the draw is a function
// of step and batch; the rows' momentum is checkpointed with the rest). Which rows a step updates
// is tested in tests/losses/test_partial_fc.cpp.
TEST(Train, partial_fc_trains_and_resumes_bit_for_bit) {
  TempDir dir;
  const std::string head = "{type: arcface, s: 8, m: 0.2, partial_fc: {sample_rate: 0.5}}";
  const fs::path a = write_config(dir, "straight", "", head);
  const fs::path b = write_config(dir, "killed", "", head);
  const TrainSummary s = train(options(a));
  EXPECT_EQ(s.steps, 9);
  EXPECT_TRUE(std::isfinite(s.final_loss));
  train(options(b, {}, "", 4));
  train(options(b, {}, "auto"));
  EXPECT_TRUE(checkpoint_values((dir / "straight" / "checkpoints" / "last.h5").string()) ==
              checkpoint_values((dir / "killed" / "checkpoints" / "last.h5").string()));
  // The checkpoint holds the whole (K, D) weight and its momentum, as without Partial FC.
  h5::File f((dir / "straight" / "checkpoints" / "last.h5").string(), h5::File::Mode::kRead);
  EXPECT_EQ(f.read_tensor("/head/weight").shape(), Shape({4, 16}));
}

// model.init takes the head too when the types match, unless model.init_head is false. With a
// learning rate of 1e-30 one step leaves every weight as it started.
TEST(Train, init_head_false_takes_only_the_backbone) {
  TempDir dir;
  train(options(write_config(dir, "source")));
  const std::string source = (dir / "source" / "checkpoints" / "last.h5").string();
  const std::string fresh_cfg = write_config(dir, "fresh").string();
  train(options(fresh_cfg, {"train.max_steps=1", "optim.lr=1e-30", "schedule.warmup_steps=0"}));
  auto values = [](const fs::path& ck, const std::string& name) {
    const Tensor t = h5::File(ck.string(), h5::File::Mode::kRead).read_tensor(name);
    return std::vector<float>(t.data(), t.data() + t.numel());
  };
  const std::string first_conv =
      "/model/" + h5::File(source, h5::File::Mode::kRead).list("/model")[0];
  for (const bool init_head : {true, false}) {
    SCOPED_TRACE(init_head);
    const std::string name = init_head ? "with_head" : "backbone_only";
    train(options(
        write_config(dir, name),
        {"model.init=" + source, std::string("model.init_head=") + (init_head ? "true" : "false"),
         "train.max_steps=1", "optim.lr=1e-30", "schedule.warmup_steps=0"}));
    const fs::path last = dir / name / "checkpoints" / "last.h5";
    EXPECT_EQ(values(last, first_conv), values(source, first_conv)) << first_conv;
    const fs::path expected_head =
        init_head ? fs::path(source) : dir / "fresh" / "checkpoints" / "last.h5";
    EXPECT_EQ(values(last, "/head/weight"), values(expected_head, "/head/weight"));
    EXPECT_NE(values(last, "/head/weight"),
              values(init_head ? dir / "fresh" / "checkpoints" / "last.h5" : fs::path(source),
                     "/head/weight"));
  }
}

TEST(Train, config_mistakes_name_file_line_and_key) {
  TempDir dir;
  const fs::path cfg = write_config(dir, "bad", "  epochz: 3\n");
  try {
    train(options(cfg));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train.epochz"), std::string::npos) << m;
    EXPECT_NE(m.find(cfg.string() + ":"), std::string::npos) << m;
  }
  EXPECT_THROW(train(options(write_config(dir, "bad2"), {"head.type=arcfce"})), Error);
  EXPECT_THROW(train(options(write_config(dir, "bad3"), {"head.m=4"})), Error);
}

// The losses of a log.jsonl's step records by step.
std::map<int64_t, double> losses_by_step(const fs::path& log) {
  std::map<int64_t, double> out;
  for (const StepRecord& r : read_step_records(log.string())) out[r.step] = r.loss;
  return out;
}

// A softmax run at lr 100 with a constant schedule diverges; the trajectory does not depend on
// max_steps, so the first step with a non-finite loss can be found and then made the last one.
const std::vector<std::string> kDiverging = {"head=",
                                             "head.type=softmax",
                                             "optim.lr=100",
                                             "schedule.type=constant",
                                             "schedule.warmup_steps=0",
                                             "data.augment.crop=0",
                                             "train.max_nonfinite_steps=1000"};

// Regression (issue "A codebase a newcomer can carry"): a non-finite loss on the last step left
// the loop through `continue`, without the final checkpoint (and evaluation). Every way out of
// the loop now reaches the same final code.
TEST(Train, a_non_finite_last_step_still_ends_with_the_final_checkpoint) {
  TempDir dir;
  std::vector<std::string> probe = kDiverging;
  probe.push_back("train.max_steps=40");
  probe.push_back("train.checkpoint_every=1000");
  int64_t first_bad = 0;
  try {
    const TrainSummary s = train(options(write_config(dir, "probe", "", "{type: softmax}"), probe));
    ASSERT_GT(s.skipped_steps, 0) << "the probe run never diverged";
  } catch (const Error&) {
    // the weights may turn non-finite before the end: the skipped steps are in the log anyway
  }
  const auto logged = losses_by_step(dir / "probe" / "log.jsonl");
  for (int64_t step = 1; step <= 40 && !first_bad; ++step)
    if (!logged.count(step)) first_bad = step;
  ASSERT_GT(first_bad, 1) << "no step with a non-finite loss after a finite one";

  std::vector<std::string> run = kDiverging;
  run.push_back("train.max_steps=" + std::to_string(first_bad));
  run.push_back("train.checkpoint_every=1000");
  const TrainSummary s = train(options(write_config(dir, "last_bad", "", "{type: softmax}"), run));
  EXPECT_EQ(s.steps, first_bad);
  EXPECT_EQ(s.skipped_steps, 1);
  EXPECT_TRUE(s.finished);
  const fs::path last = dir / "last_bad" / "checkpoints" / "last.h5";
  ASSERT_TRUE(fs::exists(last)) << "no final checkpoint after a non-finite last step";
  EXPECT_EQ(read_checkpoint_meta(last.string()).step, first_bad);
}

// Regression (issue "Nothing lost, nothing silently wrong", item 3): lr 100 drove the weights to
// Inf/NaN and the checkpoints written after held them. A checkpoint is now written only with
// finite weights and running statistics; the error names the last one that is finite.
// Regression (issue "Fast on every CPU"): a forward whose activations overflowed left Inf in batch
// norm's running variance while the loss stayed finite; the next checkpoint held it (seen once
// the GEMM's rounding changed). Such a step is now skipped and its statistics restored.
TEST(Train, non_finite_weights_are_never_checkpointed) {
  TempDir dir;
  std::vector<std::string> run = kDiverging;
  run.push_back("optim.head_lr_mult=1000");
  run.push_back("train.max_steps=12");
  run.push_back("train.checkpoint_every=2");
  try {
    const TrainSummary s = train(options(write_config(dir, "inf", "", "{type: softmax}"), run));
    EXPECT_GT(s.skipped_steps, 0) << "the config no longer diverges: the test tests nothing";
  } catch (const Error& e) {  // the weights themselves overflowed in an update
    const std::string message = e.what();
    EXPECT_NE(message.find("non-finite"), std::string::npos) << message;
    EXPECT_NE(message.find("finite weights)"), std::string::npos) << message;
  }
  int checked = 0;
  for (const auto& e : fs::directory_iterator(dir / "inf" / "checkpoints")) {
    const auto w = checkpoint_values(e.path().string());  // parameters and running statistics
    for (float v : w) ASSERT_TRUE(std::isfinite(v)) << e.path();
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// Regression (item 3): a non-finite streak said "the last checkpoint is intact" even when there
// was none. The message now names the checkpoint a resume starts from, or says there is none, and
// nothing is written after the streak.
TEST(Train, a_non_finite_streak_names_the_rollback_point_truthfully) {
  TempDir dir;
  std::vector<std::string> run = kDiverging;
  run.back() = "train.max_nonfinite_steps=3";
  run.push_back("train.max_steps=60");
  run.push_back("train.checkpoint_every=1000");
  const std::string message =
      error_of([&] { train(options(write_config(dir, "streak", "", "{type: softmax}"), run)); });
  EXPECT_NE(message.find("steps in a row"), std::string::npos) << message;
  EXPECT_NE(message.find("no checkpoint (none was written yet)"), std::string::npos) << message;
  EXPECT_EQ(message.find("intact"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "streak" / "checkpoints" / "last.h5"));
}

// Regression (item 4): a second training on the same folder interleaved its log and checkpoints
// with the first. The folder is locked while a run holds it.
TEST(Train, a_second_training_on_a_busy_folder_is_refused_naming_the_holder) {
  TempDir dir;
  const fs::path cfg = write_config(dir, "busy");
  const RunFolder holder((dir / "busy").string());
  const std::string message = error_of([&] { train(options(cfg)); });
  EXPECT_NE(message.find("in use by another training (PID " + std::to_string(::getpid())),
            std::string::npos)
      << message;
  EXPECT_FALSE(fs::exists(dir / "busy" / "log.jsonl"));
}

// Regression (item 8): a run stopped before its first checkpoint and started again appended its
// step records after the old ones (each step twice).
TEST(Train, a_restart_before_the_first_checkpoint_logs_each_step_once) {
  TempDir dir;
  const fs::path cfg = write_config(dir, "early", "  max_steps: 5\n");
  train(options(cfg, {"train.checkpoint_every=100"}, "", 2));  // "killed" after step 2
  ASSERT_FALSE(fs::exists(dir / "early" / "checkpoints" / "last.h5"));
  train(options(cfg, {"train.checkpoint_every=100"}));
  const auto records = read_step_records((dir / "early" / "log.jsonl").string());
  ASSERT_EQ(records.size(), 5u);
  for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i].step, int64_t(i) + 1);
}

// Regression (issue "Nothing lost, nothing silently wrong", item 6): `output_dir: .` rewrote the
// user's own commented config.yaml with the resolved one. A config.yaml the run did not write is
// never overwritten; the run's own is (resume).
TEST(Train, the_users_config_yaml_is_never_overwritten) {
  TempDir dir;
  make_faces(dir / "faces");
  const std::string mine = std::string("# my notes\nseed: 3\ndata: {train: [") +
                           (dir / "faces").string() +
                           "], batch_size: 8}\nmodel: {backbone: ir18, width: 0.0625, "
                           "embedding_size: 16}\nhead: {type: softmax}\ntrain: {max_steps: 1, "
                           "output_dir: " +
                           dir.root().string() + "}\n";
  const std::string config = dir.write("config.yaml", mine);
  const std::string message = error_of([&] { train(options(config)); });
  EXPECT_NE(message.find("was not written by marginface train; refusing to overwrite it"),
            std::string::npos)
      << message;
  EXPECT_EQ(read_file(config, "config"), mine);
  // A run's own config.yaml is rewritten on resume.
  const fs::path cfg = write_config(dir, "own", "  max_steps: 4\n");
  train(options(cfg, {}, "", 1));
  train(options(cfg, {}, "auto"));
  EXPECT_EQ(read_file((dir / "own" / "config.yaml").string(), "config")
                .rfind("# marginface train: the resolved configuration", 0),
            0u);
}

// Regression (issue "Nothing lost, nothing silently wrong", item 9): --resume continued a run whose
// training data had changed (other identities, another batch size) as if nothing happened.
TEST(Train, resuming_a_changed_run_is_refused_unless_asked_for) {
  TempDir dir;
  const fs::path cfg = write_config(dir, "changed", "  max_steps: 6\n");
  train(options(cfg, {}, "", 3));
  std::string message = error_of([&] { train(options(cfg, {"data.max_identities=3"}, "auto")); });
  EXPECT_NE(message.find("the run changed since this checkpoint"), std::string::npos) << message;
  EXPECT_NE(message.find("4 identities, 24 images, batch 8 x 1"), std::string::npos) << message;
  EXPECT_NE(message.find("3 identities, 18 images, batch 8 x 1"), std::string::npos) << message;
  message = error_of([&] { train(options(cfg, {"data.batch_size=4"}, "auto")); });
  EXPECT_NE(message.find("batch 4 x 1"), std::string::npos) << message;
  TrainOptions anyway = options(cfg, {"data.batch_size=4"}, "auto");
  anyway.resume_changed = true;
  EXPECT_EQ(train(anyway).steps, 6);
}

// Regression (item 9): with data.sampler pk the banner printed data.batch_size instead of p × k,
// and k above an identity's image count was accepted without a word.
TEST(Train, pk_sampler_banner_shows_p_times_k_and_warns_about_short_identities) {
  TempDir dir;
  const fs::path cfg = write_config(dir, "pk", "  max_steps: 3\n");
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  train(options(cfg, {"data.sampler=pk", "data.p=2", "data.k=8"}));
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("batch 16 × 1"), std::string::npos) << out;
  EXPECT_NE(err.find("4 of the 4 identities with two or more images have fewer than k = 8"),
            std::string::npos)
      << err;
}

// Regression (item 10): unclear messages — an embeddings file given to --resume read "holds a
// ir18 +  run"; a .jpg listed as a training source printed its raw bytes as a bad list line.
TEST(Train, wrong_files_in_resume_and_sources_are_named_for_what_they_are) {
  TempDir dir;
  const fs::path cfg = write_config(dir, "wrong", "  max_steps: 3\n");
  {
    h5::File f(dir.path("emb.h5"), h5::File::Mode::kCreate);
    const float rows[4] = {1, 0, 0, 1};
    f.write_floats("/embeddings", rows, {2, 2});
    f.write_strings("/paths", {"a.jpg", "b.jpg"});
    f.write_attr("/meta", "backbone", std::string("ir18"));
    f.write_attr("/meta", "embedding_size", int64_t{2});
  }
  std::string message = error_of([&] { train(options(cfg, {}, dir.path("emb.h5"))); });
  EXPECT_NE(message.find("not a training checkpoint"), std::string::npos) << message;
  const std::string jpg = (dir / "faces" / "id0" / "0.png").string();
  message = error_of([&] { train(options(cfg, {"data.train=[" + jpg + "]"})); });
  EXPECT_NE(message.find("training source '" + jpg + "' is an image, not a source"),
            std::string::npos)
      << message;
}

TEST(RunFolder, step_records_round_trip_and_torn_lines_are_skipped) {
  TempDir dir;
  StepRecord a{7, 1, 2.5, 0.25, 0.01, 123.5, 9.75};
  const std::string log = dir.path("log.jsonl");
  {
    RunFolder run(dir.path("run"));
    std::ofstream(log) << a.to_json().dump(-1) << "\n"
                       << R"({"step":7,"eval":{"accuracy_mean":0.5}})"
                       << "\n"
                       << R"({"step":8,"epoch":1,"loss":1.5,"ac)";  // torn by a kill
  }
  const auto records = read_step_records(log);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].step, 7);
  EXPECT_EQ(records[0].epoch, 1);
  EXPECT_EQ(records[0].loss, 2.5);
  EXPECT_EQ(records[0].acc, 0.25);
  EXPECT_EQ(records[0].lr, 0.01);
  EXPECT_EQ(records[0].images_per_s, 123.5);
  EXPECT_EQ(records[0].time, 9.75);
}

TEST(RunFolder, truncation_keeps_records_up_to_the_step_and_returns_their_time) {
  TempDir dir;
  RunFolder run(dir.path("run"));
  for (int64_t step = 1; step <= 4; ++step) {
    run.append(StepRecord{step, 0, 1.0, 0.5, 0.1, 10, double(step) * 2}.to_json());
    if (step == 2) run.append(json::parse(R"({"step":2,"eval":{"accuracy_mean":0.75}})"));
  }
  EXPECT_EQ(run.truncate_log_after(2), 4.0);
  std::ifstream in(run.log_path());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u);  // steps 1, 2 and step 2's evaluation
  EXPECT_NE(lines[2].find("\"eval\""), std::string::npos);
  EXPECT_EQ(run.truncate_log_after(0), 0.0);
  EXPECT_TRUE(read_step_records(run.log_path()).empty());
}

// Regression (issue "Nothing lost, nothing silently wrong", item 5): resuming on a full disk
// rewrote log.jsonl from an unchecked temporary file, erasing its records ("Input/output error").
// The rewrite is now checked and atomic: the error names the log, and the log stays whole.
TEST(RunFolder, a_full_disk_while_resuming_keeps_the_log_whole) {
  TempDir dir;
  RunFolder run(dir.path("run"));
  for (int64_t step = 1; step <= 200; ++step)
    run.append(StepRecord{step, 0, 1.0, 0.5, 0.1, 10, double(step)}.to_json());
  const std::string before = read_file(run.log_path(), "log");
  std::string message;
  {
    const FileSizeLimit full(1000);  // the kept records (steps 1-150) need ~15 kB
    message = error_of([&] { run.truncate_log_after(150); });
  }
  EXPECT_NE(message.find(run.log_path()), std::string::npos) << message;
  EXPECT_NE(message.find("File too large"), std::string::npos) << message;
  EXPECT_EQ(read_file(run.log_path(), "log"), before);
  EXPECT_FALSE(fs::exists(run.log_path() + ".tmp"));
  // Appending on a full disk fails the same way, naming the log.
  {
    const FileSizeLimit full(before.size());
    message = error_of([&] { run.append(StepRecord{201}.to_json()); });
  }
  EXPECT_NE(message.find(run.log_path()), std::string::npos) << message;
}

TEST(RunFolder, an_output_dir_that_is_a_file_is_named) {
  TempDir dir;
  const std::string file = dir.write("taken", "x");
  const std::string message = error_of([&] { RunFolder run(file); });
  EXPECT_NE(message.find(file + "' is a file"), std::string::npos) << message;
}

TEST(Json, parses_what_it_writes) {
  json::Value v = json::Value::object();
  v.set("a", int64_t(-3)).set("b", 0.1).set("s", "x\"y\n\u00e9").set("n", json::Value());
  v.set("list", json::Value::array_of(std::vector<double>{1.5, -2e-300}));
  const json::Value back = json::parse(v.dump());
  EXPECT_EQ(back.dump(), v.dump());
  EXPECT_EQ(back.find("a")->as_int(), -3);
  EXPECT_EQ(back.find("b")->as_double(), 0.1);
  EXPECT_EQ(back.find("s")->as_string(), "x\"y\n\u00e9");
  EXPECT_TRUE(std::isnan(back.find("n")->as_double()));
  EXPECT_EQ(json::parse(R"("\ud83d\ude00")").as_string(), "\xF0\x9F\x98\x80");  // U+1F600
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "01x", "\"\\q\"", "{\"a\":1} x", "tru"})
    EXPECT_THROW(json::parse(bad), Error) << bad;
  const std::string message = error_of([] { json::parse("{\"a\": [1, 2", "log.jsonl"); });
  EXPECT_NE(message.find("log.jsonl: invalid JSON at byte 11"), std::string::npos) << message;
}

}  // namespace
}  // namespace mf::test
