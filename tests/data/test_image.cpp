// Face image loading: channel order, normalisation, sizes, centre crop, flips and bad files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "data/image.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "tensor/rng.h"
#include "util/error.h"

namespace mf {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

std::string write_bytes(const TempDir& dir, const std::string& name,
                        const std::vector<uint8_t>& bytes) {
  return dir.write(name, std::string(bytes.begin(), bytes.end()));
}

std::string write_image(const TempDir& dir, const std::string& name, const cv::Mat& image,
                        const std::vector<int>& params = {}) {
  EXPECT_TRUE(cv::imwrite(dir.path(name), image, params));
  return dir.path(name);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

float norm(int v) {
  return (float(v) - 127.5f) / 127.5f;
}

// A BGR image whose every pixel is distinct in every channel.
cv::Mat pattern(int rows, int cols) {
  cv::Mat image(rows, cols, CV_8UC3);
  for (int y = 0; y < rows; ++y)
    for (int x = 0; x < cols; ++x)
      image.at<cv::Vec3b>(y, x) =
          cv::Vec3b(uint8_t(10 * y + x), uint8_t(100 + 3 * x + y), uint8_t(250 - 7 * y - x));
  return image;
}

float at(const Tensor& t, int c, int y, int x) {
  return t.data()[(int64_t(c) * t.dim(1) + y) * t.dim(2) + x];
}

TEST(LoadFace, RgbOrderAndNormalisationExact) {
  TempDir dir;
  const cv::Mat bgr = pattern(4, 5);
  const std::string path = write_image(dir, "p.png", bgr);  // PNG: lossless
  const Tensor t = load_face(path, 4, 5);
  ASSERT_EQ(t.shape(), Shape({3, 4, 5}));
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 5; ++x) {
      const cv::Vec3b p = bgr.at<cv::Vec3b>(y, x);
      ASSERT_EQ(at(t, 0, y, x), norm(p[2])) << "red at " << y << "," << x;
      ASSERT_EQ(at(t, 1, y, x), norm(p[1])) << "green at " << y << "," << x;
      ASSERT_EQ(at(t, 2, y, x), norm(p[0])) << "blue at " << y << "," << x;
    }
  // The extremes map onto ±1 exactly.
  cv::Mat extremes(1, 2, CV_8UC3, cv::Scalar(0, 0, 0));
  extremes.at<cv::Vec3b>(0, 1) = cv::Vec3b(255, 255, 255);
  const Tensor e = load_face(write_image(dir, "e.png", extremes), 1, 2);
  EXPECT_EQ(at(e, 0, 0, 0), -1.0f);
  EXPECT_EQ(at(e, 2, 0, 1), 1.0f);
}

TEST(LoadFace, GreyscaleBecomesThreeEqualChannels) {
  TempDir dir;
  cv::Mat grey(3, 4, CV_8UC1);
  for (int i = 0; i < 12; ++i) grey.data[i] = uint8_t(20 * i);
  const Tensor t = load_face(write_image(dir, "g.png", grey), 3, 4);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x) {
      const float expected = norm(grey.at<uint8_t>(y, x));
      for (int c = 0; c < 3; ++c) ASSERT_EQ(at(t, c, y, x), expected) << c << " " << y << " " << x;
    }
}

TEST(LoadFace, WrongSizeNamesFileAndBothSizes) {
  TempDir dir;
  const std::string path = write_image(dir, "p.png", pattern(4, 5));
  const std::string message = error_of([&] { load_face(path, 4, 6); });
  EXPECT_TRUE(contains(message, path)) << message;
  EXPECT_TRUE(contains(message, "4x5")) << message;
  EXPECT_TRUE(contains(message, "4x6")) << message;
}

TEST(LoadFace, CentreCropIsOptInAndExactlyCentred) {
  TempDir dir;
  const cv::Mat bgr = pattern(6, 9);
  const std::string path = write_image(dir, "p.png", bgr);
  EXPECT_THROW(load_face(path, 4, 5), Error);
  const Tensor t =
      load_face(path, 4, 5, {.crop_center = true});  // drops 1 row, 2 columns each side
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 5; ++x) ASSERT_EQ(at(t, 0, y, x), norm(bgr.at<cv::Vec3b>(y + 1, x + 2)[2]));
  // Odd excess cannot be centred; smaller images cannot be cropped.
  EXPECT_TRUE(contains(error_of([&] { load_face(path, 4, 6, {.crop_center = true}); }), path));
  EXPECT_THROW(load_face(path, 8, 9, {.crop_center = true}), Error);
  EXPECT_THROW(load_face(path, 6, 11, {.crop_center = true}), Error);
}

