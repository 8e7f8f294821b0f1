// Winograd's minimal filtering F(4×4, 3×3) for dense 3×3 stride-1 convolutions at inference: an
// APPROXIMATE fast path (off by default; `embed/eval/bench --winograd`), never used for training.
//
// A. Lavin and S. Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, §4: each
// 4×4 output tile Y of one output channel is
//     Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A                                       (their eq. 8)
// with d_c the 6×6 input tile of channel c and g_c the 3×3 filter. The sum over c of the
// element-wise products is, for each of the 36 positions ξ, a matrix product
//     M_ξ (O, tiles) = U_ξ (O, C) · V_ξ (C, tiles),  U = G g Gᵀ, V = Bᵀ d B,
// which our own GEMM runs. 36 products per tile and channel pair instead of 144 (4× fewer
// multiplies; 1.31× of that is lost on 7² and 14² maps, which round up to whole tiles). The
// transforms use the interpolation points 0, ±1, ±2, ∞; their constants up to 8 amplify rounding,
// so results differ from the exact convolution by about 1e-5 of the output's scale (stated and
// tested in tests/tensor/test_winograd.cpp), as cuDNN's and oneDNN's Winograd paths do.
#pragma once

#include <cstdint>

#include "tensor/kernels/conv.h"

namespace mf::kernels::winograd {

// The convolutions it computes: groups 1, 3×3, stride 1, padding 0–2, and tensors whose per-call
// offsets fit the int32 indices of the gathers.
bool applies(const ConvGeometry& g);

// y (N, O, Ho, Wo) = conv(x (N, C, H, W), w (O, C, 3, 3)) + b (O, or null), approximately.
// The transforms run as AVX-512 code when the CPU has it and allow_avx512 is set (tests run both).
// post: the inference epilogue after the bias (ConvEpilogue).
void forward(float* y, const float* x, const float* w, const float* b, const ConvGeometry& g,
             bool allow_avx512 = true, const ConvEpilogue<float>& post = {});

// The process-wide switch the conv2d op reads (only when no gradient is recorded).
void set_enabled(bool on);
bool enabled();

}  // namespace mf::kernels::winograd
