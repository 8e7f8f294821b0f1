// 2-D convolution (cross-correlation, as in PyTorch), NCHW, square stride and zero padding, groups.
//   x: (N, C, H, W)   w: (O, C/G, kH, kW)   b: (O) or null   y: (N, O, Ho, Wo)
//   Ho = (H + 2·pad − kH) / stride + 1, likewise Wo.
// Forward is im2col + GEMM per block of output columns and group: y_g (O/G, cols) =
// w_g (O/G, C/G·kH·kW) · col_g (C/G·kH·kW, cols), where a block is a band of output rows of one
// image or several whole small maps side by side (see ColumnBlock). A 1×1, stride-1, unpadded
// convolution reads a single image's band of x in place as col.
// Depthwise convolution (one input and one output channel per group) runs as direct loops, since a
// GEMM with a single output row wastes the blocking.
// Backward ACCUMULATES into dx, dw and db; a null pointer skips that gradient.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensor/kernels/gemm.h"
#include "tensor/kernels/gemm_bf16.h"
#include "tensor/kernels/gemm_fp32.h"
#include "tensor/kernels/parallel.h"

namespace mf::kernels {

struct ConvGeometry {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t O = 0, kH = 1, kW = 1;       // weight (O, C/groups, kH, kW)
  int64_t stride = 1, pad = 0, groups = 1;

  int64_t Ho() const { return (H + 2 * pad - kH) / stride + 1; }
  int64_t Wo() const { return (W + 2 * pad - kW) / stride + 1; }
  int64_t Cg() const { return C / groups; }
  int64_t Og() const { return O / groups; }
  bool depthwise() const { return groups > 1 && Cg() == 1 && Og() == 1; }
  // Groups too narrow for a GEMM (≤ 4 input and output channels each: a 2 × 18 weight block per
  // group wastes the register tile), depthwise included: they run as direct loops.
  bool direct_groups() const { return groups > 1 && Cg() <= 4 && Og() <= 4; }
  bool pointwise() const { return kH == 1 && kW == 1 && stride == 1 && pad == 0; }
  // Forward multiply-adds of the whole batch.
  int64_t macs() const { return N * O * Ho() * Wo() * Cg() * kH * kW; }
};

// What an inference convolution does to each output value, after its bias, before it leaves the
// cache, in this order (each step skipped when its pointer is null):
//   v = v·scale[o] + shift[o];  v = v > 0 ? v : slope[o]·v;  v += residual
// With scale/shift a frozen BatchNorm's (scale = γ/√(var + eps), shift = β − mean·scale, exactly
// what batchnorm_forward computes in eval mode) this is conv → BN → PReLU, or conv → BN → + the
// shortcut, in the convolution's own pass over its output instead of one more pass per op.
template <class T>
struct ConvEpilogue {
  const T* scale = nullptr;     // (O); with shift
  const T* shift = nullptr;     // (O)
  const T* slope = nullptr;     // (O), PReLU
  const T* residual = nullptr;  // (N, O, Ho, Wo), laid out as y

  bool empty() const { return !scale && !slope && !residual; }
  // The steps on n values of output channel o at y; `at` is y's flat index in the
  // (N, O, Ho, Wo) output, where the residual is read.
  void finish(T* y, int64_t n, int64_t o, int64_t at) const {
    if (scale) {
      const T s = scale[o], t = shift[o];
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) y[k] = y[k] * s + t;
    }
    if (slope) {
      const T a = slope[o];
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) y[k] = y[k] > T(0) ? y[k] : a * y[k];
    }
    if (residual) {
      const T* r = residual + at;
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) y[k] += r[k];
    }
  }
};

