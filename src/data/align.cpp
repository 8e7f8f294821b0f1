#include "data/align.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect/face.hpp>

#include "data/image.h"
#include "util/error.h"

namespace mf {

namespace {

// insightface arcface_dst, the 112×112 template.
constexpr double kTemplate112[5][2] = {{38.2946, 51.6963},
                                       {73.5318, 51.5014},
                                       {56.0252, 71.7366},
                                       {41.5493, 92.3655},
                                       {70.7299, 92.2041}};

constexpr int kMinDetectSide = 64;  // YuNet (OpenCV 4.6) fails below ~60 px

}  // namespace

Landmarks face_template(int height, int width) {
  MF_CHECK(height == 112 && (width == 112 || width == 96), "face template: unsupported crop size ",
           height, "x", width, " (height x width); supported: 112x112, 112x96");
  const double dx = width == 96 ? -8.0 : 0.0;
  Landmarks t;
  for (int i = 0; i < 5; ++i) t[i] = cv::Point2d(kTemplate112[i][0] + dx, kTemplate112[i][1]);
  return t;
}

cv::Matx23d estimate_similarity(const std::vector<cv::Point2d>& from,
                                const std::vector<cv::Point2d>& to) {
  MF_CHECK(from.size() == to.size(), "estimate_similarity: ", from.size(), " source points but ",
           to.size(), " target points");
  MF_CHECK(from.size() >= 2, "estimate_similarity: needs at least 2 point pairs, got ",
           from.size());
  const size_t n = from.size();
  // Means, then centred second moments: var_x = (1/n) Σ‖x_c‖², sigma = (1/n) Σ y_c x_cᵀ.
  double mx = 0, my = 0, nx = 0, ny = 0;
  for (size_t i = 0; i < n; ++i) {
    MF_CHECK(std::isfinite(from[i].x) && std::isfinite(from[i].y) && std::isfinite(to[i].x) &&
                 std::isfinite(to[i].y),
             "estimate_similarity: point ", i, " is not finite");
    mx += from[i].x, my += from[i].y, nx += to[i].x, ny += to[i].y;
  }
  mx /= n, my /= n, nx /= n, ny /= n;
  double var_x = 0;
  Eigen::Matrix2d sigma = Eigen::Matrix2d::Zero();
  for (size_t i = 0; i < n; ++i) {
    const double xc[2] = {from[i].x - mx, from[i].y - my}, yc[2] = {to[i].x - nx, to[i].y - ny};
    var_x += xc[0] * xc[0] + xc[1] * xc[1];
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 2; ++c) sigma(r, c) += yc[r] * xc[c];
  }
  var_x /= n;
  sigma /= double(n);
  MF_CHECK(var_x > 1e-12, "estimate_similarity: the source points coincide");
  const Eigen::JacobiSVD<Eigen::Matrix2d> svd(sigma, Eigen::ComputeFullU | Eigen::ComputeFullV);
  const Eigen::Matrix2d& U = svd.matrixU();
  const Eigen::Matrix2d& V = svd.matrixV();
  const double s1 = U.determinant() * V.determinant() < 0 ? -1.0 : 1.0;  // S = diag(1, s1)
  const Eigen::Matrix2d R = U.col(0) * V.col(0).transpose() + s1 * U.col(1) * V.col(1).transpose();
  const double c = (svd.singularValues()(0) + s1 * svd.singularValues()(1)) / var_x;
  const double t[2] = {nx - c * (R(0, 0) * mx + R(0, 1) * my),
                       ny - c * (R(1, 0) * mx + R(1, 1) * my)};
  return cv::Matx23d(c * R(0, 0), c * R(0, 1), t[0], c * R(1, 0), c * R(1, 1), t[1]);
}

FaceDetector::FaceDetector(const std::string& model_path) : model_path_(model_path) {
  namespace fs = std::filesystem;
  MF_CHECK(fs::is_regular_file(model_path), "face detector model not found: '", model_path,
           "' (YuNet face_detection_yunet_2022mar.onnx; pass --detector FILE)");
  try {
    net_ = cv::FaceDetectorYN::create(model_path, "", cv::Size(320, 320), 0.9f, 0.3f, 5000);
  } catch (const cv::Exception& e) {
    MF_FAIL("cannot load face detector model '", model_path, "': ", e.what());
  }
  MF_CHECK(!net_.empty(), "cannot load face detector model '", model_path, "'");
}

FaceDetector::~FaceDetector() = default;

