#include "deploy/onnx_model.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <opencv2/dnn.hpp>

#include "util/error.h"
#include "util/file.h"

namespace mf::deploy {

struct OnnxBackbone::Net {
  cv::dnn::Net net;
};

namespace {
const std::string& required(const std::map<std::string, std::string>& meta, const std::string& key,
                            const std::string& path) {
  auto it = meta.find(key);
  MF_CHECK(it != meta.end(), path, ": metadata '", key,
           "' missing; re-export the model with this version of marginface export");
  return it->second;
}

int64_t parse_count(const std::string& text, const std::string& key, const std::string& path) {
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  MF_FAIL(path, ": metadata '", key, "' = '", text, "' is not a positive count");
}
}  // namespace

namespace {
// The marginface.* metadata of an ONNX model held in `bytes` (read from `path`).
std::map<std::string, std::string> metadata_of(const std::string& bytes, const std::string& path) {
  onnx::ModelProto model;
  MF_CHECK(model.ParseFromString(bytes), path, ": not an ONNX model (protobuf parse failed)");
  MF_CHECK(model.has_graph() && model.graph().node_size() > 0, path,
           ": not an ONNX model (no graph)");
  std::map<std::string, std::string> meta;
  for (const auto& kv : model.metadata_props())
    if (kv.key().rfind("marginface.", 0) == 0) meta[kv.key()] = kv.value();
  MF_CHECK(!meta.empty(), path,
           ": an ONNX model, but not one marginface exported (no marginface.* metadata); its "
           "input layout and normalisation are unknown. Export with `marginface export`");
  return meta;
}
}  // namespace

std::map<std::string, std::string> read_onnx_metadata(const std::string& path) {
  MF_CHECK(std::filesystem::is_regular_file(path), "ONNX model ", path, " not found");
  return metadata_of(read_file(path, "ONNX model"), path);
}

OnnxBackbone::OnnxBackbone(const std::string& path, int64_t height, int64_t width,
                           int64_t embedding_size)
    : Backbone(height, width, embedding_size), path_(path), net_(std::make_unique<Net>()) {}

OnnxBackbone::~OnnxBackbone() = default;

std::unique_ptr<OnnxBackbone> OnnxBackbone::load(const std::string& path) {
  MF_CHECK(std::filesystem::is_regular_file(path), "ONNX model ", path, " not found");
  const std::string bytes = read_file(path, "ONNX model");  // read once: metadata and network
  std::map<std::string, std::string> meta = metadata_of(bytes, path);
  const std::string& version = required(meta, "marginface.format_version", path);
  MF_CHECK(version == "1", path, ": export format version ", version,
           " is newer than this marginface reads (1)");
  // "Nx3x112x112" or "32x3x112x112"
  const std::string& shape = required(meta, "marginface.input_shape", path);
  int64_t dims[4] = {0, 0, 0, 0};
  {
    size_t start = 0;
    for (int i = 0; i < 4; ++i) {
      const size_t end = shape.find('x', start);
      const std::string part = shape.substr(start, end == std::string::npos ? end : end - start);
      dims[i] = i == 0 && part == "N" ? 0 : parse_count(part, "marginface.input_shape", path);
      MF_CHECK(i == 3 || end != std::string::npos, path, ": metadata marginface.input_shape '",
               shape, "' is not NxCxHxW");
      start = end + 1;
    }
  }
  MF_CHECK(dims[1] == 3, path, ": input has ", dims[1], " channels, expected 3");
  const int64_t D = parse_count(required(meta, "marginface.embedding_size", path),
                                "marginface.embedding_size", path);
  std::unique_ptr<OnnxBackbone> model(new OnnxBackbone(path, dims[2], dims[3], D));
  model->fixed_batch_ = dims[0];
  model->normalize_in_graph_ = required(meta, "marginface.input_normalization", path) == "in-graph";
  model->flip_in_graph_ = required(meta, "marginface.flip", path) == "sum";
  model->metadata_ = std::move(meta);
  try {
    model->net_->net = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
  } catch (const cv::Exception& e) {
    MF_FAIL(path, ": OpenCV dnn cannot read this model: ", e.what());
  }
  MF_CHECK(!model->net_->net.empty(), path, ": OpenCV dnn read an empty network");
  return model;
}

Var OnnxBackbone::forward(const Var& x) {
  check_input(x, "ONNX model");
  const int64_t N = x.dim(0), H = input_height(), W = input_width(), D = embedding_size();
  const int64_t image = 3 * H * W;
  const int64_t chunk = fixed_batch_ > 0 ? fixed_batch_ : std::max<int64_t>(N, 1);
  Tensor out = Tensor::empty({N, D});
  for (int64_t first = 0; first < N; first += chunk) {
    const int64_t n = std::min(chunk, N - first);
    // A fixed-batch graph takes exactly its batch: the tail is padded with zeros.
    const int64_t rows = fixed_batch_ > 0 ? fixed_batch_ : n;
    const int blob_dims[4] = {int(rows), 3, int(H), int(W)};
    cv::Mat blob(4, blob_dims, CV_32F, cv::Scalar(0));
    float* dst = blob.ptr<float>();
    const float* src = x.value().data() + first * image;
    if (normalize_in_graph_) {  // undo (v − 127.5) / 127.5: the graph takes 0…255
      for (int64_t i = 0; i < n * image; ++i) dst[i] = src[i] * 127.5f + 127.5f;
    } else {
      std::memcpy(dst, src, sizeof(float) * n * image);
    }
    cv::Mat y;
    try {
      net_->net.setInput(blob);
      y = net_->net.forward();
    } catch (const cv::Exception& e) {
      MF_FAIL(path_, ": OpenCV dnn failed on a batch of ", rows, ": ", e.what());
    }
    MF_CHECK(y.total() == size_t(rows * D) && y.type() == CV_32F, path_, ": the model returned ",
             y.total(), " values for ", rows, " images, expected ", rows, "x", D);
    const cv::Mat yc = y.isContinuous() ? y : y.clone();
    std::memcpy(out.data() + first * D, yc.ptr<float>(), sizeof(float) * n * D);
  }
  return Var(out);
}

std::vector<StageInfo> OnnxBackbone::stages() const {
  return {StageInfo{.name = "onnx",
                    .summary = path_ + " (OpenCV dnn)",
                    .output = Shape{embedding_size()},
                    .parameters = 0,
                    .macs = 0}};
}

}  // namespace mf::deploy