// A per-thread scratch buffer that only grows, so steady-state training allocates nothing here.
template <class T>
T* scratch(size_t count, int slot = 0) {
  thread_local std::vector<T> buffers[6];
  auto& buffer = buffers[slot];
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

// The GEMMs run over blocks of output columns: output rows [oh0, oh1) of images [n0, n0 + images).
// Large maps are cut into bands of rows and small maps are put side by side, so that every GEMM
// has about kBlockColumns columns:
//  - a band's col (Cg·kH·kW, columns) stays in the core's L2 cache between im2col writing it and
//    the GEMM packing it (a whole 112² im2col is 29 MB: written and read back through DRAM);
//  - at 7² one image gives a GEMM only 49 columns and the dW GEMM a reduction depth of 49, so each
//    call streams the whole weight (9 MB at 512 channels) for a sliver of work.
struct ColumnBlock {
  int64_t n0, images, oh0, oh1;
};

// Columns per block: col of about 1 MiB (an L2 of Zen 4), between 256 and 1024 columns. fp32
// GEMMs with ≥ 256 output rows gain from wider blocks (4 MiB), those with 128 lose (our GEMM on
// Zen 4, 2 threads: 3×3 at 128 channels 28² 282 → 306 GFLOP/s going from 4 to 1 MiB; 256 and 512
// channels within ±4 % noise, slightly better wide); the bf16 path keeps its packed B panel small.
inline int64_t block_columns_target(const ConvGeometry& g, bool bf16 = false) {
  const int64_t rows = g.Cg() * g.kH * g.kW;
  const int64_t bytes = !bf16 && g.Og() >= 256 ? int64_t{1} << 20 : int64_t{1} << 18;
  return std::clamp<int64_t>(bytes / rows, 256, 1024);
}

// Blocks covering images [n_begin, n_end), in image order. A pointwise convolution keeps one
// image per block down to 128 columns (14² maps): it then reads x in place and writes y directly,
// where images side by side would be copied in and out — 9 % of MobileFaceNet's inference time
// (222 → 241 img/s, 2 threads; training unchanged within noise, 46.3 → 46.9).
inline std::vector<ColumnBlock> column_blocks(const ConvGeometry& g, int64_t n_begin, int64_t n_end,
                                              bool bf16 = false) {
  const int64_t Ho = g.Ho(), Wo = g.Wo(), target = block_columns_target(g, bf16);
  std::vector<ColumnBlock> blocks;
  if (Ho * Wo >= target || (g.pointwise() && Ho * Wo >= 128)) {
    const int64_t band = std::max<int64_t>(1, target / Wo);
    for (int64_t n = n_begin; n < n_end; ++n)
      for (int64_t oh = 0; oh < Ho; oh += band)
        blocks.push_back({n, 1, oh, std::min(Ho, oh + band)});
  } else {
    const int64_t group = std::max<int64_t>(1, (target + Ho * Wo - 1) / (Ho * Wo));
    for (int64_t n = n_begin; n < n_end; n += group)
      blocks.push_back({n, std::min(group, n_end - n), 0, Ho});
  }
  return blocks;
}

// The row of col for (c, ki, kj) and the output columns [ow_lo, ow_hi) whose input column
// iw = ow·s − pad + kj lies inside [0, W); shift = kj − pad, so iw = ow·s + shift.
struct ColRow {
  int64_t c, ki, kj, shift, ow_lo, ow_hi;
};
inline ColRow col_row(int64_t r, const ConvGeometry& g) {
  const int64_t Wo = g.Wo(), s = g.stride;
  ColRow row{r / (g.kH * g.kW), (r / g.kW) % g.kH, r % g.kW, 0, 0, 0};
  row.shift = row.kj - g.pad;
  row.ow_lo = row.shift >= 0 ? 0 : std::min(Wo, (-row.shift + s - 1) / s);
  row.ow_hi = g.W - 1 - row.shift < 0 ? 0 : std::min(Wo, (g.W - 1 - row.shift) / s + 1);
  return row;
}

// col (Cg·kH·kW rows, row stride ld) ← the patches of output rows [oh0, oh1) of the Cg channels at
// x (Cg, H, W): row (c, ki, kj), column (oh − oh0)·Wo + ow holds x[c, oh·s − pad + ki, ow·s − pad +
// kj] (zero outside the image).
// One row r of that: out ((oh1 − oh0)·Wo values).
template <class T>
void im2col_row(T* out, const T* x, int64_t r, const ConvGeometry& g, int64_t oh0, int64_t oh1) {
  const int64_t Wo = g.Wo(), s = g.stride;
  // Plain copies, not a structured binding: OpenMP regions (and clang < 16) cannot capture those.
  const ColRow cr = col_row(r, g);
  const int64_t c = cr.c, ki = cr.ki, shift = cr.shift, ow_lo = cr.ow_lo, ow_hi = cr.ow_hi;
  const T* xc = x + c * g.H * g.W;
  if (s == 1 && g.W == Wo) {
    // Same width in and out ("same" padding, stride 1): the band's inside rows are one
    // contiguous run of x shifted by `shift`, copied at once; then the values that wrapped
    // around a row's edge (ow outside [ow_lo, ow_hi)) are zeroed. IR-50's 14² maps made rows
    // of 14 values, one short copy each (12 % of its inference time in im2col).
    const int64_t oh_a = std::clamp(g.pad - ki, oh0, oh1),
                  oh_b = std::clamp(g.H + g.pad - ki, oh_a, oh1);
    std::fill(out, out + (oh_a - oh0) * Wo, T(0));
    std::fill(out + (oh_b - oh0) * Wo, out + (oh1 - oh0) * Wo, T(0));
    if (oh_a == oh_b) return;
    T* dst = out + (oh_a - oh0) * Wo;
    const T* src = xc + (oh_a - g.pad + ki) * g.W + shift;
    const int64_t n = (oh_b - oh_a) * Wo, e0 = std::max<int64_t>(0, -shift),
                  e1 = std::min(n, n - shift);
    std::copy(src + e0, src + e1, dst + e0);
    for (int64_t oh = 0; oh < oh_b - oh_a; ++oh) {
      std::fill(dst + oh * Wo, dst + oh * Wo + ow_lo, T(0));
      std::fill(dst + oh * Wo + ow_hi, dst + (oh + 1) * Wo, T(0));
    }
    return;
  }
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    T* out_row = out + (oh - oh0) * Wo;
    const int64_t ih = oh * s - g.pad + ki;
    if (ih < 0 || ih >= g.H || ow_lo >= ow_hi) {
      std::fill(out_row, out_row + Wo, T(0));
      continue;
    }
    const T* x_row = xc + ih * g.W + shift;
    std::fill(out_row, out_row + ow_lo, T(0));
    if (s == 1) {
      // Rows are short (7–56 values): a vector loop, not a memmove call per row (which cost
      // ~5 % of IR-50's inference in call overhead).
#pragma omp simd
      for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out_row[ow] = x_row[ow];
    } else if (s == 2) {  // a constant stride the compiler vectorises (IResNet's downsampling)
      for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out_row[ow] = x_row[2 * ow];
    } else {
      for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out_row[ow] = x_row[ow * s];
    }
    std::fill(out_row + ow_hi, out_row + Wo, T(0));
  }
}

