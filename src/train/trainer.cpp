#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "data/loader.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "layers/backbones/registry.h"
#include "losses/head.h"
#include "optim/optimizer.h"
#include "tensor/parallel.h"
#include "train/evaluation.h"
#include "train/progress.h"
#include "train/run_folder.h"
#include "util/error.h"

namespace mf {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// SIGINT, SIGTERM and SIGHUP (a closed terminal) ask the loop to stop after the current step,
// with a checkpoint.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void request_stop(int signal) {
  g_stop_signal = signal;
}

// Installs the handlers for the lifetime of a train() call, restoring the previous ones after.
class StopOnSignal {
 public:
  StopOnSignal() {
    g_stop_signal = 0;
    for (int i = 0; i < 3; ++i) old_[i] = std::signal(kSignals[i], request_stop);
  }
  ~StopOnSignal() {
    for (int i = 0; i < 3; ++i) std::signal(kSignals[i], old_[i]);
  }

 private:
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
  void (*old_[3])(int);
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Parameters with their checkpoint names; 1-D ones (biases, BatchNorm, PReLU, scales) without
// weight decay when no_decay_bn_bias is set.
std::vector<ParamGroup> make_groups(const Module& backbone, const Module& head,
                                    const TrainSettings& s) {
  ParamGroup decay{{}, 1.0f, static_cast<float>(s.weight_decay)};
  ParamGroup no_decay{{}, 1.0f, 0.0f};
  ParamGroup head_decay{{}, static_cast<float>(s.head_lr_mult), static_cast<float>(s.weight_decay)};
  ParamGroup head_no_decay{{}, static_cast<float>(s.head_lr_mult), 0.0f};
  for (const auto& [name, v] : backbone.named_parameters()) {
    if (!v.requires_grad()) continue;
    const bool plain = s.no_decay_bn_bias && v.shape().rank() <= 1;
    (plain ? no_decay : decay).params.emplace_back("model/" + name, v);
  }
  for (const auto& [name, v] : head.named_parameters()) {
    if (!v.requires_grad()) continue;
    const bool plain = s.no_decay_bn_bias && v.shape().rank() <= 1;
    (plain ? head_no_decay : head_decay).params.emplace_back("head/" + name, v);
  }
  std::vector<ParamGroup> groups;
  for (auto* g : {&decay, &no_decay, &head_decay, &head_no_decay})
    if (!g->params.empty()) groups.push_back(std::move(*g));
  return groups;
}

// The number of parameter values of `m` that are NaN or ±Inf.
int64_t nonfinite_values(const Module& m) {
  int64_t bad = 0;
  for (const auto& [name, v] : m.named_parameters()) {
    const Tensor& t = v.value();
    for (int64_t i = 0; i < t.numel(); ++i) bad += !std::isfinite(t.data()[i]);
  }
  return bad;
}

}  // namespace

// One optimizer step (the loop of llm.c's train_gpt2.c, with gradient accumulation):
//   grad_accum × (batch → backbone → head loss → backward of loss / grad_accum)
//   → clip → optimizer step at the schedule's lr → the head's after_step (center loss).
// A non-finite loss skips the update (weights and optimizer state stay as they were); the step's
// remaining batches are still drawn so the loader stays at step × grad_accum.
StepResult train_step(Trainee& t, DataLoader& loader, int64_t step, int64_t grad_accum,
                      double clip_grad_norm) {
  t.optimizer.zero_grad();
  StepResult r;
  std::vector<std::pair<Tensor, Labels>> seen;  // embeddings (B, D) for after_step
  for (int64_t micro = 0; micro < grad_accum; ++micro) {
    std::optional<Batch> batch = loader.next();  // images (B, 3, H, W)
    MF_CHECK(batch.has_value(), "internal: the loader ran out of batches within an epoch");
    if (!r.finite || batch->labels.size() < 2) continue;      // < 2: everything unreadable
    Var embeddings = t.backbone.forward(Var(batch->images));  // (B, D)
    HeadOutput out = t.head.forward(embeddings, batch->labels, {step});
    const double loss = out.loss.value().item();
    if (!std::isfinite(loss)) {
      r.finite = false;
      continue;
    }
    backward(affine(out.loss, 1.0f / static_cast<float>(grad_accum)));
    r.loss += loss / double(grad_accum);
    r.accuracy += out.accuracy / double(grad_accum);
    r.images += batch->images.dim(0);
    seen.emplace_back(embeddings.value(), batch->labels);
  }
  if (!r.finite) return r;
  if (clip_grad_norm > 0) t.optimizer.clip_grad_norm(clip_grad_norm);
  r.lr = t.schedule.lr(step);
  t.optimizer.step(r.lr);
  for (auto& [embeddings, labels] : seen) t.head.after_step(embeddings, labels);
  return r;
}

