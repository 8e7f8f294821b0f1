// ONNX export checked against the engine: every backbone exported at a small width and run by
// OpenCV dnn (readNetFromONNX on NCHW blobs, cv::FaceRecognizerSF on BGR faces) must give embed's
// embeddings (cosine ≥ 0.99999) — on real aligned LFW faces when ../shared is present, on random
// images otherwise. BatchNorm statistics and affine parameters are randomised first, so a wrong
// eps, a swapped mean/var or a dropped shift shows.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/objdetect.hpp>

#include "autograd/ops.h"
#include "data/align.h"
#include "data/image.h"
#include "deploy/onnx_export.h"
#include "deploy/onnx_model.h"
#include "eval/embed.h"
#include "layers/backbones/registry.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/file.h"

namespace mf {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<Backbone> small_backbone(const std::string& name, uint64_t seed = 7) {
  Params p("model");
  p.set("width", "0.125");
  p.set("embedding_size", "64");
  Rng rng(seed);
  auto net = builtin_backbones().create(name, p, rng);
  // Non-trivial BatchNorm: running statistics and 1-D parameters (γ, β, PReLU slopes, biases)
  // moved off their initial values.
  for (auto& [key, t] : net->named_buffers()) {
    float* v = t.data();
    for (int64_t i = 0; i < t.numel(); ++i)
      v[i] = key.find("running_var") != std::string::npos ? 0.5f + float(rng.uniform())
                                                          : 0.2f * float(rng.uniform() - 0.5);
  }
  for (auto& [key, var] : net->named_parameters()) {
    if (var.shape().rank() != 1) continue;
    float* v = var.value().data();
    for (int64_t i = 0; i < var.value().numel(); ++i) v[i] += 0.2f * float(rng.uniform() - 0.5);
  }
  net->eval();
  return net;
}

// Up to `count` aligned LFW faces (112×112 BGR), empty when ../shared is absent.
std::vector<std::string> lfw_faces(size_t count) {
  const fs::path root = fs::path(test::shared_data_dir()) / "aligned" / "lfw";
  std::vector<std::string> paths;
  if (!fs::is_directory(root)) return paths;
  std::vector<fs::path> people;
  for (const auto& e : fs::directory_iterator(root)) people.push_back(e.path());
  std::sort(people.begin(), people.end());
  for (const fs::path& person : people) {
    std::vector<std::string> files;
    for (const auto& f : fs::directory_iterator(person)) files.push_back(f.path().string());
    std::sort(files.begin(), files.end());
    paths.push_back(files.front());
    if (paths.size() == count) break;
  }
  return paths;
}

// (N, 3, H, W) normalised faces: the LFW ones centre-cropped to the backbone when needed, or
// random images in the normalised range when there are none.
Tensor face_batch(const std::vector<std::string>& paths, int64_t n, int64_t H, int64_t W) {
  Tensor batch = Tensor::empty({n, 3, H, W});
  if (paths.empty()) {
    Rng rng(11);
    for (int64_t i = 0; i < batch.numel(); ++i) batch.data()[i] = float(2 * rng.uniform() - 1);
    return batch;
  }
  for (int64_t i = 0; i < n; ++i)
    load_face_into(paths[i % paths.size()], int(H), int(W), batch.data() + i * 3 * H * W,
                   {.crop_center = true});
  return batch;
}

// Rows of `a` and `b` (N, D), each L2-normalised: the smallest cosine over rows.
double min_cosine(const float* a, const float* b, int64_t N, int64_t D) {
  double worst = 1.0;
  for (int64_t n = 0; n < N; ++n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t d = 0; d < D; ++d) {
      ab += double(a[n * D + d]) * b[n * D + d];
      aa += double(a[n * D + d]) * a[n * D + d];
      bb += double(b[n * D + d]) * b[n * D + d];
    }
    worst = std::min(worst, ab / std::sqrt(aa * bb));
  }
  return worst;
}

// OpenCV dnn on an NCHW blob made from `batch`.
cv::Mat run_dnn(cv::dnn::Net& net, const Tensor& batch) {
  const int dims[4] = {int(batch.dim(0)), int(batch.dim(1)), int(batch.dim(2)), int(batch.dim(3))};
  cv::Mat blob(4, dims, CV_32F, const_cast<float*>(batch.data()));
  net.setInput(blob);
  return net.forward().clone();
}

