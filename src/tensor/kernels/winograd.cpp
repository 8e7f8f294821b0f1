// Winograd F(4×4, 3×3) convolution (see winograd.h). Tiles are transformed kLanes at a time, one
// lane per tile, so the transforms are straight-line arithmetic on lane arrays that the compiler
// turns into one vector instruction per line; the loops carry an avx512f target attribute (as
// gemm_fp32.cpp does) and a baseline copy for other CPUs.
#include "tensor/kernels/winograd.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <vector>

#include "tensor/kernels/gemm_fp32.h"
#include "util/error.h"

namespace mf::kernels::winograd {

namespace {

constexpr int kLanes = 16;  // tiles per transform call: one zmm of floats
constexpr int kTile = 4;    // m: output tile side
constexpr int kAlpha = 6;   // α = m + r − 1: input tile side
constexpr int kPositions = kAlpha * kAlpha;

std::atomic<bool> g_enabled{false};

#define MF_INLINE inline __attribute__((always_inline))
#define MF_AVX512 __attribute__((target("avx512f")))

// The one-dimensional F(4, 3) transforms of Lavin & Gray §4 (points 0, ±1, ±2, ∞), on kLanes tiles
// at once: element k of a 6- (or 4-, 3-) vector is the lane array at `in + k·is`.
// out = Bᵀ · d (input transform, 6 → 6).
MF_INLINE void input_1d(const float* __restrict in, int64_t is, float* __restrict out, int64_t os) {
  for (int l = 0; l < kLanes; ++l) {
    const float d0 = in[l], d1 = in[is + l], d2 = in[2 * is + l], d3 = in[3 * is + l],
                d4 = in[4 * is + l], d5 = in[5 * is + l];
    out[l] = 4.0f * d0 - 5.0f * d2 + d4;
    out[os + l] = -4.0f * (d1 + d2) + d3 + d4;
    out[2 * os + l] = 4.0f * (d1 - d2) - d3 + d4;
    out[3 * os + l] = 2.0f * (d3 - d1) - d2 + d4;
    out[4 * os + l] = 2.0f * (d1 - d3) - d2 + d4;
    out[5 * os + l] = 4.0f * d1 - 5.0f * d3 + d5;
  }
}
// out = Aᵀ · m (output transform, 6 → 4).
MF_INLINE void output_1d(const float* __restrict in, int64_t is, float* __restrict out,
                         int64_t os) {
  for (int l = 0; l < kLanes; ++l) {
    const float m0 = in[l], m1 = in[is + l], m2 = in[2 * is + l], m3 = in[3 * is + l],
                m4 = in[4 * is + l], m5 = in[5 * is + l];
    const float sum12 = m1 + m2, diff12 = m1 - m2, sum34 = m3 + m4, diff34 = m3 - m4;
    out[l] = m0 + sum12 + sum34;
    out[os + l] = diff12 + 2.0f * diff34;
    out[2 * os + l] = sum12 + 4.0f * sum34;
    out[3 * os + l] = diff12 + 8.0f * diff34 + m5;
  }
}
// out = G · g (filter transform, 3 → 6), on kLanes filters at once. Multiplying by the rounded
// 1/6, 1/12, 1/24 instead of dividing: the path is approximate anyway, and divisions were most
// of its time on 512-channel layers.
MF_INLINE void filter_1d(const float* __restrict in, int64_t is, float* __restrict out,
                         int64_t os) {
  constexpr float kSixth = 1.0f / 6.0f, kTwelfth = 1.0f / 12.0f, kTwentyFourth = 1.0f / 24.0f;
  for (int l = 0; l < kLanes; ++l) {
    const float g0 = in[l], g1 = in[is + l], g2 = in[2 * is + l];
    out[l] = 0.25f * g0;
    out[os + l] = -kSixth * (g0 + g1 + g2);
    out[2 * os + l] = -kSixth * (g0 - g1 + g2);
    out[3 * os + l] = kTwentyFourth * g0 + kTwelfth * g1 + kSixth * g2;
    out[4 * os + l] = kTwentyFourth * g0 - kTwelfth * g1 + kSixth * g2;
    out[5 * os + l] = g2;
  }
}

// Where up to kLanes consecutive tiles (in image, tile-row, tile-column order) read and write.
// A lane's bit i of in_rows says input row row0 + i lies inside the image (else it is padding,
// read as 0); likewise for columns and for the output rows and columns a tile may write.
struct TileGroup {
  int32_t in_base[kLanes];   // offset of (n, channel 0, row0, col0) in x; row0/col0 may be < 0
  int32_t out_base[kLanes];  // offset of (n, channel 0, 4·ty, 4·tx) in y
  int32_t in_rows[kLanes], in_cols[kLanes], out_rows[kLanes], out_cols[kLanes];  // (as int32: one
  // vector load each)
};

struct Layout {
  ConvGeometry g;
  int64_t Ho = 0, Wo = 0, tiles_h = 0, tiles_w = 0, tiles = 0;  // tiles: over the whole batch
  int64_t chunk = 0;  // tiles per chunk (a multiple of kLanes)
};

int32_t inside_bits(int64_t first, int64_t count, int64_t extent) {
  int32_t bits = 0;
  for (int64_t i = 0; i < count; ++i)
    if (first + i >= 0 && first + i < extent) bits |= 1 << i;
  return bits;
}

TileGroup make_group(const Layout& L, int64_t first, int64_t count) {
  const ConvGeometry& g = L.g;
  TileGroup group{};
  const int64_t per_image = L.tiles_h * L.tiles_w;
  for (int64_t l = 0; l < count; ++l) {
    const int64_t p = first + l, n = p / per_image, ty = (p % per_image) / L.tiles_w,
                  tx = p % L.tiles_w;
    const int64_t row0 = ty * kTile - g.pad, col0 = tx * kTile - g.pad;
    group.in_base[l] = int32_t(n * g.C * g.H * g.W + row0 * g.W + col0);
    group.out_base[l] = int32_t(n * g.O * L.Ho * L.Wo + ty * kTile * L.Wo + tx * kTile);
    group.in_rows[l] = inside_bits(row0, kAlpha, g.H);
    group.in_cols[l] = inside_bits(col0, kAlpha, g.W);
    group.out_rows[l] = inside_bits(ty * kTile, kTile, L.Ho);
    group.out_cols[l] = inside_bits(tx * kTile, kTile, L.Wo);
  }
  return group;  // lanes ≥ count: no bits, so they read zeros and write nothing
}

// d[i][j][l] (6 × 6 × kLanes) = the group's input tiles in one channel plane xc, 0 outside the
// image.
void gather_baseline(const TileGroup& group, const float* xc, int64_t W, float* d) {
  for (int i = 0; i < kAlpha; ++i)
    for (int j = 0; j < kAlpha; ++j)
      for (int l = 0; l < kLanes; ++l) {
        const bool inside = (group.in_rows[l] >> i) & (group.in_cols[l] >> j) & 1;
        // Out-of-image positions load element 0 and discard it (no out-of-bounds address).
        const float value = xc[inside ? group.in_base[l] + i * W + j : 0];
        d[(i * kAlpha + j) * kLanes + l] = inside ? value : 0.0f;
      }
}
// The same with one masked gather per position (masked-off lanes read nothing).
MF_AVX512 void gather_avx512(const TileGroup& group, const float* xc, int64_t W, float* d) {
  const __m512i base = _mm512_loadu_si512(group.in_base);
  const __m512i rows = _mm512_loadu_si512(group.in_rows);
  const __m512i cols = _mm512_loadu_si512(group.in_cols);
  for (int i = 0; i < kAlpha; ++i) {
    const __mmask16 row_inside = _mm512_test_epi32_mask(rows, _mm512_set1_epi32(1 << i));
    for (int j = 0; j < kAlpha; ++j) {
      const __mmask16 inside = row_inside & _mm512_test_epi32_mask(cols, _mm512_set1_epi32(1 << j));
      const __m512i index = _mm512_add_epi32(base, _mm512_set1_epi32(int32_t(i * W + j)));
      _mm512_storeu_ps(d + (i * kAlpha + j) * kLanes,
                       _mm512_mask_i32gather_ps(_mm512_setzero_ps(), inside, index, xc, 4));
    }
  }
}

// yo[tile (i, j)] = out[i][j][l] + bias for the lanes' output pixels inside the image.
void scatter_baseline(const TileGroup& group, const float* out, float bias, float* yo, int64_t Wo) {
  for (int i = 0; i < kTile; ++i)
    for (int j = 0; j < kTile; ++j)
      for (int l = 0; l < kLanes; ++l)
        if ((group.out_rows[l] >> i) & (group.out_cols[l] >> j) & 1)
          yo[group.out_base[l] + i * Wo + j] = out[(i * kTile + j) * kLanes + l] + bias;
}
MF_AVX512 void scatter_avx512(const TileGroup& group, const float* out, float bias, float* yo,
                              int64_t Wo) {
  const __m512i base = _mm512_loadu_si512(group.out_base);
  const __m512i rows = _mm512_loadu_si512(group.out_rows);
  const __m512i cols = _mm512_loadu_si512(group.out_cols);
  const __m512 b = _mm512_set1_ps(bias);
  for (int i = 0; i < kTile; ++i) {
    const __mmask16 row_inside = _mm512_test_epi32_mask(rows, _mm512_set1_epi32(1 << i));
    for (int j = 0; j < kTile; ++j) {
      const __mmask16 inside = row_inside & _mm512_test_epi32_mask(cols, _mm512_set1_epi32(1 << j));
      const __m512i index = _mm512_add_epi32(base, _mm512_set1_epi32(int32_t(i * Wo + j)));
      const __m512 v = _mm512_add_ps(_mm512_loadu_ps(out + (i * kTile + j) * kLanes), b);
      _mm512_mask_i32scatter_ps(yo, inside, index, v, 4);
    }
  }
}

// V (36, C, ldv) columns [col, col + kLanes) = Bᵀ d B for each channel of the group's tiles.
template <bool kAvx512>
MF_INLINE void transform_inputs(const Layout& L, const TileGroup& group, const float* x, float* V,
                                int64_t ldv, int64_t col) {
  const ConvGeometry& g = L.g;
  const int64_t plane = g.H * g.W;
  alignas(64) float d[kAlpha][kAlpha][kLanes], t[kAlpha][kAlpha][kLanes], v[kPositions][kLanes];
  for (int64_t c = 0; c < g.C; ++c) {
    if constexpr (kAvx512)
      gather_avx512(group, x + c * plane, g.W, &d[0][0][0]);
    else
      gather_baseline(group, x + c * plane, g.W, &d[0][0][0]);
    for (int j = 0; j < kAlpha; ++j)  // t = Bᵀ d: combine rows, column by column
      input_1d(&d[0][j][0], kAlpha * kLanes, &t[0][j][0], kAlpha * kLanes);
    for (int i = 0; i < kAlpha; ++i)  // (Bᵀ d) B: combine columns, row by row
      input_1d(&t[i][0][0], kLanes, &v[i * kAlpha][0], kLanes);
    for (int xi = 0; xi < kPositions; ++xi)  // (through v: strided stores stay scalar otherwise)
      std::copy_n(&v[xi][0], kLanes, V + (xi * g.C + c) * ldv + col);
  }
}

// y tiles of the group = Aᵀ M A + b for each output channel (M (36, O, ldm) at column col).
template <bool kAvx512>
MF_INLINE void transform_outputs(const Layout& L, const TileGroup& group, const float* M,
                                 int64_t ldm, int64_t col, const float* b, float* y) {
  const ConvGeometry& g = L.g;
  const int64_t plane = L.Ho * L.Wo;
  alignas(64) float t[kTile][kAlpha][kLanes], out[kTile][kTile][kLanes];
  for (int64_t o = 0; o < g.O; ++o) {
    const float* m = M + o * ldm + col;  // position ξ at m + ξ·O·ldm
    for (int j = 0; j < kAlpha; ++j)     // t = Aᵀ m: combine rows
      output_1d(m + j * g.O * ldm, kAlpha * g.O * ldm, &t[0][j][0], kAlpha * kLanes);
    for (int i = 0; i < kTile; ++i)  // (Aᵀ m) A: combine columns
      output_1d(&t[i][0][0], kLanes, &out[i][0][0], kLanes);
    const float bias = b ? b[o] : 0.0f;
    if constexpr (kAvx512)
      scatter_avx512(group, &out[0][0][0], bias, y + o * plane, L.Wo);
    else
      scatter_baseline(group, &out[0][0][0], bias, y + o * plane, L.Wo);
  }
}

// One chunk of tiles [first, first + count): transform its inputs, 36 GEMMs, transform back.
template <bool kAvx512>
MF_INLINE void run_chunk_impl(const Layout& L, const std::vector<sgemm::PackedA>& U, int64_t first,
                              int64_t count, const float* x, const float* b, float* y, float* V,
                              float* M) {
  const int64_t ld = L.chunk;
  std::vector<TileGroup> groups;
  for (int64_t at = 0; at < count; at += kLanes)
    groups.push_back(make_group(L, first + at, std::min<int64_t>(kLanes, count - at)));
  for (size_t k = 0; k < groups.size(); ++k)
    transform_inputs<kAvx512>(L, groups[k], x, V, ld, int64_t(k) * kLanes);
  for (int xi = 0; xi < kPositions; ++xi)  // M_ξ (O, count) = U_ξ (O, C) · V_ξ (C, count)
    sgemm::gemm(U[xi], false, count, 1.0f, V + xi * L.g.C * ld, ld, 0.0f, M + xi * L.g.O * ld, ld);
  for (size_t k = 0; k < groups.size(); ++k)
    transform_outputs<kAvx512>(L, groups[k], M, ld, int64_t(k) * kLanes, b, y);
}
MF_AVX512 void run_chunk_avx512(const Layout& L, const std::vector<sgemm::PackedA>& U,
                                int64_t first, int64_t count, const float* x, const float* b,
                                float* y, float* V, float* M) {
  run_chunk_impl<true>(L, U, first, count, x, b, y, V, M);
}
void run_chunk_baseline(const Layout& L, const std::vector<sgemm::PackedA>& U, int64_t first,
                        int64_t count, const float* x, const float* b, float* y, float* V,
                        float* M) {
  run_chunk_impl<false>(L, U, first, count, x, b, y, V, M);
}

// U (36, O, C): U_ξ[o][c] = (G g_oc Gᵀ)[ξ], kLanes (o, c) pairs at a time.
MF_INLINE void transform_filters_impl(const float* w, int64_t pairs, float* U) {
  const int64_t blocks = (pairs + kLanes - 1) / kLanes;
#pragma omp parallel for if (pairs >= 4096)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t first = block * kLanes, count = std::min<int64_t>(kLanes, pairs - first);
    alignas(64) float g[9][kLanes] = {}, t[kAlpha][3][kLanes], u[kAlpha][kAlpha][kLanes];
    for (int64_t l = 0; l < count; ++l)
      for (int k = 0; k < 9; ++k) g[k][l] = w[(first + l) * 9 + k];
    for (int col = 0; col < 3; ++col)  // G g
      filter_1d(&g[col][0], 3 * kLanes, &t[0][col][0], 3 * kLanes);
    for (int row = 0; row < kAlpha; ++row)  // (G g) Gᵀ
      filter_1d(&t[row][0][0], kLanes, &u[row][0][0], kLanes);
    for (int xi = 0; xi < kPositions; ++xi)
      std::copy_n(&u[xi / kAlpha][xi % kAlpha][0], count, U + xi * pairs + first);
  }
}
MF_AVX512 void transform_filters_avx512(const float* w, int64_t pairs, float* U) {
  transform_filters_impl(w, pairs, U);
}
void transform_filters_baseline(const float* w, int64_t pairs, float* U) {
  transform_filters_impl(w, pairs, U);
}

}  // namespace

