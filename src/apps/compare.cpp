// `marginface compare --checkpoint ck.h5 IMAGE_A IMAGE_B [--align] [--threshold T]`: 1:1
// verification — cosine similarity of the two embeddings, "same" when it exceeds the threshold.
#include <cstdio>

#include "apps/commands.h"
#include "apps/decision_threshold.h"
#include "apps/face_pipeline.h"
#include "apps/model_source.h"
#include "eval/search.h"
#include "tensor/parallel.h"
#include "util/args.h"
#include "util/error.h"

namespace mf::apps {

int run_compare(const std::vector<std::string>& argv_in) {
  Args args("compare",
            "1:1 verification: marginface compare --checkpoint ck.h5 IMAGE_A IMAGE_B [--align]\n"
            "Embeds both faces (flip test-time augmentation), prints their cosine similarity and\n"
            "\"same\" when it exceeds the threshold: --threshold, or --threshold-at-far with the\n"
            "--calibration report of `marginface eval --json`, else the checkpoint's stored one\n"
            "(`marginface eval --store-threshold` or `--store-threshold-at-far`).\n"
            "Without --align the images must be aligned 112x112 crops. --model model.onnx runs an\n"
            "export of `marginface export` through OpenCV dnn instead of a checkpoint.");
  add_model_options(args);
  add_threshold_options(args);
  args.option("flip", "flip test-time augmentation: off, sum, concat", "sum");
  add_align_options(args);
  args.option("threads", "threads (0 = OMP_NUM_THREADS or all cores)", "0");
  std::vector<std::string> argv = argv_in;
  const std::vector<std::string> images = take_positionals(argv, {"align", "help"});
  if (!args.parse(argv)) return 0;
  MF_CHECK(images.size() == 2, "compare takes exactly two images, got ", images.size(),
           " (marginface compare --checkpoint ck.h5 IMAGE_A IMAGE_B)");
  set_num_threads(args.get_int("threads", 0, 1024));  // 0: all cores

  EmbeddingModel model = load_embedding_model(args);
  const DecisionThreshold decision = *resolve_threshold(args, model.meta, model.path, true);
  Backbone* backbone = model.backbone.get();
  auto aligner = make_aligner(args, static_cast<int>(backbone->input_height()),
                              static_cast<int>(backbone->input_width()));
  eval::EmbedOptions options;
  options.flip = model.flip_to_run(args.get("flip"));
  options.crop_center = backbone->input_width() != backbone->input_height();
  const eval::Embeddings e = eval::embed_files(*backbone, images, options, aligner.get());
  MF_CHECK(e.num_failed() == 0, e.errors.front());
  const int64_t D = e.rows.dim(1);
  const double score = eval::cosine_similarity(e.rows.data(), e.rows.data() + D, D);
  std::printf("similarity %.4f (cosine, flip %s)\n", score, args.get("flip").c_str());
  std::printf("%s (threshold %.4f from %s)\n", score > decision.value ? "same" : "different",
              decision.value, decision.source.c_str());
  return 0;
}

}  // namespace mf::apps
