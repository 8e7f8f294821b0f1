#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <thread>

#include "data/loader.h"
#include "dist/communicator.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "layers/backbones/registry.h"
#include "losses/head.h"
#include "losses/partial_fc.h"
#include "optim/optimizer.h"
#include "tensor/parallel.h"
#include "train/data_parallel.h"
#include "train/evaluation.h"
#include "train/progress.h"
#include "train/run_folder.h"
#include "train/weight_average.h"
#include "util/error.h"
#include "util/stop_signal.h"

namespace mf {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Installs the stop handlers (util/stop_signal.h) for the lifetime of a train() call unless the
// program already did (`marginface train` does it first thing), restoring them after.
class StopOnSignal {
 public:
  StopOnSignal() : owner_(!stop_handlers_installed()) {
    if (owner_) install_stop_handlers();
  }
  ~StopOnSignal() {
    if (owner_) uninstall_stop_handlers();
  }

 private:
  bool owner_;
};

// Kernel threads of one process: train.threads, else OMP_NUM_THREADS, else the cores shared out
// among the processes of the job on this machine (mpirun -np 2 on 2 cores: 1 each).
int threads_per_process(int configured) {
  if (configured > 0 || std::getenv("OMP_NUM_THREADS")) return configured;
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  const int per_machine = local ? std::max(1, std::atoi(local)) : 1;
  if (per_machine == 1) return configured;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / per_machine);
}

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

// The number of values of `m`'s parameters and buffers (running statistics) that are NaN or ±Inf;
// `first` (when empty) gets the name of the first tensor holding one, after `prefix`.
int64_t nonfinite_values(const Module& m, const std::string& prefix, std::string& first) {
  int64_t bad = 0;
  auto count = [&](const std::string& name, const Tensor& t) {
    const int64_t here = nonfinite_count(t);
    if (here > 0 && first.empty()) first = prefix + name;
    bad += here;
  };
  for (const auto& [name, v] : m.named_parameters()) count(name, v.value());
  for (const auto& [name, t] : m.named_buffers()) count(name, t);
  return bad;
}

// Deep copies of `m`'s buffers, to undo a skipped step's running-statistics updates.
std::vector<Tensor> copy_buffers(const Module& m) {
  std::vector<Tensor> out;
  for (const auto& [name, t] : m.named_buffers()) out.push_back(t.clone());
  return out;
}
bool buffers_finite(const Module& m) {
  for (const auto& [name, t] : m.named_buffers())
    if (nonfinite_count(t) > 0) return false;
  return true;
}
void restore_buffers(Module& m, const std::vector<Tensor>& saved) {
  size_t i = 0;
  for (auto& [name, t] : m.named_buffers()) t.copy_from(saved.at(i++));
}

}  // namespace

