// `marginface align`, `compare` (1:1) and `search` (1:N) end to end, running the executable on a
// tiny randomly initialised IResNet-18 checkpoint written here (width 0.0625, 16-d embeddings) and
// synthetic 112×112 images; then on raw photos from ../shared/data with --align (skipped with a
// message when absent).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <regex>

#include "io/checkpoint.h"
#include "layers/backbones/registry.h"
#include "support/checkpoints.h"
#include "support/faces.h"
#include "support/fixtures.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "util/params.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

// Runs `marginface <args>` (one thread: the tests share the machine), optionally in `cwd`.
CommandResult marginface(const std::string& args, const std::string& cwd = "") {
  std::string command = "OMP_NUM_THREADS=1 " + shell_quote(MF_MARGINFACE_BIN) + " " + args;
  if (!cwd.empty()) command = "cd " + shell_quote(cwd) + " && " + command;
  return run_command(command);
}

// The number after "similarity " in compare's output (NaN when absent).
double similarity_of(const std::string& output) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("similarity (-?[0-9.]+)"))) return NAN;
  return std::stod(m[1]);
}

struct Line {
  double score;
  std::string identity, path;
};

// search's match lines ("   1. 0.9876  identity  path") in order.
std::vector<Line> matches_of(const std::string& output) {
  std::vector<Line> out;
  const std::regex line(R"(\n\s+\d+\. (-?[0-9.]+)\s+(\S+)\s+(\S+))");
  for (auto it = std::sregex_iterator(output.begin(), output.end(), line);
       it != std::sregex_iterator(); ++it)
    out.push_back({std::stod((*it)[1]), (*it)[2], (*it)[3]});
  return out;
}

// A randomly initialised ir18 (width 0.0625, D = 16) saved as a checkpoint without a threshold.
std::string tiny_checkpoint(const TempDir& tmp) {
  return save_tiny_checkpoint(tmp.path("ck.h5"), "ir18", 21);
}

// gallery/id<k>/<i>.png for i = 0..5, k = i % 3.
std::vector<std::string> write_gallery(const TempDir& tmp) {
  std::vector<std::string> paths;
  for (unsigned i = 0; i < 6; ++i)
    paths.push_back(write_face(
        tmp / ("gallery/id" + std::to_string(i % 3) + "/" + std::to_string(i) + ".png"), 40 + i));
  return paths;
}

std::string model_path() {
  return shared_data_dir() + "/models/face_detection_yunet_2022mar.onnx";
}
bool have_shared() {
  return fs::is_regular_file(model_path()) && fs::is_directory(shared_data_dir() + "/raw/lfw");
}

TEST(CompareCommand, self_similarity_is_one_and_scores_are_symmetric) {
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  const std::string a = write_face(tmp.path("a.png"), 1), b = write_face(tmp.path("b.png"), 2);
  CommandResult r = marginface("compare --checkpoint " + shell_quote(ck) + " --threshold 0.5 " +
                               shell_quote(a) + " " + shell_quote(a));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NEAR(similarity_of(r.output), 1.0, 1e-4) << r.output;
  EXPECT_NE(r.output.find("same (threshold 0.5000 from --threshold)"), std::string::npos)
      << r.output;
  const CommandResult ab =
      marginface("compare " + shell_quote(a) + " --checkpoint " + shell_quote(ck) + " " +
                 shell_quote(b) + " --threshold=0.99999");
  const CommandResult ba =
      marginface("compare --threshold 0.99999 --checkpoint " + shell_quote(ck) + " " +
                 shell_quote(b) + " " + shell_quote(a));
  ASSERT_EQ(ab.status, 0) << ab.output;
  ASSERT_EQ(ba.status, 0) << ba.output;
  EXPECT_EQ(similarity_of(ab.output), similarity_of(ba.output)) << ab.output << ba.output;
  EXPECT_LT(similarity_of(ab.output), 0.99999);
  EXPECT_NE(ab.output.find("different (threshold"), std::string::npos) << ab.output;
}

