#include "data/pack.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/dataset.h"
#include "data/image.h"
#include "data/recordio.h"
#include "h5/file.h"
#include "util/error.h"
#include "util/json.h"

namespace mf {

namespace {

// "" when the image is height × width, otherwise what is wrong with its size.
std::string size_problem(const cv::Mat& image, int height, int width) {
  if (image.rows == height && image.cols == width) return "";
  return "size " + std::to_string(image.rows) + "x" + std::to_string(image.cols) + ", expected " +
         std::to_string(height) + "x" + std::to_string(width);
}

// Counts a skipped image, keeps the first few as examples and warns.
void skip(PackSummary& summary, const std::string& path, const std::string& problem) {
  ++summary.skipped;
  if (summary.skipped_examples.size() < 5)
    summary.skipped_examples.push_back(path + ": " + problem);
  std::fprintf(stderr, "warning: skipping %s (%s)\n", path.c_str(), problem.c_str());
}

}  // namespace

PackSummary pack_folders(const std::vector<std::string>& inputs, const std::string& output,
                         int height, int width) {
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
    // read_image, not cv::imread: the same checks as training (truncated JPEGs, which imread
    // half-decodes with a warning; OpenCV's own exceptions, e.g. a 100000×100000 header, become
    // one skipped file instead of stopping the pack).
    cv::Mat bgr;
    std::string problem;
    try {
      bgr = read_image(path);
      problem = size_problem(bgr, height, width);
    } catch (const Error& e) {
      problem = e.what();
    }
    if (!problem.empty()) {
      skip(summary, path, problem);
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

PackSummary pack_folders_rec(const std::vector<std::string>& inputs, const std::string& prefix,
                             int height, int width) {
  namespace fs = std::filesystem;
  MF_CHECK(!inputs.empty(), "pack: no input folders");
  TrainingSet set(height, width);
  for (const auto& in : inputs) set.add(open_folder_source(in, false));
  const std::string rec_path = prefix + ".rec";
  const fs::path folder = fs::path(rec_path).parent_path();
  if (!folder.empty()) fs::create_directories(folder);
  recordio::Writer writer(rec_path);
  PackSummary summary;
  const int64_t K = set.num_classes();
  std::vector<std::pair<int64_t, int64_t>> ranges(K, {-1, -1});  // per identity [first, end) key
  uint64_t key = 1;
  for (int64_t i = 0; i < set.size(); ++i) {
    const std::string path = set.name_of(i);
    std::string bytes, problem;
    try {
      bytes = read_image_bytes(path);
      problem = size_problem(
          decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path), height,
          width);
    } catch (const Error& e) {
      problem = e.what();
    }
    if (!problem.empty()) {
      skip(summary, path, problem);
      continue;
    }
    const int64_t label = set.label(i);
    recordio::Header h;
    h.label = static_cast<float>(label);
    h.id = key;
    // The image's own bytes, not a re-encoding: the pack decodes to exactly the folder's pixels.
    writer.write(key, recordio::make_payload(h, reinterpret_cast<const uint8_t*>(bytes.data()),
                                             bytes.size()));
    if (ranges[label].first < 0) ranges[label].first = static_cast<int64_t>(key);
    ranges[label].second = static_cast<int64_t>(key) + 1;
    ++key;
  }
  summary.images = static_cast<int64_t>(key) - 1;
  summary.identities = K;
  MF_CHECK(summary.images > 0, "pack: no readable images in the inputs");
  const uint64_t first_identity_key = key, end_key = key + uint64_t(K);
  MF_CHECK(end_key < (1u << 24), "pack: ", end_key,
           " records exceed the 2^24 keys that "
           "insightface's float32 meta labels can address exactly");
  for (int64_t k = 0; k < K; ++k) {
    recordio::Header h;
    h.id = first_identity_key + uint64_t(k);
    int64_t a = ranges[k].first, b = ranges[k].second;
    if (a < 0) a = b = static_cast<int64_t>(first_identity_key);  // every image skipped
    h.labels = {static_cast<float>(a), static_cast<float>(b)};
    writer.write(h.id, recordio::make_payload(h, nullptr, 0));
  }
  recordio::Header meta;
  meta.labels = {static_cast<float>(first_identity_key), static_cast<float>(end_key)};
  writer.write(0, recordio::make_payload(meta, nullptr, 0));
  std::string names;
  for (const auto& n : set.identities()) names += n + "\n";
  json::write_file(fs::path(rec_path).replace_extension(".names").string(), names);
  json::write_file(
      (folder / "property").string(),
      std::to_string(K) + "," + std::to_string(height) + "," + std::to_string(width) + "\n");
  writer.finish(recordio::index_path_of(rec_path));
  return summary;
}

}  // namespace mf
