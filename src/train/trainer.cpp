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
#include "eval/embed.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "layers/backbones/registry.h"
#include "losses/head.h"
#include "optim/optimizer.h"
#include "tensor/kernels/gemm_bf16.h"
#include "tensor/parallel.h"
#include "util/error.h"
#include "util/json.h"

namespace mf {

namespace fs = std::filesystem;

const std::vector<std::string>& config_sections() {
  static const std::vector<std::string> sections = {"seed",  "data",     "model", "head",
                                                    "optim", "schedule", "train", "eval"};
  return sections;
}

namespace {

using Clock = std::chrono::steady_clock;

// SIGINT / SIGTERM ask the loop to stop after the current step, with a checkpoint.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void request_stop(int signal) {
  g_stop_signal = signal;
}

// Installs the handlers for the lifetime of a train() call, restoring the previous ones after.
class StopOnSignal {
 public:
  StopOnSignal() {
    g_stop_signal = 0;
    old_int_ = std::signal(SIGINT, request_stop);
    old_term_ = std::signal(SIGTERM, request_stop);
  }
  ~StopOnSignal() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600),
                (long long)(s / 60 % 60), (long long)(s % 60));
  return buf;
}

// Everything the run needs, read and validated from the config before any work starts.
struct Settings {
  uint64_t seed = 0;
  // data
  std::vector<std::string> sources;
  std::string root;
  int64_t max_identities = 0;
  LoaderConfig loader;
  // model
  std::string backbone;
  Params backbone_params;
  std::string init;
  // head
  std::string head_type;
  Params head_params;
  // optim
  std::string optimizer;
  Params optimizer_params;
  double lr = 0.1, weight_decay = 5e-4, head_lr_mult = 1.0, clip_grad_norm = 0.0;
  bool no_decay_bn_bias = true;
  int64_t grad_accum = 1;
  // schedule
  std::string schedule;
  Params schedule_params;
  // train
  int64_t epochs = 1, max_steps = 0, checkpoint_every = 1000, keep_checkpoints = 3, log_every = 10;
  int threads = 0;
  kernels::ConvPrecision precision = kernels::ConvPrecision::fp32;
  std::string output_dir;
  int64_t max_nonfinite = 20;
  // eval
  std::string lfw_pairs, lfw_root, lfw_flip = "sum";
  int64_t lfw_every = 0;
  int lfw_batch = 64;
  bool lfw_skip_missing = false;
  // eval.targets: .bin validation packs and/or LFW pair files (root eval.root), every
  // eval.every_steps; best.h5 follows eval.best ("mean" or a target's name).
  std::vector<std::string> targets;
  std::string targets_root, targets_flip = "sum", best = "mean";
  int64_t targets_every = 0;
  int targets_batch = 64;
};

// A target's name in logs and eval.best: the file name without extension (lfw.bin → "lfw",
// pairs.txt → "pairs").
std::string target_name(const std::string& path) {
  return fs::path(path).stem().string();
}

