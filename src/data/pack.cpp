#include "data/pack.h"

#include <cstdio>
#include <cstring>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/dataset.h"
#include "tensor/hdf5.h"
#include "util/error.h"

namespace mf {

PackSummary pack_folders(const std::vector<std::string>& inputs, const std::string& output, int height,
                         int width) {
  MF_CHECK(!inputs.empty(), "pack: no input folders");
  // The folder reader gives the same identity numbering as training from the folders would.
  TrainingSet set(height, width);
  for (const auto& in : inputs) set.add(open_folder_source(in, false));
  PackSummary summary;
  const int64_t image_bytes = int64_t(height) * width * 3;
  std::vector<uint8_t> images;
  images.reserve(set.size() * image_bytes);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < set.size(); ++i) {
    const std::string path = set.name_of(i);
    cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
    std::string problem;
    if (bgr.empty()) problem = "cannot decode";
    else if (bgr.rows != height || bgr.cols != width)
      problem = "size " + std::to_string(bgr.rows) + "x" + std::to_string(bgr.cols) + ", expected " +
                std::to_string(height) + "x" + std::to_string(width);
    if (!problem.empty()) {
      ++summary.skipped;
      if (summary.skipped_examples.size() < 5) summary.skipped_examples.push_back(path + ": " + problem);
      std::fprintf(stderr, "warning: skipping %s (%s)\n", path.c_str(), problem.c_str());
      continue;
    }
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    const uint8_t* p = rgb.ptr<uint8_t>(0);
    images.insert(images.end(), p, p + image_bytes);  // cv::Mat from imread is continuous
    labels.push_back(set.label(i));
  }
  summary.images = static_cast<int64_t>(labels.size());
  summary.identities = set.num_classes();
  MF_CHECK(summary.images > 0, "pack: no readable images in the inputs");
  h5::write_atomically(output, [&](h5::File& f) {
    f.write_uint8("/images", images.data(), {summary.images, height, width, 3});
    f.write_int64("/labels", labels);
    f.write_strings("/identities", set.identities());
  });
  return summary;
}

}  // namespace mf