// One optimizer step (the loop of llm.c's train_gpt2.c, with gradient accumulation):
//   grad_accum × (batch → backbone → head loss → backward of loss / grad_accum)
//   → clip → optimizer step at the schedule's lr → the head's after_step (center loss, running
//   statistics).
// A non-finite loss skips the update (weights, optimizer state and the backbone's running
// statistics stay as they were: a forward that overflowed would leave Inf in batch norm's running
// variance); the step's remaining batches are still drawn so the loader stays at step × grad_accum.
// Data-parallel (dp): every process agrees on each batch's image count and finiteness before its
// backward, scales its loss by its share of the global batch's images, and the gradients are
// summed over the processes (GradientSync) before the identical update everywhere.
StepResult train_step(Trainee& t, DataLoader& loader, int64_t step, int64_t grad_accum,
                      double clip_grad_norm, DataParallel* dp) {
  t.optimizer.zero_grad();
  StepResult r;
  const std::vector<Tensor> buffers_before = copy_buffers(t.backbone);
  struct Seen {
    Tensor embeddings;  // (B, D)
    Labels labels;
    Tensor batch_stats;
    std::optional<SparseRows> sparse;
  };
  std::vector<Seen> seen;  // for after_step
  for (int64_t micro = 0; micro < grad_accum; ++micro) {
    std::optional<Batch> batch = loader.next();  // images (B, 3, H, W)
    MF_CHECK(batch.has_value(), "internal: the loader ran out of batches within an epoch");
    const int64_t n = static_cast<int64_t>(batch->labels.size());
    double too_small = !r.finite || n < 2;                       // < 2: everything unreadable
    if (dp) dp->comm.sum(&too_small, 1, "the batch agreement");  // forward runs on all or none
    if (too_small > 0) continue;
    Var embeddings = t.backbone.forward(Var(batch->images));  // (B, D)
    HeadOutput out = t.head.forward(embeddings, batch->labels, {step});
    // A forward whose activations overflowed can leave Inf in the running statistics while the
    // loss (of normalised activations) stays finite: that step is skipped too.
    const double loss = buffers_finite(t.backbone) ? out.loss.value().item()
                                                   : std::numeric_limits<double>::quiet_NaN();
    double share = 1.0;  // of the global batch's images
    if (dp) {
      double agree[2] = {double(n), std::isfinite(loss) ? 0.0 : 1.0};
      dp->comm.sum(agree, 2, "the loss agreement");
      if (agree[1] > 0) {
        r.finite = false;
        continue;
      }
      share = double(n) / agree[0];
      r.images += static_cast<int64_t>(agree[0]);
    } else {
      if (!std::isfinite(loss)) {
        r.finite = false;
        continue;
      }
      r.images += batch->images.dim(0);
    }
    const bool last = micro + 1 == grad_accum;
    // A head whose loss is already the global batch's (Partial FC over several processes) keeps
    // its weight in backward and counts once in the summed loss and accuracy.
    const double weight = out.global_batch ? 1.0 : share;
    const double reported = out.global_batch && dp ? 1.0 / dp->comm.size() : share;
    backward(affine(out.loss, static_cast<float>(weight / double(grad_accum))), Tensor(),
             dp && last ? dp->gradients.hook() : LeafReadyFn());
    r.loss += reported * loss / double(grad_accum);
    r.accuracy += reported * out.accuracy / double(grad_accum);
    seen.push_back({embeddings.value(), batch->labels, out.batch_stats, out.sparse});
  }
  if (!r.finite) {
    restore_buffers(t.backbone, buffers_before);
    return r;
  }
  for (const Seen& b : seen)  // Partial FC: the sampled rows' gradients
    if (b.sparse && b.sparse->rows_weight.grad().defined())
      t.optimizer.add_sparse_rows("head/" + b.sparse->param, b.sparse->rows,
                                  b.sparse->rows_weight.grad());
  if (dp) {
    dp->gradients.finish();
    double means[2] = {r.loss, r.accuracy};  // shares → the global batch's means
    dp->comm.sum(means, 2, "the step's loss");
    r.loss = means[0];
    r.accuracy = means[1];
  }
  if (clip_grad_norm > 0) {
    std::function<double(double)> total_sparse;  // the split class weights' rows of every process
    if (dp && dp->split)
      total_sparse = [dp](double sq) {
        dp->comm.sum(&sq, 1, "the gradient norm");
        return sq;
      };
    t.optimizer.clip_grad_norm(clip_grad_norm, total_sparse);
  }
  r.lr = t.schedule.lr(step);
  t.optimizer.step(r.lr);
  for (const Seen& b : seen) t.head.after_step(b.embeddings, b.labels, b.batch_stats);
  return r;
}

void check_config(const Config& cfg) {
  const TrainSettings s = read_train_settings(cfg);
  Rng rng(0);
  const auto backbone = builtin_backbones().create(s.backbone, s.backbone_params, rng);
  create_head(s.head_type, s.head_params, backbone->embedding_size(), 4, rng);
}

