// The run-time side of the bf16 fast path, compiled for the build's baseline target (it runs
// before anyone knows whether the CPU has AVX-512): CPU and OS detection, the precision switch,
// scalar conversions.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "tensor/kernels/gemm_bf16.h"
#include "util/error.h"

namespace mf::kernels {
namespace bf16 {

namespace {

// Linux: a process must ask before it may use the AMX tile data state (arch_prctl, kernel ≥ 5.16).
constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

struct Support {
  bool ok = false;
  std::string why;
};

Support probe() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
    return {false, "the CPU does not report its extended features (cpuid leaf 7)"};
  const bool amx_bf16 = edx & (1u << 22), amx_tile = edx & (1u << 24);
  const bool avx512bw = ebx & (1u << 30);
  unsigned eax1 = 0, ebx1 = 0, ecx1 = 0, edx1 = 0;
  __get_cpuid_count(7, 1, &eax1, &ebx1, &ecx1, &edx1);
  const bool avx512_bf16 = eax1 & (1u << 5);
  if (!amx_tile || !amx_bf16 || !avx512_bf16 || !avx512bw)
    return {false, "this CPU has no AMX-BF16 (Intel Sapphire Rapids or newer is needed)"};
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
    return {false, "the kernel does not grant AMX tile data to this process (Linux ≥ 5.16 needed)"};
  return {true, ""};
}

}  // namespace

bool available(std::string* why) {
  static const Support support = probe();
  if (why) *why = support.why;
  return support.ok;
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