TEST(LoadFace, MissingCorruptTruncatedAndEmptyFilesNameTheFile) {
  TempDir dir;
  const std::string missing = dir.path("no_such_face.jpg");
  EXPECT_TRUE(contains(error_of([&] { load_face(missing, 112, 112); }), missing));

  Rng rng(3);
  std::vector<uint8_t> garbage(2000);
  for (auto& b : garbage) b = uint8_t(rng.below(256));
  const std::string corrupt = write_bytes(dir, "garbage.jpg", garbage);
  const std::string corrupt_message = error_of([&] { load_face(corrupt, 112, 112); });
  EXPECT_TRUE(contains(corrupt_message, corrupt)) << corrupt_message;

  // A JPEG header followed by garbage.
  std::vector<uint8_t> fake = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10};
  fake.insert(fake.end(), garbage.begin(), garbage.end());
  const std::string fake_jpeg = write_bytes(dir, "fake.jpg", fake);
  EXPECT_TRUE(contains(error_of([&] { load_face(fake_jpeg, 112, 112); }), fake_jpeg));

  // A valid JPEG cut in half decodes with grey rows in libjpeg; it must be refused instead.
  std::vector<uint8_t> jpeg;
  ASSERT_TRUE(cv::imencode(".jpg", pattern(64, 64), jpeg));
  const std::string whole = write_bytes(dir, "whole.jpg", jpeg);
  EXPECT_EQ(load_face(whole, 64, 64).shape(), Shape({3, 64, 64}));
  const std::string cut = write_bytes(
      dir, "cut.jpg", std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + long(jpeg.size() / 2)));
  const std::string cut_message = error_of([&] { load_face(cut, 64, 64); });
  EXPECT_TRUE(contains(cut_message, cut)) << cut_message;
  EXPECT_TRUE(contains(cut_message, "truncated")) << cut_message;
  // Only the last two bytes (the end-of-image marker) missing.
  const std::string no_eoi =
      write_bytes(dir, "no_eoi.jpg", std::vector<uint8_t>(jpeg.begin(), jpeg.end() - 2));
  EXPECT_TRUE(contains(error_of([&] { load_face(no_eoi, 64, 64); }), "truncated"));
  // Bytes after the end-of-image marker (some cameras append data) are harmless.
  std::vector<uint8_t> trailer = jpeg;
  trailer.insert(trailer.end(), garbage.begin(), garbage.end());
  EXPECT_EQ(load_face(write_bytes(dir, "trailer.jpg", trailer), 64, 64).shape(),
            Shape({3, 64, 64}));
  // Progressive JPEGs have several scans; whole ones load, cut ones are refused.
  std::vector<uint8_t> progressive;
  ASSERT_TRUE(
      cv::imencode(".jpg", pattern(64, 64), progressive, {cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
  EXPECT_EQ(load_face(write_bytes(dir, "prog.jpg", progressive), 64, 64).shape(),
            Shape({3, 64, 64}));
  const std::string prog_cut =
      write_bytes(dir, "prog_cut.jpg",
                  std::vector<uint8_t>(progressive.begin(),
                                       progressive.begin() + long(progressive.size() * 3 / 4)));
  EXPECT_TRUE(contains(error_of([&] { load_face(prog_cut, 64, 64); }), "truncated"));

  const std::string empty = write_bytes(dir, "empty.jpg", {});
  EXPECT_TRUE(contains(error_of([&] { load_face(empty, 112, 112); }), empty));
  EXPECT_TRUE(contains(error_of([&] { load_face(dir.path(""), 112, 112); }), "directory"));
}

TEST(LoadFace, EveryTruncationOfAJpegIsRefused) {
  TempDir dir;
  for (const bool progressive : {false, true}) {
    std::vector<uint8_t> jpeg;
    ASSERT_TRUE(cv::imencode(".jpg", pattern(16, 16), jpeg,
                             {cv::IMWRITE_JPEG_PROGRESSIVE, progressive ? 1 : 0}));
    for (size_t cut = 3; cut < jpeg.size(); ++cut) {
      const std::string path =
          write_bytes(dir, "cut.jpg", std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + long(cut)));
      const std::string message = error_of([&] { load_face(path, 16, 16); });
      ASSERT_TRUE(contains(message, "truncated"))
          << "cut at " << cut << " of " << jpeg.size() << ": " << message;
    }
  }
}

TEST(LoadFace, RealAlignedLfwFace) {
  const std::string path =
      test::shared_data_dir() + "/aligned/lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg";
  if (!fs::exists(path))
    GTEST_SKIP() << "aligned LFW face not found at " << path << " (../shared absent)";
  const Tensor t = load_face(path, 112, 112);
  ASSERT_EQ(t.shape(), Shape({3, 112, 112}));
  float lo = 1, hi = -1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    lo = std::min(lo, t.data()[i]);
    hi = std::max(hi, t.data()[i]);
  }
  EXPECT_GE(lo, -1.0f);
  EXPECT_LE(hi, 1.0f);
  EXPECT_LT(lo, -0.5f);  // a real photo spans most of the range
  EXPECT_GT(hi, 0.5f);
  // Channel order against OpenCV's own decode plus the manual conversion, at a few pixels and
  // at one where red and blue differ clearly (so a swap could not go unnoticed).
  const cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(bgr.empty());
  int distinct = 0;
  for (int y = 0; y < 112; y += 7)
    for (int x = 0; x < 112; x += 5) {
      const cv::Vec3b p = bgr.at<cv::Vec3b>(y, x);
      ASSERT_EQ(at(t, 0, y, x), norm(p[2]));
      ASSERT_EQ(at(t, 1, y, x), norm(p[1]));
      ASSERT_EQ(at(t, 2, y, x), norm(p[0]));
      distinct += std::abs(int(p[2]) - int(p[0])) > 20;
    }
  EXPECT_GT(distinct, 0) << "no pixel tells red from blue";

  // 112×96 SphereFace crop = the 112×112 crop without 8 columns each side.
  EXPECT_THROW(load_face(path, 112, 96), Error);
  const Tensor narrow = load_face(path, 112, 96, {.crop_center = true});
  ASSERT_EQ(narrow.shape(), Shape({3, 112, 96}));
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 112; ++y)
      for (int x = 0; x < 96; ++x) ASSERT_EQ(at(narrow, c, y, x), at(t, c, y, x + 8));
}

