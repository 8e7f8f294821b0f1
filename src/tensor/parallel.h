// One place that sets how many threads the kernels (OpenMP) and OpenBLAS use.
#pragma once

namespace mf {

// n <= 0 means: OMP_NUM_THREADS if set, otherwise every core.
void set_num_threads(int n);
int num_threads();

}  // namespace mf
