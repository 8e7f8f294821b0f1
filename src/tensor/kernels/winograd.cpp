// Winograd F(4×4, 3×3) convolution (see winograd.h). Per chunk of tiles, per input channel, the
// 6×6 input pixels of every tile are first laid out as D (36, tiles) — along runs of tiles on a
// tile row, each position a stride-4 copy of an image row; on small maps by masked AVX-512
// gathers — and then transformed kLanes tiles at a time, one lane per tile: straight-line
// arithmetic on lane arrays that the compiler turns into one vector instruction per line. The
// output goes back the same way. The loops carry an avx512f target attribute (as gemm_fp32.cpp
// does) and a baseline copy for other CPUs.
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

// One vector move (std::copy_n of 16 floats became a memmove call).
MF_INLINE void copy_lanes(const float* __restrict from, float* __restrict to) {
  for (int l = 0; l < kLanes; ++l) to[l] = from[l];
}

struct Layout {
  ConvGeometry g;
  int64_t Ho = 0, Wo = 0, tiles_h = 0, tiles_w = 0, tiles = 0;  // tiles: over the whole batch
  int64_t chunk = 0;  // tiles per chunk (a multiple of kLanes)
};

// The tiles of a chunk, in image, tile-row, tile-column order, cut into runs along one tile row:
// image n, tile row ty, tile columns [tx0, tx1), at column `at` of the chunk's buffers. Along a
// run, tile tx reads input columns 4·tx − pad … + 5 and writes output columns 4·tx … + 3, so the
// gathers and scatters below are stride-4 copies of whole rows instead of per-tile addressing.
struct Run {
  int64_t n, ty, tx0, tx1, at;
};
std::vector<Run> runs_of(const Layout& L, int64_t first, int64_t count) {
  std::vector<Run> runs;
  const int64_t per_image = L.tiles_h * L.tiles_w;
  for (int64_t p = first; p < first + count;) {
    const int64_t n = p / per_image, ty = (p % per_image) / L.tiles_w, tx0 = p % L.tiles_w;
    const int64_t take = std::min(L.tiles_w - tx0, first + count - p);
    runs.push_back({n, ty, tx0, tx0 + take, p - first});
    p += take;
  }
  return runs;
}

// D (36, ld): D[i·6 + j][at + t] = input pixel (row 4·ty − pad + i, column 4·(tx0 + t) − pad + j)
// of channel c for each run's tiles, 0 outside the image. Tiles whose six columns all lie inside
// the image read with no test (stride-4 loads the compiler vectorises); only the edge tiles test.
MF_INLINE void gather_tiles(const Layout& L, const std::vector<Run>& runs, const float* x,
                            int64_t c, float* __restrict D, int64_t ld) {
  const ConvGeometry& g = L.g;
  for (const Run& r : runs) {
    const int64_t tiles = r.tx1 - r.tx0, first_col = kTile * r.tx0 - g.pad;
    // Tiles [inner_begin, inner_end) read columns inside [0, W) only: first_col + 4·t ≥ 0 and
    // first_col + 4·t + 5 < W (the bound may be negative: no tile is inner then).
    const int64_t inner_begin =
        std::min(tiles, (std::max<int64_t>(0, -first_col) + kTile - 1) / kTile);
    const int64_t last_start = g.W - kAlpha - first_col;  // the largest 4·t allowed
    const int64_t inner_end = last_start < 0
                                  ? inner_begin
                                  : std::clamp<int64_t>(last_start / kTile + 1, inner_begin, tiles);
    const float* plane = x + (r.n * g.C + c) * g.H * g.W;
    for (int i = 0; i < kAlpha; ++i) {
      const int64_t y = kTile * r.ty - g.pad + i;
      const bool row_inside = y >= 0 && y < g.H;
      const float* __restrict src = plane + (row_inside ? y * g.W : 0);  // column 0 of the row
      for (int j = 0; j < kAlpha; ++j) {
        float* __restrict out = D + (i * kAlpha + j) * ld + r.at;
        if (!row_inside) {
          for (int64_t t = 0; t < tiles; ++t) out[t] = 0.0f;
          continue;
        }
        auto edge = [&](int64_t t) {
          const int64_t col = first_col + kTile * t + j;
          out[t] = col >= 0 && col < g.W ? src[col] : 0.0f;
        };
        for (int64_t t = 0; t < inner_begin; ++t) edge(t);
        for (int64_t t = inner_begin; t < inner_end; ++t) out[t] = src[first_col + kTile * t + j];
        for (int64_t t = inner_end; t < tiles; ++t) edge(t);
      }
    }
  }
}

