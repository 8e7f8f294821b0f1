// The arithmetic-peak microbenchmark (tensor/kernels/peak.h): every kind the CPU has gives a
// positive rate no core can exceed — at most 2 of the instruction per cycle at ≤ 6 GHz — so an
// overcount of FLOP per instruction (a factor of 2 or more in lanes or FLOP per lane) or a loop
// the compiler removed shows. No lower bound: speed is not asserted in tests (the sanitizer build
// runs these loops through memory at a few % of the peak). Kinds the CPU lacks are skipped with
// the reason.
#include <gtest/gtest.h>

#include <cstdio>

#include "tensor/kernels/peak.h"

namespace mf::test {
namespace {

TEST(Peak, EveryKindTheCpuHasRunsAtAPhysicalRate) {
  const auto kinds = kernels::peak_kinds();
  ASSERT_EQ(kinds.size(), 3u);
  // FLOP per instruction: AVX2 FMA 8 lanes × 2, AVX-512 FMA 16 × 2, vdpbf16ps 16 × 4.
  const double flop_per_instruction[] = {16, 32, 64};
  int measured = 0;
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (!kinds[i].available) {
      std::printf("skipped %s: %s\n", kinds[i].name.c_str(), kinds[i].why.c_str());
      continue;
    }
    const double ceiling = 2 * flop_per_instruction[i] * 6.0;  // GFLOP/s: 2 per cycle at 6 GHz
    const double gflops = kernels::measure_peak(i, 1, 0.05);
    std::printf("%s: %.1f GFLOP/s on one thread (%s)\n", kinds[i].name.c_str(), gflops,
                kernels::cpu_name().c_str());
    EXPECT_LT(gflops, ceiling) << kinds[i].name;
    EXPECT_GT(gflops, 0.0) << kinds[i].name;
    ++measured;
  }
  if (measured == 0) GTEST_SKIP() << "this CPU has none of the measured instruction kinds";
}

}  // namespace
}  // namespace mf::test
