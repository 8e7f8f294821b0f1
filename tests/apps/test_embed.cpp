// `marginface embed` and the insightface converter (scripts/convert_insightface.py).
//
// Committed fixture (tests/fixtures/embed, scripts/make_embed_fixtures.py): a tiny IResNet-18 made
// in PyTorch and converted by the script, five synthetic images in nested folders, and PyTorch's
// embeddings of them for flip off, sum and concat. Runs everywhere, no torch needed.
//
// With /usr/bin/python3 + torch (+ h5py, cv2) and ../shared: a random IResNet built in PyTorch,
// saved as .pth, converted, embedded by `marginface embed --flip sum` on real aligned LFW faces
// and compared with PyTorch's embeddings; then converted back and compared bit for bit. The size
// comes from MF_EMBED_TORCH_BACKBONE / _WIDTH / _DIM / _IMAGES (ir18, 0.25, 128, 20); the
// full-size check is MF_EMBED_TORCH_BACKBONE=ir50 MF_EMBED_TORCH_WIDTH=1 MF_EMBED_TORCH_DIM=512.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <stdexcept>

#include "eval/embed.h"
#include "h5/file.h"
#include "io/checkpoint.h"
#include "layers/backbones/registry.h"
#include "support/fixtures.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "util/file.h"
#include "util/params.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

constexpr double kMinCosine = 0.9999;

CommandResult embed(const std::string& args) {
  return run_command(shell_quote(MF_MARGINFACE_BIN) + " embed " + args);
}

// Debian's interpreter has python3-torch; MF_PYTHON overrides it.
std::string python() {
  const char* v = std::getenv("MF_PYTHON");
  return shell_quote(v && *v ? v : "/usr/bin/python3");
}

std::string script(const std::string& name) {
  return python() + " " + shell_quote(std::string(MF_SOURCE_DIR) + "/scripts/" + name);
}

// Per row: cos(ours_i, ref_i); both sets must have the same shape.
std::vector<double> row_cosines(const Tensor& ours, const Tensor& ref) {
  EXPECT_EQ(ours.shape(), ref.shape());
  std::vector<double> out;
  if (ours.shape() != ref.shape()) return out;
  const int64_t D = ref.dim(1);
  for (int64_t i = 0; i < ref.dim(0); ++i) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double a = ours.data()[i * D + d], b = ref.data()[i * D + d];
      ab += a * b;
      aa += a * a;
      bb += b * b;
    }
    out.push_back(ab / std::sqrt(aa * bb));
  }
  return out;
}

::testing::AssertionResult all_close(const Tensor& ours, const Tensor& ref,
                                     const std::vector<std::string>& names, double* min_cos) {
  const auto cos = row_cosines(ours, ref);
  if (cos.size() != names.size())
    return ::testing::AssertionFailure() << cos.size() << " rows for " << names.size() << " images";
  *min_cos = 1;
  int bad = 0;
  std::ostringstream msg;
  for (size_t i = 0; i < cos.size(); ++i) {
    *min_cos = std::min(*min_cos, cos[i]);
    if (!(cos[i] >= kMinCosine) && bad++ < 5)
      msg << "\n  " << names[i] << ": cosine " << cos[i] << " < " << kMinCosine;
  }
  if (bad)
    return ::testing::AssertionFailure()
           << bad << " of " << cos.size() << " rows differ:" << msg.str();
  return ::testing::AssertionSuccess();
}

// The reference rows are not all alike (else matching them would prove little): the largest
// cosine between two different images stays below 0.99.
::testing::AssertionResult distinct_rows(const Tensor& rows) {
  const int64_t N = rows.dim(0), D = rows.dim(1);
  double worst = -1;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i + 1; j < N; ++j) {
      double ab = 0;
      for (int64_t d = 0; d < D; ++d) ab += double(rows.data()[i * D + d]) * rows.data()[j * D + d];
      worst = std::max(worst, ab);
    }
  if (worst < 0.99) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "reference embeddings nearly identical (cosine " << worst << ")";
}

