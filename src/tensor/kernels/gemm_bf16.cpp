// The functions that use AMX and AVX-512 BF16 instructions carry them as a target attribute
// (MF_AMX), whatever the rest of the build targets: a file-wide -mamx… flag would also compile
// this file's copies of inline library templates (std::vector, std::fill) for AVX-512, and the
// linker may keep those copies for the whole program. Nothing here runs unless bf16::available()
// said yes (bf16_support.cpp, built for the baseline target, holds everything before that check).
#include "tensor/kernels/gemm_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "tensor/kernels/conv.h"
#include "util/error.h"

#define MF_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))
#define MF_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

namespace mf::kernels {
namespace bf16 {

namespace {

constexpr int64_t round32(int64_t n) {
  return (n + 31) / 32 * 32;
}

// Palette 1: tiles 0–3 accumulate C (16 rows × 16 fp32), 4–5 hold A (16 rows × 32 bf16), 6–7
// hold B (16 k-pairs × 16 columns × 2 bf16). Every tile is 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

MF_AMX void configure_tiles() {
  thread_local bool configured = false;  // tile configuration is per thread
  if (configured) return;
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = 16;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
  configured = true;
}

// Tiles 0–3 (a 32 × 32 block of C) += the A row blocks a0, a1 times the B column blocks b0, b1
// over k blocks [kb0, kb1) (32 k each; a block's tile is 512 bf16).
MF_AMX inline void multiply_tiles(const uint16_t* a0, const uint16_t* a1, const uint16_t* b0,
                                  const uint16_t* b1, int64_t kb0, int64_t kb1) {
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    _tile_loadd(4, a0 + kb * 512, 64);
    _tile_loadd(5, a1 + kb * 512, 64);
    _tile_loadd(6, b0 + kb * 512, 64);
    _tile_loadd(7, b1 + kb * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
}

// 32 floats → 32 bf16 (round to nearest even), 16 + 16 lanes.
MF_AMX inline __m512i convert32(const float* p) {
  return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + 16), _mm512_loadu_ps(p));
}

}  // namespace

void prepare_a(PackedA& out, int64_t M, int64_t K) {
  out.M = M;
  out.K = K;
  out.Mp = round32(M);
  out.Kp = round32(K);
  out.data.assign(static_cast<size_t>(out.Mp * out.Kp), 0);
}

MF_AMX void pack_a_blocks(PackedA& out, bool trans, const float* A, int64_t lda,
                          int64_t block_begin, int64_t block_end) {
  const int64_t M = out.M, K = out.K, kblocks = out.Kp / 32;
  for (int64_t ib = block_begin; ib < block_end; ++ib)
    for (int64_t kb = 0; kb < kblocks; ++kb) {
      uint16_t* dst = out.data.data() + (ib * kblocks + kb) * 512;  // [16 rows][32 k]
      const int64_t i0 = ib * 16, k0 = kb * 32;
      const bool whole = i0 + 16 <= M && k0 + 32 <= K;
      if (whole && !trans) {
        for (int64_t r = 0; r < 16; ++r)
          _mm512_storeu_si512(dst + r * 32, convert32(A + (i0 + r) * lda + k0));
      } else if (whole) {
        // Aᵀ: the 16 rows of a block are 16 consecutive floats of each of 32 stored rows; convert
        // them 16 at a time, then transpose the 32 × 16 block of bf16 into place.
        alignas(64) uint16_t staged[32][16];
        for (int64_t k = 0; k < 32; ++k)
          _mm256_store_si256(reinterpret_cast<__m256i*>(staged[k]),
                             (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(A + (k0 + k) * lda + i0)));
        for (int64_t r = 0; r < 16; ++r)
          for (int64_t k = 0; k < 32; ++k) dst[r * 32 + k] = staged[k][r];
      } else {
        for (int64_t r = 0; r < 16 && i0 + r < M; ++r)
          for (int64_t k = k0; k < std::min(K, k0 + 32); ++k)
            dst[r * 32 + k - k0] = from_float(trans ? A[k * lda + i0 + r] : A[(i0 + r) * lda + k]);
      }
    }
}

void pack_a(PackedA& out, bool trans, int64_t M, int64_t K, const float* A, int64_t lda) {
  prepare_a(out, M, K);
  pack_a_blocks(out, trans, A, lda, 0, out.Mp / 16);
}

MF_AMX void pack_b(PackedB& out, bool trans, int64_t K, int64_t N, const float* B, int64_t ldb) {
  out.K = K;
  out.N = N;
  out.Kp = round32(K);
  out.Np = round32(N);
  if (static_cast<int64_t>(out.data.size()) < out.Kp * out.Np) out.data.resize(out.Kp * out.Np);
  const int64_t kblocks = out.Kp / 32;
  // Element (k, n) of block (n / 16, k / 32) sits at [(k % 32) / 2][n % 16][k % 2].
  auto tile = [&](int64_t nb, int64_t kb) { return out.data.data() + (nb * kblocks + kb) * 512; };
  if (!trans) {
    // Rows k and k + 1 of 16 columns → 16 interleaved pairs: one conversion and one permute.
    const __m512i interleave =
        _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t nb = 0; nb < out.Np / 16; ++nb)
      for (int64_t kb = 0; kb < kblocks; ++kb) {
        uint16_t* dst = tile(nb, kb);
        const int64_t n0 = nb * 16;
        for (int64_t kp = 0; kp < 16; ++kp) {
          const int64_t k = kb * 32 + 2 * kp;
          if (n0 + 16 <= N && k + 1 < K) {
            const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(
                _mm512_loadu_ps(B + (k + 1) * ldb + n0), _mm512_loadu_ps(B + k * ldb + n0));
            _mm512_storeu_si512(dst + kp * 32, _mm512_permutexvar_epi16(interleave, both));
          } else {
            for (int64_t j = 0; j < 16; ++j)
              for (int t = 0; t < 2; ++t) {
                const int64_t kk = k + t, n = n0 + j;
                dst[kp * 32 + j * 2 + t] = (kk < K && n < N) ? from_float(B[kk * ldb + n]) : 0;
              }
          }
        }
      }
  } else {
    // B stored (N, K): column n of op(B) is row n of the storage, so its 32 k of a block convert
    // in one go; the 16 pairs then spread over the tile rows (a 16×16 transpose of 32-bit pairs).
    alignas(64) uint32_t pairs[16][16];
    for (int64_t nb = 0; nb < out.Np / 16; ++nb)
      for (int64_t kb = 0; kb < kblocks; ++kb) {
        const int64_t n0 = nb * 16, k0 = kb * 32;
        for (int64_t j = 0; j < 16; ++j) {
          const int64_t n = n0 + j;
          if (n < N && k0 + 32 <= K) {
            _mm512_store_si512(pairs[j], convert32(B + n * ldb + k0));
          } else {
            uint16_t* p = reinterpret_cast<uint16_t*>(pairs[j]);
            for (int64_t k = 0; k < 32; ++k)
              p[k] = (n < N && k0 + k < K) ? from_float(B[n * ldb + k0 + k]) : 0;
          }
        }
        uint32_t* dst = reinterpret_cast<uint32_t*>(tile(nb, kb));
        for (int64_t kp = 0; kp < 16; ++kp)
          for (int64_t j = 0; j < 16; ++j) dst[kp * 16 + j] = pairs[j][kp];
      }
  }
}

