// `marginface export --checkpoint ck.h5 --out model.onnx`: the checkpoint's backbone as an ONNX
// graph that OpenCV dnn (readNetFromONNX, FaceRecognizerSF) runs as-is (deploy/onnx_export.h).
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "deploy/onnx_export.h"
#include "io/checkpoint.h"
#include "util/args.h"
#include "util/error.h"

namespace mf::apps {

int run_export(const std::vector<std::string>& argv) {
  Args args(
      "export",
      "ONNX export: marginface export --checkpoint ck.h5 --out model.onnx\n"
      "Writes the checkpoint's backbone (eval mode, BatchNorm with its running statistics)\n"
      "as an ONNX graph, checked with onnx::checker. The output is the raw embedding\n"
      "(normalise it yourself, as insightface's models) unless --l2norm is given.\n"
      "--normalize in-graph makes the input RGB pixels in 0..255, which is what\n"
      "cv::FaceRecognizerSF feeds: FaceRecognizerSF::create(\"model.onnx\", \"\") then works\n"
      "with its own alignCrop and feature. Check an export with\n"
      "`marginface compare|search|embed --model model.onnx`.");
  args.option("checkpoint", "model checkpoint (.h5)", "", true);
  args.option("out", "ONNX file to write", "", true);
  args.option("opset", "ONNX opset, 11..17", "13");
  args.option("batch", "batch dimension: dynamic, or a fixed count", "dynamic");
  args.option("normalize", "none: input (x - 127.5) / 127.5 RGB; in-graph: input RGB 0..255",
              "none");
  args.flag("flip-sum", "bake the flip test in: output f(x) + f(mirror(x))");
  args.flag("l2norm", "L2-normalise the output inside the graph");
  if (!args.parse(argv)) return 0;
  args.check_outputs_are_not_inputs({"out"}, {"checkpoint"});

  deploy::OnnxExportOptions options;
  options.opset = args.get_int("opset", 11, 17);
  const std::string batch = args.get("batch");
  if (batch != "dynamic") {
    options.batch = args.get_int("batch", 1, 1 << 20);
  }
  const std::string normalize = args.get("normalize");
  MF_CHECK(normalize == "none" || normalize == "in-graph",
           "--normalize must be none or in-graph, "
           "got '",
           normalize, "'");
  options.normalize_in_graph = normalize == "in-graph";
  options.flip_sum = args.flag_set("flip-sum");
  options.l2norm = args.flag_set("l2norm");

  const std::string checkpoint = args.get("checkpoint");
  const std::string out = args.get("out");
  const CheckpointMeta meta = read_checkpoint_meta(checkpoint);
  auto backbone = load_backbone(checkpoint);
  options.metadata["marginface.backbone"] = meta.backbone;
  options.metadata["marginface.width"] = std::to_string(meta.width);
  options.metadata["marginface.checkpoint"] = std::filesystem::path(checkpoint).filename().string();
  options.metadata["marginface.checkpoint_step"] = std::to_string(meta.step);
  if (meta.verification_threshold) {
    options.metadata["marginface.verification_threshold"] =
        std::to_string(*meta.verification_threshold);
    options.metadata["marginface.verification_threshold_source"] =
        meta.verification_threshold_source;
  }

  const deploy::OnnxExportSummary s = deploy::export_onnx(*backbone, out, options);
  std::printf("wrote %s (%.1f MB, opset %d, %lld nodes, %lld weights)\n", out.c_str(),
              s.file_bytes / 1e6, options.opset, static_cast<long long>(s.nodes),
              static_cast<long long>(s.weights));
  std::printf("  input  '%s' %s float32: %s\n", s.input_name.c_str(), s.input_shape.c_str(),
              s.input_meaning.c_str());
  std::printf("  output '%s' %sx%lld float32: %s\n", s.output_name.c_str(),
              options.batch > 0 ? batch.c_str() : "N",
              static_cast<long long>(backbone->embedding_size()), s.output_meaning.c_str());
  if (meta.verification_threshold)
    std::printf("  stored operating point: cosine %.4f (%s), in the model's metadata\n",
                *meta.verification_threshold, meta.verification_threshold_source.c_str());
  return 0;
}

}  // namespace mf::apps
