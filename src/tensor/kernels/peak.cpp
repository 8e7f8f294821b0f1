// Each loop carries its instruction set as a target attribute (as gemm_bf16.cpp does) and runs
// only after the CPU said it has it.
#include "tensor/kernels/peak.h"

#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <fstream>

#include "tensor/kernels/gemm_bf16.h"
#include "util/error.h"

namespace mf::kernels {

namespace {

constexpr int kChains = 12;  // independent accumulators: enough to hide the FMA latency (4–5
                             // cycles) at 2 issues per cycle

// Each returns a sum of its accumulators so the loop cannot be optimised away.
__attribute__((target("avx2,fma"))) float loop_avx2(int64_t iterations) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(float(j) * 1e-3f);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], x, y);
  __m256 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm256_add_ps(sum, acc[j]);
  alignas(32) float out[8];
  _mm256_store_ps(out, sum);
  return out[0];
}

__attribute__((target("avx512f"))) float loop_avx512(int64_t iterations) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(float(j) * 1e-3f);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], x, y);
  __m512 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm512_add_ps(sum, acc[j]);
  alignas(64) float out[16];
  _mm512_store_ps(out, sum);
  return out[0];
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) float loop_bf16(int64_t iterations) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(float(j) * 1e-3f);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(-1e-3f), _mm512_set1_ps(1e-3f));
  for (int64_t i = 0; i < iterations; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  __m512 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm512_add_ps(sum, acc[j]);
  alignas(64) float out[16];
  _mm512_store_ps(out, sum);
  return out[0];
}

struct Kind {
  const char* name;
  double flop_per_iteration;  // kChains instructions
  float (*loop)(int64_t);
  bool (*has)(std::string* why);
};

bool has_avx2(std::string* why) {
  const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!ok) *why = "no AVX2 + FMA";
  return ok;
}
bool has_avx512(std::string* why) {
  const bool ok = __builtin_cpu_supports("avx512f");
  if (!ok) *why = "no AVX-512";
  return ok;
}
bool has_bf16(std::string* why) {
  for (const bf16::Backend b : bf16::backends(why))
    if (b == bf16::Backend::avx512_bf16) return true;
  return false;
}

const Kind kKinds[] = {
    {"fp32 FMA, AVX2", kChains * 8 * 2.0, loop_avx2, has_avx2},
    {"fp32 FMA, AVX-512", kChains * 16 * 2.0, loop_avx512, has_avx512},
    {"bf16 dot, AVX512-BF16", kChains * 16 * 4.0, loop_bf16, has_bf16},
};

}  // namespace

std::vector<PeakKind> peak_kinds() {
  std::vector<PeakKind> out;
  for (const Kind& k : kKinds) {
    PeakKind p{k.name, false, ""};
    p.available = k.has(&p.why);
    out.push_back(p);
  }
  return out;
}

double measure_peak(size_t index, int threads, double seconds) {
  MF_CHECK(index < std::size(kKinds), "internal: peak kind ", index);
  const Kind& kind = kKinds[index];
  std::string why;
  MF_CHECK(kind.has(&why), "internal: measuring ", kind.name, " on a CPU without it: ", why);
  MF_CHECK(threads >= 1, "internal: ", threads, " threads");
  // Calibrate on one thread, then every thread runs the same count at once.
  int64_t iterations = 1 << 16;
  volatile float sink = 0;
  while (true) {
    const auto t0 = std::chrono::steady_clock::now();
    sink = sink + kind.loop(iterations);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= seconds / 8 || iterations > (int64_t(1) << 40)) {
      iterations = static_cast<int64_t>(double(iterations) * seconds / std::max(s, 1e-9));
      break;
    }
    iterations *= 4;
  }
  const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
  {
    const float r = kind.loop(iterations);
#pragma omp critical
    sink = sink + r;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(iterations) * kind.flop_per_iteration * threads / s * 1e-9;
}

double fp32_peak(int threads, double seconds) {
  const std::vector<PeakKind> kinds = peak_kinds();
  if (kinds[1].available) return measure_peak(1, threads, seconds);
  if (kinds[0].available) return measure_peak(0, threads, seconds);
  return 0;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
    }
  return "unknown CPU";
}

}  // namespace mf::kernels