namespace {

// C block (rows ≤ 16, cols ≤ 16) at c = or += A row block `ab` · B column block `bb` over every k
// block: 16 fp32 accumulators of 16 columns; each k-pair loads one B vector (16 columns × the
// pair) and, per row, broadcasts the row's pair (two bf16 as one 32-bit value) into VDPBF16PS.
MF_AVX512BF16 void avx512_block(const uint16_t* ab, const uint16_t* bb, int64_t kblocks, float* c,
                                int64_t ldc, int64_t rows, int64_t cols, bool accumulate) {
  const __mmask16 mask = cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  __m512 acc[16];
  for (int r = 0; r < 16; ++r)
    acc[r] =
        accumulate && r < rows ? _mm512_maskz_loadu_ps(mask, c + r * ldc) : _mm512_setzero_ps();
  for (int64_t kb = 0; kb < kblocks; ++kb) {
    const uint16_t* a = ab + kb * 512;  // [16 rows][32 k]
    const uint16_t* b = bb + kb * 512;  // [16 k-pairs][16 columns][2]
    for (int kp = 0; kp < 16; ++kp) {
      const __m512bh bv = (__m512bh)_mm512_loadu_si512(b + kp * 32);
      for (int r = 0; r < 16; ++r) {
        int32_t pair;
        std::memcpy(&pair, a + r * 32 + 2 * kp, sizeof pair);
        acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_set1_epi32(pair), bv);
      }
    }
  }
  for (int r = 0; r < rows; ++r) _mm512_mask_storeu_ps(c + r * ldc, mask, acc[r]);
}