// The inverse for the output: Y (16, ld) holds tile pixel (i, j) of each chunk column in row
// i·4 + j; this writes them (+ bias, + the residual at the same place when there is one) to
// output channel o, clipped at the image's edge.
template <bool kResidual>
MF_INLINE void scatter_tiles_impl(const Layout& L, const std::vector<Run>& runs,
                                  const float* __restrict Y, int64_t ld, float bias, float* y_batch,
                                  const float* residual, int64_t o) {
  for (const Run& r : runs) {
    const int64_t tiles = r.tx1 - r.tx0, col0 = kTile * r.tx0;
    const int64_t whole = std::min<int64_t>(tiles, (L.Wo - col0) / kTile);  // all 4 columns inside
    const int64_t plane = (r.n * L.g.O + o) * L.Ho * L.Wo;
    for (int i = 0; i < kTile; ++i) {
      const int64_t row = kTile * r.ty + i;
      if (row >= L.Ho) break;
      const int64_t at = plane + row * L.Wo + col0;
      float* __restrict out = y_batch + at;
      const float* __restrict res = kResidual ? residual + at : nullptr;
      auto add = [&](int64_t k) { return kResidual ? res[k] : 0.0f; };
      const float* __restrict y0 = Y + (i * kTile) * ld + r.at;
      const float* __restrict y1 = y0 + ld;
      const float* __restrict y2 = y1 + ld;
      const float* __restrict y3 = y2 + ld;
      for (int64_t t = 0; t < whole; ++t) {  // interleaves the four columns of each tile
        out[kTile * t] = y0[t] + bias + add(kTile * t);
        out[kTile * t + 1] = y1[t] + bias + add(kTile * t + 1);
        out[kTile * t + 2] = y2[t] + bias + add(kTile * t + 2);
        out[kTile * t + 3] = y3[t] + bias + add(kTile * t + 3);
      }
      for (int64_t t = whole; t < tiles; ++t)
        for (int j = 0; j < kTile && col0 + kTile * t + j < L.Wo; ++j)
          out[kTile * t + j] = Y[(i * kTile + j) * ld + r.at + t] + bias + add(kTile * t + j);
    }
  }
}
MF_INLINE void scatter_tiles(const Layout& L, const std::vector<Run>& runs, const float* Y,
                             int64_t ld, float bias, float* y_batch, const float* residual,
                             int64_t o) {
  if (residual)
    scatter_tiles_impl<true>(L, runs, Y, ld, bias, y_batch, residual, o);
  else
    scatter_tiles_impl<false>(L, runs, Y, ld, bias, y_batch, nullptr, o);
}

// Small maps (fewer than 8 tiles across: 28 pixels) make runs of a few tiles whose edges need
// tests on most pixels; there the AVX-512 path addresses each tile instead: kLanes consecutive
// tiles (in chunk order), one masked gather or scatter per tile position. A lane's bit i of
// in_rows says input row row0 + i lies inside the image (else it is padding, read as 0);
// likewise for columns and for the output pixels a tile writes. Lanes past the chunk have no bits.
constexpr int64_t kGroupsBelowTilesAcross = 8;
struct TileGroup {
  int32_t in_base[kLanes];   // offset of (n, channel 0, row0, col0) in x; row0/col0 may be < 0
  int32_t out_base[kLanes];  // offset of (n, channel 0, 4·ty, 4·tx) in y
  int32_t in_rows[kLanes], in_cols[kLanes], out_rows[kLanes], out_cols[kLanes];  // (int32: one
                                                                                 // load each)
};

int32_t inside_bits(int64_t first, int64_t count, int64_t extent) {
  int32_t bits = 0;
  for (int64_t i = 0; i < count; ++i)
    if (first + i >= 0 && first + i < extent) bits |= 1 << i;
  return bits;
}

std::vector<TileGroup> groups_of(const Layout& L, int64_t first, int64_t count) {
  const ConvGeometry& g = L.g;
  const int64_t per_image = L.tiles_h * L.tiles_w;
  std::vector<TileGroup> groups((count + kLanes - 1) / kLanes, TileGroup{});
  for (int64_t k = 0; k < count; ++k) {
    TileGroup& group = groups[k / kLanes];
    const int64_t l = k % kLanes, p = first + k, n = p / per_image;
    const int64_t ty = (p % per_image) / L.tiles_w, tx = p % L.tiles_w;
    const int64_t row0 = ty * kTile - g.pad, col0 = tx * kTile - g.pad;
    group.in_base[l] = int32_t(n * g.C * g.H * g.W + row0 * g.W + col0);
    group.out_base[l] = int32_t(n * g.O * L.Ho * L.Wo + ty * kTile * L.Wo + tx * kTile);
    group.in_rows[l] = inside_bits(row0, kAlpha, g.H);
    group.in_cols[l] = inside_bits(col0, kAlpha, g.W);
    group.out_rows[l] = inside_bits(ty * kTile, kTile, L.Ho);
    group.out_cols[l] = inside_bits(tx * kTile, kTile, L.Wo);
  }
  return groups;
}

