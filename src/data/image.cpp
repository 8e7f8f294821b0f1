#include "data/image.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <vector>

#include "util/error.h"
#include "util/file.h"

namespace mf {

std::string read_image_bytes(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  MF_CHECK(fs::exists(status), "image not found: ", path);
  MF_CHECK(fs::is_regular_file(status), "not an image file (",
           fs::is_directory(status) ? "a directory" : "not a regular file", "): ", path);
  std::string bytes = read_file(path, "image");
  MF_CHECK(!bytes.empty(), "empty image file: ", path);
  return bytes;
}

namespace {

enum class JpegState { kComplete, kTruncated, kUnparsed };

// Walks a JPEG's marker segments and entropy-coded scans up to the end-of-image marker. libjpeg
// decodes a truncated file with only a warning on stderr and fills the missing rows with grey, so
// without this check a cut-off download would silently become a damaged training or test image.
// Segments (APPn with EXIF thumbnails, tables) are skipped by their length and bytes after the
// end-of-image marker are ignored, so neither can fool the check. Anything that does not parse
// as expected is left to the decoder (kUnparsed).
JpegState jpeg_state(const uint8_t* b, size_t n) {
  size_t i = 2;  // after SOI (FF D8)
  while (true) {
    if (i >= n) return JpegState::kTruncated;
    if (b[i] != 0xFF) return JpegState::kUnparsed;
    while (i < n && b[i] == 0xFF) ++i;  // fill bytes before a marker
    if (i >= n) return JpegState::kTruncated;
    const uint8_t marker = b[i++];
    if (marker == 0xD9) return JpegState::kComplete;                     // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (marker == 0x00) return JpegState::kUnparsed;
    if (i + 2 > n) return JpegState::kTruncated;
    const size_t length = (size_t(b[i]) << 8) | b[i + 1];  // includes its own two bytes
    if (length < 2) return JpegState::kUnparsed;
    if (i + length > n) return JpegState::kTruncated;
    i += length;
    if (marker != 0xDA) continue;
    // Start of scan: entropy-coded data up to the next marker. Inside it FF is followed by 00
    // (a stuffed FF), D0–D7 (restart markers) or more FF (fill); anything else ends the scan.
    while (true) {
      if (i + 1 >= n) return JpegState::kTruncated;
      if (b[i] != 0xFF) {
        ++i;
        continue;
      }
      const uint8_t next = b[i + 1];
      if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
        i += 2;
      } else if (next == 0xFF) {
        ++i;
      } else {
        break;  // b[i] is the FF of the next marker
      }
    }
  }
}

}  // namespace

cv::Mat decode_image(const uint8_t* bytes, size_t size, const std::string& name) {
  MF_CHECK(size > 0, "empty image: ", name);
  if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
    MF_CHECK(jpeg_state(bytes, size) != JpegState::kTruncated,
             "truncated JPEG (the data ends before its end-of-image marker): ", name);
  MF_CHECK(size <= size_t(INT32_MAX), "image too large to decode (", size, " bytes): ", name);
  cv::Mat image;
  try {
    const cv::Mat raw(1, static_cast<int>(size), CV_8U, const_cast<uint8_t*>(bytes));
    image = cv::imdecode(raw, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    MF_FAIL("cannot decode image ", name, ": ", e.what());
  }
  MF_CHECK(!image.empty(), "cannot decode image ", name, " (", size,
           " bytes; corrupt or not an image format OpenCV reads)");
  MF_CHECK(image.type() == CV_8UC3, "image ", name, " decoded to an unexpected pixel type ",
           image.type());
  return image;
}

cv::Mat read_image(const std::string& path) {
  const std::string bytes = read_image_bytes(path);
  return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

bool is_image_file(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (ext.size() < 2) return false;
  const std::string list = std::string(kImageExtensions) + " ";
  return list.find(ext + " ") != std::string::npos;  // ".tif " does not match inside ".tiff "
}

std::vector<std::string> find_images(const std::string& dir) {
  namespace fs = std::filesystem;
  MF_CHECK(fs::is_directory(dir), "not a folder: '", dir, "'");
  std::vector<std::string> rel;
  const fs::path root(dir);
  for (const auto& e :
       fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink))
    if (e.is_regular_file() && is_image_file(e.path().string()))
      rel.push_back(e.path().lexically_relative(root).generic_string());
  std::sort(rel.begin(), rel.end());
  return rel;
}

namespace {
// Rows [top, top + height) and columns [left, left + width) of an 8-bit BGR image, normalised.
void crop_to_face(const cv::Mat& image, int top, int left, int height, int width, float* out) {
  const int64_t plane = int64_t(height) * width;
  float* r = out;
  float* g = out + plane;
  float* b = out + 2 * plane;
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = image.ptr<uint8_t>(top + y) + 3 * left;  // B, G, R per pixel
    const int64_t base = int64_t(y) * width;
    for (int x = 0; x < width; ++x) {
      b[base + x] = (float(row[3 * x + 0]) - 127.5f) / 127.5f;
      g[base + x] = (float(row[3 * x + 1]) - 127.5f) / 127.5f;
      r[base + x] = (float(row[3 * x + 2]) - 127.5f) / 127.5f;
    }
  }
}
}  // namespace