MF_AVX512BF16 void gemm_avx512(const PackedA& a, const PackedB& b, float* C, int64_t ldc,
                               bool accumulate) {
  const int64_t kblocks = a.Kp / 32, M = a.M, N = b.N;
  // Column blocks outside: one B strip (K·16 bf16) stays in L2 while every A strip passes.
  for (int64_t nb = 0; nb * 16 < N; ++nb)
    for (int64_t ib = 0; ib * 16 < M; ++ib)
      avx512_block(a.data.data() + ib * kblocks * 512, b.data.data() + nb * kblocks * 512, kblocks,
                   C + ib * 16 * ldc + nb * 16, ldc, std::min<int64_t>(16, M - ib * 16),
                   std::min<int64_t>(16, N - nb * 16), accumulate);
}

MF_AMX void gemm_amx(const PackedA& a, const PackedB& b, float* C, int64_t ldc, bool accumulate) {
  configure_tiles();
  const int64_t kblocks = a.Kp / 32, M = a.M, N = b.N;
  if (kblocks == 0) {  // an empty sum
    if (!accumulate)
      for (int64_t r = 0; r < M; ++r) std::fill(C + r * ldc, C + r * ldc + N, 0.0f);
    return;
  }
  const int64_t stride = ldc * static_cast<int64_t>(sizeof(float));
  const int64_t M32 = M / 32 * 32, N32 = N / 32 * 32;  // the whole 32 × 32 blocks of C
  // Whole blocks: columns in panels of 256, K in chunks of 8 tile steps (256 k) so the 32-row
  // slice of A (16 KiB) stays in L1 while the panel's B tiles come from L2; each C block is
  // summed in place, loaded and stored by the tile unit once per chunk.
  constexpr int64_t kChunk = 8;
  for (int64_t panel = 0; panel < N32; panel += 256)
    for (int64_t kb0 = 0; kb0 < kblocks; kb0 += kChunk) {
      const int64_t kb1 = std::min(kblocks, kb0 + kChunk);
      const bool first = kb0 == 0 && !accumulate;  // else C holds the sum so far
      for (int64_t m0 = 0; m0 < M32; m0 += 32) {
        const uint16_t* a0 = a.data.data() + (m0 / 16) * kblocks * 512;
        const uint16_t* a1 = a0 + kblocks * 512;
        for (int64_t n0 = panel; n0 < std::min(N32, panel + 256); n0 += 32) {
          const uint16_t* b0 = b.data.data() + (n0 / 16) * kblocks * 512;
          const uint16_t* b1 = b0 + kblocks * 512;
          float* c = C + m0 * ldc + n0;
          if (first) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
          } else {
            _tile_loadd(0, c, stride);
            _tile_loadd(1, c + 16, stride);
            _tile_loadd(2, c + 16 * ldc, stride);
            _tile_loadd(3, c + 16 * ldc + 16, stride);
          }
          multiply_tiles(a0, a1, b0, b1, kb0, kb1);
          _tile_stored(0, c, stride);
          _tile_stored(1, c + 16, stride);
          _tile_stored(2, c + 16 * ldc, stride);
          _tile_stored(3, c + 16 * ldc + 16, stride);
        }
      }
    }
  // Edge blocks (the last partial row or column of blocks): the whole K at once into a local
  // 32 × 32 block (the packed operands are zero beyond M, N and K), then into C.
  alignas(64) float block[32][32];
  for (int64_t m0 = 0; m0 < a.Mp; m0 += 32)
    for (int64_t n0 = (m0 < M32 ? N32 : 0); n0 < b.Np; n0 += 32) {
      const uint16_t* a0 = a.data.data() + (m0 / 16) * kblocks * 512;
      const uint16_t* a1 = a0 + kblocks * 512;
      const uint16_t* b0 = b.data.data() + (n0 / 16) * kblocks * 512;
      const uint16_t* b1 = b0 + kblocks * 512;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      multiply_tiles(a0, a1, b0, b1, 0, kblocks);
      _tile_stored(0, &block[0][0], 128);
      _tile_stored(1, &block[0][16], 128);
      _tile_stored(2, &block[16][0], 128);
      _tile_stored(3, &block[16][16], 128);
      const int64_t rows = std::min<int64_t>(32, M - m0), cols = std::min<int64_t>(32, N - n0);
      for (int64_t r = 0; r < rows; ++r) {
        float* c_row = C + (m0 + r) * ldc + n0;
        if (accumulate)
          for (int64_t j = 0; j < cols; ++j) c_row[j] += block[r][j];
        else
          std::copy_n(block[r], cols, c_row);
      }
    }
}

}  // namespace