TEST(CompareCommand, threshold_comes_from_the_checkpoint_or_is_asked_for) {
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  const std::string a = write_face(tmp.path("a.png"), 1), b = write_face(tmp.path("b.png"), 2);
  CommandResult r = marginface("compare --checkpoint " + shell_quote(ck) + " " + shell_quote(a) +
                               " " + shell_quote(b));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("stores no verification threshold: pass --threshold"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("--store-threshold"), std::string::npos) << r.output;
  store_verification_threshold(ck, -0.75, "set by the test");
  r = marginface("compare --checkpoint " + shell_quote(ck) + " " + shell_quote(a) + " " +
                 shell_quote(b));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("same (threshold -0.7500 from " + ck +
                          " /meta verification_threshold: set by the test)"),
            std::string::npos)
      << r.output;
}

// --threshold-at-far with an eval report: the threshold of that FAR's operating point; a FAR the
// report does not hold, or could not measure, is an error naming the file.
TEST(CompareCommand, threshold_at_a_far_from_an_eval_report) {
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  const std::string a = write_face(tmp.path("a.png"), 1), b = write_face(tmp.path("b.png"), 2);
  const std::string report = tmp.path("eval.json");
  std::ofstream(report) << R"({"accuracy_mean": 0.9, "operating_points": {
      "0.001": {"threshold": -0.75, "tar": 0.5, "false_accepts": 2, "reachable": true},
      "0.0001": {"threshold": 0.9, "tar": 0.1, "false_accepts": 0, "reachable": false}}})";
  const std::string base = "compare --checkpoint " + shell_quote(ck) + " " + shell_quote(a) + " " +
                           shell_quote(b) + " --calibration " + shell_quote(report);
  CommandResult r = marginface(base + " --threshold-at-far 0.001");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("same (threshold -0.7500 from FAR 0.001 in " + report + ")"),
            std::string::npos)
      << r.output;
  r = marginface(base + " --threshold-at-far 0.0001");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("was not reachable"), std::string::npos) << r.output;
  r = marginface(base + " --threshold-at-far 0.01");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(report + ": no operating point at FAR 0.01"), std::string::npos)
      << r.output;
  r = marginface("compare --checkpoint " + shell_quote(ck) + " " + shell_quote(a) + " " +
                 shell_quote(b) + " --threshold-at-far 0.001");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("go together"), std::string::npos) << r.output;
}

// Regression (issue "Nothing lost, nothing silently wrong", item 7): --threshold nan was accepted
// (every pair "different", exit 0). Numeric options must be finite.
TEST(CompareCommand, a_non_finite_threshold_is_refused) {
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  const std::string a = write_face(tmp.path("a.png"), 1);
  for (const char* bad : {"nan", "inf", "-inf"}) {
    const CommandResult r = marginface("compare --checkpoint " + shell_quote(ck) + " --threshold " +
                                       bad + " " + shell_quote(a) + " " + shell_quote(a));
    EXPECT_EQ(r.status, 1) << bad << ": " << r.output;
    EXPECT_NE(
        r.output.find("option --threshold expects a finite number, got '" + std::string(bad) + "'"),
        std::string::npos)
        << r.output;
  }
}

TEST(CompareCommand, bad_arguments_are_clear_errors) {
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  const std::string a = write_face(tmp.path("a.png"), 1);
  CommandResult r =
      marginface("compare --checkpoint " + shell_quote(ck) + " --threshold 0.3 " + shell_quote(a));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("exactly two images, got 1"), std::string::npos) << r.output;
  r = marginface("compare --checkpoint " + shell_quote(ck) + " --threshold 0.3 " + shell_quote(a) +
                 " " + shell_quote(tmp.path("missing.jpg")));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("image not found: " + tmp.path("missing.jpg")), std::string::npos)
      << r.output;
  // A raw photo (not 112×112) without --align says how to fix it.
  cv::imwrite(tmp.path("photo.jpg"), cv::Mat(250, 250, CV_8UC3, cv::Scalar::all(90)));
  r = marginface("compare --checkpoint " + shell_quote(ck) + " --threshold 0.3 " + shell_quote(a) +
                 " " + shell_quote(tmp.path("photo.jpg")));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("align it"), std::string::npos) << r.output;
}

