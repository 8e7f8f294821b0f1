// Face alignment in the ArcFace / insightface convention: detect faces with YuNet (OpenCV's
// cv::FaceDetectorYN), pick one, estimate the least-squares similarity transform (Umeyama 1991)
// from its five landmarks — eyes, nose tip, mouth corners, in the image's left-to-right order — to
// a fixed template, and warp the image with it (bilinear, border 0).
//
// Templates (insightface's `arcface_dst` in face_align.py; SphereFace's 96-wide crop):
//   112×112  (38.2946, 51.6963) (73.5318, 51.5014) (56.0252, 71.7366) (41.5493, 92.3655)
//            (70.7299, 92.2041)                         insightface `arcface_dst`
//   112×96   the same shifted −8 px in x                SphereFace / caffe-face
// Because the least-squares fit commutes with translating the targets, the 112×96 crop equals the
// 112×112 crop without 8 columns on each side (tested).
//
// Detection runs at the image's own size with two exceptions, for detection only (landmarks are
// scaled back and the warp always reads the original pixels): an image whose longer side exceeds
// 640 px is downscaled to 640 (YuNet's usual input; larger inputs are slow, miss big faces and
// find spurious small ones — and this is how ../shared/data/aligned was made: with it, CelebA crops
// of 600-1024 px photos agree with the shared set to ~3 grey levels, without it they differ by
// 10-27), and one whose shorter side is under 64 px is upscaled to 64 (YuNet in OpenCV 4.6 throws
// on inputs of ~50 px and less: its pooling layers run out of pixels).
#pragma once

#include <array>
#include <memory>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace cv {
class FaceDetectorYN;
}

namespace mf {

using Landmarks = std::array<cv::Point2d, 5>;

// The 5-point template for a height × width crop: 112×112 or 112×96 (anything else is an error).
Landmarks face_template(int height, int width);

// The similarity transform (uniform scale, rotation, translation; no reflection) T minimising
// Σ‖T(from_i) − to_i‖², by Umeyama's closed form: with centred points and Σ = (1/n) Σ to_c from_cᵀ
// = U D Vᵀ, R = U S Vᵀ where S = diag(1, det(U)·det(V)) keeps it a rotation, the scale is
// tr(D S) / σ²_from and t = μ_to − c R μ_from. Returned as the 2×3 matrix [cR | t] that
// cv::warpAffine takes. At least two points; coincident `from` points are an error.
cv::Matx23d estimate_similarity(const std::vector<cv::Point2d>& from,
                                const std::vector<cv::Point2d>& to);

struct DetectedFace {
  cv::Rect2d box;       // x, y, width, height in the input image's pixels
  Landmarks landmarks;  // right eye, left eye, nose, right/left mouth corner (subject's sides)
  double score = 0;
};

class FaceDetector {
 public:
  // Loads the YuNet ONNX model; a missing file is an error naming the path.
  explicit FaceDetector(const std::string& model_path);
  ~FaceDetector();
  FaceDetector(const FaceDetector&) = delete;
  FaceDetector& operator=(const FaceDetector&) = delete;

  // Faces scoring at least `threshold` in an 8-bit BGR image, strongest first.
  // Images whose longer side exceeds max_side (> 0) are downscaled to it for detection.
  std::vector<DetectedFace> detect(const cv::Mat& bgr, double threshold, int max_side = 0);

 private:
  std::string model_path_;
  cv::Ptr<cv::FaceDetectorYN> net_;
};

enum class FacePick {
  kCenter,   // box centre nearest the image centre: the labelled face of LFW and CelebA
  kLargest,  // largest box area: a photo of one person (compare / search)
};
FacePick parse_face_pick(const std::string& name);  // "center" or "largest"

// Index of the chosen face in `faces` (non-empty) for an image of the given size.
size_t pick_face(const std::vector<DetectedFace>& faces, cv::Size image_size, FacePick pick);

// The aligned crop (height × width, 112×112 or 112×96) of the face with these landmarks.
cv::Mat warp_face(const cv::Mat& image, const Landmarks& landmarks, int height, int width);

// The fallback when no face is found: the largest centred region of the crop's aspect ratio,
// resized to height × width (area interpolation when shrinking, bilinear when enlarging).
cv::Mat center_crop_face(const cv::Mat& image, int height, int width);

struct AlignOptions {
  int height = 112, width = 112;
  FacePick pick = FacePick::kCenter;
  // Detection runs at `threshold`; when nothing reaches it, once more at `retry_threshold`
  // (ignored unless lower). YuNet scores real faces above 0.8 almost always; textures without a
  // face can reach ~0.6 (the shared no-face sample scores 0.62), hence 0.7.
  double threshold = 0.9;
  double retry_threshold = 0.7;
  bool center_crop_fallback = true;  // otherwise an image without a face gives no crop
  int max_detect_side = 640;         // detection input cap (FaceDetector::detect); 0: none
};

struct AlignedFace {
  enum class Status { kAligned, kFallback, kNoFace };
  Status status = Status::kNoFace;
  cv::Mat image;              // height × width BGR; empty for kNoFace
  DetectedFace face;          // the chosen face (kAligned)
  int faces_found = 0;        // detections at the threshold that found them
  double threshold_used = 0;  // the threshold that found them (kAligned)
};

class FaceAligner {
 public:
  FaceAligner(const std::string& model_path, const AlignOptions& options);
  AlignedFace align(const cv::Mat& bgr);
  const AlignOptions& options() const { return options_; }

 private:
  FaceDetector detector_;
  AlignOptions options_;
};

// `marginface align`: every image under `in` (recursively) aligned into the same relative path
// under `out`, as .jpg (or .png), so the output tree mirrors the input. An unreadable image is
// counted and reported, never fatal; an image without a face is centre-cropped or skipped as the
// options say. `out/alignment-report.txt` lists every image that was not aligned normally (found
// only at the retry threshold, centre-cropped, skipped, unreadable) with what happened.
struct AlignFolderOptions {
  AlignOptions align;
  std::string detector;  // YuNet model path
  bool png = false;      // PNG instead of JPEG
  int jpeg_quality = 95;
  int progress_every = 1000;  // print a progress line every this many images (0: never)
};

struct AlignFolderSummary {
  int64_t images = 0, aligned = 0, retried = 0, fell_back = 0, skipped = 0, unreadable = 0;
  std::vector<std::string> report;  // "relative/path<TAB>what happened" lines
  std::string report_path;
};

AlignFolderSummary align_folder(const std::string& in, const std::string& out,
                                const AlignFolderOptions& options);

}  // namespace mf