TrainSummary train(const TrainOptions& o) {
  return train(Config::load(o.config_path, o.overrides), o);
}

namespace {

// Everything a run trains and reads, built from its settings (before any resume).
struct Parts {
  std::unique_ptr<Backbone> backbone;
  std::unique_ptr<TrainingSet> data;
  std::unique_ptr<Head> head;
  std::unique_ptr<DataLoader> loader;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<LrSchedule> schedule;
  // train.ema_decay > 0: a second backbone holding the weight average, evaluated and exported.
  std::unique_ptr<Backbone> ema_backbone;
  std::unique_ptr<WeightAverage> ema;
  // Partial FC over several processes: the head's class weights held by rows.
  std::unique_ptr<SplitClassWeights> split;
  int64_t steps_per_epoch = 0, total_steps = 0;

  Backbone& evaluated() { return ema_backbone ? *ema_backbone : *backbone; }
};

Parts assemble(const TrainSettings& s, dist::Communicator& comm) {
  Parts p;
  Rng init_rng(s.seed);
  p.backbone = builtin_backbones().create(s.backbone, s.backbone_params, init_rng);
  p.data = std::make_unique<TrainingSet>(
      TrainingSet::open(s.sources, s.root, static_cast<int>(p.backbone->input_height()),
                        static_cast<int>(p.backbone->input_width()), s.max_identities));
  p.head = create_head(s.head_type, s.head_params, p.backbone->embedding_size(),
                       p.data->num_classes(), init_rng, &comm);
  LoaderConfig loader = s.loader;
  loader.seed = s.seed;
  loader.rank = comm.rank();
  loader.ranks = comm.size();
  p.loader = std::make_unique<DataLoader>(*p.data, loader);
  const int64_t batches_per_epoch = p.loader->batches_per_epoch();
  MF_CHECK(batches_per_epoch >= s.grad_accum, "one epoch has ", batches_per_epoch,
           " batches, fewer than optim.grad_accum = ", s.grad_accum);
  p.steps_per_epoch = batches_per_epoch / s.grad_accum;
  p.total_steps = s.max_steps > 0 ? s.max_steps : s.epochs * p.steps_per_epoch;
  p.optimizer = optimizer_registry().create(s.optimizer, s.optimizer_params,
                                            make_groups(*p.backbone, *p.head, s));
  p.schedule = schedule_registry().create(s.schedule, s.schedule_params, s.lr, p.total_steps);
  auto* partial_fc = dynamic_cast<PartialFcHead*>(p.head.get());
  if (partial_fc && partial_fc->sharded())
    p.split = std::make_unique<SplitClassWeights>(comm, *partial_fc, *p.optimizer);
  if (!s.init.empty()) {  // model.init: start from another run's weights (and head, if the same)
    const CheckpointMeta init_meta = read_checkpoint_meta(s.init);
    const bool same_head = s.init_head && init_meta.head == s.head_type;
    WholeTensors whole{SplitClassWeights::is_split, {}};
    load_checkpoint(s.init, *p.backbone, same_head ? p.head.get() : nullptr, nullptr, nullptr,
                    p.split ? &whole : nullptr);
    if (p.split && same_head) p.split->take_rows(whole);  // every process reads its own rows
  }
  if (s.ema_decay > 0) {
    Rng unused(0);
    p.ema_backbone = builtin_backbones().create(s.backbone, s.backbone_params, unused);
    p.ema = std::make_unique<WeightAverage>(*p.backbone, *p.ema_backbone, s.ema_decay);
    p.ema->reset();  // from the (possibly model.init) starting weights
  }
  return p;
}

// What a resumed run must share with its checkpoint to continue the same run.
std::string data_signature(const TrainSettings& s, const TrainingSet& data) {
  std::string sources;
  for (const auto& src : s.sources) sources += (sources.empty() ? "" : ", ") + src;
  return "sources [" + sources + "], root '" + s.root + "', " + std::to_string(data.num_classes()) +
         " identities, " + std::to_string(data.size()) + " images, batch " +
         std::to_string(s.loader.batch_size) + " x " + std::to_string(s.grad_accum) + ", sampler " +
         s.loader.sampler +
         (s.loader.sampler == "pk"
              ? " (p " + std::to_string(s.loader.p) + ", k " + std::to_string(s.loader.k) + ")"
              : "");
}

// Writes the run's checkpoints: the model, head, optimizer state and identities with their
// /meta. Weights that are not finite are never written; the error names the rollback point.
class Checkpointer {
 public:
  Checkpointer(RunFolder& run, const Parts& parts, const TrainSettings& s, const Config& cfg)
      : run_(run), parts_(parts), keep_(s.keep_checkpoints) {
    meta_.backbone = s.backbone;
    meta_.embedding_size = parts.backbone->embedding_size();
    meta_.width = s.backbone_params.get_double("width", 1.0);
    meta_.input_height = parts.backbone->input_height();
    meta_.input_width = parts.backbone->input_width();
    meta_.head = s.head_type;
    meta_.config = cfg.to_yaml();
    meta_.data_signature = data_signature(s, *parts.data);
  }