TEST(SearchCommand, top1_of_a_gallery_folder_containing_the_query_is_the_query) {
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  auto gallery = write_gallery(tmp);
  CommandResult r =
      marginface("search --checkpoint " + shell_quote(ck) + " --gallery " +
                 shell_quote(tmp.path("gallery")) + " --query " + shell_quote(gallery[4]) +
                 " --top 3 --json " + shell_quote(tmp.path("out.json")));
  ASSERT_EQ(r.status, 0) << r.output;
  auto m = matches_of(r.output);
  ASSERT_EQ(m.size(), 3u) << r.output;
  EXPECT_EQ(m[0].path, gallery[4]);
  EXPECT_EQ(m[0].identity, "id1");
  EXPECT_NEAR(m[0].score, 1.0, 1e-4);
  EXPECT_GE(m[0].score, m[1].score);
  EXPECT_GE(m[1].score, m[2].score);
  std::ifstream in(tmp.path("out.json"));
  const std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"gallery_size\": 6"), std::string::npos) << json;
  EXPECT_NE(json.find("\"identity\": \"id1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"path\": \"" + gallery[4] + "\""), std::string::npos) << json;

  // A folder of queries (taken in sorted order): each finds itself first.
  std::sort(gallery.begin(), gallery.end());
  r = marginface("search --checkpoint " + shell_quote(ck) + " --gallery " +
                 shell_quote(tmp.path("gallery")) + " --query " + shell_quote(tmp.path("gallery")) +
                 " --top 1");
  ASSERT_EQ(r.status, 0) << r.output;
  m = matches_of(r.output);
  ASSERT_EQ(m.size(), 6u) << r.output;
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(m[i].path, gallery[i]);
    EXPECT_NEAR(m[i].score, 1.0, 1e-4);
  }
}

TEST(SearchCommand, reads_a_gallery_written_by_the_embed_command) {
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  const auto gallery = write_gallery(tmp);
  CommandResult r =
      marginface("embed --checkpoint " + shell_quote(ck) + " --images " +
                 shell_quote(tmp.path("gallery")) + " --out " + shell_quote(tmp.path("emb.h5")));
  ASSERT_EQ(r.status, 0) << r.output;
  r = marginface("search --checkpoint " + shell_quote(ck) + " --gallery " +
                 shell_quote(tmp.path("emb.h5")) + " --query " + shell_quote(gallery[2]) +
                 " --top 6");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto m = matches_of(r.output);
  ASSERT_EQ(m.size(), 6u) << r.output;
  EXPECT_EQ(m[0].path, "id2/2.png");  // /paths are relative to the embedded folder
  EXPECT_EQ(m[0].identity, "id2");
  EXPECT_NEAR(m[0].score, 1.0, 1e-4);
  // The same scores as against the folder itself.
  const CommandResult direct = marginface("search --checkpoint " + shell_quote(ck) + " --gallery " +
                                          shell_quote(tmp.path("gallery")) + " --query " +
                                          shell_quote(gallery[2]) + " --top 6");
  const auto d = matches_of(direct.output);
  ASSERT_EQ(d.size(), 6u) << direct.output;
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(m[i].score, d[i].score, 2e-4) << i;
  // Queries must be embedded like the gallery.
  r = marginface("search --checkpoint " + shell_quote(ck) + " --gallery " +
                 shell_quote(tmp.path("emb.h5")) + " --query " + shell_quote(gallery[2]) +
                 " --flip off");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("was embedded with flip sum, but --flip is off"), std::string::npos)
      << r.output;
}

