// Training's bits must not hinge on how the BLAS build picks its kernels (issue: fast on every
// CPU). OPENBLAS_CORETYPE=Haswell and =Prescott make OpenBLAS run its AVX2 and its SSE3 kernels;
// `marginface train` runs 3 steps under each. Where our own GEMM runs (AVX-512 or AVX2 CPUs), the
// final weights (and running statistics) are the same bits. With MF_GEMM=blas both runs go
// through OpenBLAS, whose kernels sum in different orders, as this project ran before it had its
// own GEMM: the weights then differ (which shows the same-bits test can fail), by no more than
// 1e-3 of the largest value (measured: 3.8e-5; this tiny net amplifies rounding about tenfold per
// step, hence only 3 steps at lr 0.005).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/checkpoints.h"
#include "support/faces.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "tensor/kernels/gemm_fp32.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;
namespace sgemm = mf::kernels::sgemm;

// Trains 3 steps with OPENBLAS_CORETYPE=`coretype` (and MF_GEMM=`gemm` unless empty) into
// dir/name; returns the final weights.
std::vector<float> train(const fs::path& dir, const fs::path& config, const std::string& name,
                         const std::string& coretype, const std::string& gemm) {
  const fs::path out = dir / name;
  const std::string command =
      "OMP_NUM_THREADS=2 OPENBLAS_CORETYPE=" + coretype + (gemm.empty() ? "" : " MF_GEMM=" + gemm) +
      " " + shell_quote(MF_MARGINFACE_BIN) + " train --config " + shell_quote(config.string()) +
      " --set " + shell_quote("train.output_dir=" + out.string());
  const CommandResult r = run_command(command);
  EXPECT_EQ(r.status, 0) << command << "\n" << r.output;
  if (r.status != 0) return {};
  return checkpoint_values(out / "checkpoints" / "last.h5");
}

fs::path write_config(const fs::path& dir) {
  const fs::path faces = make_faces(dir / "faces");
  const fs::path config = dir / "config.yaml";
  std::ofstream(config) << "seed: 3\n"
                        << "data: {train: [" << faces.string()
                        << "], batch_size: 8, loader_threads: 1}\n"
                        << "model: {backbone: ir18, width: 0.125, embedding_size: 32}\n"
                        << "head: {type: arcface, s: 16, m: 0.3}\n"
                        << "optim: {type: sgd, lr: 0.005, momentum: 0.9}\n"
                        << "train: {max_steps: 3, epochs: 100, checkpoint_every: 3}\n";
  return config;
}

TEST(BlasIndependence, OwnGemmTrainsToTheSameBitsWhateverOpenblasCoretype) {
  const sgemm::Backend ours = sgemm::backends().front();
  if (ours == sgemm::Backend::blas)
    GTEST_SKIP() << "this CPU has neither AVX-512 nor AVX2 + FMA: training runs on OpenBLAS "
                    "(the MF_GEMM=blas test below covers it)";
  const TempDir tmp;
  const fs::path config = write_config(tmp.root());
  const auto haswell = train(tmp.root(), config, "haswell", "Haswell", "");
  const auto prescott = train(tmp.root(), config, "prescott", "Prescott", "");
  ASSERT_FALSE(haswell.empty());
  ASSERT_EQ(haswell.size(), prescott.size());
  EXPECT_TRUE(haswell == prescott) << "the weights differ between OpenBLAS core types although "
                                   << sgemm::name(ours) << " ran every float GEMM";
}

TEST(BlasIndependence, OpenblasKernelsAgreeWithinRoundingOnly) {
  const TempDir tmp;
  const fs::path config = write_config(tmp.root());
  const auto haswell = train(tmp.root(), config, "haswell", "Haswell", "blas");
  const auto prescott = train(tmp.root(), config, "prescott", "Prescott", "blas");
  ASSERT_FALSE(haswell.empty());
  ASSERT_EQ(haswell.size(), prescott.size());
  float largest = 0, worst = 0;
  for (size_t i = 0; i < haswell.size(); ++i) {
    largest = std::max(largest, std::abs(haswell[i]));
    worst = std::max(worst, std::abs(haswell[i] - prescott[i]));
  }
  EXPECT_GT(worst, 0.0f) << "OpenBLAS's two kernel sets gave the same bits: the same-bits test "
                            "above would pass even if OpenBLAS ran the GEMMs";
  EXPECT_LE(worst, 1e-3f * largest);
  std::printf("OpenBLAS Haswell vs Prescott kernels: largest weight difference %.3g (%s)\n", worst,
              worst == 0 ? "the same bits" : "rounding order differs");
}

}  // namespace
}  // namespace mf::test