  // Loads a checkpoint to continue from; returns its step. A run whose data or batching changed
  // since the checkpoint is refused unless `changed_ok` (--resume-changed).
  int64_t resume(const std::string& path, const TrainSettings& s, bool changed_ok) {
    const CheckpointMeta meta = read_checkpoint_meta(path);
    MF_CHECK(!meta.head.empty(), path,
             ": not a training checkpoint (its /meta names no head: a model-only checkpoint or "
             "an embeddings file?); --resume takes a run's checkpoints/last.h5 or step_N.h5");
    MF_CHECK(meta.backbone == s.backbone && meta.head == s.head_type, path, ": holds a ",
             meta.backbone, " + ", meta.head, " run, the config asks for ", s.backbone, " + ",
             s.head_type);
    MF_CHECK(
        changed_ok || meta.data_signature.empty() || meta.data_signature == meta_.data_signature,
        path, ": the run changed since this checkpoint:\n  checkpoint: ", meta.data_signature,
        "\n  now:        ", meta_.data_signature,
        "\nresuming would not continue the same run; pass --resume-changed to continue anyway");
    WholeTensors whole{SplitClassWeights::is_split, {}};
    load_checkpoint(path, *parts_.backbone, parts_.head.get(), parts_.optimizer.get(), nullptr,
                    parts_.split ? &whole : nullptr);
    loaded_whole_ = std::move(whole.tensors);
    if (parts_.ema) {
      parts_.ema->reset();
      if (!load_weight_average(path, *parts_.ema_backbone))
        std::printf("%s holds no weight average; train.ema_decay starts one from its weights\n",
                    path.c_str());
    }
    meta_.best_score = meta.best_score;
    if (!meta_.best_score) {  // a run folder from before best_score was stored in checkpoints
      double score = 0;
      if (std::ifstream best(fs::path(s.output_dir) / "best_accuracy.txt"); best >> score)
        meta_.best_score = score;
    }
    saved_step_ = meta.step;
    return meta.step;
  }

  int64_t saved_step() const { return saved_step_; }  // the step last.h5 holds, −1 if none

  // Partial FC over several processes: the split tensors read by resume (whole), and the whole
  // tensors gathered for the saves of this step.
  std::map<std::string, Tensor> take_loaded_whole() { return std::move(loaded_whole_); }
  void set_whole(std::map<std::string, Tensor> whole) { whole_ = std::move(whole); }  // {}: drop

  // checkpoints/step_N.h5, made last.h5.
  void save_step(int64_t step) {
    meta_.verification_threshold.reset();
    meta_.verification_threshold_source.clear();
    run_.save_step_checkpoint(step, keep_, [&](const std::string& path) { save(path, step); });
    saved_step_ = step;
  }