class EveryBackbone : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryBackbone, OpenCvDnnEqualsEmbedWithFlipOnAndOff) {
  const std::vector<std::string> faces = lfw_faces(8);
  if (faces.empty()) std::printf("note: ../shared/data absent, random images instead of LFW\n");
  test::TempDir dir;
  auto net = small_backbone(GetParam());
  const int64_t H = net->input_height(), W = net->input_width(), D = net->embedding_size();
  const Tensor batch = face_batch(faces, 8, H, W);
  for (const bool flip : {false, true}) {
    deploy::OnnxExportOptions options;
    options.flip_sum = flip;
    const std::string path = dir.path(flip ? "flip.onnx" : "plain.onnx");
    deploy::export_onnx(*net, path, options);
    cv::dnn::Net dnn = cv::dnn::readNetFromONNX(path);
    cv::Mat got = run_dnn(dnn, batch);
    ASSERT_EQ(got.total(), size_t(8 * D));
    eval::EmbedOptions embed_options;
    embed_options.flip = flip ? "sum" : "off";
    const Tensor want = eval::embed_batch(*net, batch, embed_options);
    const double cosine = min_cosine(got.ptr<float>(), want.data(), 8, D);
    EXPECT_GE(cosine, 0.99999) << GetParam() << (flip ? " flip sum" : " flip off");
    std::printf("%s flip %s: OpenCV dnn vs embed, 1 - min cosine %.1e over 8 %s\n",
                GetParam().c_str(), flip ? "sum" : "off", 1.0 - cosine,
                faces.empty() ? "random images" : "LFW faces");
  }
}

INSTANTIATE_TEST_SUITE_P(OnnxExport, EveryBackbone,
                         ::testing::Values("ir18", "ir34", "ir50", "ir100", "ir_se18", "ir_se34",
                                           "ir_se50", "ir_se100", "mobilefacenet", "sphere20"));

TEST(OnnxExport, DynamicBatchRunsOneSevenAndThirtyTwoImagesOnOneNet) {
  test::TempDir dir;
  auto net = small_backbone("ir_se18");
  const std::string path = dir.path("model.onnx");
  deploy::export_onnx(*net, path, {});
  cv::dnn::Net dnn = cv::dnn::readNetFromONNX(path);
  const int64_t D = net->embedding_size();
  for (const int64_t n : {1, 7, 32}) {
    const Tensor batch = face_batch({}, n, 112, 112);
    cv::Mat got = run_dnn(dnn, batch);
    ASSERT_EQ(got.total(), size_t(n * D)) << "batch " << n;
    const Tensor want = eval::embed_batch(*net, batch, {.batch_size = 64, .flip = "off"});
    EXPECT_GE(min_cosine(got.ptr<float>(), want.data(), n, D), 0.99999) << "batch " << n;
  }
}

TEST(OnnxExport, OpsetsElevenToSeventeenAndAFixedBatchLoadAndAgree) {
  test::TempDir dir;
  auto net = small_backbone("mobilefacenet");
  const Tensor batch = face_batch({}, 4, 112, 112);
  const Tensor want = eval::embed_batch(*net, batch, {.batch_size = 64, .flip = "off"});
  for (const int opset : {11, 13, 15, 17}) {
    deploy::OnnxExportOptions options;
    options.opset = opset;
    options.batch = 4;
    options.l2norm = true;  // LpNormalization in the graph: the rows come out normalised
    const std::string path = dir.path("opset" + std::to_string(opset) + ".onnx");
    deploy::export_onnx(*net, path, options);
    cv::dnn::Net dnn = cv::dnn::readNetFromONNX(path);
    cv::Mat got = run_dnn(dnn, batch);
    ASSERT_EQ(got.total(), size_t(4 * 64));
    EXPECT_GE(min_cosine(got.ptr<float>(), want.data(), 4, 64), 0.99999) << "opset " << opset;
    double norm = 0;
    for (int d = 0; d < 64; ++d) norm += double(got.ptr<float>()[d]) * got.ptr<float>()[d];
    EXPECT_NEAR(norm, 1.0, 1e-5) << "opset " << opset << ": --l2norm output not unit length";
  }
}