template <class T>
void im2col(T* col, int64_t ld, const T* x, int64_t Cg, const ConvGeometry& g, int64_t oh0,
            int64_t oh1) {
  const int64_t rows = Cg * g.kH * g.kW;
  for (int64_t r = 0; r < rows; ++r) im2col_row(col + r * ld, x, r, g, oh0, oh1);
}

// dx (Cg, H, W) += dcol (Cg·kH·kW rows, row stride ld, output rows [oh0, oh1)) folded back: the
// adjoint of im2col.
template <class T>
void col2im_add(T* dx, const T* dcol, int64_t ld, int64_t Cg, const ConvGeometry& g, int64_t oh0,
                int64_t oh1) {
  const int64_t Wo = g.Wo(), s = g.stride, rows = Cg * g.kH * g.kW;
  for (int64_t r = 0; r < rows; ++r) {
    // Plain copies, not a structured binding: OpenMP regions (and clang < 16) cannot capture those.
    const ColRow cr = col_row(r, g);
    const int64_t c = cr.c, ki = cr.ki, shift = cr.shift, ow_lo = cr.ow_lo, ow_hi = cr.ow_hi;
    T* dxc = dx + c * g.H * g.W;
    const T* in = dcol + r * ld;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const int64_t ih = oh * s - g.pad + ki;
      if (ih < 0 || ih >= g.H) continue;
      T* dx_row = dxc + ih * g.W + shift;
      const T* in_row = in + (oh - oh0) * Wo;
      if (s == 1) {
#pragma omp simd
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dx_row[ow] += in_row[ow];
      } else {
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dx_row[ow * s] += in_row[ow];
      }
    }
  }
}

// Depthwise convolutions (groups = channels; MobileFaceNet) work one channel plane at a time in
// a zero-padded buffer whose columns are split by their phase modulo the stride: padded column
// q·s + p goes to phase p, position q. Tap (ki, kj) of output column ow then sits in phase
// kj mod s at position ow + kj div s — contiguous at every stride, with no bounds tests — so a
// block of 16 output columns handles each tap with one vector load. MobileFaceNet's depthwise
// layers ran at 1–6 GFLOP/s as loops per tap and output row (short rows, a load and a store per
// tap, bounds from integer divisions) and per pixel (backward).
struct DepthwisePlanes {
  static constexpr int64_t kBlock = 16;
  int64_t H, W, s, pad, Wq, rows;
  // Where tap (ki, kj) starts relative to an output row's first position, and each phase's
  // positions [lo, hi) that hold image columns (position q of phase p: column q·s + p − pad).
  std::vector<int64_t> tap_offset, phase_lo, phase_hi;