  // last.h5 after an evaluation (with LFW's threshold), and best.h5 when `score` is the best.
  void save_evaluated(int64_t step, std::optional<double> threshold, std::optional<double> score) {
    const bool better = score && (!meta_.best_score || *score > *meta_.best_score);
    if (better) meta_.best_score = score;
    meta_.verification_threshold = threshold;
    meta_.verification_threshold_source =
        threshold ? "best 10-fold accuracy threshold of the training's LFW evaluation" : "";
    run_.save_last([&](const std::string& path) { save(path, step); });
    saved_step_ = step;
    if (better) run_.copy_last_to_best();
  }

  // Where a resumed run would start, for messages.
  std::string rollback_point() const {
    return saved_step_ >= 0 ? "the last checkpoint, " + run_.last_checkpoint() + " (step " +
                                  std::to_string(saved_step_) + ", finite weights)"
                            : std::string("no checkpoint (none was written yet)");
  }

 private:
  void save(const std::string& path, int64_t step) {
    std::string first;
    int64_t bad = nonfinite_values(*parts_.backbone, "model/", first) +
                  nonfinite_values(*parts_.head, "head/", first) +
                  (parts_.ema_backbone ? nonfinite_values(*parts_.ema_backbone, "ema/", first) : 0);
    MF_CHECK(!parts_.split || whole_.count("/head/weight"),
             "internal: the split class weights were not gathered for this checkpoint");
    if (parts_.split) {
      const Tensor& all_weights = whole_.at("/head/weight");
      const int64_t here = nonfinite_count(all_weights);
      if (here > 0 && first.empty()) first = "head/weight";
      bad += here;
    }
    MF_CHECK(bad == 0, "the weights became non-finite by step ", step, " (", bad,
             " values, the first in ", first, "); no checkpoint was written. Resuming starts from ",
             rollback_point(),
             ". Try a lower optim.lr, optim.clip_grad_norm, or head.margin_warmup_steps");
    meta_.step = step;
    meta_.epoch = step / parts_.steps_per_epoch;
    CheckpointContents c;
    c.meta = meta_;
    c.model = parts_.backbone.get();
    c.head = parts_.head.get();
    c.optimizer = parts_.optimizer.get();
    c.ema = parts_.ema_backbone.get();
    c.identities = parts_.data->identities();
    if (parts_.split) c.whole = &whole_;
    save_checkpoint(path, c);
  }

  RunFolder& run_;
  const Parts& parts_;
  int64_t keep_;
  CheckpointMeta meta_;
  int64_t saved_step_ = -1;
  std::map<std::string, Tensor> loaded_whole_, whole_;
};

// The run's convolutions (training and its periodic evaluations) use its precision; whatever
// runs after it in this process gets the previous one back.
class ConvPrecisionScope {
 public:
  explicit ConvPrecisionScope(kernels::ConvPrecision p) { kernels::set_conv_precision(p); }
  ~ConvPrecisionScope() { kernels::set_conv_precision(previous_); }

 private:
  kernels::ConvPrecision previous_ = kernels::conv_precision();
};

// model.sync_bn in a data-parallel run: batch norms use the statistics of every process's slice
// for the run (autograd/ops.h set_batch_norm_sync); whatever runs after it gets them per process.
class SyncBatchNormScope {
 public:
  explicit SyncBatchNormScope(dist::Communicator* comm) : on_(comm != nullptr) {
    if (on_)
      set_batch_norm_sync(
          [comm](double* values, int64_t n) { comm->sum(values, n, "SyncBN's statistics"); });
  }
  ~SyncBatchNormScope() {
    if (on_) set_batch_norm_sync(nullptr);
  }