TEST(HorizontalFlip, MirrorsAndTwiceIsIdentity) {
  Rng rng(5);
  Tensor image = Tensor::empty(Shape{3, 4, 7});
  for (int64_t i = 0; i < image.numel(); ++i) image.data()[i] = float(rng.uniform(-1, 1));
  const Tensor flipped = horizontal_flip(image);
  ASSERT_EQ(flipped.shape(), image.shape());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 7; ++x) ASSERT_EQ(at(flipped, c, y, x), at(image, c, y, 6 - x));
  const Tensor back = horizontal_flip(flipped);
  for (int64_t i = 0; i < image.numel(); ++i) ASSERT_EQ(back.data()[i], image.data()[i]);

  Tensor batch = Tensor::empty(Shape{2, 3, 4, 7});
  for (int64_t i = 0; i < batch.numel(); ++i) batch.data()[i] = float(i);
  const Tensor fb = horizontal_flip(batch);
  // (n=1, c=2, y=3, x=0) ← x=6
  const int64_t base = ((1 * 3 + 2) * 4 + 3) * 7;
  EXPECT_EQ(fb.data()[base + 0], batch.data()[base + 6]);
  const Tensor fb2 = horizontal_flip(fb);
  for (int64_t i = 0; i < batch.numel(); ++i) ASSERT_EQ(fb2.data()[i], batch.data()[i]);
  EXPECT_THROW(horizontal_flip(Tensor::zeros(Shape{4, 7})), Error);
  EXPECT_THROW(horizontal_flip(Tensor()), Error);
}

TEST(HorizontalFlip, OfARealFaceMatchesOpenCv) {
  const std::string path =
      test::shared_data_dir() + "/aligned/lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg";
  if (!fs::exists(path))
    GTEST_SKIP() << "aligned LFW face not found at " << path << " (../shared absent)";
  const Tensor flipped = horizontal_flip(load_face(path, 112, 112));
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR), mirrored;
  cv::flip(bgr, mirrored, 1);
  for (int y = 0; y < 112; y += 3)
    for (int x = 0; x < 112; x += 3)
      ASSERT_EQ(at(flipped, 0, y, x), norm(mirrored.at<cv::Vec3b>(y, x)[2]));
}

}  // namespace
}  // namespace mf
