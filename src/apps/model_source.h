// The model behind compare, search and embed: a checkpoint (--checkpoint ck.h5) or a model
// exported by `marginface export` (--model model.onnx, run through OpenCV dnn), so a deployed
// model is checked with the same commands and code as the checkpoint it came from.
#pragma once

#include <memory>
#include <string>

#include "io/checkpoint.h"
#include "util/args.h"

namespace mf::apps {

struct EmbeddingModel {
  std::unique_ptr<Backbone> backbone;
  // For --model: backbone name and stored operating point from the export's metadata.
  CheckpointMeta meta;
  std::string path;            // the file given
  bool flip_in_graph = false;  // exported with --flip-sum: the graph returns f(x) + f(mirror x)

  // The flip EmbedOptions must run for the user's --flip: "off" when the graph sums the flip
  // itself and "sum" was asked; an error for "off" or "concat" on such a graph.
  std::string flip_to_run(const std::string& requested) const;
};

// --checkpoint and --model (exactly one of them is required).
void add_model_options(Args& args);
EmbeddingModel load_embedding_model(const Args& args);

// --precision (fp32 | bf16) and --winograd: the convolution kernels of the commands that run a
// model forward (embed, eval, bench). apply_* sets them for the process, or says why it cannot.
void add_conv_kernel_options(Args& args, const std::string& precision_help);
void apply_conv_kernel_options(const Args& args);

}  // namespace mf::apps
