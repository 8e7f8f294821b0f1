#include "train/settings.h"

#include <algorithm>
#include <filesystem>

#include "io/config.h"
#include "util/error.h"

namespace mf {

namespace fs = std::filesystem;

const std::vector<std::string>& config_sections() {
  static const std::vector<std::string> sections = {"seed",  "data",     "model", "head",
                                                    "optim", "schedule", "train", "eval"};
  return sections;
}

std::string target_name(const std::string& path) {
  return fs::path(path).stem().string();
}

TrainSettings read_train_settings(const Config& cfg) {
  cfg.check_sections(config_sections());
  TrainSettings s;
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
    s.loader.augment.grayscale =
        static_cast<float>(data.get_double("augment.grayscale", 0.0, 0.0, 1.0));
    s.loader.augment.low_resolution =
        static_cast<float>(data.get_double("augment.low_resolution", 0.0, 0.0, 1.0));
    s.loader.augment.low_resolution_min =
        static_cast<float>(data.get_double("augment.low_resolution_min", 0.25, 0.05, 1.0));
    s.loader.augment.rotation =
        static_cast<float>(data.get_double("augment.rotation", 0.0, 0.0, 45.0));
  }
  data.finish("data");

  Params model = cfg.section("model");
  s.backbone = model.get_string("backbone", "ir50");
  s.init = model.get_string("init", "");
  s.init_head = model.get_bool("init_head", true);
  s.sync_bn = model.get_bool("sync_bn", false);
  s.backbone_params = model.except({"backbone", "init", "init_head", "sync_bn"});
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
  s.ema_decay = train.get_double("ema_decay", 0.0, 0.0, 0.99999);
  s.dist_timeout = train.get_double_open_low("dist_timeout", 600.0, 0.0, 1e6);
  s.allreduce_bucket_mb = train.get_double_open_low("allreduce_bucket_mb", 4.0, 0.0, 4096.0);
  s.allreduce_overlap = train.get_bool("allreduce_overlap", true);
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

}  // namespace mf
