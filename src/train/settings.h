// The training settings: every key of a training config (configs/reference.yaml documents each),
// read and validated before any work starts. Errors name the config file, line and key.
#pragma once

#include <string>
#include <vector>

#include "data/loader.h"
#include "tensor/kernels/gemm_bf16.h"
#include "util/params.h"

namespace mf {

class Config;

// Everything a run needs, read from its config.
struct TrainSettings {
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
  bool init_head = true;  // model.init_head: also take the head from model.init when types match
  bool sync_bn = false;   // model.sync_bn: BatchNorm statistics over every process of the run
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
  double ema_decay = 0.0;  // 0: off; otherwise the weight average's decay (train/weight_average.h)
  // Data-parallel runs (mpirun): the bound on any wait for the other processes, in seconds; the
  // gradient buckets' size; whether their allreduce overlaps backward (off: all after backward).
  double dist_timeout = 600.0, allreduce_bucket_mb = 4.0;
  bool allreduce_overlap = true;
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

TrainSettings read_train_settings(const Config& config);

// A target's name in logs and eval.best: the file name without extension (lfw.bin → "lfw",
// pairs.txt → "pairs").
std::string target_name(const std::string& path);

// Keys of the reference config (configs/reference.yaml documents each one).
const std::vector<std::string>& config_sections();

}  // namespace mf
