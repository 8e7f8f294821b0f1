#include "apps/face_pipeline.h"

#include <filesystem>

#include "util/error.h"

namespace mf::apps {

std::string detector_path(const std::string& given) {
  MF_CHECK(std::filesystem::is_regular_file(given), "face detector model not found: '", given, "'",
           given == kDefaultDetector ? " (the default, relative to the current directory)" : "",
           "; pass --detector PATH to face_detection_yunet_2022mar.onnx");
  return given;
}

void parse_crop_size(const std::string& size, int* height, int* width) {
  MF_CHECK(size == "112x112" || size == "112x96", "--size must be 112x112 or 112x96 (got '", size,
           "')");
  *height = 112;
  *width = size == "112x96" ? 96 : 112;
}

void add_align_options(Args& args) {
  args.flag("align", "the images are raw photos: detect and align the face first");
  args.option("detector", "YuNet ONNX model (with --align)", kDefaultDetector);
  args.option("pick", "with --align, which face when there are several: largest or center",
              "largest");
}

std::unique_ptr<FaceAligner> make_aligner(const Args& args, int height, int width) {
  if (!args.flag_set("align")) return nullptr;
  AlignOptions options;
  options.height = height;
  options.width = width;
  options.pick = parse_face_pick(args.get("pick"));
  options.center_crop_fallback = false;  // a photo without a face is an error, not a guess
  return std::make_unique<FaceAligner>(detector_path(args.get("detector")), options);
}

std::vector<std::string> take_positionals(std::vector<std::string>& argv,
                                          const std::set<std::string>& flags) {
  std::vector<std::string> options, positionals;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0 && a != "-h") {
      positionals.push_back(a);
      continue;
    }
    options.push_back(a);
    const std::string name = a.substr(2);
    if (a != "-h" && !flags.count(name) && name.find('=') == std::string::npos &&
        i + 1 < argv.size())
      options.push_back(argv[++i]);
  }
  argv = std::move(options);
  return positionals;
}

}  // namespace mf::apps
