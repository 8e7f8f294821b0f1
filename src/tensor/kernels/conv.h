// 2-D convolution (cross-correlation, as in PyTorch), NCHW, square stride and zero padding, groups.
//   x: (N, C, H, W)   w: (O, C/G, kH, kW)   b: (O) or null   y: (N, O, Ho, Wo)
//   Ho = (H + 2·pad − kH) / stride + 1, likewise Wo.
// Forward is im2col + one GEMM per image and group: y_g (O/G, Ho·Wo) = w_g (O/G, C/G·kH·kW) ·
// col_g (C/G·kH·kW, Ho·Wo). A 1×1, stride-1, unpadded convolution uses x directly as col.
// Depthwise convolution (one input and one output channel per group) runs as direct loops, since a
// GEMM with a single output row wastes the blocking.
// Backward ACCUMULATES into dx, dw and db; a null pointer skips that gradient.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor/kernels/gemm.h"
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
  bool pointwise() const { return kH == 1 && kW == 1 && stride == 1 && pad == 0; }
  // Forward multiply-adds of the whole batch.
  int64_t macs() const { return N * O * Ho() * Wo() * Cg() * kH * kW; }
};

// A per-thread scratch buffer that only grows, so steady-state training allocates nothing here.
template <class T>
T* scratch(size_t count, int slot = 0) {
  thread_local std::vector<T> buffers[4];
  auto& buffer = buffers[slot];
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

// col (Cg·kH·kW, Ho·Wo) from the Cg channels at x (Cg, H, W).
template <class T>
void im2col(T* col, const T* x, int64_t Cg, const ConvGeometry& g) {
  const int64_t Ho = g.Ho(), Wo = g.Wo(), rows = Cg * g.kH * g.kW;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / (g.kH * g.kW), ki = (r / g.kW) % g.kH, kj = r % g.kW;
    const T* xc = x + c * g.H * g.W;
    T* out = col + r * Ho * Wo;
    for (int64_t oh = 0; oh < Ho; ++oh) {
      const int64_t ih = oh * g.stride - g.pad + ki;
      T* out_row = out + oh * Wo;
      if (ih < 0 || ih >= g.H) {
        std::fill(out_row, out_row + Wo, T(0));
        continue;
      }
      const T* x_row = xc + ih * g.W;
      for (int64_t ow = 0; ow < Wo; ++ow) {
        const int64_t iw = ow * g.stride - g.pad + kj;
        out_row[ow] = (iw >= 0 && iw < g.W) ? x_row[iw] : T(0);
      }
    }
  }
}

// dx (Cg, H, W) += the col layout dcol (Cg·kH·kW, Ho·Wo) folded back. Single-threaded: callers
// split the batch across threads.
template <class T>
void col2im_add(T* dx, const T* dcol, int64_t Cg, const ConvGeometry& g) {
  const int64_t Ho = g.Ho(), Wo = g.Wo();
  for (int64_t c = 0; c < Cg; ++c) {
    T* dxc = dx + c * g.H * g.W;
    for (int64_t ki = 0; ki < g.kH; ++ki)
      for (int64_t kj = 0; kj < g.kW; ++kj) {
        const T* in = dcol + ((c * g.kH + ki) * g.kW + kj) * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; ++oh) {
          const int64_t ih = oh * g.stride - g.pad + ki;
          if (ih < 0 || ih >= g.H) continue;
          T* dx_row = dxc + ih * g.W;
          const T* in_row = in + oh * Wo;
          for (int64_t ow = 0; ow < Wo; ++ow) {
            const int64_t iw = ow * g.stride - g.pad + kj;
            if (iw >= 0 && iw < g.W) dx_row[iw] += in_row[ow];
          }
        }
      }
  }
}

template <class T>
void depthwise_forward(T* y, const T* x, const T* w, const T* b, const ConvGeometry& g) {
  const int64_t Ho = g.Ho(), Wo = g.Wo();
#pragma omp parallel for collapse(2) \
    schedule(static) if (g.N * g.C * Ho * Wo * g.kH * g.kW >= kParallelMinWork)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t c = 0; c < g.C; ++c) {
      const T* xc = x + (n * g.C + c) * g.H * g.W;
      const T* wc = w + c * g.kH * g.kW;
      T* yc = y + (n * g.C + c) * Ho * Wo;
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          T acc = b ? b[c] : T(0);
          for (int64_t ki = 0; ki < g.kH; ++ki) {
            const int64_t ih = oh * g.stride - g.pad + ki;
            if (ih < 0 || ih >= g.H) continue;
            for (int64_t kj = 0; kj < g.kW; ++kj) {
              const int64_t iw = ow * g.stride - g.pad + kj;
              if (iw >= 0 && iw < g.W) acc += wc[ki * g.kW + kj] * xc[ih * g.W + iw];
            }
          }
          yc[oh * Wo + ow] = acc;
        }
    }
}

template <class T>
void depthwise_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                        const ConvGeometry& g) {
  const int64_t Ho = g.Ho(), Wo = g.Wo();
  // One channel per iteration: dw[c] and db[c] reduce over the batch without races.
#pragma omp parallel for schedule(static) if (g.N * g.C * Ho * Wo * g.kH * g.kW >= kParallelMinWork)
  for (int64_t c = 0; c < g.C; ++c) {
    const T* wc = w + c * g.kH * g.kW;
    for (int64_t n = 0; n < g.N; ++n) {
      const T* xc = x + (n * g.C + c) * g.H * g.W;
      const T* dyc = dy + (n * g.C + c) * Ho * Wo;
      T* dxc = dx ? dx + (n * g.C + c) * g.H * g.W : nullptr;
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          const T d = dyc[oh * Wo + ow];
          if (db) db[c] += d;
          for (int64_t ki = 0; ki < g.kH; ++ki) {
            const int64_t ih = oh * g.stride - g.pad + ki;
            if (ih < 0 || ih >= g.H) continue;
            for (int64_t kj = 0; kj < g.kW; ++kj) {
              const int64_t iw = ow * g.stride - g.pad + kj;
              if (iw < 0 || iw >= g.W) continue;
              if (dw) dw[c * g.kH * g.kW + ki * g.kW + kj] += d * xc[ih * g.W + iw];
              if (dxc) dxc[ih * g.W + iw] += d * wc[ki * g.kW + kj];
            }
          }
        }
    }
  }
}

