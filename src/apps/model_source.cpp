#include "apps/model_source.h"

#include "deploy/onnx_model.h"
#include "tensor/kernels/gemm_bf16.h"
#include "tensor/kernels/winograd.h"
#include "util/error.h"

namespace mf::apps {

void add_model_options(Args& args) {
  args.option("checkpoint", "model checkpoint (.h5); or --model", "");
  args.option("model", "ONNX model written by `marginface export` (run by OpenCV dnn)", "");
}

EmbeddingModel load_embedding_model(const Args& args) {
  const bool checkpoint = args.has("checkpoint"), model = args.has("model");
  MF_CHECK(checkpoint != model, checkpoint
                                    ? "give --checkpoint or --model, not both"
                                    : "--checkpoint ck.h5 or --model model.onnx is required");
  EmbeddingModel out;
  if (checkpoint) {
    out.path = args.get("checkpoint");
    out.meta = read_checkpoint_meta(out.path);
    out.backbone = load_backbone(out.path);
    return out;
  }
  out.path = args.get("model");
  auto onnx = deploy::OnnxBackbone::load(out.path);
  const auto& meta = onnx->metadata();
  auto text = [&](const char* key) {
    auto it = meta.find(key);
    return it == meta.end() ? std::string() : it->second;
  };
  out.meta.backbone = text("marginface.backbone");
  out.meta.embedding_size = onnx->embedding_size();
  out.meta.input_height = onnx->input_height();
  out.meta.input_width = onnx->input_width();
  if (!text("marginface.verification_threshold").empty()) {
    try {
      out.meta.verification_threshold = std::stod(text("marginface.verification_threshold"));
    } catch (const std::exception&) {
      MF_FAIL(out.path, ": metadata marginface.verification_threshold '",
              text("marginface.verification_threshold"), "' is not a number");
    }
    out.meta.verification_threshold_source = text("marginface.verification_threshold_source");
  }
  out.flip_in_graph = onnx->flip_in_graph();
  out.backbone = std::move(onnx);
  return out;
}

std::string EmbeddingModel::flip_to_run(const std::string& requested) const {
  if (!flip_in_graph) return requested;
  MF_CHECK(requested == "sum", path,
           " has the flip test built in (exported with --flip-sum), so it gives --flip sum only, "
           "not '",
           requested, "'; export without --flip-sum for other flips");
  return "off";
}

void add_conv_kernel_options(Args& args, const std::string& precision_help) {
  args.option("precision", precision_help, "fp32");
  args.flag("winograd",
            "3x3 stride-1 convolutions by Winograd F(4x4,3x3): fewer multiplies, approximate "
            "(about 1e-6 of the products' scale; tolerance and LFW effect in "
            "docs/performance.md); inference only");
}

void apply_conv_kernel_options(const Args& args) {
  const kernels::ConvPrecision precision = kernels::parse_conv_precision(args.get("precision"));
  MF_CHECK(!args.has("winograd") || precision == kernels::ConvPrecision::fp32,
           "--winograd runs fp32 convolutions; it cannot be combined with --precision ",
           args.get("precision"));
  // An ONNX model runs on OpenCV dnn's own kernels, which neither option reaches: refuse rather
  // than run exact fp32 while the user believes otherwise.
  MF_CHECK(
      !args.has("model") || (!args.has("winograd") && precision == kernels::ConvPrecision::fp32),
      "--model runs the ONNX graph through OpenCV dnn, which --winograd and --precision bf16 "
      "do not reach; give the checkpoint it was exported from (--checkpoint) for them");
  kernels::set_conv_precision(precision);
  kernels::winograd::set_enabled(args.has("winograd"));
}

}  // namespace mf::apps
