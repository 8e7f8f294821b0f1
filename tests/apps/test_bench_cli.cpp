// `marginface bench`: what it reports (not how fast: speed is never asserted in tests).
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/temp_dir.h"
#include "util/file.h"
#include "util/json.h"

namespace mf::test {
namespace {

CommandResult bench(const std::string& args) {
  return run_command(shell_quote(MF_MARGINFACE_BIN) + " bench " + args + " 2>&1");
}

// A narrow IR-18, 2 images per step: the full report in a few seconds.
const std::string kTiny =
    "--backbone ir18 --width 0.0625 --embedding-size 16 --batch 2 --iters 1 --warmup 0 ";

// --scaling: one row per thread count (1, then doubling, ending at --threads), each with its
// median images/s, the speed-up over 1 thread and the efficiency, consistent with the rates.
TEST(BenchCli, scaling_reports_each_thread_count_consistently) {
  TempDir tmp;
  const std::string json_path = tmp.path("bench.json");
  const CommandResult r =
      bench(kTiny + "--mode infer --threads 3 --scaling --json " + shell_quote(json_path));
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_NE(r.output.find("thread scaling ("), std::string::npos) << r.output;
  const std::regex row(R"(\n\s+(\d+) threads?\s+([0-9.]+)\s+([0-9.]+)x\s+(\d+)%)");
  std::vector<int> threads;
  std::vector<double> rate, speedup, efficiency;
  for (std::sregex_iterator it(r.output.begin(), r.output.end(), row), end; it != end; ++it) {
    threads.push_back(std::stoi((*it)[1]));
    rate.push_back(std::stod((*it)[2]));
    speedup.push_back(std::stod((*it)[3]));
    efficiency.push_back(std::stod((*it)[4]));
  }
  ASSERT_EQ(threads, (std::vector<int>{1, 2, 3})) << r.output;
  for (size_t i = 0; i < threads.size(); ++i) {
    ASSERT_GT(rate[i], 0) << r.output;
    // Printed to 2 decimals (rates, speed-ups) and 0 (efficiency): compare within that rounding.
    EXPECT_NEAR(speedup[i], rate[i] / rate[0], 0.01 + 0.01 * rate[i] / rate[0]) << i;
    EXPECT_NEAR(efficiency[i], 100.0 * speedup[i] / threads[i], 1.0) << i;
  }
  EXPECT_EQ(speedup[0], 1.0);
  const json::Value v = json::parse(read_file(json_path, "bench JSON"), json_path);
  EXPECT_EQ(v.find("threads")->as_int(), 3);
  EXPECT_EQ(v.find("mode")->as_string(), "infer");
  ASSERT_NE(v.find("thread_scaling"), nullptr);
  EXPECT_NE(v.find("thread_scaling")->dump(-1).find("\"threads\":3"), std::string::npos);
}

// Without --scaling there is no scaling table, and training mode reports too.
TEST(BenchCli, train_without_scaling) {
  const CommandResult r = bench(kTiny + "--mode train --classes 10 --threads 1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("images/s"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("thread scaling"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace mf::test