std::vector<DetectedFace> FaceDetector::detect(const cv::Mat& bgr, double threshold, int max_side) {
  MF_CHECK(!bgr.empty() && bgr.type() == CV_8UC3, "face detection expects an 8-bit BGR image");
  MF_CHECK(threshold > 0 && threshold < 1, "detector threshold must lie in (0, 1), got ",
           threshold);
  const int w = bgr.cols, h = bgr.rows;
  double scale = 1.0;
  if (max_side > 0 && std::max(w, h) > max_side) scale = double(max_side) / std::max(w, h);
  if (std::min(w, h) * scale < kMinDetectSide) scale = double(kMinDetectSide) / std::min(w, h);
  cv::Mat input = bgr;
  if (scale != 1.0) {
    const cv::Size size(std::max(1, int(std::lround(w * scale))),
                        std::max(1, int(std::lround(h * scale))));
    cv::resize(bgr, input, size, 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  const double sx = double(input.cols) / w, sy = double(input.rows) / h;
  cv::Mat out;
  try {
    net_->setScoreThreshold(static_cast<float>(threshold));
    net_->setInputSize(input.size());
    net_->detect(input, out);
  } catch (const cv::Exception& e) {
    MF_FAIL("face detection failed on a ", w, "x", h, " image (", model_path_, "): ", e.what());
  }
  std::vector<DetectedFace> faces;
  for (int r = 0; r < out.rows; ++r) {
    const float* row = out.ptr<float>(r);
    DetectedFace f;
    f.box = cv::Rect2d(row[0] / sx, row[1] / sy, row[2] / sx, row[3] / sy);
    for (int k = 0; k < 5; ++k)
      f.landmarks[k] = cv::Point2d(row[4 + 2 * k] / sx, row[5 + 2 * k] / sy);
    f.score = row[14];
    faces.push_back(f);
  }
  std::stable_sort(faces.begin(), faces.end(),
                   [](const DetectedFace& a, const DetectedFace& b) { return a.score > b.score; });
  return faces;
}

FacePick parse_face_pick(const std::string& name) {
  if (name == "center" || name == "centre") return FacePick::kCenter;
  if (name == "largest") return FacePick::kLargest;
  MF_FAIL("face pick must be 'center' or 'largest' (got '", name, "')");
}

size_t pick_face(const std::vector<DetectedFace>& faces, cv::Size image_size, FacePick pick) {
  MF_CHECK(!faces.empty(), "pick_face: no faces to pick from");
  const cv::Point2d centre(image_size.width / 2.0, image_size.height / 2.0);
  size_t best = 0;
  double best_value = 0;
  for (size_t i = 0; i < faces.size(); ++i) {
    const cv::Rect2d& b = faces[i].box;
    double value;
    if (pick == FacePick::kCenter) {
      const cv::Point2d c(b.x + b.width / 2, b.y + b.height / 2);
      value = -std::hypot(c.x - centre.x, c.y - centre.y);  // larger is better
    } else {
      value = b.width * b.height;
    }
    if (i == 0 || value > best_value) {  // ties keep the earlier (higher-scoring) face
      best = i;
      best_value = value;
    }
  }
  return best;
}

cv::Mat warp_face(const cv::Mat& image, const Landmarks& landmarks, int height, int width) {
  const Landmarks target = face_template(height, width);
  const cv::Matx23d m =
      estimate_similarity({landmarks.begin(), landmarks.end()}, {target.begin(), target.end()});
  cv::Mat out;
  cv::warpAffine(image, out, cv::Mat(m), cv::Size(width, height), cv::INTER_LINEAR,
                 cv::BORDER_CONSTANT, cv::Scalar::all(0));
  return out;
}

cv::Mat center_crop_face(const cv::Mat& image, int height, int width) {
  MF_CHECK(!image.empty() && height > 0 && width > 0, "center_crop_face: empty image or size");
  // The largest region of aspect width : height centred in the image.
  int cw = image.cols, ch = image.rows;
  if (int64_t(cw) * height > int64_t(ch) * width) {
    cw = std::max(1, int(std::lround(double(ch) * width / height)));
  } else {
    ch = std::max(1, int(std::lround(double(cw) * height / width)));
  }
  const cv::Rect roi((image.cols - cw) / 2, (image.rows - ch) / 2, cw, ch);
  cv::Mat out;
  const bool shrink = cw > width || ch > height;
  cv::resize(image(roi), out, cv::Size(width, height), 0, 0,
             shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

FaceAligner::FaceAligner(const std::string& model_path, const AlignOptions& options)
    : detector_(model_path), options_(options) {
  face_template(options.height, options.width);  // validates the size
  MF_CHECK(options.threshold > 0 && options.threshold < 1,
           "detector threshold must lie in (0, 1), got ", options.threshold);
  MF_CHECK(options.retry_threshold > 0 && options.retry_threshold < 1,
           "detector retry threshold must lie in (0, 1), got ", options.retry_threshold);
}

AlignedFace FaceAligner::align(const cv::Mat& bgr) {
  AlignedFace out;
  std::vector<double> thresholds = {options_.threshold};
  if (options_.retry_threshold < options_.threshold) thresholds.push_back(options_.retry_threshold);
  for (double threshold : thresholds) {
    const std::vector<DetectedFace> faces =
        detector_.detect(bgr, threshold, options_.max_detect_side);
    if (faces.empty()) continue;
    out.face = faces[pick_face(faces, bgr.size(), options_.pick)];
    out.faces_found = static_cast<int>(faces.size());
    out.threshold_used = threshold;
    out.image = warp_face(bgr, out.face.landmarks, options_.height, options_.width);
    out.status = AlignedFace::Status::kAligned;
    return out;
  }
  if (options_.center_crop_fallback) {
    out.image = center_crop_face(bgr, options_.height, options_.width);
    out.status = AlignedFace::Status::kFallback;
  }
  return out;
}

namespace {

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

AlignFolderSummary align_folder(const std::string& in, const std::string& out,
                                const AlignFolderOptions& options) {
  namespace fs = std::filesystem;
  MF_CHECK(fs::is_directory(in), "input folder not found: '", in, "'");
  MF_CHECK(options.png || (options.jpeg_quality >= 0 && options.jpeg_quality <= 100),
           "JPEG quality must lie in 0..100, got ", options.jpeg_quality);
  const fs::path in_root = fs::weakly_canonical(in), out_root = fs::weakly_canonical(out);
  const bool out_inside_in =
      std::mismatch(in_root.begin(), in_root.end(), out_root.begin(), out_root.end()).first ==
      in_root.end();
  MF_CHECK(!out_inside_in, "the output folder '", out, "' is or lies inside the input folder '", in,
           "'; choose one outside it");

  // Relative input paths, sorted, and their output names (extension replaced; where two inputs
  // would collide, e.g. a.png and a.jpg, the later keeps its extension: a.png.jpg).
  std::vector<fs::path> rel;
  for (const std::string& r : find_images(in_root.string())) rel.emplace_back(r);
  MF_CHECK(!rel.empty(), "no images (", kImageExtensions, ") under '", in, "'");
  const std::string ext = options.png ? ".png" : ".jpg";
  std::vector<fs::path> targets;
  std::map<fs::path, int> used;
  for (const fs::path& r : rel) {
    fs::path t = r;
    t.replace_extension(ext);
    if (used.count(t)) t = fs::path(r.string() + ext);
    used[t] = 1;
    targets.push_back(t);
  }

  FaceAligner aligner(options.detector, options.align);
  const std::vector<int> params =
      options.png ? std::vector<int>{cv::IMWRITE_PNG_COMPRESSION, 3}
                  : std::vector<int>{cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality};
  AlignFolderSummary s;
  s.images = static_cast<int64_t>(rel.size());
  fs::create_directories(out_root);
  for (size_t i = 0; i < rel.size(); ++i) {
    const std::string name = rel[i].generic_string();
    cv::Mat image;
    try {
      image = read_image((in_root / rel[i]).string());
    } catch (const Error& e) {
      ++s.unreadable;
      s.report.push_back(name + "\tunreadable: " + e.what());
      continue;
    }
    const AlignedFace face = aligner.align(image);
    switch (face.status) {
      case AlignedFace::Status::kAligned:
        ++s.aligned;
        if (face.threshold_used < options.align.threshold) {
          ++s.retried;
          s.report.push_back(name + "\tface found only at the retry threshold " +
                             fmt(face.threshold_used) + " (score " + fmt(face.face.score) +
                             "): aligned");
        }
        break;
      case AlignedFace::Status::kFallback:
        ++s.fell_back;
        s.report.push_back(name + "\tno face detected: centre crop");
        break;
      case AlignedFace::Status::kNoFace:
        ++s.skipped;
        s.report.push_back(name + "\tno face detected: skipped");
        break;
    }
    if (!face.image.empty()) {
      const fs::path target = out_root / targets[i];
      fs::create_directories(target.parent_path());
      bool written = false;
      try {
        written = cv::imwrite(target.string(), face.image, params);
      } catch (const cv::Exception& e) {
        MF_FAIL("cannot write ", target.string(), ": ", e.what());
      }
      MF_CHECK(written, "cannot write ", target.string());
    }
    if (options.progress_every > 0 && (i + 1) % options.progress_every == 0) {
      std::printf("  %zu/%zu images\n", i + 1, rel.size());
      std::fflush(stdout);
    }
  }

  s.report_path = (out_root / "alignment-report.txt").string();
  std::ofstream report(s.report_path);
  MF_CHECK(report.good(), "cannot write ", s.report_path);
  report << "# marginface align " << in << " -> " << out << ": " << options.align.height << "x"
         << options.align.width << ", pick "
         << (options.align.pick == FacePick::kCenter ? "center" : "largest") << ", detector "
         << options.detector << ", thresholds " << options.align.threshold << " then "
         << options.align.retry_threshold << "\n"
         << "# " << s.images << " images: " << s.aligned << " aligned (" << s.retried
         << " at the retry threshold), " << s.fell_back << " centre-cropped, " << s.skipped
         << " skipped, " << s.unreadable << " unreadable\n";
  for (const std::string& line : s.report) report << line << "\n";
  MF_CHECK(report.good(), "error writing ", s.report_path);
  return s;
}

}  // namespace mf