// gather_tiles for kLanes tiles of channel plane xc into D's columns at d (row stride ld).
MF_AVX512 void gather_group(const TileGroup& group, const float* xc, int64_t W, float* d,
                            int64_t ld) {
  const __m512i base = _mm512_loadu_si512(group.in_base);
  const __m512i rows = _mm512_loadu_si512(group.in_rows);
  const __m512i cols = _mm512_loadu_si512(group.in_cols);
  for (int i = 0; i < kAlpha; ++i) {
    const __mmask16 row_inside = _mm512_test_epi32_mask(rows, _mm512_set1_epi32(1 << i));
    for (int j = 0; j < kAlpha; ++j) {
      const __mmask16 inside = row_inside & _mm512_test_epi32_mask(cols, _mm512_set1_epi32(1 << j));
      const __m512i index = _mm512_add_epi32(base, _mm512_set1_epi32(int32_t(i * W + j)));
      _mm512_storeu_ps(d + (i * kAlpha + j) * ld,
                       _mm512_mask_i32gather_ps(_mm512_setzero_ps(), inside, index, xc, 4));
    }
  }
}

// scatter_tiles for kLanes tiles: Y's columns at t (row stride ld) + bias (+ the residual plane
// ro, when not null) into channel plane yo.
MF_AVX512 void scatter_group(const TileGroup& group, const float* t, int64_t ld, float bias,
                             float* yo, const float* ro, int64_t Wo) {
  const __m512i base = _mm512_loadu_si512(group.out_base);
  const __m512i rows = _mm512_loadu_si512(group.out_rows);
  const __m512i cols = _mm512_loadu_si512(group.out_cols);
  const __m512 b = _mm512_set1_ps(bias);
  for (int i = 0; i < kTile; ++i) {
    const __mmask16 row_inside = _mm512_test_epi32_mask(rows, _mm512_set1_epi32(1 << i));
    for (int j = 0; j < kTile; ++j) {
      const __mmask16 inside = row_inside & _mm512_test_epi32_mask(cols, _mm512_set1_epi32(1 << j));
      const __m512i index = _mm512_add_epi32(base, _mm512_set1_epi32(int32_t(i * Wo + j)));
      __m512 v = _mm512_add_ps(_mm512_loadu_ps(t + (i * kTile + j) * ld), b);
      if (ro)
        v = _mm512_add_ps(v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), inside, index, ro, 4));
      _mm512_mask_i32scatter_ps(yo, inside, index, v, 4);
    }
  }
}

// Where a chunk's tiles are: runs along tile rows, or (small maps, AVX-512) groups of kLanes.
struct ChunkTiles {
  std::vector<Run> runs;
  std::vector<TileGroup> groups;  // non-empty: use these
};

// V (36, C, ld) = Bᵀ d B for every tile and channel of the chunk (columns [0, count)).
MF_INLINE void transform_inputs(const Layout& L, const ChunkTiles& tiles, int64_t count,
                                const float* x, float* V, float* D) {
  const ConvGeometry& g = L.g;
  const int64_t ld = L.chunk;
  alignas(64) float t[kAlpha][kAlpha][kLanes], v[kPositions][kLanes];
  for (int64_t c = 0; c < g.C; ++c) {
    if (tiles.groups.empty())
      gather_tiles(L, tiles.runs, x, c, D, ld);
    else
      for (size_t k = 0; k < tiles.groups.size(); ++k)
        gather_group(tiles.groups[k], x + c * g.H * g.W, g.W, D + int64_t(k) * kLanes, ld);
    for (int64_t col = 0; col < count; col += kLanes) {
      for (int j = 0; j < kAlpha; ++j)  // t = Bᵀ d: combine rows, column by column
        input_1d(D + j * ld + col, kAlpha * ld, &t[0][j][0], kAlpha * kLanes);
      for (int i = 0; i < kAlpha; ++i)  // (Bᵀ d) B: combine columns, row by row
        input_1d(&t[i][0][0], kLanes, &v[i * kAlpha][0], kLanes);
      for (int xi = 0; xi < kPositions; ++xi)  // (through v: strided stores stay scalar otherwise)
        copy_lanes(&v[xi][0], V + (xi * g.C + c) * ld + col);
    }
  }
}