  explicit DepthwisePlanes(const ConvGeometry& g)
      : H(g.H),
        W(g.W),
        s(g.stride),
        pad(g.pad),
        Wq((g.Wo() + kBlock - 1) / kBlock * kBlock + (g.kW - 1) / g.stride + 1),
        rows(g.H + 2 * g.pad),
        tap_offset(static_cast<size_t>(g.kH * g.kW)),
        phase_lo(static_cast<size_t>(s)),
        phase_hi(static_cast<size_t>(s)) {
    for (int64_t ki = 0; ki < g.kH; ++ki)
      for (int64_t kj = 0; kj < g.kW; ++kj)
        tap_offset[size_t(ki * g.kW + kj)] = (ki * s + kj % s) * Wq + kj / s;
    for (int64_t p = 0; p < s; ++p) {
      phase_lo[size_t(p)] = std::max<int64_t>(0, (pad - p + s - 1) / s);       // column ≥ 0
      phase_hi[size_t(p)] = std::min<int64_t>(Wq, (W + pad - p + s - 1) / s);  // column < W
    }
  }
  size_t size() const { return size_t(rows * s * Wq); }
  // The first tap of output row oh.
  int64_t row(int64_t oh) const { return oh * s * s * Wq; }
  // buffer ← the plane, zero-padded and phase-split.
  template <class T>
  void load(T* buffer, const T* plane) const {
    std::fill(buffer, buffer + size(), T(0));
    for (int64_t ih = 0; ih < H; ++ih)
      for (int64_t p = 0; p < s; ++p) {
        T* out = buffer + ((ih + pad) * s + p) * Wq;
        const T* in = plane + ih * W;
        const int64_t lo = phase_lo[size_t(p)], hi = phase_hi[size_t(p)];
        if (s == 1) {  // one phase: a contiguous row
          std::copy(in + lo - pad, in + hi - pad, out + lo);
          continue;
        }
        const T* from = in + p - pad;
        if (s == 2) {  // a constant stride the compiler vectorises (permutes, not scalar moves)
          for (int64_t q = lo; q < hi; ++q) out[q] = from[2 * q];
          continue;
        }
        for (int64_t q = lo; q < hi; ++q) out[q] = from[q * s];
      }
  }
  // plane += the image part of buffer (the padding is dropped).
  template <class T>
  void add_to(T* plane, const T* buffer) const {
    for (int64_t ih = 0; ih < H; ++ih)
      for (int64_t p = 0; p < s; ++p) {
        const T* in = buffer + ((ih + pad) * s + p) * Wq;
        T* out = plane + ih * W;
        for (int64_t q = phase_lo[size_t(p)]; q < phase_hi[size_t(p)]; ++q)
          out[q * s + p - pad] += in[q];
      }
  }
};

// y: each block of 16 output columns keeps its sum in one vector register over all kH·kW taps
// (GCC/clang vector extension: one zmm of floats, or two ymm, or what the target has). Every
// output is the bias plus its taps in (input channel, ki, kj) order; taps in the padding add w·0,
// so for a depthwise convolution the sum is the per-pixel definition's (to the sign of a zero),
// bit for bit. Narrow groups (direct_groups(): MobileFaceNet's 3×3 with 2 channels per group)
// run here too (and in depthwise_backward): each output channel reads its group's Cg padded
// planes, which a thread loads once for the consecutive output channels of a group.
template <class T>
void depthwise_forward(T* y, const T* x, const T* w, const T* b, const ConvGeometry& g,
                       const ConvEpilogue<T>& post = {}) {
  constexpr int64_t kBlock = DepthwisePlanes::kBlock;
  typedef T Lanes __attribute__((vector_size(kBlock * sizeof(T))));
  const DepthwisePlanes P(g);
  // kRows output rows at once: each tap's weight is broadcast once for all of them, and their
  // kRows sums are independent chains of FMAs (one chain stalls on the FMA latency at every tap:
  // 4-cycle latency, 9 taps, 16 outputs — MobileFaceNet's depthwise layers ran at 2–9 % of peak).
  constexpr int64_t kRows = 4;
  const int64_t Ho = g.Ho(), Wo = g.Wo(), taps = g.kH * g.kW, Cg = g.Cg(), Og = g.Og();
  const int64_t row_step = P.row(1);
  // Each padded plane is followed by the kRows − 1 rows a last, partial group of rows reads past
  // the image (zeros, never stored).
  const int64_t plane = static_cast<int64_t>(P.size()) + (kRows - 1) * row_step;
  if (g.depthwise() && Ho == 1 && Wo == 1 && g.pad == 0 && g.kH == g.H && g.kW == g.W) {
    // A kernel covering the whole unpadded map (MobileFaceNet's global depthwise 7×7): one dot
    // product per plane, in the same order (bias, then taps by row).
#pragma omp parallel for collapse(2) schedule(static) if (g.N * g.O * taps >= kParallelMinWork)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t o = 0; o < g.O; ++o) {
        const T* xo = x + (n * g.C + o) * taps;
        const T* wo = w + o * taps;
        T sum = b ? b[o] : T(0);
        for (int64_t k = 0; k < taps; ++k) sum += wo[k] * xo[k];
        T* yo = y + n * g.O + o;
        *yo = sum;
        if (!post.empty()) post.finish(yo, 1, o, n * g.O + o);
      }
    return;
  }