TEST(AlignCommand, default_detector_missing_is_an_error_naming_the_path) {
  TempDir tmp;
  // Run two levels down, so that ../shared cannot exist (only cwd/.. is looked at).
  write_face(tmp.path("work/project/in/a.png"), 1);
  const CommandResult r = marginface("align --in in --out out", tmp.path("work/project"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("face detector model not found: "
                          "'../shared/data/models/face_detection_yunet_2022mar.onnx' (the default"),
            std::string::npos)
      << r.output;
}

TEST(AlignCommand, aligns_raw_samples_and_reports_the_no_face_image) {
  if (!have_shared()) GTEST_SKIP() << "../shared/data not found at " << shared_data_dir();
  TempDir tmp;
  fs::create_directories(tmp.path("in"));
  fs::copy(shared_data_dir() + "/raw/lfw/Alan_Greenspan", tmp.path("in/Alan_Greenspan"));
  fs::copy(shared_data_dir() + "/raw/noface", tmp.path("in/noface"));
  const CommandResult r =
      marginface("align --in " + shell_quote(tmp.path("in")) + " --out " +
                 shell_quote(tmp.path("out")) + " --detector " + shell_quote(model_path()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("6 images in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("5 aligned"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1 fell back to a centre crop"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("noface/gradient_texture.jpg\tno face detected: centre crop"),
            std::string::npos)
      << r.output;
  EXPECT_TRUE(fs::exists(tmp.path("out/Alan_Greenspan/Alan_Greenspan_0001.jpg")));
  EXPECT_TRUE(fs::exists(tmp.path("out/alignment-report.txt")));
}

TEST(FacePipelineOnRawPhotos, compare_and_search_with_align) {
  if (!have_shared()) GTEST_SKIP() << "../shared/data not found at " << shared_data_dir();
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  const std::string raw = shared_data_dir() + "/raw/lfw";
  const std::string a = raw + "/Alan_Greenspan/Alan_Greenspan_0001.jpg";
  const std::string b = raw + "/Bill_Frist/Bill_Frist_0002.jpg";
  const std::string det = " --detector " + shell_quote(model_path());
  CommandResult r = marginface("compare --align --checkpoint " + shell_quote(ck) + det +
                               " --threshold 0.5 " + shell_quote(a) + " " + shell_quote(a));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NEAR(similarity_of(r.output), 1.0, 1e-4) << r.output;
  const CommandResult ab = marginface("compare --align --checkpoint " + shell_quote(ck) + det +
                                      " --threshold 0.5 " + shell_quote(a) + " " + shell_quote(b));
  const CommandResult ba = marginface("compare --align --checkpoint " + shell_quote(ck) + det +
                                      " --threshold 0.5 " + shell_quote(b) + " " + shell_quote(a));
  ASSERT_EQ(ab.status, 0) << ab.output;
  EXPECT_EQ(similarity_of(ab.output), similarity_of(ba.output));
  EXPECT_LT(similarity_of(ab.output), 0.9999);
  // A photo without a face: an error naming it.
  r = marginface("compare --align --checkpoint " + shell_quote(ck) + det + " --threshold 0.5 " +
                 shell_quote(a) + " " +
                 shell_quote(shared_data_dir() + "/raw/noface/gradient_texture.jpg"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("no face found in " + shared_data_dir() + "/raw/noface"),
            std::string::npos)
      << r.output;

  // 1:N over raw photos of three people, aligned on the fly.
  fs::create_directories(tmp.path("gallery"));
  for (const char* who : {"Alan_Greenspan", "Bill_Frist", "Amanda_Bynes"})
    fs::copy(raw + "/" + who, tmp / ("gallery/" + std::string(who)));
  const std::string query = tmp.path("gallery/Bill_Frist/Bill_Frist_0003.jpg");
  r = marginface("search --align --checkpoint " + shell_quote(ck) + det + " --gallery " +
                 shell_quote(tmp.path("gallery")) + " --query " + shell_quote(query) + " --top 2");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto m = matches_of(r.output);
  ASSERT_EQ(m.size(), 2u) << r.output;
  EXPECT_EQ(m[0].path, query);
  EXPECT_EQ(m[0].identity, "Bill_Frist");
  EXPECT_NEAR(m[0].score, 1.0, 1e-4);
}

}  // namespace
}  // namespace mf::test
