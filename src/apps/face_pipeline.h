// Options shared by the commands that detect and align faces (align, compare, search).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "data/align.h"
#include "util/args.h"

namespace mf::apps {

// The YuNet model's default path, relative to the current directory (the project root).
inline constexpr const char* kDefaultDetector =
    "../shared/data/models/face_detection_yunet_2022mar.onnx";

// `given` when it is a file; otherwise an error naming the path (and saying it is the default).
std::string detector_path(const std::string& given);

// "112x112" or "112x96".
void parse_crop_size(const std::string& size, int* height, int* width);

// compare / search: --align, --detector, --pick (default largest: a photo of one person).
void add_align_options(Args& args);
// The aligner for a backbone's input size when --align was given, else null.
std::unique_ptr<FaceAligner> make_aligner(const Args& args, int height, int width);

// Positional arguments (mf::Args takes options only): removes from `argv` and returns every token
// that is neither an option nor the value of one. Options not in `flags` take the next token as
// their value unless written --name=value.
std::vector<std::string> take_positionals(std::vector<std::string>& argv,
                                          const std::set<std::string>& flags);

}  // namespace mf::apps