Settings read_settings(const Config& cfg) {
  cfg.check_sections(config_sections());
  Settings s;
  s.seed = static_cast<uint64_t>(cfg.section("").get_int("seed", 0, 0));

  Params data = cfg.section("data");
  s.sources = data.get_list("train");
  MF_CHECK(!s.sources.empty(), cfg.source(), ": data.train must list at least one training source");
  s.root = data.get_string("root", "");
  s.loader.batch_size = data.get_int("batch_size", 64, 1, 1 << 20);
  s.loader.shuffle = data.get_bool("shuffle", true);
  s.loader.threads = static_cast<int>(data.get_int("loader_threads", 2, 1, 256));
  s.loader.sampler = data.get_string("sampler", "random", {"random", "pk"});
  s.loader.p = data.get_int("p", 16, 2, 1 << 20);
  s.loader.k = data.get_int("k", 4, 2, 1 << 20);
  s.loader.fail_on_bad_image = data.get_string("on_bad_image", "skip", {"skip", "fail"}) == "fail";
  s.max_identities = data.get_int("max_identities", 0, 0);
  if (data.has("augment")) {
    data.get_string("augment", "none", {"none"});
  } else {
    s.loader.augment.flip = data.get_bool("augment.flip", false);
    s.loader.augment.crop = static_cast<int>(data.get_int("augment.crop", 0, 0, 64));
    s.loader.augment.color_jitter =
        static_cast<float>(data.get_double("augment.color_jitter", 0.0, 0.0, 0.9));
  }
  data.finish("data");

  Params model = cfg.section("model");
  s.backbone = model.get_string("backbone", "ir50");
  s.init = model.get_string("init", "");
  s.backbone_params = model.except({"backbone", "init"});
  model.finish("model");

  Params head = cfg.section("head");
  s.head_type = head.get_string("type", "arcface");
  s.head_params = head.except({"type"});
  head.finish("head");

  Params optim = cfg.section("optim");
  s.optimizer = optim.get_string("type", "sgd");
  s.lr = optim.get_double_open_low("lr", 0.1, 0.0, 100.0);
  s.weight_decay = optim.get_double("weight_decay", 5e-4, 0.0, 1.0);
  s.no_decay_bn_bias = optim.get_bool("no_decay_bn_bias", true);
  s.head_lr_mult = optim.get_double("head_lr_mult", 1.0, 0.0, 1000.0);
  s.clip_grad_norm = optim.get_double("clip_grad_norm", 0.0, 0.0, 1e9);
  s.grad_accum = optim.get_int("grad_accum", 1, 1, 4096);
  s.optimizer_params = optim.except({"type", "lr", "weight_decay", "no_decay_bn_bias",
                                     "head_lr_mult", "clip_grad_norm", "grad_accum"});
  optim.finish("optim");

  Params schedule = cfg.section("schedule");
  s.schedule = schedule.get_string("type", "poly");
  s.schedule_params = schedule.except({"type"});
  schedule.finish("schedule");

  Params train = cfg.section("train");
  s.epochs = train.get_int("epochs", 1, 0, 1 << 20);
  s.max_steps = train.get_int("max_steps", 0, 0);
  MF_CHECK(s.epochs > 0 || s.max_steps > 0, cfg.source(), ": set train.epochs or train.max_steps");
  s.output_dir = train.get_string("output_dir", "runs/default");
  s.checkpoint_every = train.get_int("checkpoint_every", 1000, 1);
  s.keep_checkpoints = train.get_int("keep_checkpoints", 3, 1);
  s.log_every = train.get_int("log_every", 10, 1);
  s.threads = static_cast<int>(train.get_int("threads", 0, 0, 1024));
  s.precision =
      kernels::parse_conv_precision(train.get_string("precision", "fp32", {"fp32", "bf16"}));
  std::string why;
  MF_CHECK(s.precision == kernels::ConvPrecision::fp32 || kernels::bf16::available(&why),
           cfg.source(), ": train.precision: bf16 is not available here: ", why);
  s.max_nonfinite = train.get_int("max_nonfinite_steps", 20, 1);
  train.finish("train");

  Params eval = cfg.section("eval");
  s.lfw_pairs = eval.get_string("lfw.pairs", "");
  s.lfw_root = eval.get_string("lfw.root", "");
  s.lfw_every = eval.get_int("lfw.every", 0, 0);
  s.lfw_flip = eval.get_string("lfw.flip", "sum", {"off", "sum", "concat"});
  s.lfw_batch = static_cast<int>(eval.get_int("lfw.batch_size", 64, 1, 4096));
  s.lfw_skip_missing = eval.get_bool("lfw.skip_missing", false);
  MF_CHECK(s.lfw_pairs.empty() || !s.lfw_root.empty(), cfg.source(),
           ": eval.lfw.pairs needs eval.lfw.root");
  if (eval.has("targets")) s.targets = eval.get_list("targets");
  s.targets_root = eval.get_string("root", "");
  s.targets_every = eval.get_int("every_steps", 0, 0);
  s.targets_flip = eval.get_string("flip", "sum", {"off", "sum", "concat"});
  s.targets_batch = static_cast<int>(eval.get_int("batch_size", 64, 1, 4096));
  s.best = eval.get_string("best", "mean");
  std::vector<std::string> names;
  for (const auto& t : s.targets) {
    const std::string n = target_name(t);
    MF_CHECK(std::find(names.begin(), names.end(), n) == names.end(), cfg.source(),
             ": eval.targets: two targets are named '", n,
             "' (names are file names without "
             "extension)");
    MF_CHECK(fs::path(t).extension() == ".bin" || !s.targets_root.empty(), cfg.source(),
             ": eval.targets: the pair list ", t, " needs eval.root (its image root)");
    names.push_back(n);
  }
  MF_CHECK(s.best == "mean" || std::find(names.begin(), names.end(), s.best) != names.end(),
           cfg.source(), ": eval.best must be 'mean' or one of the targets' names, got '", s.best,
           "'");
  eval.finish("eval");
  return s;
}