void check_config(const Config& cfg) {
  const TrainSettings s = read_train_settings(cfg);
  Rng rng(0);
  const auto backbone = builtin_backbones().create(s.backbone, s.backbone_params, rng);
  head_registry().create(s.head_type, s.head_params, backbone->embedding_size(), 4, rng);
}

TrainSummary train(const TrainOptions& o) {
  return train(Config::load(o.config_path, o.overrides), o);
}

TrainSummary train(const Config& cfg, const TrainOptions& o) {
  const auto start = Clock::now();
  const StopOnSignal stop_on_signal;
  const TrainSettings s = read_train_settings(cfg);
  set_num_threads(s.threads);
  // The run's convolutions (training and its periodic evaluations) use its precision; whatever
  // runs after it in this process gets the previous one back.
  struct RestorePrecision {
    kernels::ConvPrecision p = kernels::conv_precision();
    ~RestorePrecision() { kernels::set_conv_precision(p); }
  } restore_precision;
  kernels::set_conv_precision(s.precision);

  RunFolder run(s.output_dir);
  std::string resume = o.resume == "auto" ? (run.has_run() ? run.last_checkpoint() : "") : o.resume;
  MF_CHECK(!resume.empty() || !run.has_run(), "'", s.output_dir, "' already holds a run (",
           run.last_checkpoint(),
           "); continue it with --resume auto, or choose another train.output_dir");

  // Model, data, head, optimizer, schedule.
  Rng init_rng(s.seed);
  std::unique_ptr<Backbone> backbone =
      builtin_backbones().create(s.backbone, s.backbone_params, init_rng);
  const TrainingSet data =
      TrainingSet::open(s.sources, s.root, static_cast<int>(backbone->input_height()),
                        static_cast<int>(backbone->input_width()), s.max_identities);
  std::unique_ptr<Head> head = head_registry().create(
      s.head_type, s.head_params, backbone->embedding_size(), data.num_classes(), init_rng);
  if (!s.init.empty()) {
    const CheckpointMeta init_meta = read_checkpoint_meta(s.init);
    load_checkpoint(s.init, *backbone, init_meta.head == s.head_type ? head.get() : nullptr);
  }
  LoaderConfig loader_config = s.loader;
  loader_config.seed = s.seed;
  DataLoader loader(data, loader_config);
  const int64_t batches_per_epoch = loader.batches_per_epoch();
  MF_CHECK(batches_per_epoch >= s.grad_accum, "one epoch has ", batches_per_epoch,
           " batches, fewer than optim.grad_accum = ", s.grad_accum);
  const int64_t steps_per_epoch = batches_per_epoch / s.grad_accum;
  const int64_t total_steps = s.max_steps > 0 ? s.max_steps : s.epochs * steps_per_epoch;
  auto optimizer = optimizer_registry().create(s.optimizer, s.optimizer_params,
                                               make_groups(*backbone, *head, s));
  auto schedule = schedule_registry().create(s.schedule, s.schedule_params, s.lr, total_steps);
  Trainee trainee{*backbone, *head, *optimizer, *schedule};

  CheckpointMeta meta;
  int64_t step = 0;
  if (!resume.empty()) {
    meta = read_checkpoint_meta(resume);
    MF_CHECK(meta.backbone == s.backbone && meta.head == s.head_type, resume, ": holds a ",
             meta.backbone, " + ", meta.head, " run, the config asks for ", s.backbone, " + ",
             s.head_type);
    load_checkpoint(resume, *backbone, head.get(), optimizer.get());
    step = meta.step;
    if (!meta.best_score) {  // a run folder from before best_score was stored in checkpoints
      double score = 0;
      if (std::ifstream best(fs::path(s.output_dir) / "best_accuracy.txt"); best >> score)
        meta.best_score = score;
    }
    std::printf("resuming %s at step %lld\n", resume.c_str(), (long long)step);
  }
  run.write_config(cfg.to_yaml());
  // Drops records of steps after the checkpoint (a run stopped between checkpoints; without a
  // checkpoint, every record of a run killed before its first one).
  const double time_before = run.truncate_log_after(step);
  const TrainingEvaluation evaluation(
      s, backbone->input_width() != backbone->input_height());  // 112×96: crop the centre

  meta.backbone = s.backbone;
  meta.embedding_size = backbone->embedding_size();
  meta.width = s.backbone_params.get_double("width", 1.0);
  meta.input_height = backbone->input_height();
  meta.input_width = backbone->input_width();
  meta.head = s.head_type;
  meta.config = cfg.to_yaml();
  meta.verification_threshold.reset();
  int64_t saved_step = resume.empty() ? -1 : step;  // the step last.h5 holds
  // Writes the current weights to `path`; refuses weights that are not finite, naming the last
  // checkpoint that is (the rollback point).
  auto save = [&](const std::string& path) {
    const int64_t bad = nonfinite_values(*backbone) + nonfinite_values(*head);
    MF_CHECK(bad == 0, "the weights became non-finite by step ", step, " (", bad,
             " values); no checkpoint was written. ",
             saved_step >= 0 ? "The last checkpoint (" + run.last_checkpoint() + ", step " +
                                   std::to_string(saved_step) + ") holds finite weights. "
                             : std::string("There is no checkpoint yet. "),
             "Try a lower optim.lr, optim.clip_grad_norm, or head.margin_warmup_steps");
    meta.step = step;
    meta.epoch = step / steps_per_epoch;
    CheckpointContents c;
    c.meta = meta;
    c.model = backbone.get();
    c.head = head.get();
    c.optimizer = optimizer.get();
    c.identities = data.identities();
    save_checkpoint(path, c);
  };
  auto save_step_checkpoint = [&] {
    meta.verification_threshold.reset();
    run.save_step_checkpoint(step, s.keep_checkpoints, save);
    saved_step = step;
  };

  TrainSummary summary;
  summary.output_dir = s.output_dir;
  // Evaluations due at this step: log records, last.h5 with the threshold and best score, and
  // best.h5 when the score beats the best so far.
  auto evaluate = [&](bool last_step) {
    EvalOutcome e = evaluation.run(*backbone, step, last_step);
    for (const auto& record : e.records) run.append(record);
    if (e.lfw) std::tie(summary.lfw_accuracy, summary.lfw_std) = *e.lfw;
    if (!e.targets.empty()) summary.target_accuracy = e.targets;
    const bool better = e.score && (!meta.best_score || *e.score > *meta.best_score);
    if (better) meta.best_score = e.score;
    meta.verification_threshold = e.threshold;
    run.save_last(save);
    saved_step = step;
    if (better) run.copy_last_to_best();
  };

  std::printf(
      "training %s + %s on %lld images of %lld identities: %lld steps (%lld per epoch), batch %lld "
      "× %lld, %d threads%s\n",
      s.backbone.c_str(), s.head_type.c_str(), (long long)data.size(),
      (long long)data.num_classes(), (long long)total_steps, (long long)steps_per_epoch,
      (long long)s.loader.batch_size, (long long)s.grad_accum, num_threads(),
      s.precision == kernels::ConvPrecision::bf16 ? ", bf16 convolutions" : "");

  backbone->train();
  head->train();
  const int64_t first_step = step;
  Progress progress(first_step, total_steps, s.log_every, o.quiet);
  int64_t epoch = -1, nonfinite_run = 0, updates = 0, images = 0;
  bool stop = false, killed = false;  // killed: stop_after, a kill without the final checkpoint
  while (step < total_steps && !stop) {
    // Each epoch holds whole steps: with grad_accum not dividing the batches per epoch, the last
    // batches_per_epoch mod grad_accum batches of an epoch are left out (as the loader leaves out a
    // last partial batch), so no step straddles two epochs.
    const int64_t step_epoch = step / steps_per_epoch;
    if (step_epoch != epoch) {
      epoch = step_epoch;
      loader.start_epoch(epoch, (step % steps_per_epoch) * s.grad_accum);
    }
    const StepResult r = train_step(trainee, loader, step, s.grad_accum, s.clip_grad_norm);
    ++step;
    if (r.finite) {
      nonfinite_run = 0;
      ++updates;
      images += r.images;
      StepRecord record{step, step_epoch, r.loss, r.accuracy, r.lr, 0, 0};
      record.images_per_s = progress.count(r.loss, r.accuracy, r.images);
      record.time = time_before + progress.seconds();
      run.append(record.to_json());
      summary.final_loss = r.loss;
      summary.final_accuracy = r.accuracy;
      progress.report(step, step_epoch, r.lr);
    } else {
      ++summary.skipped_steps;
      std::fprintf(stderr, "warning: non-finite loss at step %lld; update skipped\n",
                   (long long)step);
      if (++nonfinite_run >= s.max_nonfinite) break;  // to the rollback below, without a save
    }
    const bool last = step == total_steps;
    if (step % s.checkpoint_every == 0 || last) save_step_checkpoint();
    if (evaluation.due(step, last)) evaluate(last);
    if (o.stop_after > 0 && step >= o.stop_after) stop = killed = true;
    if (g_stop_signal) stop = true;
  }

  // Every way out of the loop ends here.
  summary.steps = step;
  summary.bad_images = loader.bad_images();
  summary.wall_seconds = seconds_since(start);
  summary.images_per_s = double(images) / std::max(progress.seconds(), 1e-9);
  if (nonfinite_run >= s.max_nonfinite) {
    // Too many non-finite losses in a row: nothing is saved (the weights never took those
    // updates, but resuming past the failing steps would hide them); the run rolls back to its
    // last checkpoint.
    summary.outcome = TrainOutcome::failed;
    MF_FAIL("the loss was not finite for ", nonfinite_run, " steps in a row (steps ",
            step - nonfinite_run + 1, "-", step, "); stopping. ",
            saved_step >= 0 ? "Resuming starts from the last checkpoint, " + run.last_checkpoint() +
                                  " (step " + std::to_string(saved_step) + ", finite weights). "
                            : std::string("No checkpoint was written. "),
            "Try a lower optim.lr, optim.clip_grad_norm, or head.margin_warmup_steps");
  }
  if (saved_step != step && step > first_step && !killed) save_step_checkpoint();  // a signal
  summary.finished = step == total_steps;
  summary.outcome = summary.finished ? TrainOutcome::finished : TrainOutcome::interrupted;
  if (g_stop_signal)
    std::printf(
        "stopped by signal %d at step %lld; checkpoint saved, continue with --resume auto\n",
        int(g_stop_signal), (long long)step);
  if (step == first_step) {
    std::printf("nothing to train: the run already reached step %lld", (long long)step);
  } else {
    std::printf("done: %lld steps in %s (%.1f img/s)", (long long)step,
                format_duration(summary.wall_seconds).c_str(), summary.images_per_s);
  }
  if (summary.bad_images)
    std::printf(", %lld unreadable images skipped", (long long)summary.bad_images);
  if (summary.skipped_steps)
    std::printf(", %lld steps skipped for a non-finite loss", (long long)summary.skipped_steps);
  std::printf("\ncheckpoints in %s\n", run.checkpoint_dir().c_str());
  MF_CHECK(updates > 0 || step == first_step, "every one of the ", step - first_step,
           " steps had a non-finite loss: nothing was learned");
  return summary;
}

}  // namespace mf