void bgr_to_face(const cv::Mat& bgr, float* out) {
  MF_CHECK(!bgr.empty() && bgr.type() == CV_8UC3, "bgr_to_face expects an 8-bit BGR image");
  crop_to_face(bgr, 0, 0, bgr.rows, bgr.cols, out);
}

namespace {
void face_from_image(const cv::Mat& image, const std::string& name, int height, int width,
                     float* out, const LoadFaceOptions& options) {
  const int h = image.rows, w = image.cols;
  int top = 0, left = 0;
  if (h != height || w != width) {
    MF_CHECK(options.crop_center, "image ", name, " is ", h, "x", w, " (height x width), expected ",
             height, "x", width, "; align it to that size first");
    MF_CHECK(h >= height && w >= width && (h - height) % 2 == 0 && (w - width) % 2 == 0, "image ",
             name, " is ", h, "x", w, " (height x width), expected ", height, "x", width,
             " or larger by an even number of pixels in each direction for a centre crop");
    top = (h - height) / 2;
    left = (w - width) / 2;
  }
  crop_to_face(image, top, left, height, width, out);
}
}  // namespace

void load_face_into(const std::string& path, int height, int width, float* out,
                    const LoadFaceOptions& options) {
  MF_CHECK(height > 0 && width > 0, "load_face: invalid expected size ", height, "x", width,
           " for ", path);
  face_from_image(read_image(path), path, height, width, out, options);
}

void decode_face_into(const uint8_t* bytes, size_t size, const std::string& name, int height,
                      int width, float* out, const LoadFaceOptions& options) {
  MF_CHECK(height > 0 && width > 0, "decode_face: invalid expected size ", height, "x", width,
           " for ", name);
  face_from_image(decode_image(bytes, size, name), name, height, width, out, options);
}

Tensor load_face(const std::string& path, int height, int width, const LoadFaceOptions& options) {
  MF_CHECK(height > 0 && width > 0, "load_face: invalid expected size ", height, "x", width,
           " for ", path);
  Tensor t = Tensor::empty(Shape{3, height, width});
  load_face_into(path, height, width, t.data(), options);
  return t;
}

Tensor horizontal_flip(const Tensor& images) {
  MF_CHECK(images.defined() && (images.rank() == 3 || images.rank() == 4),
           "horizontal_flip expects (C, H, W) or (N, C, H, W), got ",
           images.defined() ? images.shape().str() : std::string("an undefined tensor"));
  const int64_t width = images.dim(-1);
  Tensor out = Tensor::empty(images.shape());
  if (width == 0) return out;
  const int64_t rows = images.numel() / width;
  const float* src = images.data();
  float* dst = out.data();
  for (int64_t row = 0; row < rows; ++row) {
    const float* s = src + row * width;
    float* d = dst + row * width;
    for (int64_t x = 0; x < width; ++x) d[x] = s[width - 1 - x];
  }
  return out;
}

}  // namespace mf