// Parameters with their checkpoint names; 1-D ones (biases, BatchNorm, PReLU, scales) without
// weight decay when no_decay_bn_bias is set.
std::vector<ParamGroup> make_groups(const Module& backbone, const Module& head, const Settings& s) {
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

// A resumed run repeats the steps after its checkpoint: drop their records (written before the
// run was killed) so log.jsonl holds each step once. Records are one JSON object per line with
// "step" first. Returns the training time the last kept step record carries (0 if none).
double truncate_log(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return 0;
  double time = 0;
  std::vector<std::string> kept;
  std::string line;
  while (std::getline(in, line)) {
    const auto key = line.find("\"step\":");
    if (key == std::string::npos) continue;  // a torn last line from the kill
    const int64_t step = std::atoll(line.c_str() + key + 7);
    if (step > last_step || line.back() != '}') continue;
    kept.push_back(line);
    const auto t = line.find("\"time\":");
    if (t != std::string::npos) time = std::atof(line.c_str() + t + 7);
  }
  in.close();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& l : kept) out << l << '\n';
  }
  fs::rename(tmp, path);
  return time;
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  MF_CHECK(out.good(), "cannot write '", path, "'");
  out << line << '\n';
}

}  // namespace

void check_config(const Config& cfg) {
  const Settings s = read_settings(cfg);
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
  Settings s = read_settings(cfg);
  set_num_threads(s.threads);
  // The run's convolutions (training and its periodic evaluations) use its precision; whatever
  // runs after it in this process gets the previous one back.
  const kernels::ConvPrecision previous_precision = kernels::conv_precision();
  kernels::set_conv_precision(s.precision);
  struct RestorePrecision {
    kernels::ConvPrecision p;
    ~RestorePrecision() { kernels::set_conv_precision(p); }
  } restore_precision{previous_precision};

  const fs::path out_dir(s.output_dir), ck_dir = out_dir / "checkpoints";
  std::string resume = o.resume;
  if (resume == "auto")
    resume = fs::exists(ck_dir / "last.h5") ? (ck_dir / "last.h5").string() : "";
  MF_CHECK(!resume.empty() || !fs::exists(ck_dir / "last.h5"), "'", s.output_dir,
           "' already holds a run (", (ck_dir / "last.h5").string(),
           "); continue it with --resume auto, or choose another train.output_dir");
  fs::create_directories(ck_dir);

  // Model and head.
  Rng init_rng(s.seed);
  std::unique_ptr<Backbone> backbone =
      builtin_backbones().create(s.backbone, s.backbone_params, init_rng);
  TrainingSet data =
      TrainingSet::open(s.sources, s.root, static_cast<int>(backbone->input_height()),
                        static_cast<int>(backbone->input_width()), s.max_identities);
  const bool crop_center =
      backbone->input_width() != backbone->input_height();  // 112×96 from 112×112
  std::unique_ptr<Head> head = head_registry().create(
      s.head_type, s.head_params, backbone->embedding_size(), data.num_classes(), init_rng);
  if (!s.init.empty()) {
    const CheckpointMeta init_meta = read_checkpoint_meta(s.init);
    load_checkpoint(s.init, *backbone, init_meta.head == s.head_type ? head.get() : nullptr);
  }

  s.loader.seed = s.seed;
  DataLoader loader(data, s.loader);
  const int64_t batches_per_epoch = loader.batches_per_epoch();
  MF_CHECK(batches_per_epoch >= s.grad_accum, "one epoch has ", batches_per_epoch,
           " batches, fewer than optim.grad_accum = ", s.grad_accum);
  const int64_t steps_per_epoch = batches_per_epoch / s.grad_accum;
  const int64_t total_steps = s.max_steps > 0 ? s.max_steps : s.epochs * steps_per_epoch;

  auto optimizer = optimizer_registry().create(s.optimizer, s.optimizer_params,
                                               make_groups(*backbone, *head, s));
  auto schedule = schedule_registry().create(s.schedule, s.schedule_params, s.lr, total_steps);

  int64_t step = 0;
  double best_accuracy = -1;
  if (!resume.empty()) {
    const CheckpointMeta meta = read_checkpoint_meta(resume);
    MF_CHECK(meta.backbone == s.backbone && meta.head == s.head_type, resume, ": holds a ",
             meta.backbone, " + ", meta.head, " run, the config asks for ", s.backbone, " + ",
             s.head_type);
    load_checkpoint(resume, *backbone, head.get(), optimizer.get());
    step = meta.step;
    std::ifstream best(out_dir / "best_accuracy.txt");
    if (best) best >> best_accuracy;
    std::printf("resuming %s at step %lld\n", resume.c_str(), (long long)step);
  }

  { std::ofstream(out_dir / "config.yaml") << cfg.to_yaml(); }
  const std::string log_path = (out_dir / "log.jsonl").string();
  double time_before = 0;  // training seconds of earlier segments of a resumed run
  if (!resume.empty()) time_before = truncate_log(log_path, step);

  std::unique_ptr<eval::PairList> lfw;
  if (!s.lfw_pairs.empty())
    lfw = std::make_unique<eval::PairList>(eval::read_lfw_pairs(s.lfw_pairs, s.lfw_root));
  std::vector<std::pair<std::string, eval::PairList>> targets;  // (name, pairs)
  for (const auto& t : s.targets)
    targets.emplace_back(target_name(t), fs::path(t).extension() == ".bin"
                                             ? eval::read_bin_pairs(t)
                                             : eval::read_lfw_pairs(t, s.targets_root));

  CheckpointMeta meta;
  meta.backbone = s.backbone;
  meta.embedding_size = backbone->embedding_size();
  meta.width = s.backbone_params.get_double("width", 1.0);
  meta.input_height = backbone->input_height();
  meta.input_width = backbone->input_width();
  meta.head = s.head_type;
  meta.config = cfg.to_yaml();

  auto save = [&](const std::string& path, std::optional<double> threshold = std::nullopt) {
    meta.step = step;
    meta.epoch = step / steps_per_epoch;
    meta.verification_threshold = threshold;
    CheckpointContents c;
    c.meta = meta;
    c.model = backbone.get();
    c.head = head.get();
    c.optimizer = optimizer.get();
    c.identities = data.identities();
    save_checkpoint(path, c);
  };

  // checkpoints/step_N.h5, copied to last.h5; only the newest keep_checkpoints step files stay.
  auto save_step_checkpoint = [&]() {
    const fs::path path = ck_dir / ("step_" + std::to_string(step) + ".h5");
    save(path.string());
    fs::copy_file(path, ck_dir / "last.h5.tmp", fs::copy_options::overwrite_existing);
    fs::rename(ck_dir / "last.h5.tmp", ck_dir / "last.h5");
    std::vector<std::pair<int64_t, fs::path>> steps;
    for (const auto& e : fs::directory_iterator(ck_dir)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("step_", 0) == 0 && e.path().extension() == ".h5")
        steps.emplace_back(std::stoll(n.substr(5)), e.path());
    }
    std::sort(steps.begin(), steps.end());
    for (size_t i = 0; i + s.keep_checkpoints < steps.size(); ++i) fs::remove(steps[i].second);
  };

  TrainSummary summary;
  summary.output_dir = s.output_dir;
  // Saves the score's checkpoint as best.h5 when it beats the best so far.
  auto keep_if_best = [&](double score) {
    if (score <= best_accuracy) return;
    best_accuracy = score;
    fs::copy_file(ck_dir / "last.h5", ck_dir / "best.h5.tmp", fs::copy_options::overwrite_existing);
    fs::rename(ck_dir / "best.h5.tmp", ck_dir / "best.h5");
    std::ofstream(out_dir / "best_accuracy.txt") << best_accuracy << '\n';
  };
  auto evaluate = [&]() {
    eval::PairEvalOptions options;
    options.embed.batch_size = s.lfw_batch;
    options.embed.flip = s.lfw_flip;
    options.embed.crop_center = crop_center;
    options.skip_missing = s.lfw_skip_missing;
    const auto t0 = Clock::now();
    eval::PairEvaluation e = eval::evaluate_pairs(*backbone, *lfw, options);
    const auto& r = e.result;
    std::printf(
        "[eval] step %lld  LFW %s  accuracy %.4f ± %.4f  AUC %.4f  EER %.4f  TAR@FAR=1e-3 %.4f  "
        "(%.0f s)\n",
        (long long)step, lfw->protocol.c_str(), r.accuracy_mean, r.accuracy_std, r.auc, r.eer,
        r.tar_at_far.empty() ? 0.0 : r.tar_at_far[0].tar, seconds_since(t0));
    json::Value rec = json::Value::object();
    rec.set("step", json::Value(step));
    rec.set("eval", eval::to_json(r, {lfw->protocol, s.lfw_flip, "", e.missing}));
    append_line(log_path, rec.dump(-1));
    summary.lfw_accuracy = r.accuracy_mean;
    summary.lfw_std = r.accuracy_std;
    save((ck_dir / "last.h5").string(), r.threshold_mean());
    if (targets.empty()) keep_if_best(r.accuracy_mean);  // otherwise eval.best decides
  };
  // eval.targets: one record per target ({"step", "target", "eval"}), one progress line for all,
  // best.h5 by eval.best.
  auto evaluate_targets = [&]() {
    eval::PairEvalOptions options;
    options.embed.batch_size = s.targets_batch;
    options.embed.flip = s.targets_flip;
    options.embed.crop_center = crop_center;
    const auto t0 = Clock::now();
    std::string line = "[eval] step " + std::to_string(step);
    double sum = 0, chosen = 0;
    char buf[128];
    for (const auto& [name, list] : targets) {
      const eval::PairEvaluation e = eval::evaluate_pairs(*backbone, list, options);
      const auto& r = e.result;
      json::Value rec = json::Value::object();
      rec.set("step", json::Value(step));
      rec.set("target", json::Value(name));
      rec.set("eval", eval::to_json(r, {list.protocol, s.targets_flip, "", e.missing}));
      append_line(log_path, rec.dump(-1));
      std::snprintf(buf, sizeof buf, "  %s %.4f ± %.4f", name.c_str(), r.accuracy_mean,
                    r.accuracy_std);
      line += buf;
      sum += r.accuracy_mean;
      if (name == s.best) chosen = r.accuracy_mean;
      summary.target_accuracy.emplace_back(name, r.accuracy_mean);
    }
    const double mean = sum / double(targets.size());
    if (s.best == "mean") chosen = mean;
    std::snprintf(buf, sizeof buf, "  mean %.4f  (%.0f s)", mean, seconds_since(t0));
    std::printf("%s%s\n", line.c_str(), buf);
    std::fflush(stdout);
    save((ck_dir / "last.h5").string());  // best.h5 copies last.h5: make it this step's
    keep_if_best(chosen);
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
  int64_t nonfinite_run = 0;
  int64_t epoch = -1;
  double window_loss = 0, window_acc = 0, window_images = 0;
  int64_t window_steps = 0;
  auto window_start = Clock::now();
  const auto train_start = Clock::now();
  const int64_t first_step = step;
  int64_t images_total = 0;

  while (step < total_steps) {
    // Each epoch holds whole steps: with grad_accum not dividing the batches per epoch, the last
    // batches_per_epoch mod grad_accum batches of an epoch are left out (as the loader leaves out a
    // last partial batch), so no step straddles two epochs.
    const int64_t step_epoch = step / steps_per_epoch;
    const int64_t batch_no = (step % steps_per_epoch) * s.grad_accum;  // within the epoch
    if (step_epoch != epoch) {
      epoch = step_epoch;
      loader.start_epoch(epoch, batch_no);
    }
    optimizer->zero_grad();
    double step_loss = 0, step_acc = 0;
    int64_t step_images = 0;
    bool finite = true;
    std::vector<std::pair<Tensor, Labels>> seen;  // embeddings for after_step (center loss)
    for (int64_t micro = 0; micro < s.grad_accum; ++micro) {
      std::optional<Batch> batch = loader.next();
      MF_CHECK(batch.has_value(), "internal: the loader ran out of batches within an epoch");
      // After a non-finite loss the step's remaining batches are still drawn, so the loader stays
      // at step × grad_accum and a resumed run sees the same batches.
      if (!finite || batch->labels.size() < 2) continue;  // < 2: everything unreadable
      Var embeddings = backbone->forward(Var(batch->images));
      HeadOutput out = head->forward(embeddings, batch->labels, {step});
      const double loss = out.loss.value().item();
      if (!std::isfinite(loss)) {
        finite = false;
        continue;
      }
      backward(affine(out.loss, 1.0f / static_cast<float>(s.grad_accum)));
      step_loss += loss / s.grad_accum;
      step_acc += out.accuracy / s.grad_accum;
      step_images += batch->images.dim(0);
      seen.emplace_back(embeddings.value(), batch->labels);
    }
    if (!finite) {
      // Skip the update: the weights stay as they were; too many in a row stops the run.
      ++summary.skipped_steps;
      MF_CHECK(++nonfinite_run < s.max_nonfinite, "the loss was not finite for ", nonfinite_run,
               " steps in a row at step ", step, "; stopping (the last checkpoint is intact). ",
               "Try a lower optim.lr, optim.clip_grad_norm, or head.margin_warmup_steps");
      std::fprintf(stderr, "warning: non-finite loss at step %lld; update skipped\n",
                   (long long)step);
      ++step;
      continue;
    }
    nonfinite_run = 0;
    if (s.clip_grad_norm > 0) optimizer->clip_grad_norm(s.clip_grad_norm);
    const double lr = schedule->lr(step);
    optimizer->step(lr);
    for (auto& [emb, labels] : seen) head->after_step(emb, labels);
    ++step;
    images_total += step_images;

    window_loss += step_loss;
    window_acc += step_acc;
    window_images += static_cast<double>(step_images);
    ++window_steps;
    const double elapsed = seconds_since(window_start);
    json::Value rec = json::Value::object();
    rec.set("step", json::Value(step));
    rec.set("epoch", json::Value(step_epoch));
    rec.set("loss", json::Value(step_loss));
    rec.set("acc", json::Value(step_acc));
    rec.set("lr", json::Value(lr));
    rec.set("images_per_s", json::Value(window_images / std::max(elapsed, 1e-9)));
    rec.set("time", json::Value(time_before + seconds_since(train_start)));
    append_line(log_path, rec.dump(-1));
    summary.final_loss = step_loss;
    summary.final_accuracy = step_acc;
    if (step % s.log_every == 0 || step == total_steps) {
      const double rate = window_images / std::max(elapsed, 1e-9);
      const double done = double(step - first_step), left = double(total_steps - step);
      const double eta = done > 0 ? seconds_since(train_start) / done * left : 0;
      if (!o.quiet)
        std::printf(
            "step %lld/%lld  epoch %lld  loss %.4f  acc %.3f  lr %.5f  %.1f img/s  ETA %s\n",
            (long long)step, (long long)total_steps, (long long)step_epoch,
            window_loss / window_steps, window_acc / window_steps, lr, rate,
            format_duration(eta).c_str());
      std::fflush(stdout);
      window_loss = window_acc = window_images = 0;
      window_steps = 0;
      window_start = Clock::now();
    }
    const bool last = step == total_steps;
    if (step % s.checkpoint_every == 0 || last) save_step_checkpoint();
    if (lfw && ((s.lfw_every > 0 && step % s.lfw_every == 0) || last)) evaluate();
    if (!targets.empty() && ((s.targets_every > 0 && step % s.targets_every == 0) || last)) {
      summary.target_accuracy.clear();
      evaluate_targets();
    }
    if (o.stop_after > 0 && step >= o.stop_after) break;
    if (g_stop_signal) {
      if (step % s.checkpoint_every != 0 && !last) save_step_checkpoint();
      std::printf(
          "stopped by signal %d at step %lld; checkpoint saved, continue with "
          "--resume auto\n",
          int(g_stop_signal), (long long)step);
      break;
    }
  }

  summary.steps = step;
  summary.finished = step == total_steps;
  summary.bad_images = loader.bad_images();
  summary.wall_seconds = seconds_since(start);
  summary.images_per_s = images_total / std::max(seconds_since(train_start), 1e-9);
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
  std::printf("\ncheckpoints in %s\n", ck_dir.string().c_str());
  return summary;
}

}  // namespace mf