#pragma omp parallel if (g.N * g.O * Ho * Wo * Cg * taps >= kParallelMinWork)
  {
    thread_local std::vector<T> buffer;  // this thread's padded planes of one group
    buffer.assign(size_t(plane * Cg), T(0));
    int64_t loaded = -1;  // the (image, group) in the buffer
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t o = 0; o < g.O; ++o) {
        const int64_t grp = o / Og;
        if (loaded != n * g.groups + grp) {
          for (int64_t ci = 0; ci < Cg; ++ci)
            P.load(buffer.data() + ci * plane, x + (n * g.C + grp * Cg + ci) * g.H * g.W);
          loaded = n * g.groups + grp;
        }
        const T* wo = w + o * Cg * taps;
        const T bias = b ? b[o] : T(0);
        T* yo = y + (n * g.O + o) * Ho * Wo;
        for (int64_t oh0 = 0; oh0 < Ho; oh0 += kRows)
          for (int64_t ow0 = 0; ow0 < Wo; ow0 += kBlock) {
            Lanes acc[kRows];
            for (int64_t r = 0; r < kRows; ++r)
              for (int64_t j = 0; j < kBlock; ++j) acc[r][j] = bias;
            for (int64_t ci = 0; ci < Cg; ++ci) {
              const T* base = buffer.data() + ci * plane + P.row(oh0) + ow0;
              const T* wc = wo + ci * taps;
              for (int64_t k = 0; k < taps; ++k) {
                const T* src = base + P.tap_offset[size_t(k)];
                const T wk = wc[k];
#pragma GCC unroll 4
                for (int64_t r = 0; r < kRows; ++r) {
                  Lanes v;  // unaligned load
                  std::memcpy(&v, src + r * row_step, sizeof v);
                  acc[r] += wk * v;
                }
              }
            }
            for (int64_t r = 0; r < std::min(kRows, Ho - oh0); ++r) {
              alignas(64) T out[kBlock];
              std::memcpy(out, &acc[r], sizeof out);
              std::copy(out, out + std::min(kBlock, Wo - ow0), yo + (oh0 + r) * Wo + ow0);
            }
          }
        if (!post.empty()) post.finish(yo, Ho * Wo, o, (n * g.O + o) * Ho * Wo);
      }
  }
}

// dx, dw, db (accumulated into): per group (a channel when depthwise), over the batch, so dw and
// db reduce without races, in a fixed order at any thread count. Each block of 16 dy values of
// an output channel (zeros past the row's end) adds w·dy to its group's padded dx planes at every
// tap and dy·x to the tap's 16 partial sums of dw, whose lanes are added up in order at the end.
// Narrow groups (direct_groups()) take the same path with Cg input and Og output channels.
template <class T>
void depthwise_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                        const ConvGeometry& g) {
  constexpr int64_t kBlock = DepthwisePlanes::kBlock;
  typedef T Lanes __attribute__((vector_size(kBlock * sizeof(T))));
  const DepthwisePlanes P(g);
  const int64_t Ho = g.Ho(), Wo = g.Wo(), taps = g.kH * g.kW, Cg = g.Cg(), Og = g.Og();
  const int64_t plane = static_cast<int64_t>(P.size()), per_output = Cg * taps;
#pragma omp parallel for schedule(static) if (g.N * g.O * Ho * Wo * Cg * taps >= kParallelMinWork)
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    thread_local std::vector<T> x_planes, dx_planes;  // this thread's padded planes of the group
    // The 16 partial sums of each (output, input, tap) of dw (a std::vector of vector types would
    // drop their attribute: loads and stores go through memcpy), and of each output's db.
    std::vector<T> dw_sum(static_cast<size_t>(dw ? Og * per_output * kBlock : 0), T(0));
    std::vector<T> db_sum(static_cast<size_t>(Og * kBlock), T(0));
    for (int64_t n = 0; n < g.N; ++n) {
      const int64_t c0 = n * g.C + grp * Cg;  // the group's first input plane
      if (dw) {
        x_planes.resize(size_t(Cg * plane));
        for (int64_t ci = 0; ci < Cg; ++ci)
          P.load(x_planes.data() + ci * plane, x + (c0 + ci) * g.H * g.W);
      }
      if (dx) dx_planes.assign(size_t(Cg * plane), T(0));
      for (int64_t oi = 0; oi < Og; ++oi) {
        const int64_t o = grp * Og + oi;
        const T* wo = w + o * per_output;
        const T* dyo = dy + (n * g.O + o) * Ho * Wo;
        T* dw_o = dw ? dw_sum.data() + oi * per_output * kBlock : nullptr;
        for (int64_t oh = 0; oh < Ho; ++oh)
          for (int64_t ow0 = 0; ow0 < Wo; ow0 += kBlock) {
            alignas(64) T d_values[kBlock] = {};
            std::copy(dyo + oh * Wo + ow0, dyo + oh * Wo + std::min(Wo, ow0 + kBlock), d_values);
            Lanes d, d_sum;
            std::memcpy(&d, d_values, sizeof d);
            std::memcpy(&d_sum, db_sum.data() + oi * kBlock, sizeof d_sum);
            d_sum += d;
            std::memcpy(db_sum.data() + oi * kBlock, &d_sum, sizeof d_sum);
            const int64_t at = P.row(oh) + ow0;
            for (int64_t ci = 0; ci < Cg; ++ci)
              for (int64_t k = 0; k < taps; ++k) {
                const int64_t tap = ci * plane + at + P.tap_offset[size_t(k)];
                if (dw) {
                  Lanes xs, sum;
                  T* slot = dw_o + (ci * taps + k) * kBlock;
                  std::memcpy(&xs, x_planes.data() + tap, sizeof xs);
                  std::memcpy(&sum, slot, sizeof sum);
                  sum += d * xs;
                  std::memcpy(slot, &sum, sizeof sum);
                }
                if (dx) {
                  Lanes acc;
                  std::memcpy(&acc, dx_planes.data() + tap, sizeof acc);
                  acc += wo[ci * taps + k] * d;
                  std::memcpy(dx_planes.data() + tap, &acc, sizeof acc);
                }
              }
          }
      }
      if (dx)
        for (int64_t ci = 0; ci < Cg; ++ci)
          P.add_to(dx + (c0 + ci) * g.H * g.W, dx_planes.data() + ci * plane);
    }
    for (int64_t oi = 0; oi < Og; ++oi) {
      const int64_t o = grp * Og + oi;
      for (int64_t j = 0; j < kBlock; ++j) {
        if (db) db[o] += db_sum[size_t(oi * kBlock + j)];
        for (int64_t k = 0; k < (dw ? per_output : 0); ++k)
          dw[o * per_output + k] += dw_sum[size_t((oi * per_output + k) * kBlock + j)];
      }
    }
  }
}