// Every row has unit length.
::testing::AssertionResult unit_rows(const Tensor& rows) {
  const int64_t D = rows.dim(1);
  for (int64_t i = 0; i < rows.dim(0); ++i) {
    double sq = 0;
    for (int64_t d = 0; d < D; ++d) sq += double(rows.data()[i * D + d]) * rows.data()[i * D + d];
    if (std::abs(std::sqrt(sq) - 1) > 1e-5)
      return ::testing::AssertionFailure() << "row " << i << " has norm " << std::sqrt(sq);
  }
  return ::testing::AssertionSuccess();
}

const std::string kModel = fixture_path("embed/model.h5");
// The image tree the tests embed: the committed fixture folder copied to a temporary directory,
// plus c/grey.pgm decoded from the committed grey.png (same pixels, lossless). The .pgm is made
// here rather than committed, so no .pgm/.jpg file in the repository can be mistaken for face data.
std::string materialize_images() {
  const fs::path dir =
      fs::temp_directory_path() / ("mf_embed_images_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(fixture_path("embed/images"), dir, fs::copy_options::recursive);
  const cv::Mat grey = cv::imread(fixture_path("embed/grey.png"), cv::IMREAD_UNCHANGED);
  if (grey.empty() || grey.channels() != 1 || !cv::imwrite((dir / "c" / "grey.pgm").string(), grey))
    throw std::runtime_error("cannot write c/grey.pgm from tests/fixtures/embed/grey.png");
  return dir.string();
}
struct MaterializedImages {
  const std::string dir = materialize_images();
  ~MaterializedImages() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};
const MaterializedImages kMaterialized;
const std::string& kImages = kMaterialized.dir;
const std::string kReference = fixture_path("embed/reference.h5");

TEST(EmbedFixture, command_matches_pytorch_for_every_flip_mode) {
  TempDir tmp;
  h5::File ref(kReference, h5::File::Mode::kRead);
  const auto names = ref.read_strings("/paths");
  ASSERT_EQ(names.size(), 5u);
  for (const std::string flip : {"off", "sum", "concat"}) {
    SCOPED_TRACE("flip " + flip);
    const std::string out = tmp / ("emb_" + flip + ".h5");
    // --batch 2: five images make two full batches and one partial.
    const CommandResult r =
        embed("--checkpoint " + shell_quote(kModel) + " --images " + shell_quote(kImages) +
              " --out " + shell_quote(out) + " --flip " + flip + " --batch 2 --threads 1");
    ASSERT_EQ(r.status, 0) << r.output;
    h5::File f(out, h5::File::Mode::kRead);
    // Walked recursively, sorted, relative to the folder; upper-case .PNG and .pgm included,
    // notes.txt left out.
    EXPECT_EQ(f.read_strings("/paths"), names);
    const Tensor ours = f.read_tensor("/embeddings");
    EXPECT_TRUE(unit_rows(ours));
    double min_cos = 0;
    EXPECT_TRUE(distinct_rows(ref.read_tensor("/flip_" + flip)));
    EXPECT_TRUE(all_close(ours, ref.read_tensor("/flip_" + flip), names, &min_cos));
    std::printf("flip %-6s: %zu images, minimum cosine to PyTorch 1 - %.2g\n", flip.c_str(),
                names.size(), 1 - min_cos);
    // /norms: ‖f(x)‖ before normalisation, of the unflipped image, whatever the flip mode.
    const Tensor norms = f.read_tensor("/norms"), ref_norms = ref.read_tensor("/norms");
    ASSERT_EQ(norms.numel(), ref_norms.numel());
    for (int64_t i = 0; i < norms.numel(); ++i)
      EXPECT_NEAR(norms.data()[i], ref_norms.data()[i], 1e-4 * ref_norms.data()[i]) << names[i];
    EXPECT_EQ(f.read_attr_string("/meta", "flip"), flip);
    EXPECT_EQ(f.read_attr_string("/meta", "checkpoint"), kModel);
    EXPECT_EQ(f.read_attr_string("/meta", "backbone"), "ir18");
    EXPECT_EQ(f.read_attr_int("/meta", "skipped"), 0);
    EXPECT_FALSE(f.exists("/skipped"));
  }
}

// The approximate Winograd path (--winograd) against PyTorch's exact embeddings: every 3×3
// stride-1 convolution of the IResNet runs on it, the result stays within the same cosine.
TEST(EmbedFixture, winograd_embeddings_match_pytorch) {
  TempDir tmp;
  h5::File ref(kReference, h5::File::Mode::kRead);
  const auto names = ref.read_strings("/paths");
  const std::string out = tmp / "emb.h5", exact_out = tmp / "exact.h5";
  const std::string common = "--checkpoint " + shell_quote(kModel) + " --images " +
                             shell_quote(kImages) + " --flip sum --batch 2 --threads 1";
  const CommandResult r = embed(common + " --winograd --out " + shell_quote(out));
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(embed(common + " --out " + shell_quote(exact_out)).status, 0);
  const Tensor ours = h5::File(out, h5::File::Mode::kRead).read_tensor("/embeddings");
  const Tensor exact = h5::File(exact_out, h5::File::Mode::kRead).read_tensor("/embeddings");
  double min_cos = 0;
  EXPECT_TRUE(all_close(ours, ref.read_tensor("/flip_sum"), names, &min_cos));
  std::printf("--winograd: minimum cosine to PyTorch 1 - %.2g\n", 1 - min_cos);
  // And it is not the exact path under another name.
  bool differs = false;
  for (int64_t i = 0; i < ours.numel(); ++i) differs |= ours.data()[i] != exact.data()[i];
  EXPECT_TRUE(differs);
}

TEST(EmbedFixture, embed_images_matches_pytorch) {
  // The library path: the converted checkpoint's /meta builds the backbone, /model fills it.
  const CheckpointMeta meta = read_checkpoint_meta(kModel);
  EXPECT_EQ(meta.backbone, "ir18");
  EXPECT_EQ(meta.embedding_size, 16);
  EXPECT_DOUBLE_EQ(meta.width, 0.05);
  EXPECT_EQ(meta.input_height, 112);
  EXPECT_EQ(meta.input_width, 112);
  EXPECT_EQ(meta.step, 0);
  EXPECT_EQ(meta.head, "");
  Params p("test");
  p.set("width", "0.05");
  p.set("embedding_size", "16");
  Rng rng(123);
  auto backbone = builtin_backbones().create("ir18", p, rng);
  load_checkpoint(kModel, *backbone);
  h5::File ref(kReference, h5::File::Mode::kRead);
  const auto names = ref.read_strings("/paths");
  std::vector<std::string> paths;
  for (const auto& n : names) paths.push_back(kImages + "/" + n);
  eval::EmbedOptions options;
  options.flip = "sum";
  options.batch_size = 3;
  const eval::Embeddings e = eval::embed_images(*backbone, paths, options);
  EXPECT_EQ(e.num_failed(), 0);
  double min_cos = 0;
  EXPECT_TRUE(all_close(e.rows, ref.read_tensor("/flip_sum"), names, &min_cos));
  const Tensor ref_norms = ref.read_tensor("/norms");
  ASSERT_EQ(e.norms.size(), size_t(ref_norms.numel()));
  for (size_t i = 0; i < e.norms.size(); ++i)
    EXPECT_NEAR(e.norms[i], ref_norms.data()[i], 1e-4 * ref_norms.data()[i]) << names[i];
}

TEST(EmbedCommand, list_paths_are_relative_to_root_or_absolute) {
  TempDir tmp;
  const std::string abs = fs::absolute(kImages + "/b/c/pattern2.png").string();
  const std::string list =
      tmp.write("list.txt", "# a comment\n  c/grey.pgm  \n\na/pattern0.png\r\n" + abs + "\n");
  const std::string out = tmp.path("sub/dir/emb.h5");  // parent folders are created
  const CommandResult r =
      embed("--checkpoint " + shell_quote(kModel) + " --images " + shell_quote(list) + " --root " +
            shell_quote(kImages) + " --out " + shell_quote(out) + " --flip sum");
  ASSERT_EQ(r.status, 0) << r.output;
  h5::File f(out, h5::File::Mode::kRead);
  const std::vector<std::string> expected{"c/grey.pgm", "a/pattern0.png", abs};  // list order
  EXPECT_EQ(f.read_strings("/paths"), expected);
  // The same rows as in the reference, picked by name.
  h5::File ref(kReference, h5::File::Mode::kRead);
  const auto names = ref.read_strings("/paths");
  const Tensor all = ref.read_tensor("/flip_sum");
  const int64_t D = all.dim(1);
  Tensor picked = Tensor::empty({3, D});
  const std::vector<std::string> rel{"c/grey.pgm", "a/pattern0.png", "b/c/pattern2.png"};
  for (int i = 0; i < 3; ++i) {
    const auto it = std::find(names.begin(), names.end(), rel[i]);
    ASSERT_NE(it, names.end());
    std::copy_n(all.data() + (it - names.begin()) * D, D, picked.data() + i * D);
  }
  double min_cos = 0;
  EXPECT_TRUE(all_close(f.read_tensor("/embeddings"), picked, rel, &min_cos));
}

// Regression (issue "A codebase a newcomer can carry"): embed had its own image-extension list
// and skipped .ppm/.webp/.tif files that training reads. One predicate now serves every command.
TEST(EmbedCommand, a_folder_embeds_every_image_type_training_reads) {
  TempDir tmp;
  const cv::Mat image = cv::imread(kImages + "/a/pattern0.png", cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  fs::create_directories(tmp.path("in"));
  ASSERT_TRUE(cv::imwrite(tmp.path("in/x.png"), image));
  ASSERT_TRUE(cv::imwrite(tmp.path("in/y.ppm"), image));  // lossless: the same pixels
  const std::string out = tmp.path("emb.h5");
  const CommandResult r = embed("--checkpoint " + shell_quote(kModel) + " --images " +
                                shell_quote(tmp.path("in")) + " --out " + shell_quote(out));
  ASSERT_EQ(r.status, 0) << r.output;
  h5::File f(out, h5::File::Mode::kRead);
  EXPECT_EQ(f.read_strings("/paths"), (std::vector<std::string>{"x.png", "y.ppm"}));
  const Tensor e = f.read_tensor("/embeddings");
  ASSERT_EQ(e.dim(0), 2);
  for (int64_t d = 0; d < e.dim(1); ++d) EXPECT_EQ(e.data()[d], e.data()[e.dim(1) + d]) << d;
}

// Regression (issue "Nothing lost, nothing silently wrong", item 6): `embed --out` naming the
// checkpoint, or `eval --json` naming the pairs file, destroyed the input. Refused before any
// work, the input left as it was.
TEST(EmbedCommand, an_output_that_is_an_input_is_refused) {
  TempDir tmp;
  const std::string ck = tmp.path("model.h5");
  fs::copy_file(kModel, ck);
  const auto size = fs::file_size(ck);
  CommandResult r = embed("--checkpoint " + shell_quote(ck) + " --images " + shell_quote(kImages) +
                          " --out " + shell_quote(ck));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--out " + ck + " is the file given to --checkpoint; refusing"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(fs::file_size(ck), size);
  const std::string pairs =
      tmp.write("pairs.txt", "a/pattern0.png b/pattern1.png 1\na/pattern0.png c/grey.pgm 0\n");
  r = run_command(shell_quote(MF_MARGINFACE_BIN) + " eval --checkpoint " + shell_quote(ck) +
                  " --pairs " + shell_quote(pairs) + " --root " + shell_quote(kImages) +
                  " --json " + shell_quote(pairs) + " 2>&1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--json " + pairs + " is the file given to --pairs"), std::string::npos)
      << r.output;
  EXPECT_EQ(read_file(pairs, "pairs").substr(0, 14), "a/pattern0.png");
}

// Regression (item 10): --threads -1 was accepted.
TEST(EmbedCommand, a_negative_thread_count_is_refused) {
  TempDir tmp;
  const CommandResult r =
      embed("--checkpoint " + shell_quote(kModel) + " --images " + shell_quote(kImages) +
            " --out " + shell_quote(tmp.path("e.h5")) + " --threads -1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("option --threads must be between 0 and 1024, got -1"), std::string::npos)
      << r.output;
}

TEST(EmbedCommand, missing_images_fail_unless_skipped) {
  TempDir tmp;
  tmp.write("broken.png", "this is not a PNG file");
  const std::string list =
      tmp.write("list.txt", kImages + "/a/pattern1.png\n" + (tmp.path("gone.jpg")) + "\n" +
                                (tmp.path("broken.png")) + "\n" + kImages + "/a/pattern0.png\n");
  const std::string out = tmp.path("emb.h5");
  const std::string base = "--checkpoint " + shell_quote(kModel) + " --images " +
                           shell_quote(list) + " --out " + shell_quote(out);
  CommandResult r = embed(base);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("2 of 4 images are missing or unreadable"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("gone.jpg"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("broken.png"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--skip-missing"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));

  r = embed(base + " --skip-missing");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("2 missing or unreadable images left out"), std::string::npos)
      << r.output;
  h5::File f(out, h5::File::Mode::kRead);
  EXPECT_EQ(f.read_strings("/paths"),
            (std::vector<std::string>{kImages + "/a/pattern1.png", kImages + "/a/pattern0.png"}));
  EXPECT_EQ(f.read_strings("/skipped"),
            (std::vector<std::string>{tmp.path("gone.jpg"), tmp.path("broken.png")}));
  EXPECT_EQ(f.read_attr_int("/meta", "skipped"), 2);
  EXPECT_EQ(f.shape_of("/embeddings"), (std::vector<int64_t>{2, 16}));
}

TEST(EmbedCommand, bad_arguments_are_clear_errors) {
  TempDir tmp;
  const std::string out = " --out " + shell_quote(tmp.path("emb.h5"));
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--checkpoint " + shell_quote(kModel) + " --images " + shell_quote(tmp.path("nowhere")) +
           out,
       "does not exist"},
      {"--checkpoint " + shell_quote(kModel) + " --images " + shell_quote(kImages) +
           " --root /tmp" + out,
       "--root applies to a list file"},
      {"--checkpoint " + shell_quote(kModel) + " --images " + shell_quote(kImages) +
           " --flip twice" + out,
       "flip must be off, sum or concat"},
      {"--checkpoint " + shell_quote(tmp.path("none.h5")) + " --images " + shell_quote(kImages) +
           out,
       "none.h5"},
      {"--checkpoint " + shell_quote(kModel) + " --images " +
           shell_quote(tmp.write("empty.txt", "# nothing\n")) + out,
       "no image paths"},
      {"--images " + shell_quote(kImages) + out, "checkpoint"},
      {"--checkpoint " + shell_quote(kModel) + " --images " + shell_quote(kImages) +
           " --winograd --precision bf16" + out,
       "--winograd runs fp32 convolutions"},
      // The ONNX path runs OpenCV dnn's kernels: the options would silently do nothing.
      {"--model " + shell_quote(tmp.path("m.onnx")) + " --images " + shell_quote(kImages) +
           " --winograd" + out,
       "--model runs the ONNX graph through OpenCV dnn"},
      {"--model " + shell_quote(tmp.path("m.onnx")) + " --images " + shell_quote(kImages) +
           " --precision bf16" + out,
       "--model runs the ONNX graph through OpenCV dnn"},
  };
  for (const auto& c : cases) {
    const CommandResult r = embed(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(tmp.path("emb.h5")));
}

// --- PyTorch, real faces --------------------------------------------------------------------

std::string last_line(const std::string& text) {
  const size_t end = text.find_last_not_of("\n");
  if (end == std::string::npos) return "";
  const size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1) + 1);
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// Evenly spaced images of the aligned LFW folder (sorted), relative to it.
std::vector<std::string> pick_faces(const fs::path& root, size_t count) {
  std::vector<std::string> all;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().extension() == ".jpg")
      all.push_back(e.path().lexically_relative(root).generic_string());
  std::sort(all.begin(), all.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < count && !all.empty(); ++i) out.push_back(all[i * all.size() / count]);
  return out;
}

TEST(InsightfaceConversion, pytorch_iresnet_embeds_the_same_and_round_trips) {
  const fs::path lfw = shared_data_dir() + "/aligned/lfw";
  if (!fs::is_directory(lfw))
    GTEST_SKIP() << "aligned LFW faces not found at " << lfw << " (../shared absent)";
  const CommandResult probe = run_command(python() + " -c 'import torch, h5py, cv2'");
  if (probe.status != 0)
    GTEST_SKIP() << python()
                 << " lacks torch, h5py or cv2 (MF_WITH_TORCH=1 "
                    "scripts/install_deps.sh installs them): "
                 << last_line(probe.output);
  const std::string backbone = env_or("MF_EMBED_TORCH_BACKBONE", "ir18");
  const std::string width = env_or("MF_EMBED_TORCH_WIDTH", "0.25");
  const std::string dim = env_or("MF_EMBED_TORCH_DIM", "128");
  const size_t count = std::stoul(env_or("MF_EMBED_TORCH_IMAGES", "20"));
  const std::string model_args =
      " --backbone " + backbone + " --width " + width + " --embedding-size " + dim;
  TempDir tmp;

  // A "pretrained" insightface backbone: random He-scaled weights, warmed-up running statistics.
  CommandResult r = run_command(script("make_embed_fixtures.py") + " model " +
                                shell_quote(tmp.path("model.pth")) + model_args + " --seed 3");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_command(script("convert_insightface.py") + " to-h5 " +
                  shell_quote(tmp.path("model.pth")) + " " + shell_quote(tmp.path("model.h5")) +
                  model_args);
  ASSERT_EQ(r.status, 0) << r.output;

  const auto faces = pick_faces(lfw, count);
  ASSERT_EQ(faces.size(), count);
  std::string list_text;
  for (const auto& f : faces) list_text += f + "\n";
  const std::string list = tmp.write("faces.txt", list_text);
  r = embed("--checkpoint " + shell_quote(tmp.path("model.h5")) + " --images " + shell_quote(list) +
            " --root " + shell_quote(lfw.string()) + " --out " + shell_quote(tmp.path("ours.h5")) +
            " --flip sum");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_command(script("make_embed_fixtures.py") + " reference " +
                  shell_quote(tmp.path("model.pth")) + model_args + " --list " + shell_quote(list) +
                  " --root " + shell_quote(lfw.string()) + " --flip sum --out " +
                  shell_quote(tmp.path("torch.h5")));
  ASSERT_EQ(r.status, 0) << r.output;

  h5::File ours(tmp.path("ours.h5"), h5::File::Mode::kRead),
      ref(tmp.path("torch.h5"), h5::File::Mode::kRead);
  EXPECT_EQ(ours.read_strings("/paths"), faces);
  EXPECT_EQ(ref.read_strings("/paths"), faces);
  double min_cos = 0;
  EXPECT_TRUE(distinct_rows(ref.read_tensor("/embeddings")));
  EXPECT_TRUE(
      all_close(ours.read_tensor("/embeddings"), ref.read_tensor("/embeddings"), faces, &min_cos));
  std::printf("%s width %s D %s: %zu real faces, flip sum, minimum cosine to PyTorch 1 - %.2g\n",
              backbone.c_str(), width.c_str(), dim.c_str(), faces.size(), 1 - min_cos);
  RecordProperty("min_cosine", std::to_string(min_cos));

  // Back to .pth: the state_dict PyTorch saved, bit for bit.
  r = run_command(script("convert_insightface.py") + " to-pth " +
                  shell_quote(tmp.path("model.h5")) + " " + shell_quote(tmp.path("back.pth")));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_command(script("make_embed_fixtures.py") + " compare-pth " +
                  shell_quote(tmp.path("model.pth")) + " " + shell_quote(tmp.path("back.pth")));
  EXPECT_EQ(r.status, 0) << r.output;

  // A checkpoint written by marginface itself (with head-less training metadata) converts to the
  // same state_dict too.
  const CheckpointMeta meta = read_checkpoint_meta(tmp.path("model.h5"));
  Params p("test");
  p.set("width", width);
  p.set("embedding_size", dim);
  Rng rng(5);
  auto net = builtin_backbones().create(backbone, p, rng);
  load_checkpoint(tmp.path("model.h5"), *net);
  CheckpointContents contents;
  contents.meta = meta;
  contents.meta.step = 1000;
  contents.meta.config = "model:\n  backbone: " + backbone + "\n";
  contents.model = net.get();
  save_checkpoint(tmp.path("ours_ck.h5"), contents);
  r = run_command(script("convert_insightface.py") + " to-pth " +
                  shell_quote(tmp.path("ours_ck.h5")) + " " + shell_quote(tmp.path("ours_ck.pth")));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_command(script("make_embed_fixtures.py") + " compare-pth " +
                  shell_quote(tmp.path("model.pth")) + " " + shell_quote(tmp.path("ours_ck.pth")));
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(InsightfaceConversion, converter_reports_mismatches) {
  const CommandResult probe = run_command(python() + " -c 'import torch, h5py'");
  if (probe.status != 0) GTEST_SKIP() << python() << " lacks torch or h5py";
  TempDir tmp;
  // The committed checkpoint is ir18 at width 0.05, D = 16: back to .pth, then in as the wrong
  // embedding size and the wrong network.
  CommandResult r = run_command(script("convert_insightface.py") + " to-pth " +
                                shell_quote(kModel) + " " + shell_quote(tmp.path("tiny.pth")));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_command(script("convert_insightface.py") + " to-h5 " + shell_quote(tmp.path("tiny.pth")) +
                  " " + shell_quote(tmp.path("x.h5")) +
                  " --backbone ir18 --width 0.05 --embedding-size 32");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("fc.weight has shape (16, 1274), ir18 (width 0.05, embedding size 32) "
                          "expects (32, 1274)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("--embedding-size 16"), std::string::npos) << r.output;
  r = run_command(script("convert_insightface.py") + " to-h5 " + shell_quote(tmp.path("tiny.pth")) +
                  " " + shell_quote(tmp.path("x.h5")) +
                  " --backbone ir34 --width 0.05 --embedding-size 16");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("missing layer1.2.conv1.weight"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp.path("x.h5")));
  // Wrapped in {'state_dict': ...} with DataParallel's 'module.' prefixes: accepted.
  r = run_command(
      python() + " -c \"import torch; s = torch.load('" + tmp.path("tiny.pth") +
      "'); torch.save({'epoch': 3, 'state_dict': {'module.' + k: v for k, v in s.items()}}, '" +
      tmp.path("wrapped.pth") + "')\"");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_command(script("convert_insightface.py") + " to-h5 " +
                  shell_quote(tmp.path("wrapped.pth")) + " " + shell_quote(tmp.path("wrapped.h5")) +
                  " --backbone ir18 --width 0.05 --embedding-size 16");
  ASSERT_EQ(r.status, 0) << r.output;
  h5::File a(kModel, h5::File::Mode::kRead), b(tmp.path("wrapped.h5"), h5::File::Mode::kRead);
  const auto names = a.list("/model");
  EXPECT_EQ(b.list("/model"), names);
  for (const auto& n : names) {
    const Tensor x = a.read_tensor("/model/" + n), y = b.read_tensor("/model/" + n);
    ASSERT_EQ(x.shape(), y.shape()) << n;
    EXPECT_TRUE(std::equal(x.data(), x.data() + x.numel(), y.data())) << n;
  }
}

}  // namespace
}  // namespace mf::test