TEST(OnnxExport, OnnxBackboneRunsEmbedThroughOpenCvForEveryExportKind) {
  // --model in compare/search/embed: OnnxBackbone behind the Backbone interface, in-graph
  // normalisation undone, a fixed batch run in chunks, SphereFace-20's centre crop in the graph.
  test::TempDir dir;
  for (const std::string name : {"ir18", "sphere20"}) {
    auto net = small_backbone(name);
    const int64_t D = net->embedding_size();
    const Tensor faces112 = face_batch({}, 7, 112, 112);
    // Random 112×112 images, centre-cropped as load_face does for a 112×96 backbone.
    Tensor cropped = Tensor::empty({7, 3, 112, net->input_width()});
    const int64_t left = (112 - net->input_width()) / 2;
    for (int64_t i = 0; i < 7 * 3 * 112; ++i)
      std::copy_n(faces112.data() + i * 112 + left, net->input_width(),
                  cropped.data() + i * net->input_width());
    const Tensor want = eval::embed_batch(*net, cropped, {.flip = "sum"});
    deploy::OnnxExportOptions options;
    options.normalize_in_graph = true;
    options.flip_sum = true;
    options.batch = 3;
    const std::string path = dir.path(name + ".onnx");
    deploy::export_onnx(*net, path, options);
    auto model = deploy::OnnxBackbone::load(path);
    EXPECT_TRUE(model->flip_in_graph());
    EXPECT_TRUE(model->normalizes_in_graph());
    ASSERT_EQ(model->input_width(), 112) << name << ": in-graph crop takes 112x112 faces";
    const Tensor got = eval::embed_batch(*model, faces112, {.flip = "off"});
    EXPECT_GE(min_cosine(got.data(), want.data(), 7, D), 0.99999) << name;
  }
}

TEST(OnnxExport, FaceRecognizerSfWithInGraphNormalizationEqualsEmbedOnAlignedFaces) {
  const std::vector<std::string> faces = lfw_faces(6);
  if (faces.empty()) GTEST_SKIP() << "../shared/data/aligned/lfw not found";
  test::TempDir dir;
  for (const std::string name : {"ir_se18", "mobilefacenet", "sphere20"}) {
    auto net = small_backbone(name);
    const int64_t D = net->embedding_size();
    for (const bool flip : {false, true}) {
      deploy::OnnxExportOptions options;
      options.normalize_in_graph = true;
      options.flip_sum = flip;
      const std::string path = dir.path(name + (flip ? "_flip.onnx" : ".onnx"));
      deploy::export_onnx(*net, path, options);
      cv::Ptr<cv::FaceRecognizerSF> sf = cv::FaceRecognizerSF::create(path, "");
      const Tensor batch = face_batch(faces, int64_t(faces.size()), 112, net->input_width());
      const Tensor want = eval::embed_batch(*net, batch, {.flip = flip ? "sum" : "off"});
      for (size_t i = 0; i < faces.size(); ++i) {
        cv::Mat feature;
        sf->feature(cv::imread(faces[i]), feature);
        ASSERT_EQ(feature.total(), size_t(D));
        EXPECT_GE(min_cosine(feature.ptr<float>(), want.data() + i * D, 1, D), 0.99999)
            << name << " face " << i << (flip ? " flip" : "");
      }
    }
  }
}

TEST(OnnxExport, FaceRecognizerSfOnRawPhotosThroughItsOwnAlignCrop) {
  const fs::path data = test::shared_data_dir();
  const fs::path detector = data / "models" / "face_detection_yunet_2022mar.onnx";
  const fs::path raw = data / "raw" / "lfw";
  if (!fs::exists(detector) || !fs::is_directory(raw))
    GTEST_SKIP() << detector << " or " << raw << " not found";
  std::vector<std::string> photos;
  for (const auto& e : fs::recursive_directory_iterator(raw))
    if (e.is_regular_file()) photos.push_back(e.path().string());
  std::sort(photos.begin(), photos.end());
  photos.resize(std::min<size_t>(photos.size(), 6));

  test::TempDir dir;
  auto net = small_backbone("ir18");
  const int64_t D = net->embedding_size();
  deploy::OnnxExportOptions options;
  options.normalize_in_graph = true;
  const std::string path = dir.path("model.onnx");
  deploy::export_onnx(*net, path, options);
  cv::Ptr<cv::FaceRecognizerSF> sf = cv::FaceRecognizerSF::create(path, "");
  cv::Ptr<cv::FaceDetectorYN> yunet = cv::FaceDetectorYN::create(detector.string(), "", {0, 0});
  FaceAligner aligner(detector.string(), {});
  int checked = 0;
  double pixel_diff_sum = 0, agreement_sum = 0;
  for (const std::string& photo : photos) {
    const cv::Mat image = cv::imread(photo);
    yunet->setInputSize(image.size());
    cv::Mat detections;
    yunet->detect(image, detections);
    if (detections.rows == 0) continue;
    // FaceRecognizerSF's own pipeline: alignCrop, then feature.
    cv::Mat crop, feature;
    sf->alignCrop(image, detections.row(0), crop);
    sf->feature(crop, feature);
    // The same crop through embed: the model must agree exactly.
    Tensor batch = Tensor::empty({1, 3, 112, 112});
    bgr_to_face(crop, batch.data());
    const Tensor want = eval::embed_batch(*net, batch, {.flip = "off"});
    EXPECT_GE(min_cosine(feature.ptr<float>(), want.data(), 1, D), 0.99999) << photo;
    // Our own align on the photo: the same template, so nearly the same crop.
    const AlignedFace ours = aligner.align(image);
    if (ours.status != AlignedFace::Status::kAligned) continue;
    cv::Mat diff;
    cv::absdiff(ours.image, crop, diff);
    const double mean_diff = cv::mean(diff).dot(cv::Scalar(1, 1, 1, 0)) / 3.0;
    bgr_to_face(ours.image, batch.data());
    const Tensor mine = eval::embed_batch(*net, batch, {.flip = "off"});
    const double agreement = min_cosine(feature.ptr<float>(), mine.data(), 1, D);
    pixel_diff_sum += mean_diff;
    agreement_sum += agreement;
    ++checked;
    EXPECT_LT(mean_diff, 12.0) << photo << ": alignCrop and align differ by " << mean_diff
                               << " grey levels on average";
  }
  ASSERT_GT(checked, 0) << "no face detected in " << raw;
  std::printf(
      "alignCrop vs marginface align on %d raw photos: mean |pixel difference| %.2f grey "
      "levels, mean cosine of the (untrained) embeddings %.5f\n",
      checked, pixel_diff_sum / checked, agreement_sum / checked);
}