// picked (planes, Ho, Wo) ← x (planes, H, W) at rows and columns 0, s, 2s, …: the only pixels a
// strided, unpadded 1×1 convolution reads.
template <class T>
void subsample(T* picked, const T* x, int64_t planes, int64_t H, int64_t W, int64_t s, int64_t Ho,
               int64_t Wo) {
#pragma omp parallel for schedule(static) if (planes * Ho * Wo >= kParallelMinWork)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < Ho; ++oh) {
      const T* row = x + (p * H + oh * s) * W;
      T* out = picked + (p * Ho + oh) * Wo;
      for (int64_t ow = 0; ow < Wo; ++ow) out[ow] = row[ow * s];
    }
}

// dx (planes, H, W) += dpicked at the pixels subsample() took.
template <class T>
void subsample_backward(T* dx, const T* dpicked, int64_t planes, int64_t H, int64_t W, int64_t s,
                        int64_t Ho, int64_t Wo) {
#pragma omp parallel for schedule(static) if (planes * Ho * Wo >= kParallelMinWork)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < Ho; ++oh) {
      T* row = dx + (p * H + oh * s) * W;
      const T* in = dpicked + (p * Ho + oh) * Wo;
      for (int64_t ow = 0; ow < Wo; ++ow) row[ow * s] += in[ow];
    }
}

// The Cg input planes (Cg, H, W) of group grp in image n of x.
template <class T>
const T* group_planes(const T* x, const ConvGeometry& g, int64_t n, int64_t grp) {
  return x + (n * g.C + grp * g.Cg()) * g.H * g.W;
}

// col_g (rows, cols) of a block and its row stride: a pointwise convolution of one image reads
// x's band in place; otherwise the block's images are unfolded side by side into `col`.
template <class T>
std::pair<const T*, int64_t> block_col(T* col, const T* x, const ConvGeometry& g,
                                       const ColumnBlock& blk, int64_t grp) {
  if (g.pointwise() && blk.images == 1)
    return {group_planes(x, g, blk.n0, grp) + blk.oh0 * g.Wo(), g.Ho() * g.Wo()};
  const int64_t band = (blk.oh1 - blk.oh0) * g.Wo(), cols = blk.images * band;
  for (int64_t i = 0; i < blk.images; ++i)
    im2col(col + i * band, cols, group_planes(x, g, blk.n0 + i, grp), g.Cg(), g, blk.oh0, blk.oh1);
  return {col, cols};
}

// Threads split the batch into contiguous image ranges, one parallel region per call, each thread
// running single-threaded GEMMs over its own column blocks: per-image GEMMs are too small for
// OpenBLAS's own threading, whose barriers dominate on narrow layers. A single image keeps one
// thread here and lets OpenBLAS thread its GEMMs instead.
inline int conv_batch_threads(int64_t N) {
  return N >= 2 ? static_cast<int>(std::min<int64_t>(N, omp_get_max_threads())) : 1;
}

template <class Fn>
void for_each_thread_images(const ConvGeometry& g, int threads, Fn&& fn) {
  if (threads == 1) return fn(0, int64_t{0}, g.N);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    fn(t, g.N * t / team, g.N * (t + 1) / team);
  }
}

// Each group's op(weights) packed once per call for our own fp32 GEMM, which every column block
// then multiplies without repacking; null for double, or when OpenBLAS runs the GEMMs.
// trans: wᵀ (rows, Og), for the input gradient. The buffers are the calling thread's and only
// grow (slot 0 forward, 1 backward), so steady-state training allocates nothing here.
template <class T>
const std::vector<sgemm::PackedA>* packed_weights(const T* w, const ConvGeometry& g, bool trans) {
  if constexpr (std::is_same_v<T, float>) {
    const sgemm::Backend backend = sgemm::active();
    if (backend == sgemm::Backend::blas) return nullptr;
    thread_local std::vector<sgemm::PackedA> slots[2];
    std::vector<sgemm::PackedA>& packed = slots[trans ? 1 : 0];
    const int64_t Og = g.Og(), rows = g.Cg() * g.kH * g.kW;
    if (packed.size() < size_t(g.groups)) packed.resize(g.groups);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* wg = w + grp * Og * rows;
      if (trans)
        sgemm::pack_a(packed[grp], backend, true, rows, Og, wg, rows);
      else
        sgemm::pack_a(packed[grp], backend, false, Og, rows, wg, rows);
    }
    return &packed;
  }
  return nullptr;
}

