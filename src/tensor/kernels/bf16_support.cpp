// The run-time side of the bf16 fast path, compiled for the build's baseline target (it runs
// before anyone knows whether the CPU has AVX-512): CPU and OS detection, the precision switch,
// scalar conversions.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/kernels/gemm_bf16.h"
#include "util/error.h"

namespace mf::kernels {
namespace bf16 {

namespace {

// Linux: a process must ask before it may use the AMX tile data state (arch_prctl, kernel ≥ 5.16).
constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

struct Support {
  std::vector<Backend> backends;  // fastest first
  std::string why;                // when empty
};

Support probe() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
    return {{}, "the CPU does not report its extended features (cpuid leaf 7)"};
  const bool amx_bf16 = edx & (1u << 22), amx_tile = edx & (1u << 24);
  const bool avx512f = ebx & (1u << 16), avx512bw = ebx & (1u << 30);
  unsigned eax1 = 0, ebx1 = 0, ecx1 = 0, edx1 = 0;
  __get_cpuid_count(7, 1, &eax1, &ebx1, &ecx1, &edx1);
  const bool avx512_bf16 = eax1 & (1u << 5);
  // The OS must save the AVX-512 registers (XCR0: SSE, AVX, opmask, ZMM upper halves, ZMM16-31).
  unsigned eax0 = 0, ebx0 = 0, ecx0 = 0, edx0 = 0;
  __get_cpuid(1, &eax0, &ebx0, &ecx0, &edx0);
  bool os_zmm = false;
  if (ecx0 & (1u << 27)) {  // OSXSAVE
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    os_zmm = (lo & 0xe6u) == 0xe6u;
  }
  if (!avx512f || !avx512bw || !avx512_bf16 || !os_zmm)
    return {{},
            "this CPU (or OS) has neither AMX-BF16 nor AVX512-BF16 (Intel Sapphire Rapids, "
            "AMD Zen 4 or newer is needed)"};
  Support s;
  // Linux: a process must ask before it may use the AMX tile data state (kernel ≥ 5.16).
  if (amx_tile && amx_bf16 && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0)
    s.backends.push_back(Backend::amx);
  s.backends.push_back(Backend::avx512_bf16);
  return s;
}

const Support& support() {
  static const Support s = probe();
  return s;
}

}  // namespace

const std::vector<Backend>& backends(std::string* why) {
  if (why) *why = support().why;
  return support().backends;
}

bool available(std::string* why) {
  return !backends(why).empty();
}

const char* name(Backend backend) {
  return backend == Backend::amx ? "AMX" : "AVX512-BF16";
}

void gemm(const PackedA& a, const PackedB& b, float* C, int64_t ldc, bool accumulate) {
  MF_CHECK(available(), "internal: bf16 GEMM without a bf16 backend");
  gemm(backends().front(), a, b, C, ldc, accumulate);
}

uint16_t from_float(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float to_float(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace bf16

namespace {
std::atomic<ConvPrecision> g_conv_precision{ConvPrecision::fp32};
}

void set_conv_precision(ConvPrecision precision) {
  std::string why;
  MF_CHECK(precision == ConvPrecision::fp32 || bf16::available(&why),
           "precision bf16 is not available here: ", why);
  g_conv_precision = precision;
}

ConvPrecision conv_precision() {
  return g_conv_precision;
}

ConvPrecision parse_conv_precision(const std::string& name) {
  if (name == "fp32") return ConvPrecision::fp32;
  if (name == "bf16") return ConvPrecision::bf16;
  MF_FAIL("unknown precision '", name, "' (expected fp32 or bf16)");
}

}  // namespace mf::kernels