 private:
  bool on_;
};

// `signal`: the signal that stopped the run (on this process or, data-parallel, on any), or 0.
void print_end(const TrainSummary& summary, int64_t first_step, const RunFolder& run, int signal) {
  if (signal)
    std::printf(
        "stopped by signal %d at step %lld; checkpoint saved, continue with --resume auto\n",
        signal, (long long)summary.steps);
  if (summary.steps == first_step)
    std::printf("nothing to train: the run already reached step %lld", (long long)summary.steps);
  else
    std::printf("done: %lld steps in %s (%.1f img/s)", (long long)summary.steps,
                format_duration(summary.wall_seconds).c_str(), summary.images_per_s);
  if (summary.bad_images)
    std::printf(", %lld unreadable images skipped", (long long)summary.bad_images);
  if (summary.skipped_steps)
    std::printf(", %lld steps skipped for a non-finite loss", (long long)summary.skipped_steps);
  std::printf("\ncheckpoints in %s\n", run.checkpoint_dir().c_str());
}

}  // namespace

TrainSummary train(const Config& cfg, const TrainOptions& o) {
  const auto start = Clock::now();
  const StopOnSignal stop_on_signal;
  const TrainSettings s = read_train_settings(cfg);
  // Data-parallel under mpirun (train/data_parallel.h): rank 0 alone owns the run folder (lock,
  // log, checkpoints, evaluation); the others train their slices and follow its state.
  dist::Communicator& comm = dist::world(s.dist_timeout);
  comm.set_timeout(s.dist_timeout);
  const bool parallel = comm.size() > 1, root = comm.is_root();
  set_num_threads(parallel ? threads_per_process(s.threads) : s.threads);
  const ConvPrecisionScope precision(s.precision);
  const SyncBatchNormScope sync_bn(parallel && s.sync_bn ? &comm : nullptr);

  std::optional<RunFolder> run;
  std::string resume;
  if (root) {
    run.emplace(s.output_dir);
    resume = o.resume == "auto" ? (run->has_run() ? run->last_checkpoint() : "") : o.resume;
    MF_CHECK(!resume.empty() || !run->has_run(), "'", s.output_dir, "' already holds a run (",
             run->last_checkpoint(),
             "); continue it with --resume auto, or choose another train.output_dir");
  }
  Parts parts = assemble(s, comm);
  MF_CHECK(parts.loader->batch_size() >= 2 * comm.size(), cfg.source(), ": data.batch_size ",
           parts.loader->batch_size(), " is the global batch of ", comm.size(),
           " processes; each needs at least 2 images (BatchNorm)");
  Trainee trainee{*parts.backbone, *parts.head, *parts.optimizer, *parts.schedule};
  const auto* partial_fc = dynamic_cast<const PartialFcHead*>(parts.head.get());
  const int64_t partial_fc_classes =
      partial_fc ? static_cast<int64_t>(
                       std::ceil(partial_fc->sample_rate() * double(parts.data->num_classes())))
                 : 0;
  std::optional<Checkpointer> checkpoints;
  if (root) checkpoints.emplace(*run, parts, s, cfg);
  int64_t step = 0;
  if (!resume.empty()) {
    step = checkpoints->resume(resume, s, o.resume_changed);
    std::printf("resuming %s at step %lld\n", resume.c_str(), (long long)step);
  }
  std::optional<GradientSync> gradients;
  std::optional<DataParallel> dp;
  if (parallel) {  // every process continues from rank 0's step and state
    comm.broadcast(&step, sizeof step, 0, "the start of training (step from rank 0)");
    std::vector<Module*> modules{parts.backbone.get(), parts.head.get()};
    if (parts.ema_backbone) modules.push_back(parts.ema_backbone.get());
    const Var* split = parts.split ? &parts.split->weight() : nullptr;
    broadcast_from_root(comm, modules, *parts.optimizer, split);
    if (parts.split) {  // the class weights a resumed checkpoint holds whole, to their processes
      double resumed = root && !resume.empty() ? 1.0 : 0.0;
      comm.broadcast(&resumed, sizeof resumed, 0, "the start of training (resume)");
      if (resumed > 0)
        parts.split->scatter(root ? checkpoints->take_loaded_whole()
                                  : std::map<std::string, Tensor>());
    }
    std::vector<Var> params = parts.backbone->parameters();
    for (const Var& p : parts.head->parameters())  // split weights: each process its own rows
      if (!split || p.state() != split->state()) params.push_back(p);
    gradients.emplace(comm, std::move(params), int64_t(s.allreduce_bucket_mb * (1 << 20)),
                      s.allreduce_overlap);
    dp.emplace(DataParallel{comm, *gradients, parts.split.get()});
  }
  double time_before = 0;
  std::optional<TrainingEvaluation> evaluation;
  if (root) {
    run->write_config(cfg.to_yaml());
    // Drops records of steps after the checkpoint (a run stopped between checkpoints; without a
    // checkpoint, every record of a run killed before its first one).
    time_before = run->truncate_log_after(step);
    evaluation.emplace(
        s, parts.backbone->input_width() != parts.backbone->input_height());  // 112×96: crop
  }
  const int64_t total_steps = parts.total_steps, steps_per_epoch = parts.steps_per_epoch;
  if (root)
    std::printf(
        "training %s + %s on %lld images of %lld identities: %lld steps (%lld per epoch), batch "
        "%lld × %lld, %d threads%s%s%s\n",
        s.backbone.c_str(), s.head_type.c_str(), (long long)parts.data->size(),
        (long long)parts.data->num_classes(), (long long)total_steps, (long long)steps_per_epoch,
        (long long)parts.loader->batch_size(), (long long)s.grad_accum, num_threads(),
        s.precision == kernels::ConvPrecision::bf16
            ? (std::string(", bf16 convolutions (") +
               kernels::bf16::name(kernels::bf16::backends().front()) + ")")
                  .c_str()
            : "",
        partial_fc ? (", Partial FC: " + std::to_string(partial_fc_classes) + " of " +
                      std::to_string(parts.data->num_classes()) +
                      " classes per step (or the batch's, if more)" +
                      (parts.split ? ", class weights split over the processes" : ""))
                         .c_str()
                   : "",
        parallel ? (" per process, " + std::to_string(comm.size()) + " processes (" +
                    std::to_string(gradients->buckets()) + " gradient buckets" +
                    (s.sync_bn ? ", SyncBN" : "") + ")")
                       .c_str()
                 : "");

  TrainSummary summary;
  summary.output_dir = s.output_dir;
  parts.backbone->train();
  parts.head->train();
  const int64_t first_step = step;
  Progress progress(first_step, total_steps, s.log_every, o.quiet || !root);
  int64_t epoch = -1, nonfinite_run = 0, updates = 0, images = 0;
  // Partial FC over several processes: before rank 0 saves (`saving`, known there), every
  // process sends its rows of the class weights.
  auto gather_split = [&](bool saving) {
    if (!parts.split) return;
    double any = saving ? 1.0 : 0.0;
    comm.max(&any, 1, "the checkpoint agreement");
    if (any == 0) return;
    auto whole = parts.split->gather();
    if (root) checkpoints->set_whole(std::move(whole));
  };
  int stopped_by = 0;                 // the signal that stopped the run
  bool stop = false, killed = false;  // killed: stop_after, a kill without the final checkpoint
  while (step < total_steps && !stop) {
    // Each epoch holds whole steps: with grad_accum not dividing the batches per epoch, the last
    // batches_per_epoch mod grad_accum batches of an epoch are left out (as the loader leaves out a
    // last partial batch), so no step straddles two epochs.
    const int64_t step_epoch = step / steps_per_epoch;
    if (step_epoch != epoch) {
      epoch = step_epoch;
      parts.loader->start_epoch(epoch, (step % steps_per_epoch) * s.grad_accum);
    }
    const StepResult r = train_step(trainee, *parts.loader, step, s.grad_accum, s.clip_grad_norm,
                                    dp ? &*dp : nullptr);
    if (r.finite && parts.ema) parts.ema->update(step);
    ++step;
    if (r.finite) {
      nonfinite_run = 0;
      ++updates;
      images += r.images;
      StepRecord record{step, step_epoch, r.loss, r.accuracy, r.lr, 0, 0};
      record.images_per_s = progress.count(r.loss, r.accuracy, r.images);
      record.time = time_before + progress.seconds();
      if (root) run->append(record.to_json());
      summary.final_loss = r.loss;
      summary.final_accuracy = r.accuracy;
      progress.report(step, step_epoch, r.lr);
    } else {
      ++summary.skipped_steps;
      if (root)
        std::fprintf(
            stderr,
            "warning: non-finite loss (or running statistics) at step %lld; update skipped\n",
            (long long)step);
      if (++nonfinite_run >= s.max_nonfinite) break;  // to the rollback below, without a save
    }
    const bool last = step == total_steps;
    const bool evaluate = root && evaluation->due(step, last);
    gather_split(root && (step % s.checkpoint_every == 0 || last || evaluate));
    if (root && (step % s.checkpoint_every == 0 || last)) checkpoints->save_step(step);
    if (evaluate) {
      const EvalOutcome e = evaluation->run(parts.evaluated(), step, last);
      for (const auto& record : e.records) run->append(record);
      if (e.lfw) std::tie(summary.lfw_accuracy, summary.lfw_std) = *e.lfw;
      if (!e.targets.empty()) summary.target_accuracy = e.targets;
      checkpoints->save_evaluated(step, e.threshold, e.score);
    }
    if (root) checkpoints->set_whole({});  // rank 0 holds the whole class weights only to save
    if (o.stop_after > 0 && step >= o.stop_after) stop = killed = true;
    double signal = stop_signal();  // a signal to any process stops them all at this step
    if (parallel) comm.max(&signal, 1, "the stop agreement");
    if (signal > 0) {
      stop = true;
      stopped_by = static_cast<int>(signal);
    }
  }

  // Every way out of the loop ends here.
  summary.steps = step;
  summary.bad_images = parts.loader->bad_images();
  summary.wall_seconds = seconds_since(start);
  summary.images_per_s = double(images) / std::max(progress.seconds(), 1e-9);
  // Too many non-finite losses in a row: nothing is saved (the weights never took those updates,
  // but a checkpoint past the failing steps would skip them on resume): roll back.
  MF_CHECK(nonfinite_run < s.max_nonfinite, "the loss was not finite for ", nonfinite_run,
           " steps in a row (steps ", step - nonfinite_run + 1, "-", step,
           "); stopping. Resuming starts from ",
           root ? checkpoints->rollback_point() : "rank 0's last checkpoint",
           ". Try a lower optim.lr, optim.clip_grad_norm, or head.margin_warmup_steps");
  const bool save_at_stop =
      root && checkpoints->saved_step() != step && step > first_step && !killed;
  gather_split(save_at_stop);
  if (save_at_stop) checkpoints->save_step(step);  // stopped by a signal between checkpoints
  summary.finished = step == total_steps;
  if (root) {
    print_end(summary, first_step, *run, stopped_by);
    if (parallel && step > first_step)
      std::printf("gradient allreduce: %.1f ms per step blocked after backward (%s)\n",
                  1e3 * gradients->take_exposed_seconds() / double(step - first_step),
                  s.allreduce_overlap ? "the rest overlapped backward" : "overlap off");
  }
  MF_CHECK(updates > 0 || step == first_step, "every one of the ", step - first_step,
           " steps had a non-finite loss: nothing was learned");
  return summary;
}

}  // namespace mf