// y = post(Aᵀ M A + b) for every tile and output channel of the chunk (M (36, O, ld)).
MF_INLINE void transform_outputs(const Layout& L, const ChunkTiles& tiles, int64_t count,
                                 const float* M, const float* b, const ConvEpilogue<float>& post,
                                 float* y, float* Y) {
  const ConvGeometry& g = L.g;
  const int64_t ld = L.chunk;
  alignas(64) float t[kTile][kAlpha][kLanes], out[kTile][kTile][kLanes];
  for (int64_t o = 0; o < g.O; ++o) {
    for (int64_t col = 0; col < count; col += kLanes) {
      const float* m = M + o * ld + col;  // position ξ at m + ξ·O·ld
      for (int j = 0; j < kAlpha; ++j)    // t = Aᵀ m: combine rows
        output_1d(m + j * g.O * ld, kAlpha * g.O * ld, &t[0][j][0], kAlpha * kLanes);
      for (int i = 0; i < kTile; ++i)  // (Aᵀ m) A: combine columns
        output_1d(&t[i][0][0], kLanes, &out[i][0][0], kLanes);
      for (int k = 0; k < kTile * kTile; ++k)
        copy_lanes(&out[k / kTile][k % kTile][0], Y + k * ld + col);
    }
    float bias = b ? b[o] : 0.0f;
    if (post.scale ||
        post.slope) {  // the per-channel steps on Y; the residual goes with the scatter
      const ConvEpilogue<float> per_channel{
          .scale = post.scale, .shift = post.shift, .slope = post.slope};
      for (int k = 0; k < kTile * kTile; ++k) {
        float* row = Y + k * ld;
        for (int64_t col = 0; col < count; ++col) row[col] += bias;
        per_channel.finish(row, count, o, 0);
      }
      bias = 0.0f;
    }
    if (tiles.groups.empty())
      scatter_tiles(L, tiles.runs, Y, ld, bias, y, post.residual, o);
    else
      for (size_t k = 0; k < tiles.groups.size(); ++k)
        scatter_group(tiles.groups[k], Y + int64_t(k) * kLanes, ld, bias, y + o * L.Ho * L.Wo,
                      post.residual ? post.residual + o * L.Ho * L.Wo : nullptr, L.Wo);
  }
}

// A thread's buffers for one chunk (see forward()).
struct ChunkBuffers {
  float *V, *M, *D, *Y;
};

// One chunk of tiles [first, first + count): transform its inputs, 36 GEMMs, transform back.
MF_INLINE void run_chunk_impl(const Layout& L, const std::vector<sgemm::PackedA>& U, int64_t first,
                              int64_t count, const float* x, const float* b,
                              const ConvEpilogue<float>& post, float* y, const ChunkBuffers& buf,
                              bool use_groups) {
  const int64_t ld = L.chunk;
  ChunkTiles tiles;
  if (use_groups)
    tiles.groups = groups_of(L, first, count);
  else
    tiles.runs = runs_of(L, first, count);
  transform_inputs(L, tiles, count, x, buf.V, buf.D);
  for (int xi = 0; xi < kPositions; ++xi)  // M_ξ (O, count) = U_ξ (O, C) · V_ξ (C, count)
    sgemm::gemm(U[xi], false, count, 1.0f, buf.V + xi * L.g.C * ld, ld, 0.0f,
                buf.M + xi * L.g.O * ld, ld);
  transform_outputs(L, tiles, count, buf.M, b, post, y, buf.Y);
}
MF_AVX512 void run_chunk_avx512(const Layout& L, const std::vector<sgemm::PackedA>& U,
                                int64_t first, int64_t count, const float* x, const float* b,
                                const ConvEpilogue<float>& post, float* y,
                                const ChunkBuffers& buf) {
  run_chunk_impl(L, U, first, count, x, b, post, y, buf, L.tiles_w < kGroupsBelowTilesAcross);
}
void run_chunk_baseline(const Layout& L, const std::vector<sgemm::PackedA>& U, int64_t first,
                        int64_t count, const float* x, const float* b,
                        const ConvEpilogue<float>& post, float* y, const ChunkBuffers& buf) {
  run_chunk_impl(L, U, first, count, x, b, post, y, buf, /*use_groups=*/false);
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
             bool allow_avx512, const ConvEpilogue<float>& post) {
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
    // V (36, C, chunk), M (36, O, chunk), one channel's input tiles D (36, chunk), one output
    // channel's tile pixels Y (16, chunk).
    const ChunkBuffers buf{.V = scratch<float>(size_t(kPositions * g.C * L.chunk), 0),
                           .M = scratch<float>(size_t(kPositions * g.O * L.chunk), 1),
                           .D = scratch<float>(size_t(kPositions * L.chunk), 2),
                           .Y = scratch<float>(size_t(kTile * kTile * L.chunk), 3)};
    if (avx512)
      run_chunk_avx512(L, U, first, count, x, b, post, y, buf);
    else
      run_chunk_baseline(L, U, first, count, x, b, post, y, buf);
  }
}

void set_enabled(bool on) {
  g_enabled = on;
}
bool enabled() {
  return g_enabled;
}

}  // namespace mf::kernels::winograd
