// bfloat16 GEMM on Intel AMX or AVX512-BF16, and the convolution fast path built on it (off by
// default).
//
// C (M, N, fp32) = or += op(A) (M, K) · op(B) (K, N), where A and B are rounded to bfloat16
// (round to nearest even: 8 significant bits) and every product is summed in fp32 by the tile
// unit (TDPBF16PS: a 16×32 by 32×16 block per instruction, 1024 FLOP per cycle per core against
// 64 for AVX-512 fp32 FMAs). This is mixed precision as PyTorch's bf16 autocast does it for
// convolutions: weights stay fp32 (the optimizer updates fp32 masters), activations are stored in
// fp32, only the multiplication inputs are rounded.
//
// Operands are packed once into the tile layouts: A in 16×32 blocks (16 rows of 32 k), B in
// "VNNI" 16×(16·2) blocks (for each pair of k, 16 columns of (k, k+1) pairs). Sizes are padded
// with zeros to multiples of 32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mf::kernels {

struct ConvGeometry;

namespace bf16 {

// The bf16 GEMMs of this machine, fastest first: AMX (Intel Sapphire Rapids+, when the kernel
// lets this process use the tile registers), AVX512-BF16 (VDPBF16PS: Intel Cooper Lake and
// Sapphire Rapids+, AMD Zen 4+; 2 bf16 products summed into each of 16 fp32 lanes per
// instruction, twice the FMAs of fp32 AVX-512). Empty, with `why` the reason, elsewhere.
enum class Backend { amx, avx512_bf16 };
const std::vector<Backend>& backends(std::string* why = nullptr);
bool available(std::string* why = nullptr);  // some backend
const char* name(Backend backend);

// Round to nearest even, as the hardware conversion does (NaN stays NaN).
uint16_t from_float(float f);
float to_float(uint16_t h);

struct PackedA {
  int64_t M = 0, K = 0, Mp = 0, Kp = 0;  // Mp, Kp: padded to multiples of 32
  std::vector<uint16_t> data;            // [Mp/16][Kp/32][16][32]
};
struct PackedB {
  int64_t K = 0, N = 0, Kp = 0, Np = 0;
  std::vector<uint16_t> data;  // [Np/16][Kp/32][16 k-pairs][16 columns][2]
};

// op(A) = A (M×K, row stride lda) or, with trans, Aᵀ for A stored (K×M); likewise B.
void pack_a(PackedA& out, bool trans, int64_t M, int64_t K, const float* A, int64_t lda);
// The same in two steps, so callers can pack row blocks (16 rows each) in parallel: prepare_a
// sizes and zeroes `out`, pack_a_blocks fills blocks [block_begin, block_end).
void prepare_a(PackedA& out, int64_t M, int64_t K);
void pack_a_blocks(PackedA& out, bool trans, const float* A, int64_t lda, int64_t block_begin,
                   int64_t block_end);
void pack_b(PackedB& out, bool trans, int64_t K, int64_t N, const float* B, int64_t ldb);

// C = a·b (accumulate = false) or C += a·b, on the fastest backend or on `backend` (which must be
// one of backends()). Single-threaded; call from any thread.
void gemm(const PackedA& a, const PackedB& b, float* C, int64_t ldc, bool accumulate);
void gemm(Backend backend, const PackedA& a, const PackedB& b, float* C, int64_t ldc,
          bool accumulate);

}  // namespace bf16

// The convolution's three GEMMs on bf16 inputs, weights packed once per call (see conv.h, which
// calls these per column block and group instead of the fp32 GEMMs).
class Bf16ConvGemms {
 public:
  // for_backward: pack wᵀ (for dx) instead of w (for y); w null: pack nothing (dw only).
  Bf16ConvGemms(const float* w, const ConvGeometry& g, bool for_backward);
  // y_g (Og, cols) = w_g · col_g
  void forward(int64_t grp, const float* col, int64_t ldcol, int64_t cols, float* y,
               int64_t ldy) const;
  // dcol_g (rows, cols) = / += w_gᵀ · dy_g
  void input_grad(int64_t grp, const float* dy, int64_t lddy, int64_t cols, float* dcol,
                  int64_t ldd, bool accumulate) const;
  // dw_g (Og, rows) += dy_g (Og, cols) · col_gᵀ (needs no packed weights)
  static void weight_grad(const float* dy, int64_t lddy, const float* col, int64_t ldcol,
                          int64_t cols, float* dw, int64_t rows, int64_t Og);

 private:
  std::vector<bf16::PackedA> packed_;  // one per group
};

// Which GEMMs convolutions use: exact fp32 (the default) or the bf16 fast path. Process-wide,
// set once by `train`/`bench` from the configuration; bf16 needs bf16::available().
enum class ConvPrecision { fp32, bf16 };
void set_conv_precision(ConvPrecision precision);  // throws mf::Error naming why bf16 cannot run
ConvPrecision conv_precision();
ConvPrecision parse_conv_precision(const std::string& name);  // "fp32" | "bf16", else mf::Error

}  // namespace mf::kernels
