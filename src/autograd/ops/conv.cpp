// conv2d: im2col + GEMM (depthwise by direct loops); see tensor/kernels/conv.h.
#include "tensor/kernels/conv.h"

#include "autograd/ops.h"
#include "tensor/kernels/gemm_bf16.h"
#include "tensor/kernels/winograd.h"
#include "util/error.h"

namespace mf {

namespace {
// The kernels, on the bf16 fast path when asked (weights packed once per call).
void run_forward(float* y, const float* x, const float* w, const float* b,
                 const kernels::ConvGeometry& g, bool bf16,
                 const kernels::ConvEpilogue<float>& post = {}) {
  if (!bf16) return kernels::conv2d_forward<float>(y, x, w, b, g, nullptr, post);
  const kernels::Bf16ConvGemms fast(w, g, /*for_backward=*/false);
  kernels::conv2d_forward<float>(y, x, w, b, g, &fast, post);
}
void run_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                  const kernels::ConvGeometry& g, bool bf16) {
  if (!bf16) return kernels::conv2d_backward<float>(dx, dw, db, dy, x, w, g);
  const kernels::Bf16ConvGemms fast(dx ? w : nullptr, g, /*for_backward=*/true);
  kernels::conv2d_backward<float>(dx, dw, db, dy, x, w, g, &fast);
}
}  // namespace

