#include "support/faces.h"

#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tensor/rng.h"
#include "util/error.h"

namespace mf::test {

namespace fs = std::filesystem;

std::string write_face(const std::string& path, unsigned seed) {
  cv::Mat noise(112, 112, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
  cv::Mat smooth;
  cv::GaussianBlur(noise, smooth, cv::Size(0, 0), 2.0);
  cv::normalize(smooth, smooth, 0, 255, cv::NORM_MINMAX);
  fs::create_directories(fs::path(path).parent_path());
  MF_CHECK(cv::imwrite(path, smooth), "test: cannot write ", path);
  return path;
}

void make_people(const fs::path& root, const std::vector<std::string>& names, int per_identity,
                 uint64_t seed, PeopleStyle style) {
  Rng rng(seed);
  for (size_t id = 0; id < names.size(); ++id) {
    fs::create_directories(root / names[id]);
    for (int j = 0; j < per_identity; ++j) {
      cv::Mat img(112, 112, CV_8UC3);
      for (int y = 0; y < 112; ++y)
        for (int x = 0; x < 112; ++x)
          for (int c = 0; c < 3; ++c)
            img.at<cv::Vec3b>(y, x)[c] = cv::saturate_cast<uchar>(
                style.contrast * int(id) * ((x / 28 + y / 28 + c) % 2) + 40 + rng.uniform(0, 30));
      char file[96];
      if (style.lfw_names)
        std::snprintf(file, sizeof file, "%s_%04d.jpg", names[id].c_str(), j + 1);
      else
        std::snprintf(file, sizeof file, "%d.png", j);
      cv::imwrite((root / names[id] / file).string(), img);
    }
  }
}

fs::path make_faces(const fs::path& root) {
  make_people(root, {"id0", "id1", "id2", "id3"}, 6, 5);
  return root;
}

}  // namespace mf::test
