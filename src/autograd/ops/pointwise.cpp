// Activations, broadcasting arithmetic and the scalar math margin heads compose.
#include "autograd/ops.h"
#include "tensor/kernels/activation.h"
#include "tensor/kernels/elementwise.h"
#include "util/error.h"

namespace mf {

namespace {

// Broadcast of `small` against `big`, or an error naming the op and both shapes.
kernels::Broadcast make_broadcast(const char* op, const Shape& big, const Shape& small) {
  MF_CHECK(big.rank() == small.rank() && big.rank() <= kernels::Broadcast::kRank, op,
           ": cannot broadcast ", small, " against ", big, " (ranks must match)");
  kernels::Broadcast bc;
  const int pad = kernels::Broadcast::kRank - big.rank();
  int64_t stride = 1;
  for (int axis = kernels::Broadcast::kRank - 1; axis >= 0; --axis) {
    const int src = axis - pad;
    const int64_t d = src >= 0 ? big[src] : 1, e = src >= 0 ? small[src] : 1;
    MF_CHECK(e == d || e == 1, op, ": cannot broadcast ", small, " against ", big);
    bc.dims[axis] = d;
    bc.b_stride[axis] = (e == 1) ? 0 : stride;
    stride *= e;
  }
  return bc;
}

// True when a's shape covers b's (b broadcasts into a).
bool covers(const Shape& a, const Shape& b) {
  if (a.rank() != b.rank()) return false;
  for (int i = 0; i < a.rank(); ++i)
    if (b[i] != a[i] && b[i] != 1) return false;
  return true;
}

Var add_impl(const char* op, const Var& a, const Var& b, float sign) {
  const auto bc = make_broadcast(op, a.shape(), b.shape());
  Tensor y = Tensor::empty(a.shape());
  kernels::add_forward<float>(y.data(), a.value().data(), b.value().data(), sign, bc);
  if (sign > 0 && a.shape() == b.shape()) {
    // Both gradients are dy itself: the first input takes dy's buffer (the tape drops the output's
    // gradient right after this closure), the second a copy — no zero-fill and add.
    return record(op, std::move(y), {a, b}, [](const Tensor& dy, GradSlots& slots) {
      slots.add(1, dy, false);
      slots.add(0, dy, true);
    });
  }
  return record(op, std::move(y), {a, b}, [bc, sign](const Tensor& dy, GradSlots& slots) {
    kernels::add_backward<float>(slots.data_or_null(0), slots.data_or_null(1), dy.data(), sign, bc);
  });
}

// A unary op whose backward needs the input x: backward(dx, dy, x, n).
template <class Forward, class Backward>
Var unary(const char* op, const Var& x, Forward forward, Backward backward_fn) {
  Tensor xv = x.value();
  Tensor y = Tensor::empty(xv.shape());
  forward(y.data(), xv.data(), xv.numel());
  return record(op, std::move(y), {x}, [xv, backward_fn](const Tensor& dy, GradSlots& slots) {
    backward_fn(slots.grad(0).data(), dy.data(), xv.data(), xv.numel());
  });
}

}  // namespace

Var add(const Var& a, const Var& b) {
  if (!covers(a.shape(), b.shape()) && covers(b.shape(), a.shape()))
    return add_impl("add", b, a, 1.0f);
  return add_impl("add", a, b, 1.0f);
}

Var sub(const Var& a, const Var& b) {
  return add_impl("sub", a, b, -1.0f);
}

Var mul(const Var& a_in, const Var& b_in) {
  const bool swap = !covers(a_in.shape(), b_in.shape()) && covers(b_in.shape(), a_in.shape());
  const Var& a = swap ? b_in : a_in;
  const Var& b = swap ? a_in : b_in;
  const auto bc = make_broadcast("mul", a.shape(), b.shape());
  Tensor av = a.value(), bv = b.value();
  Tensor y = Tensor::empty(av.shape());
  kernels::mul_forward<float>(y.data(), av.data(), bv.data(), bc);
  return record("mul", std::move(y), {a, b}, [av, bv, bc](const Tensor& dy, GradSlots& slots) {
    kernels::mul_backward<float>(slots.data_or_null(0), slots.data_or_null(1), dy.data(), av.data(),
                                 bv.data(), bc);
  });
}

Var relu(const Var& x) {
  return unary("relu", x, kernels::relu_forward<float>, kernels::relu_backward<float>);
}

Var sigmoid(const Var& x) {
  Tensor y = Tensor::empty(x.shape());
  kernels::sigmoid_forward<float>(y.data(), x.value().data(), y.numel());
  return record("sigmoid", y, {x}, [y](const Tensor& dy, GradSlots& slots) {
    kernels::sigmoid_backward<float>(slots.grad(0).data(), dy.data(), y.data(), y.numel());
  });
}

Var affine(const Var& x, float alpha, float beta) {
  Tensor y = Tensor::empty(x.shape());
  kernels::affine_forward<float>(y.data(), x.value().data(), alpha, beta, y.numel());
  return record("affine", std::move(y), {x},
                [alpha](const Tensor& dy, GradSlots& slots) {
                  kernels::affine_backward<float>(slots.grad(0).data(), dy.data(), alpha,
                                                  dy.numel());
                },
                {{"alpha", alpha}, {"beta", beta}});
}

Var clamp(const Var& x, float lo, float hi) {
  MF_CHECK(lo <= hi, "clamp: lower bound ", lo, " above upper bound ", hi);
  return unary(
      "clamp", x,
      [lo, hi](float* y, const float* xv, int64_t n) { kernels::clamp_forward(y, xv, lo, hi, n); },
      [lo, hi](float* dx, const float* dy, const float* xv, int64_t n) {
        kernels::clamp_backward(dx, dy, xv, lo, hi, n);
      });
}

Var cos(const Var& x) {
  return unary("cos", x, kernels::cos_forward<float>, kernels::cos_backward<float>);
}

Var acos(const Var& x) {
  const float* p = x.value().data();
  for (int64_t i = 0; i < x.value().numel(); ++i)
    MF_CHECK(p[i] >= -1.0f && p[i] <= 1.0f, "acos: input ", p[i], " at index ", i,
             " is outside [-1, 1]; clamp it first");
  return unary("acos", x, kernels::acos_forward<float>, kernels::acos_backward<float>);
}

Var sqrt(const Var& x) {
  Tensor y = Tensor::empty(x.shape());
  kernels::sqrt_forward<float>(y.data(), x.value().data(), y.numel());
  return record("sqrt", y, {x}, [y](const Tensor& dy, GradSlots& slots) {
    kernels::sqrt_backward<float>(slots.grad(0).data(), dy.data(), y.data(), y.numel());
  });
}

Var reciprocal(const Var& x) {
  Tensor y = Tensor::empty(x.shape());
  kernels::reciprocal_forward<float>(y.data(), x.value().data(), y.numel());
  return record("reciprocal", y, {x}, [y](const Tensor& dy, GradSlots& slots) {
    kernels::reciprocal_backward<float>(slots.grad(0).data(), dy.data(), y.data(), y.numel());
  });
}

Var dropout(const Var& x, float p, bool training, Rng& rng) {
  MF_CHECK(p >= 0.0f && p < 1.0f, "dropout: probability ", p, " outside [0, 1)");
  if (!training || p == 0.0f) return x;
  const int64_t n = x.value().numel();
  auto mask = std::make_shared<std::vector<uint8_t>>(n);
  for (auto& m : *mask) m = rng.uniform() >= p ? 1 : 0;
  Tensor y = Tensor::empty(x.shape());
  kernels::dropout_forward<float>(y.data(), x.value().data(), mask->data(), p, n);
  return record("dropout", std::move(y), {x}, [mask, p, n](const Tensor& dy, GradSlots& slots) {
    kernels::dropout_backward<float>(slots.grad(0).data(), dy.data(), mask->data(), p, n);
  });
}

Var reshape(const Var& x, const Shape& shape) {
  MF_CHECK(shape.numel() == x.value().numel(), "reshape: cannot view ", x.shape(), " as ", shape);
  return record("reshape", x.value().reshape(shape), {x},
                [](const Tensor& dy, GradSlots& slots) { slots.grad(0).add_(dy); });
}

Var flatten(const Var& x) {
  MF_CHECK(x.shape().rank() >= 1, "flatten: needs a batch dimension");
  const int64_t N = x.dim(0);
  return reshape(x, {N, N ? x.value().numel() / N : 0});
}

}  // namespace mf