namespace {
// conv2d, and its fused inference form when `fused` is given (then nothing is recorded for a
// backward; the callers check that no gradient is wanted).
Var conv2d_impl(const Var& x, const Var& weight, const Var& bias, const Conv2dOptions& o,
                const ConvFusion* fused) {
  const Shape& xs = x.shape();
  const Shape& ws = weight.shape();
  MF_CHECK(xs.rank() == 4 && ws.rank() == 4,
           "conv2d: expected input (N, C, H, W) and weight (O, C/groups, kH, kW), got ", xs,
           " and ", ws);
  MF_CHECK(o.groups >= 1 && o.stride >= 1 && o.pad >= 0, "conv2d: invalid stride ", o.stride,
           ", pad ", o.pad, " or groups ", o.groups);
  MF_CHECK(xs[1] % o.groups == 0 && ws[0] % o.groups == 0 && ws[1] * o.groups == xs[1],
           "conv2d: input ", xs, " does not fit weight ", ws, " with groups=", o.groups);
  kernels::ConvGeometry g{.N = xs[0],
                          .C = xs[1],
                          .H = xs[2],
                          .W = xs[3],
                          .O = ws[0],
                          .kH = ws[2],
                          .kW = ws[3],
                          .stride = o.stride,
                          .pad = o.pad,
                          .groups = o.groups};
  MF_CHECK(g.H + 2 * g.pad >= g.kH && g.W + 2 * g.pad >= g.kW, "conv2d: kernel ", ws,
           " larger than the padded input ", xs);
  if (bias.defined())
    MF_CHECK(bias.shape() == Shape({g.O}), "conv2d: bias ", bias.shape(), " for weight ", ws);
  Tensor xv = x.value(), wv = weight.value();
  std::vector<Var> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  const bool has_bias = bias.defined();
  const float* bias_data = has_bias ? bias.value().data() : nullptr;
  Tensor y = Tensor::empty({g.N, g.O, g.Ho(), g.Wo()});
  // The bf16 fast path (kernels::set_conv_precision), decided once per op for both passes.
  const bool bf16 = kernels::conv_precision() == kernels::ConvPrecision::bf16 && !g.direct_groups();
  kernels::ConvEpilogue<float> post;
  if (fused) {
    auto per_channel = [&](const Tensor& t, const char* what) {
      if (!t.defined()) return static_cast<const float*>(nullptr);
      MF_CHECK(t.shape() == Shape({g.O}), "conv2d_fused: ", what, " ", t.shape(), " for weight ",
               ws);
      return t.data();
    };
    post.scale = per_channel(fused->scale, "scale");
    post.shift = per_channel(fused->shift, "shift");
    MF_CHECK(!post.scale == !post.shift, "conv2d_fused: scale and shift go together");
    post.slope = per_channel(fused->slope, "slope");
    if (fused->residual.defined()) {
      MF_CHECK(fused->residual.shape() == y.shape(), "conv2d_fused: residual ",
               fused->residual.shape(), " for output ", y.shape());
      post.residual = fused->residual.data();
    }
  }

  // A strided 1×1 convolution (the IR blocks' downsampling shortcut) only ever reads every
  // stride-th pixel: take those first and run a stride-1 pointwise convolution on them, which
  // also keeps just that quarter of x alive for the backward instead of all of it.
  if (g.kH == 1 && g.kW == 1 && g.pad == 0 && g.stride > 1) {
    const int64_t Ho = g.Ho(), Wo = g.Wo();
    Tensor picked = Tensor::empty({g.N, g.C, Ho, Wo});
    kernels::subsample<float>(picked.data(), xv.data(), g.N * g.C, g.H, g.W, g.stride, Ho, Wo);
    kernels::ConvGeometry pg = g;
    pg.H = Ho;
    pg.W = Wo;
    pg.stride = 1;
    run_forward(y.data(), picked.data(), wv.data(), bias_data, pg, bf16, post);
    if (fused)
      return record(fused->name, std::move(y), inputs, nullptr, {{"groups", double(g.groups)}});
    return record(
        "conv2d", std::move(y), inputs,
        [picked, wv, g, pg, has_bias, bf16](const Tensor& dy, GradSlots& slots) {
          Tensor dpicked = slots.wants(0) ? Tensor::zeros(picked.shape()) : Tensor();
          run_backward(dpicked.defined() ? dpicked.data() : nullptr, slots.data_or_null(1),
                       has_bias ? slots.data_or_null(2) : nullptr, dy.data(), picked.data(),
                       wv.data(), pg, bf16);
          if (dpicked.defined())
            kernels::subsample_backward<float>(slots.grad(0).data(), dpicked.data(), g.N * g.C, g.H,
                                               g.W, g.stride, pg.H, pg.W);
        },
        {{"stride", double(g.stride)}, {"pad", double(g.pad)}, {"groups", double(g.groups)}});
  }

  // Winograd F(4×4, 3×3) when asked (kernels::winograd::set_enabled): inference only, since it
  // approximates the forward and no backward is written for it.
  if (!bf16 && !grad_enabled() && kernels::winograd::enabled() && kernels::winograd::applies(g))
    kernels::winograd::forward(y.data(), xv.data(), wv.data(), bias_data, g, true, post);
  else
    run_forward(y.data(), xv.data(), wv.data(), bias_data, g, bf16, post);
  if (fused)
    return record(fused->name, std::move(y), inputs, nullptr, {{"groups", double(g.groups)}});
  return record(
      "conv2d", std::move(y), inputs,
      [xv, wv, g, has_bias, bf16](const Tensor& dy, GradSlots& slots) {
        run_backward(slots.data_or_null(0), slots.data_or_null(1),
                     has_bias ? slots.data_or_null(2) : nullptr, dy.data(), xv.data(), wv.data(), g,
                     bf16);
      },
      {{"stride", double(g.stride)}, {"pad", double(g.pad)}, {"groups", double(g.groups)}});
}

}  // namespace

Var conv2d(const Var& x, const Var& weight, const Var& bias, const Conv2dOptions& o) {
  return conv2d_impl(x, weight, bias, o, nullptr);
}

Var conv2d_fused(const Var& x, const Var& weight, const Var& bias, const Conv2dOptions& o,
                 const ConvFusion& fused) {
  MF_CHECK(!grad_enabled(), "conv2d_fused: inference only (a gradient is being recorded)");
  return conv2d_impl(x, weight, bias, o, &fused);
}

}  // namespace mf
