// marginface: one executable, one subcommand per job. Errors (mf::Error) are caught here and
// printed as one clear line; nothing below main() calls exit().
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "dist/communicator.h"
#include "tensor/kernels/gemm_fp32.h"
#include "util/error.h"
#include "util/stop_signal.h"

namespace {

void print_usage() {
  std::printf(
      "marginface: train and compare margin-based face-recognition heads\n\n"
      "usage: marginface <command> [options]      (marginface <command> --help for its options)\n\n"
      "commands:\n");
  for (const auto& c : mf::apps::commands()) std::printf("  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  // First thing, before any setup: a stop request must not be lost while the run starts. One that
  // came while the dynamic loader was still mapping libraries is held blocked by the launcher
  // (launcher.c) and delivered by release_launcher_signals().
  const std::string name = argc >= 2 ? argv[1] : "";
  if (name == "train" || name == "ablate") mf::install_stop_handlers();
  mf::release_launcher_signals();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : mf::apps::commands()) {
    if (name != c.name) continue;
    int code = 1;
    try {
      mf::kernels::sgemm::active();  // an MF_GEMM this CPU lacks fails here, not mid-kernel
      code = c.run(std::vector<std::string>(argv + 2, argv + argc));
    } catch (const mf::Error& e) {
      std::fprintf(stderr, "marginface %s: error: %s\n", c.name, e.what());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "marginface %s: unexpected error: %s\n", c.name, e.what());
    }
    mf::dist::finish(code);  // under mpirun: a rank's error ends the whole job
    return code;
  }
  std::fprintf(stderr, "marginface: unknown command '%s'\n\n", name.c_str());
  print_usage();
  return 2;
}
