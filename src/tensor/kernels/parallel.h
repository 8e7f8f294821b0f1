// When a kernel loop is worth a parallel region. Opening an OpenMP team costs microseconds, and far
// more when another process holds a core (threads spin, then sleep): tiny tensors — heads, BN1d,
// tests — run faster on one thread. Loops use `if (work >= kParallelMinWork)`.
#pragma once

#include <cstdint>

namespace mf::kernels {
constexpr int64_t kParallelMinWork = int64_t{1} << 15;
}  // namespace mf::kernels