void gemm(Backend backend, const PackedA& a, const PackedB& b, float* C, int64_t ldc,
          bool accumulate) {
  if (backend == Backend::avx512_bf16)
    gemm_avx512(a, b, C, ldc, accumulate);
  else
    gemm_amx(a, b, C, ldc, accumulate);
}

}  // namespace bf16

Bf16ConvGemms::Bf16ConvGemms(const float* w, const ConvGeometry& g, bool for_backward) {
  if (w == nullptr) return;
  const int64_t Og = g.Og(), rows = g.Cg() * g.kH * g.kW;
  packed_.resize(g.groups);
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const float* wg = w + grp * Og * rows;
    bf16::PackedA& p = packed_[grp];
    // wᵀ (rows, Og) for the input gradient, w (Og, rows) for the forward; row blocks in parallel
    // (a layer's weights are packed once per call, on the calling thread otherwise).
    if (for_backward)
      bf16::prepare_a(p, rows, Og);
    else
      bf16::prepare_a(p, Og, rows);
    const int64_t blocks = p.Mp / 16;
#pragma omp parallel for schedule(static) if (p.Mp * p.Kp >= (int64_t{1} << 16))
    for (int64_t ib = 0; ib < blocks; ++ib)
      bf16::pack_a_blocks(p, for_backward, wg, rows, ib, ib + 1);
  }
}

namespace {
bf16::PackedB& thread_packed_b() {
  thread_local bf16::PackedB b;
  return b;
}
bf16::PackedA& thread_packed_a() {
  thread_local bf16::PackedA a;
  return a;
}
}  // namespace

void Bf16ConvGemms::forward(int64_t grp, const float* col, int64_t ldcol, int64_t cols, float* y,
                            int64_t ldy) const {
  const bf16::PackedA& w = packed_[grp];
  bf16::PackedB& b = thread_packed_b();
  bf16::pack_b(b, false, w.K, cols, col, ldcol);
  bf16::gemm(w, b, y, ldy, false);
}

void Bf16ConvGemms::input_grad(int64_t grp, const float* dy, int64_t lddy, int64_t cols,
                               float* dcol, int64_t ldd, bool accumulate) const {
  const bf16::PackedA& wt = packed_[grp];
  bf16::PackedB& b = thread_packed_b();
  bf16::pack_b(b, false, wt.K, cols, dy, lddy);
  bf16::gemm(wt, b, dcol, ldd, accumulate);
}

void Bf16ConvGemms::weight_grad(const float* dy, int64_t lddy, const float* col, int64_t ldcol,
                                int64_t cols, float* dw, int64_t rows, int64_t Og) {
  bf16::PackedA& a = thread_packed_a();
  bf16::PackedB& b = thread_packed_b();
  bf16::pack_a(a, false, Og, cols, dy, lddy);     // dy_g (Og, cols)
  bf16::pack_b(b, true, cols, rows, col, ldcol);  // col_gᵀ: col stored (rows, cols)
  bf16::gemm(a, b, dw, rows, true);
}

}  // namespace mf::kernels