// fast: the bf16 GEMMs (float only, weights packed by the caller) instead of the exact ones.
// post: the inference epilogue after the bias (ConvEpilogue).
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvGeometry& g,
                    const Bf16ConvGemms* fast = nullptr, const ConvEpilogue<T>& post = {}) {
  if (g.direct_groups()) return depthwise_forward(y, x, w, b, g, post);
  const int64_t Cg = g.Cg(), Og = g.Og(), Wo = g.Wo(), HoWo = g.Ho() * Wo, rows = Cg * g.kH * g.kW;
  const int threads = conv_batch_threads(g.N);
  const std::vector<sgemm::PackedA>* packed = fast ? nullptr : packed_weights(w, g, false);
  for_each_thread_images(g, threads, [&](int, int64_t n_begin, int64_t n_end) {
    for (const ColumnBlock& blk : column_blocks(g, n_begin, n_end, fast != nullptr)) {
      const int64_t band = (blk.oh1 - blk.oh0) * Wo, cols = blk.images * band;
      // A pointwise conv reads a single image's band in place (several small maps are copied
      // side by side). Otherwise, when the threads already split the batch, our own GEMM makes
      // col's rows as it packs them (sgemm::gemm_rows: the col block, up to 4 MiB, is never
      // written to memory and read back; IR-18 inference +7 %); else im2col into scratch.
      const bool in_place = g.pointwise() && blk.images == 1;
      const bool generated = !g.pointwise() && !fast && packed && threads > 1;
      T* col = in_place || generated ? nullptr : scratch<T>(rows * cols, 0);
      T* ybuf = blk.images > 1 ? scratch<T>(Og * cols, 4) : nullptr;
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const auto block = generated ? std::pair<const T*, int64_t>{nullptr, 0}
                                     : block_col(col, x, g, blk, grp);  // no structured binding:
                                                                        // a lambda uses it
        const T* const colg = block.first;
        const int64_t ldcol = block.second;
        T* yg = y + (blk.n0 * g.O + grp * Og) * HoWo + blk.oh0 * Wo;
        // y_g (Og, cols) = w_g (Og, rows) · col_g (rows, cols)
        auto multiply = [&](T* out, int64_t ldout) {
          if constexpr (std::is_same_v<T, float>) {
            if (fast) return fast->forward(grp, colg, ldcol, cols, out, ldout);
            if (generated) {
              const sgemm::RowSource col_rows = [&](int64_t r, float* row) {
                for (int64_t i = 0; i < blk.images; ++i)
                  im2col_row(row + i * band, group_planes(x, g, blk.n0 + i, grp), r, g, blk.oh0,
                             blk.oh1);
              };
              return sgemm::gemm_rows((*packed)[grp], col_rows, cols, 1.0f, 0.0f, out, ldout);
            }
            if (packed)
              return sgemm::gemm((*packed)[grp], false, cols, 1.0f, colg, ldcol, 0.0f, out, ldout);
          }
          gemm<T>(false, false, Og, cols, rows, T(1), w + grp * Og * rows, rows, colg, ldcol, T(0),
                  out, ldout);
        };
        if (ybuf) {
          multiply(ybuf, cols);
          for (int64_t i = 0; i < blk.images; ++i)
            for (int64_t o = 0; o < Og; ++o)
              std::copy_n(ybuf + o * cols + i * band, band, yg + i * g.O * HoWo + o * HoWo);
        } else {
          multiply(yg, HoWo);
        }
        if (b || !post.empty())
          for (int64_t i = 0; i < blk.images; ++i)
            for (int64_t o = 0; o < Og; ++o) {
              T* yo = yg + i * g.O * HoWo + o * HoWo;
              if (b) {
                const T bias = b[grp * Og + o];
                for (int64_t k = 0; k < band; ++k) yo[k] += bias;
              }
              if (!post.empty()) post.finish(yo, band, grp * Og + o, yo - y);
            }
      }
    }
  });
}

