// The machine's arithmetic ceiling, measured: what fraction of it a kernel reaches is the honest
// measure of a kernel (`marginface bench --peak`, and the fraction bench prints for a step).
//
// Each loop keeps 12 independent accumulators in vector registers and issues nothing but the
// instruction under test, so it runs at the core's issue rate of that instruction: the FMA peak
// (fp32 AVX2 and AVX-512 vfmadd231ps: 2 FLOP per lane) and the bf16 dot-product peak (AVX512-BF16
// vdpbf16ps: 2 products and 2 sums per fp32 lane, 4 FLOP). Threads run the same loop at once.
#pragma once

#include <string>
#include <vector>

namespace mf::kernels {

struct PeakKind {
  std::string name;  // "fp32 FMA, AVX-512"
  bool available = false;
  std::string why;  // when not available
};

// The instruction kinds this CPU can run, in a fixed order: fp32 FMA AVX2, fp32 FMA AVX-512,
// bf16 dot AVX512-BF16.
std::vector<PeakKind> peak_kinds();

// GFLOP/s of kind `index` (into peak_kinds()) on `threads` threads running for about `seconds`.
double measure_peak(size_t index, int threads, double seconds);

// The best fp32 peak this CPU has (AVX-512, else AVX2), on `threads` threads; 0 without FMA.
double fp32_peak(int threads, double seconds = 0.2);

// The CPU's model name (/proc/cpuinfo), for benchmark tables; "unknown CPU" when unreadable.
std::string cpu_name();

}  // namespace mf::kernels
