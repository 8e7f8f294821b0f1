// Face images as network input, in insightface's convention: OpenCV decodes BGR, the channels are
// swapped to RGB and every value x in 0…255 becomes (x − 127.5) / 127.5 in [−1, 1]. Greyscale files
// become three equal channels (cv::IMREAD_COLOR); an alpha channel is dropped.
//
// Images must already be aligned to the expected size (see ../shared/data/README.md). The one
// exception is opt-in: `crop_center` cuts a larger image down to the expected size around its
// centre, which is how a 112×112 ArcFace crop becomes a 112×96 SphereFace crop (the 112×96
// template is the 112×112 one shifted 8 px, so the crop drops 8 columns on each side).
//
// Every failure — a missing file, a directory, an empty, truncated or undecodable file, a size
// other than expected — throws mf::Error naming the file; none crashes or returns garbage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace cv {
class Mat;
}

namespace mf {

struct LoadFaceOptions {
  // Accept an image larger than height × width and keep its centre. The excess must be even in
  // both directions so that the crop is exactly centred (112×112 → 112×96 drops 8 columns each
  // side); anything else is an error.
  bool crop_center = false;
};

// (3, height, width), RGB, values in [−1, 1].
Tensor load_face(const std::string& path, int height, int width,
                 const LoadFaceOptions& options = {});

// The same into caller-owned memory of 3 · height · width floats (one image of a batch).
void load_face_into(const std::string& path, int height, int width, float* out,
                    const LoadFaceOptions& options = {});

// The same from encoded bytes in memory (a record of a .rec pack, an image of a .bin pack);
// `name` says where they came from in messages (e.g. "train.rec key 17").
void decode_face_into(const uint8_t* bytes, size_t size, const std::string& name, int height,
                      int width, float* out, const LoadFaceOptions& options = {});

// The decoded image as 8-bit BGR (cv::IMREAD_COLOR), with the same checks and messages as
// load_face (missing, directory, empty, truncated JPEG, undecodable). Include <opencv2/core.hpp>.
cv::Mat read_image(const std::string& path);
// An image file's encoded bytes, with read_image's messages (missing, a directory, empty).
std::string read_image_bytes(const std::string& path);
// Encoded bytes in memory to 8-bit BGR, with the same checks; `name` for messages.
// read_image = decode_image(read_image_bytes(path)).
cv::Mat decode_image(const uint8_t* bytes, size_t size, const std::string& name);

// An 8-bit BGR image of exactly height × width (an aligned crop in memory) into 3 · height · width
// floats, normalised as load_face does.
void bgr_to_face(const cv::Mat& bgr, float* out);

// The one answer to "is this an image?" for the whole program (training folders, align, embed,
// search): by extension, any case. kImageExtensions lists them for messages.
inline constexpr const char* kImageExtensions = ".jpg .jpeg .png .bmp .pgm .ppm .webp .tif .tiff";
bool is_image_file(const std::string& path);

// The one folder walker: every image file under `dir`, recursively (following folder symlinks),
// as paths relative to `dir` in generic form ("id/0001.jpg"), sorted as strings. Throws naming
// `dir` when it is not a folder; an empty result is the caller's to judge.
std::vector<std::string> find_images(const std::string& dir);

// Mirror left ↔ right: reverses the last axis of a (C, H, W) image or an (N, C, H, W) batch.
// Returns a new tensor; flipping twice gives the input back exactly.
Tensor horizontal_flip(const Tensor& images);

}  // namespace mf
