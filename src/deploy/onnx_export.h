// ONNX export of a backbone (`marginface export`): the graph of one eval-mode forward pass, traced
// op by op (autograd/var.h OpTracer), written with Debian's ONNX library and checked with
// onnx::checker. Runs as-is in OpenCV dnn (readNetFromONNX, FaceRecognizerSF).
//
// Op mapping (ours → ONNX; anything else is an error naming the op and its module):
//   conv2d → Conv          batch_norm → BatchNormalization   batch_norm_prelu → BN + PRelu
//   prelu → PRelu          relu/sigmoid → Relu/Sigmoid       add/sub/mul → Add/Sub/Mul
//   linear → Gemm(transB)  global_avg_pool → GlobalAveragePool  max_pool2d → MaxPool
//   reshape → Flatten (to rows) or Reshape (batch kept)       affine → Mul + Add
//   l2_normalize → LpNormalization(p = 2)
// BatchNorm stays a node (OpenCV fuses it into the convolution when it loads the model); the
// values equal `embed`'s to float rounding.
//
// Graph extras, all optional:
//   normalize_in_graph  the input is an RGB image in 0…255, (x − 127.5) / 127.5 inside the graph,
//                       and 112×112 faces are centre-cropped to a 112×96 backbone (SphereFace-20):
//                       what cv::FaceRecognizerSF::feature feeds a model.
//   flip_sum            f(x) + f(mirror(x)), insightface's flip test, the mirror as a MatMul with
//                       a permutation matrix (exact); the backbone's nodes appear twice, its
//                       weights once.
//   l2norm              the output divided by its L2 norm; otherwise the raw embedding, as
//                       insightface ships its models (normalise outside).
// The model's metadata_props carry how to feed it (keys "marginface.*", see kMetadataKeys in the
// .cpp); OnnxBackbone (deploy/onnx_model.h) reads them back.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "layers/backbones/backbone.h"

namespace mf::deploy {

struct OnnxExportOptions {
  int opset = 13;     // 11…17 (ONNX 1.12's range from 11 on)
  int64_t batch = 0;  // 0: dynamic batch dimension "N"
  bool normalize_in_graph = false;
  bool flip_sum = false;
  bool l2norm = false;
  // Extra metadata_props, e.g. {"marginface.backbone", "ir50"}, {"marginface.checkpoint", …}.
  std::map<std::string, std::string> metadata;
};

struct OnnxExportSummary {
  std::string input_name, output_name;
  std::string input_shape;    // "N×3×112×112"
  std::string input_meaning;  // how to fill it
  std::string output_meaning;
  int64_t nodes = 0, initializers = 0, weights = 0;  // weights: float values stored
  int64_t file_bytes = 0;
};

// Traces `backbone` (put in eval mode, restored after) and writes the ONNX model to `path`
// atomically. Errors: an op with no mapping (names the op, its module and its position), an
// option out of range, a model that fails onnx::checker, an unwritable path.
OnnxExportSummary export_onnx(Backbone& backbone, const std::string& path,
                              const OnnxExportOptions& options);

}  // namespace mf::deploy
