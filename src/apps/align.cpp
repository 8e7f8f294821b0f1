// `marginface align --in DIR --out DIR [--size 112x112|112x96] [--pick center|largest] ...`
#include "data/align.h"

#include <chrono>
#include <cstdio>

#include "apps/commands.h"
#include "apps/face_pipeline.h"
#include "util/args.h"
#include "util/error.h"

namespace mf::apps {

int run_align(const std::vector<std::string>& argv) {
  Args args(
      "align",
      "Aligns the faces in a folder of photos (recursively) into a mirrored folder of crops:\n"
      "YuNet face detection, the face nearest the centre (or the largest), a least-squares\n"
      "similarity transform (Umeyama) of its 5 landmarks onto the ArcFace template, warpAffine\n"
      "with border 0. Writes OUT/alignment-report.txt listing every image not aligned\n"
      "normally.");
  args.option("in", "folder of photos", "", true);
  args.option("out", "output folder (created; must not lie inside --in)", "", true);
  args.option("size", "crop size: 112x112 (ArcFace) or 112x96 (SphereFace)", "112x112");
  args.option("pick", "which face when there are several: center (LFW, CelebA) or largest",
              "center");
  args.option("detector", "YuNet ONNX model", kDefaultDetector);
  args.option("threshold", "detector score threshold", "0.9");
  args.option("retry-threshold", "threshold of a second try when none reaches --threshold", "0.7");
  args.option("fallback", "without a face: center-crop (resize the centre) or skip", "center-crop");
  args.flag("png", "write PNG instead of JPEG (quality 95)");
  if (!args.parse(argv)) return 0;

  AlignFolderOptions options;
  parse_crop_size(args.get("size"), &options.align.height, &options.align.width);
  options.align.pick = parse_face_pick(args.get("pick"));
  options.align.threshold = args.get_double("threshold");
  options.align.retry_threshold = args.get_double("retry-threshold");
  const std::string fallback = args.get("fallback");
  MF_CHECK(fallback == "center-crop" || fallback == "skip",
           "--fallback must be center-crop or skip (got '", fallback, "')");
  options.align.center_crop_fallback = fallback == "center-crop";
  options.detector = detector_path(args.get("detector"));
  options.png = args.flag_set("png");

  const auto start = std::chrono::steady_clock::now();
  const AlignFolderSummary s = align_folder(args.get("in"), args.get("out"), options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "%lld images in %.1f s: %lld aligned (%lld only at the retry threshold %g), %lld "
      "fell back to a centre crop, %lld skipped (no face), %lld unreadable\n",
      (long long)s.images, seconds, (long long)s.aligned, (long long)s.retried,
      options.align.retry_threshold, (long long)s.fell_back, (long long)s.skipped,
      (long long)s.unreadable);
  int shown = 0;
  for (const std::string& line : s.report) {
    if (line.find("retry threshold") != std::string::npos) continue;
    if (shown++ == 10) {
      std::printf("  ...\n");
      break;
    }
    std::printf("  %s\n", line.c_str());
  }
  std::printf("report: %s\n", s.report_path.c_str());
  return 0;
}

}  // namespace mf::apps