// A backbone whose forward uses an op the exporter does not map (cos).
class UnmappedBackbone : public Backbone {
 public:
  UnmappedBackbone() : Backbone(8, 8, 4) {
    Rng rng(1);
    conv = register_module(
        "stem", std::make_shared<Conv2d>(Conv2dConfig{.in = 3, .out = 4, .kernel = 8}, rng));
  }
  Var forward(const Var& x) override { return flatten(cos(conv->forward(x))); }
  std::vector<StageInfo> stages() const override { return {}; }
  std::shared_ptr<Conv2d> conv;
};

TEST(OnnxExport, BadInputGivesOneClearMessageEach) {
  test::TempDir dir;
  UnmappedBackbone unmapped;
  const std::string unmapped_error =
      test::error_of([&] { deploy::export_onnx(unmapped, dir.path("x.onnx"), {}); });
  EXPECT_NE(unmapped_error.find("no ONNX mapping for op 'cos'"), std::string::npos)
      << unmapped_error;
  EXPECT_NE(unmapped_error.find("after stem"), std::string::npos) << unmapped_error;
  EXPECT_FALSE(fs::exists(dir.path("x.onnx")));

  auto net = small_backbone("ir18");
  const std::string unwritable =
      test::error_of([&] { deploy::export_onnx(*net, dir.path("no/such/dir/m.onnx"), {}); });
  EXPECT_NE(unwritable.find("no/such/dir/m.onnx"), std::string::npos) << unwritable;
  deploy::OnnxExportOptions old_opset;
  old_opset.opset = 9;
  EXPECT_NE(test::error_of([&] {
              deploy::export_onnx(*net, dir.path("m.onnx"), old_opset);
            }).find("opset 9"),
            std::string::npos);

  // --model with files that are not our exports.
  const std::string missing =
      test::error_of([&] { deploy::OnnxBackbone::load(dir.path("missing.onnx")); });
  EXPECT_NE(missing.find("not found"), std::string::npos) << missing;
  const std::string garbage = dir.write("garbage.onnx", "this is not protobuf\xff\xff");
  EXPECT_NE(test::error_of([&] { deploy::OnnxBackbone::load(garbage); }).find("not an ONNX model"),
            std::string::npos);
  onnx::ModelProto foreign;
  foreign.set_ir_version(7);
  onnx::NodeProto* node = foreign.mutable_graph()->add_node();
  node->set_op_type("Relu");
  node->add_input("x");
  node->add_output("y");
  std::string bytes;
  ASSERT_TRUE(foreign.SerializeToString(&bytes));
  const std::string not_ours = dir.write("foreign.onnx", bytes);
  const std::string foreign_error = test::error_of([&] { deploy::OnnxBackbone::load(not_ours); });
  EXPECT_NE(foreign_error.find("not one marginface exported"), std::string::npos) << foreign_error;
  EXPECT_NE(foreign_error.find("foreign.onnx"), std::string::npos) << foreign_error;
}

}  // namespace
}  // namespace mf
