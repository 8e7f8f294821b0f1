// Checkpoints: one HDF5 file, written atomically (temporary file, fsync, rename), every tensor
// with a Fletcher-32 checksum that HDF5 verifies when it is read.
//
// Layout (format_version 1):
//   /model/<state_dict key>      backbone tensors, PyTorch names and shapes (module_io.h)
//   /head/<name>                 head tensors: "weight" (K, D), "bias", "s", "centers" (optional)
//   /optimizer/<kind>/<param>    optimizer state by parameter name ("momentum/model/fc.weight";
//                                AdamW adds "step")                                      (optional)
//   /identities                  class index → identity name (strings)                  (optional)
//   /meta attributes: format_version, backbone, embedding_size, width, input_size (H, W), step,
//                     epoch, head, config (the resolved YAML), verification_threshold (when stored)
// A file with only /model and /meta (backbone, embedding_size) is enough for embed and eval.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/module_io.h"
#include "layers/backbones/backbone.h"
#include "layers/module.h"
#include "tensor/tensor.h"

namespace mf {

class Optimizer;

struct CheckpointMeta {
  static constexpr int64_t kFormatVersion = 1;
  std::string backbone;  // registry name, e.g. "ir50"
  int64_t embedding_size = 512;
  double width = 1.0;
  int64_t input_height = 112, input_width = 112;
  int64_t step = 0, epoch = 0;
  std::string head;    // head type, empty when no head is stored
  std::string config;  // resolved YAML of the run
  std::optional<double> verification_threshold;
  std::string verification_threshold_source;  // how it was chosen (e.g. "FAR 0.001 on …")
  // Training runs: the best evaluation score of the run up to this checkpoint (best.h5's score),
  // so a resumed run keeps choosing best.h5 by the same standard.
  std::optional<double> best_score;
  // Training runs: what the run trained on and how it batched (sources, identity and image
  // counts, batch settings), so a resume can refuse a changed run.
  std::string data_signature;
};

struct CheckpointContents {
  CheckpointMeta meta;
  const Module* model = nullptr;         // required
  const Module* head = nullptr;          // optional
  const Optimizer* optimizer = nullptr;  // optional
  const Module* ema = nullptr;           // optional: the weight average (train.ema_decay), /ema
  std::vector<std::string> identities;   // optional
  // Partial FC over several processes: the whole of tensors held split ("/head/weight",
  // "/optimizer/momentum/head/weight"), written in place of the process's part.
  const std::map<std::string, Tensor>* whole = nullptr;
};

void save_checkpoint(const std::string& path, const CheckpointContents& contents);

// Reads /meta; errors name the file and the missing attribute (a truncated file is reported as
// such, never a crash).
CheckpointMeta read_checkpoint_meta(const std::string& path);

// Loads what the pointers ask for: the model always, the head and optimizer state when given
// (an error if the file has none), and fills identities when non-null. Head and optimizer
// tensors that `whole` wants are read into it instead (Partial FC over several processes).
void load_checkpoint(const std::string& path, Module& model, Module* head = nullptr,
                     Optimizer* optimizer = nullptr, std::vector<std::string>* identities = nullptr,
                     WholeTensors* whole = nullptr);

// Loads the weight average (/ema, written by runs with train.ema_decay) into `average`; false,
// with `average` untouched, when the checkpoint holds none.
bool load_weight_average(const std::string& path, Module& average);

// The backbone a checkpoint was trained with (/meta backbone, width, embedding_size), its weights
// loaded from /model, or from /ema (the weight average) when the run kept one. Errors name the
// file and, for a missing or misshapen tensor, the tensor.
std::unique_ptr<Backbone> load_backbone(const std::string& checkpoint);

// Writes /meta verification_threshold and verification_threshold_source (how it was chosen) into
// an existing checkpoint (atomically).
void store_verification_threshold(const std::string& path, double threshold,
                                  const std::string& source);

}  // namespace mf
