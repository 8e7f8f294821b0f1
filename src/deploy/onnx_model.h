// A model exported by `marginface export`, run through OpenCV dnn, behind the Backbone interface:
// `compare`, `search` and `embed` take `--model model.onnx` and check a deployed model with the
// same code that checks a checkpoint.
//
// forward() takes what every Backbone takes, (N, 3, H, W) RGB (x − 127.5) / 127.5 (see
// layers/backbones/backbone.h), and undoes the normalisation when the graph does it itself
// (input_normalization "in-graph": RGB 0…255 goes in). It returns what the graph returns: the
// raw embedding, or f(x) + f(mirror(x)) when the flip test is baked in (flip_in_graph()).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "layers/backbones/backbone.h"

namespace mf::deploy {

// The "marginface.*" metadata of an ONNX file; errors name the file when it cannot be parsed or is
// not a marginface export.
std::map<std::string, std::string> read_onnx_metadata(const std::string& path);

class OnnxBackbone : public Backbone {
 public:
  // Errors: missing file, not an ONNX model, not ours (no marginface metadata), OpenCV refusing
  // the graph — each naming the file.
  static std::unique_ptr<OnnxBackbone> load(const std::string& path);
  ~OnnxBackbone() override;

  Var forward(const Var& x) override;
  std::vector<StageInfo> stages() const override;

  bool flip_in_graph() const { return flip_in_graph_; }
  bool normalizes_in_graph() const { return normalize_in_graph_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Net;
  OnnxBackbone(const std::string& path, int64_t height, int64_t width, int64_t embedding_size);

  std::string path_;
  std::map<std::string, std::string> metadata_;
  bool normalize_in_graph_ = false, flip_in_graph_ = false;
  int64_t fixed_batch_ = 0;  // 0: dynamic
  std::unique_ptr<Net> net_;
};

}  // namespace mf::deploy