bool applies(const ConvGeometry& g) {
  if (g.groups != 1 || g.kH != 3 || g.kW != 3 || g.stride != 1 || g.pad > 2) return false;
  if (g.N < 1 || g.C < 1 || g.O < 1 || g.Ho() < 1 || g.Wo() < 1) return false;
  const int64_t limit = std::numeric_limits<int32_t>::max();
  return g.N * g.C * g.H * g.W < limit && g.N * g.O * g.Ho() * g.Wo() < limit;
}

void forward(float* y, const float* x, const float* w, const float* b, const ConvGeometry& g,
             bool allow_avx512) {
  MF_CHECK(applies(g), "winograd::forward: not a dense 3×3 stride-1 convolution");
  Layout L;
  L.g = g;
  L.Ho = g.Ho();
  L.Wo = g.Wo();
  L.tiles_h = (L.Ho + kTile - 1) / kTile;
  L.tiles_w = (L.Wo + kTile - 1) / kTile;
  L.tiles = g.N * L.tiles_h * L.tiles_w;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Tiles per chunk: V and M of a chunk (36·(C + O)·chunk floats) within about 4 MiB, at least
  // 32 (the GEMM's column panel), and enough chunks for every thread.
  const int64_t per_tile_bytes = kPositions * (g.C + g.O) * int64_t(sizeof(float));
  const int64_t per_thread = (L.tiles + threads - 1) / threads;
  L.chunk = std::clamp<int64_t>((int64_t{4} << 20) / per_tile_bytes, 32, 1024);
  L.chunk = std::min(L.chunk, per_thread);
  L.chunk = (L.chunk + kLanes - 1) / kLanes * kLanes;

  // U_ξ for every position, packed once for all chunks. The buffers are the calling thread's and
  // only grow; the parallel loops reach them through references (inside a parallel region a
  // thread_local name would mean each worker's own, empty, copy).
  thread_local std::vector<float> filter_buffer;
  thread_local std::vector<sgemm::PackedA> packed_buffer(kPositions);
  std::vector<float>& filters = filter_buffer;
  std::vector<sgemm::PackedA>& U = packed_buffer;
  filters.resize(size_t(kPositions * g.O * g.C));
  const bool avx512 = allow_avx512 && __builtin_cpu_supports("avx512f");
  if (avx512)
    transform_filters_avx512(w, g.O * g.C, filters.data());
  else
    transform_filters_baseline(w, g.O * g.C, filters.data());
  const sgemm::Backend backend = sgemm::active();
#pragma omp parallel for if (g.O * g.C >= 4096)
  for (int xi = 0; xi < kPositions; ++xi)
    sgemm::pack_a(U[xi], backend, false, g.O, g.C, filters.data() + xi * g.O * g.C, g.C);

  const int64_t chunks = (L.tiles + L.chunk - 1) / L.chunk;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t first = k * L.chunk, count = std::min(L.chunk, L.tiles - first);
    float* V = scratch<float>(size_t(kPositions * g.C * L.chunk), 0);
    float* M = scratch<float>(size_t(kPositions * g.O * L.chunk), 1);
    if (avx512)
      run_chunk_avx512(L, U, first, count, x, b, y, V, M);
    else
      run_chunk_baseline(L, U, first, count, x, b, y, V, M);
  }
}

void set_enabled(bool on) {
  g_enabled = on;
}
bool enabled() {
  return g_enabled;
}

}  // namespace mf::kernels::winograd
