// batch_norm, prelu, l2_normalize.
#include "autograd/ops.h"
#include "tensor/kernels/activation.h"
#include "tensor/kernels/batchnorm.h"
#include "tensor/kernels/rows.h"
#include "util/error.h"

namespace mf {

Var batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
               Tensor running_var, const BatchNormOptions& o) {
  const Shape& xs = x.shape();
  MF_CHECK(xs.rank() == 2 || xs.rank() == 4, "batch_norm: expected (N, C) or (N, C, H, W), got ", xs);
  const int64_t N = xs[0], C = xs[1], S = xs.rank() == 4 ? xs[2] * xs[3] : 1;
  const Shape cs{C};
  if (gamma.defined()) MF_CHECK(gamma.shape() == cs, "batch_norm: weight ", gamma.shape(), " for input ", xs);
  if (beta.defined()) MF_CHECK(beta.shape() == cs, "batch_norm: bias ", beta.shape(), " for input ", xs);
  if (o.training) {
    MF_CHECK(N * S > 1, "batch_norm: training needs more than one value per channel, got input ", xs);
  } else {
    MF_CHECK(running_mean.defined() && running_var.defined(),
             "batch_norm: eval mode needs running statistics");
  }
  if (running_mean.defined()) MF_CHECK(running_mean.shape() == cs, "batch_norm: running_mean ", running_mean.shape(), " for input ", xs);
  if (running_var.defined()) MF_CHECK(running_var.shape() == cs, "batch_norm: running_var ", running_var.shape(), " for input ", xs);

  Tensor xv = x.value();
  Tensor y = Tensor::empty(xs), mean = Tensor::empty(cs), invstd = Tensor::empty(cs);
  Tensor gv = gamma.defined() ? gamma.value() : Tensor();
  kernels::batchnorm_forward<float>(
      y.data(), mean.data(), invstd.data(), xv.data(), gv.defined() ? gv.data() : nullptr,
      beta.defined() ? beta.value().data() : nullptr,
      running_mean.defined() ? running_mean.data() : nullptr,
      running_var.defined() ? running_var.data() : nullptr, o.training, o.momentum, o.eps, N, C, S);
  // Undefined gamma/beta still occupy their slots so the closure's indices stay fixed.
  std::vector<Var> inputs{x, gamma.defined() ? gamma : Var(Tensor::full(cs, 1.0f)),
                          beta.defined() ? beta : Var(Tensor::zeros(cs))};
  return record("batch_norm", std::move(y), inputs,
                [xv, gv, mean, invstd, training = o.training, N, C, S](const Tensor& dy, GradSlots& slots) {
                  kernels::batchnorm_backward<float>(
                      slots.data_or_null(0), slots.data_or_null(1), slots.data_or_null(2), dy.data(),
                      xv.data(), mean.data(), invstd.data(), gv.defined() ? gv.data() : nullptr,
                      training, N, C, S);
                });
}

Var prelu(const Var& x, const Var& alpha) {
  const Shape& xs = x.shape();
  MF_CHECK(xs.rank() >= 2, "prelu: expected (N, C, ...), got ", xs);
  MF_CHECK(alpha.shape() == Shape({xs[1]}), "prelu: ", alpha.shape(), " slopes for input ", xs);
  const int64_t N = xs[0], C = xs[1], S = x.value().numel() / (N * C);
  Tensor xv = x.value(), av = alpha.value();
  Tensor y = Tensor::empty(xs);
  kernels::prelu_forward<float>(y.data(), xv.data(), av.data(), N, C, S);
  return record("prelu", std::move(y), {x, alpha}, [xv, av, N, C, S](const Tensor& dy, GradSlots& slots) {
    kernels::prelu_backward<float>(slots.data_or_null(0), slots.data_or_null(1), dy.data(), xv.data(),
                                   av.data(), N, C, S);
  });
}

Var l2_normalize(const Var& x, float eps) {
  MF_CHECK(x.shape().rank() == 2, "l2_normalize: expected rows (N, D), got ", x.shape());
  const int64_t N = x.dim(0), D = x.dim(1);
  Tensor y = Tensor::empty(x.shape()), norms = Tensor::empty({N});
  kernels::l2_normalize_forward<float>(y.data(), norms.data(), x.value().data(), N, D, eps);
  return record("l2_normalize", y, {x}, [y, norms, N, D, eps](const Tensor& dy, GradSlots& slots) {
    kernels::l2_normalize_backward<float>(slots.grad(0).data(), dy.data(), y.data(), norms.data(), N, D, eps);
  });
}

}  // namespace mf
