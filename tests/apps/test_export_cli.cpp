// `marginface export` and `--model model.onnx` in compare, search and embed, end to end on a tiny
// randomly initialised IResNet-18 checkpoint: an export must give the checkpoint's numbers through
// every command, carry its stored operating point, and refuse bad input with one clear message.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <regex>

#include "h5/file.h"
#include "io/checkpoint.h"
#include "layers/backbones/registry.h"
#include "support/checkpoints.h"
#include "support/faces.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "util/params.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

CommandResult marginface(const std::string& args) {
  return run_command("OMP_NUM_THREADS=1 " + shell_quote(MF_MARGINFACE_BIN) + " " + args);
}

double similarity_of(const std::string& output) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("similarity (-?[0-9.]+)"))) return NAN;
  return std::stod(m[1]);
}

// ir_se18 (width 0.0625, D = 16) with a stored operating point of 0.25.
std::string tiny_checkpoint(const TempDir& tmp) {
  return save_tiny_checkpoint(tmp.path("ck.h5"), "ir_se18", 5, 0.25, "FAR 0.001 on a test list");
}

TEST(ExportCommand, an_export_gives_the_checkpoints_numbers_in_compare_embed_and_search) {
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  const std::string plain = tmp.path("plain.onnx"), sf = tmp.path("sf.onnx");
  CommandResult r = marginface("export --checkpoint " + shell_quote(ck) + " --out " + plain);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("input  'input' Nx3x112x112"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stored operating point: cosine 0.2500"), std::string::npos) << r.output;
  r = marginface("export --checkpoint " + shell_quote(ck) + " --out " + sf +
                 " --normalize in-graph --flip-sum --opset 11 --batch 4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("input  'image' 4x3x112x112"), std::string::npos) << r.output;

  const std::string a = write_face(tmp.path("faces/a/0.png"), 1);
  const std::string b = write_face(tmp.path("faces/b/0.png"), 2);
  write_face(tmp.path("faces/c/0.png"), 3);
  // The stored threshold travels with the export: compare needs no --threshold.
  const CommandResult by_ck =
      marginface("compare --checkpoint " + shell_quote(ck) + " " + a + " " + b);
  ASSERT_EQ(by_ck.status, 0) << by_ck.output;
  for (const std::string& model : {plain, sf}) {
    const CommandResult by_model = marginface("compare --model " + model + " " + a + " " + b);
    ASSERT_EQ(by_model.status, 0) << by_model.output;
    EXPECT_NEAR(similarity_of(by_model.output), similarity_of(by_ck.output), 2e-4)
        << by_model.output << by_ck.output;
    EXPECT_NE(by_model.output.find("threshold 0.2500"), std::string::npos) << by_model.output;
  }

  // embed: the same rows (L2-normalised, flip sum) from the checkpoint and from each export.
  ASSERT_EQ(marginface("embed --checkpoint " + shell_quote(ck) + " --images " + tmp.path("faces") +
                       " --out " + tmp.path("ck_emb.h5"))
                .status,
            0);
  const Tensor want =
      h5::File(tmp.path("ck_emb.h5"), h5::File::Mode::kRead).read_tensor("/embeddings");
  for (const std::string& model : {plain, sf}) {
    const std::string out = tmp.path(fs::path(model).stem().string() + "_emb.h5");
    r = marginface("embed --model " + model + " --images " + tmp.path("faces") + " --out " + out);
    ASSERT_EQ(r.status, 0) << r.output;
    const Tensor got = h5::File(out, h5::File::Mode::kRead).read_tensor("/embeddings");
    ASSERT_EQ(got.shape(), want.shape());
    for (int64_t i = 0; i < got.numel(); ++i)
      ASSERT_NEAR(got.data()[i], want.data()[i], 1e-4) << model << " value " << i;
    // A gallery embedded from the export searches like one from the checkpoint (flip sum).
    r = marginface("search --model " + model + " --gallery " + tmp.path("ck_emb.h5") + " --probe " +
                   a + " --top 1");
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("1.0000  a"), std::string::npos) << r.output;
  }
}

TEST(ExportCommand, bad_input_gets_one_clear_message_each) {
  TempDir tmp;
  const std::string ck = tiny_checkpoint(tmp);
  const std::string a = write_face(tmp.path("a.png"), 1);
  ASSERT_EQ(marginface("export --checkpoint " + shell_quote(ck) + " --out " + tmp.path("f.onnx") +
                       " --flip-sum")
                .status,
            0);
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases{
      {"export --checkpoint " + ck + " --out " + ck, "--out"},
      {"export --checkpoint " + ck + " --out " + tmp.path("no/dir/m.onnx"), "no/dir/m.onnx"},
      {"export --checkpoint " + tmp.path("missing.h5") + " --out " + tmp.path("m.onnx"),
       "missing.h5"},
      {"export --checkpoint " + ck + " --out " + tmp.path("m.onnx") + " --opset 8", "--opset"},
      {"export --checkpoint " + ck + " --out " + tmp.path("m.onnx") + " --normalize rgb",
       "--normalize must be none or in-graph"},
      {"compare --model " + tmp.path("f.onnx") + " --flip off --threshold 0.5 " + a + " " + a,
       "has the flip test built in"},
      {"compare --model " + tmp.path("f.onnx") + " --checkpoint " + ck + " " + a + " " + a,
       "not both"},
      {"compare --threshold 0.5 " + a + " " + a, "--checkpoint ck.h5 or --model model.onnx"},
      {"embed --model " + ck + " --images " + tmp.str() + " --out " + tmp.path("e.h5"),
       "not an ONNX model"},
  };
  for (const Case& c : cases) {
    const CommandResult r = marginface(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("terminate"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(tmp.path("m.onnx")));
  EXPECT_EQ(marginface("export --help").status, 0);
}

}  // namespace
}  // namespace mf::test