// fast: the bf16 GEMMs (float only; wᵀ packed by the caller when dx is wanted).
template <class T>
void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                     const ConvGeometry& g, const Bf16ConvGemms* fast = nullptr) {
  if (g.direct_groups()) return depthwise_backward(dx, dw, db, dy, x, w, g);
  const int64_t Cg = g.Cg(), Og = g.Og(), Wo = g.Wo(), HoWo = g.Ho() * Wo, rows = Cg * g.kH * g.kW;
  const int64_t wsize = g.O * rows;
  const int threads = conv_batch_threads(g.N);
  const std::vector<sgemm::PackedA>* packed_t = fast || !dx ? nullptr : packed_weights(w, g, true);
  // Each thread sums its images' weight and bias gradients into its own slice; the slices are
  // added in thread order afterwards, so the result is the same bits on every run. Threads own
  // whole images, so their col2im never touch the same dx rows.
  T* partial_dw = dw && threads > 1 ? scratch<T>(threads * wsize, 2) : nullptr;
  T* partial_db = db && threads > 1 ? scratch<T>(threads * g.O, 3) : nullptr;
  if (partial_dw) std::fill(partial_dw, partial_dw + threads * wsize, T(0));
  if (partial_db) std::fill(partial_db, partial_db + threads * g.O, T(0));
  for_each_thread_images(g, threads, [&](int t, int64_t n_begin, int64_t n_end) {
    T* dw_out = partial_dw ? partial_dw + t * wsize : dw;
    T* db_out = partial_db ? partial_db + t * g.O : db;
    for (const ColumnBlock& blk : column_blocks(g, n_begin, n_end, fast != nullptr)) {
      const int64_t band = (blk.oh1 - blk.oh0) * Wo, cols = blk.images * band;
      const bool single = blk.images == 1, in_place = g.pointwise() && single;
      T* col = dw && !in_place ? scratch<T>(rows * cols, 0) : nullptr;
      T* dcol = dx && !in_place ? scratch<T>(rows * cols, 1) : nullptr;
      T* dybuf = single ? nullptr : scratch<T>(Og * cols, 4);
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        // dy_g (Og, cols): in place for one image, else the images' maps gathered side by side.
        const T* dyg = dy + (blk.n0 * g.O + grp * Og) * HoWo + blk.oh0 * Wo;
        int64_t lddy = HoWo;
        if (dybuf) {
          for (int64_t i = 0; i < blk.images; ++i)
            for (int64_t o = 0; o < Og; ++o)
              std::copy_n(dyg + i * g.O * HoWo + o * HoWo, band, dybuf + o * cols + i * band);
          dyg = dybuf;
          lddy = cols;
        }
        if (db_out)
          for (int64_t o = 0; o < Og; ++o) {
            T sum = 0;
            for (int64_t k = 0; k < cols; ++k) sum += dyg[o * lddy + k];
            db_out[grp * Og + o] += sum;
          }
        const T* wg = w + grp * Og * rows;
        const int64_t x_offset = grp * Cg * g.H * g.W;
        if (dw_out) {
          const auto block =
              block_col(col, x, g, blk, grp);  // no structured binding: a lambda uses it
          const T* const colg = block.first;
          const int64_t ldcol = block.second;
          // dw_g (Og, rows) += dy_g (Og, cols) · col_gᵀ (cols, rows)
          T* dwg = dw_out + grp * Og * rows;
          [&] {
            if constexpr (std::is_same_v<T, float>)
              if (fast)
                return Bf16ConvGemms::weight_grad(dyg, lddy, colg, ldcol, cols, dwg, rows, Og);
            gemm<T>(false, true, Og, rows, cols, T(1), dyg, lddy, colg, ldcol, T(1), dwg, rows);
          }();
        }
        if (dx) {
          T* dxg = dx + blk.n0 * g.C * g.H * g.W + x_offset;
          // dcol (rows, cols) = w_gᵀ (rows, Og) · dy_g (Og, cols); a pointwise conv adds in place.
          auto multiply = [&](T* out, int64_t ldout, bool accumulate) {
            if constexpr (std::is_same_v<T, float>) {
              if (fast) return fast->input_grad(grp, dyg, lddy, cols, out, ldout, accumulate);
              if (packed_t)
                return sgemm::gemm((*packed_t)[grp], false, cols, 1.0f, dyg, lddy,
                                   accumulate ? 1.0f : 0.0f, out, ldout);
            }
            gemm<T>(true, false, rows, cols, Og, T(1), wg, rows, dyg, lddy, T(accumulate ? 1 : 0),
                    out, ldout);
          };
          if (dcol) {
            multiply(dcol, cols, false);
            for (int64_t i = 0; i < blk.images; ++i)
              col2im_add(dxg + i * g.C * g.H * g.W, dcol + i * band, cols, Cg, g, blk.oh0, blk.oh1);
          } else {
            multiply(dxg + blk.oh0 * Wo, HoWo, true);
          }
        }
      }
    }
  });
  if (threads == 1) return;
  for (int t = 0; t < threads; ++t) {
    if (dw)
      for (int64_t i = 0; i < wsize; ++i) dw[i] += partial_dw[t * wsize + i];
    if (db)
      for (int64_t o = 0; o < g.O; ++o) db[o] += partial_db[t * g.O + o];
  }
}

}  // namespace mf::kernels
