// The image decode path every reader shares (folders, packs, .bin, .rec): bytes → BGR image →
// a face tensor. Only mf::Error may come out.
#include <cstdint>
#include <opencv2/core.hpp>
#include <vector>

#include "data/image.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const cv::Mat image = mf::decode_image(data, size, "fuzz");
    if (image.rows == 112 && image.cols == 112) {
      std::vector<float> face(3 * 112 * 112);
      mf::bgr_to_face(image, face.data());
    }
  } catch (const mf::Error&) {
  }
  return 0;
}