// How many threads to split a batch over: images are independent, so one parallel region per
// call (each thread: im2col + a single-threaded GEMM per image) beats parallelising each small
// per-image GEMM, whose barriers dominate on narrow layers. A single image keeps one thread here
// and lets OpenBLAS thread its GEMM instead.
inline int conv_batch_threads(int64_t N) {
  return N >= 2 ? static_cast<int>(std::min<int64_t>(N, omp_get_max_threads())) : 1;
}

template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvGeometry& g) {
  if (g.depthwise()) return depthwise_forward(y, x, w, b, g);
  const int64_t Cg = g.Cg(), Og = g.Og(), HoWo = g.Ho() * g.Wo(), rows = Cg * g.kH * g.kW;
  auto one_image = [&](int64_t n) {
    T* col = g.pointwise() ? nullptr : scratch<T>(rows * HoWo);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.C + grp * Cg) * g.H * g.W;
      const T* colg = xg;
      if (col) {
        im2col(col, xg, Cg, g);
        colg = col;
      }
      T* yg = y + (n * g.O + grp * Og) * HoWo;
      // y_g (Og, HoWo) = w_g (Og, rows) · col_g (rows, HoWo)
      gemm<T>(false, false, Og, HoWo, rows, T(1), w + grp * Og * rows, colg, T(0), yg);
      if (b)
        for (int64_t o = 0; o < Og; ++o) {
          const T bias = b[grp * Og + o];
          T* yo = yg + o * HoWo;
          for (int64_t i = 0; i < HoWo; ++i) yo[i] += bias;
        }
    }
  };
  const int threads = conv_batch_threads(g.N);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t n = 0; n < g.N; ++n) one_image(n);
}

template <class T>
void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                     const ConvGeometry& g) {
  if (g.depthwise()) return depthwise_backward(dx, dw, db, dy, x, w, g);
  const int64_t Cg = g.Cg(), Og = g.Og(), HoWo = g.Ho() * g.Wo(), rows = Cg * g.kH * g.kW;
  const int64_t wsize = g.O * rows;
  const int threads = conv_batch_threads(g.N);
  // Each thread sums its images' weight and bias gradients into its own slice; the slices are
  // added in thread order afterwards, so the result is the same bits on every run.
  T* partial_dw = dw && threads > 1 ? scratch<T>(threads * wsize, 2) : nullptr;
  T* partial_db = db && threads > 1 ? scratch<T>(threads * g.O, 3) : nullptr;
  if (partial_dw) std::fill(partial_dw, partial_dw + threads * wsize, T(0));
  if (partial_db) std::fill(partial_db, partial_db + threads * g.O, T(0));
  auto one_image = [&](int64_t n, T* dw_out, T* db_out) {
    T* col = (dw && !g.pointwise()) ? scratch<T>(rows * HoWo, 0) : nullptr;
    T* dcol = (dx && !g.pointwise()) ? scratch<T>(rows * HoWo, 1) : nullptr;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.C + grp * Cg) * g.H * g.W;
      const T* dyg = dy + (n * g.O + grp * Og) * HoWo;
      const T* wg = w + grp * Og * rows;
      if (db_out)
        for (int64_t o = 0; o < Og; ++o) {
          T sum = 0;
          for (int64_t i = 0; i < HoWo; ++i) sum += dyg[o * HoWo + i];
          db_out[grp * Og + o] += sum;
        }
      if (dw_out) {
        const T* colg = xg;
        if (col) {
          im2col(col, xg, Cg, g);
          colg = col;
        }
        // dw_g (Og, rows) += dy_g (Og, HoWo) · col_gᵀ (HoWo, rows)
        gemm<T>(false, true, Og, rows, HoWo, T(1), dyg, colg, T(1), dw_out + grp * Og * rows);
      }
      if (dx) {
        T* dxg = dx + (n * g.C + grp * Cg) * g.H * g.W;
        // dcol (rows, HoWo) = w_gᵀ (rows, Og) · dy_g (Og, HoWo); a pointwise conv adds it in place.
        if (dcol) {
          gemm<T>(true, false, rows, HoWo, Og, T(1), wg, dyg, T(0), dcol);
          col2im_add(dxg, dcol, Cg, g);
        } else {
          gemm<T>(true, false, rows, HoWo, Og, T(1), wg, dyg, T(1), dxg);
        }
      }
    }
  };
  if (threads == 1) {
    for (int64_t n = 0; n < g.N; ++n) one_image(n, dw, db);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      one_image(n, partial_dw ? partial_dw + t * wsize : nullptr,
                partial_db ? partial_db + t * g.O : nullptr);
  }
  for (int t = 0; t < threads; ++t) {
    if (dw)
      for (int64_t i = 0; i < wsize; ++i) dw[i] += partial_dw[t * wsize + i];
    if (db)
      for (int64_t o = 0; o < g.O; ++o) db[o] += partial_db[t * g.O + o];
  }
}

}  // namespace mf::kernels
