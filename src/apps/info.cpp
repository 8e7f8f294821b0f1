// `marginface info`: what this build is and what it will run on.
#include <cstdio>

#include "apps/commands.h"
#include "tensor/parallel.h"
#include "util/args.h"

extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);

namespace mf::apps {

int run_info(const std::vector<std::string>& argv) {
  Args args("info", "Prints the build configuration, the thread count and the BLAS in use.");
  args.option("threads", "threads for kernels and BLAS (0 = OMP_NUM_THREADS or all cores)", "0");
  if (!args.parse(argv)) return 0;
  set_num_threads(args.get_int("threads", 0, 1024));  // 0: all cores
  std::printf("marginface %s\n", MF_VERSION);
  std::printf("compiler   g++ %d.%d, C++%ld\n", __GNUC__, __GNUC_MINOR__, __cplusplus / 100 % 100);
  std::printf("threads    %d\n", num_threads());
  std::printf("openblas   %s (core %s)\n", openblas_get_config(), openblas_get_corename());
  return 0;
}

}  // namespace mf::apps
