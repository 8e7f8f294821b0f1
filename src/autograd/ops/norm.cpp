// batch_norm, prelu, l2_normalize.
#include "autograd/ops.h"
#include "tensor/kernels/activation.h"
#include "tensor/kernels/batchnorm.h"
#include "tensor/kernels/rows.h"
#include "util/error.h"

namespace mf {

namespace {
// Shapes of a batch norm's arguments; `op` names the caller in the message.
void check_batch_norm(const char* op, const Var& x, const Var& gamma, const Var& beta,
                      const Tensor& running_mean, const Tensor& running_var,
                      const BatchNormOptions& o) {
  const Shape& xs = x.shape();
  MF_CHECK(xs.rank() == 2 || xs.rank() == 4, op, ": expected (N, C) or (N, C, H, W), got ", xs);
  const int64_t N = xs[0], C = xs[1], S = xs.rank() == 4 ? xs[2] * xs[3] : 1;
  const Shape cs{C};
  if (gamma.defined())
    MF_CHECK(gamma.shape() == cs, op, ": weight ", gamma.shape(), " for input ", xs);
  if (beta.defined()) MF_CHECK(beta.shape() == cs, op, ": bias ", beta.shape(), " for input ", xs);
  if (o.training) {
    MF_CHECK(N * S > 1, op, ": training needs more than one value per channel, got input ", xs);
  } else {
    MF_CHECK(running_mean.defined() && running_var.defined(), op,
             ": eval mode needs running statistics");
  }
  if (running_mean.defined())
    MF_CHECK(running_mean.shape() == cs, op, ": running_mean ", running_mean.shape(), " for input ",
             xs);
  if (running_var.defined())
    MF_CHECK(running_var.shape() == cs, op, ": running_var ", running_var.shape(), " for input ",
             xs);
}
ChannelSum& batch_norm_sync() {
  static ChannelSum sum;
  return sum;
}

// Training-mode batch norm with SyncBN's global statistics (kernels::synced_moments).
Var synced_batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
                      Tensor running_var, const BatchNormOptions& o) {
  const ChannelSum sum_all = batch_norm_sync();
  const Shape& xs = x.shape();
  const int64_t N = xs[0], C = xs[1], S = xs.rank() == 4 ? xs[2] * xs[3] : 1;
  const Shape cs{C};
  Tensor xv = x.value();
  Tensor gv = gamma.defined() ? gamma.value() : Tensor();
  Tensor bv = beta.defined() ? beta.value() : Tensor();
  std::vector<double> moments(2 * C);
  const int64_t M = kernels::synced_moments(xv.data(), N, C, S, moments.data(), sum_all);
  Tensor y = Tensor::empty(xs), mean = Tensor::empty(cs), invstd = Tensor::empty(cs);
  kernels::batchnorm_forward<float>(
      y.data(), mean.data(), invstd.data(), xv.data(), gv.defined() ? gv.data() : nullptr,
      bv.defined() ? bv.data() : nullptr, running_mean.defined() ? running_mean.data() : nullptr,
      running_var.defined() ? running_var.data() : nullptr, true, o.momentum, o.eps, N, C, S,
      nullptr, moments.data(), M);
  std::vector<Var> inputs{x, gamma.defined() ? gamma : Var(Tensor::full(cs, 1.0f)),
                          beta.defined() ? beta : Var(Tensor::zeros(cs))};
  return record("batch_norm", std::move(y), inputs,
                [xv, gv, mean, invstd, N, C, S, M, sum_all](const Tensor& dy, GradSlots& slots) {
                  std::vector<double> sums(2 * C);
                  kernels::batchnorm_backward_synced<float>(
                      slots.data_or_null(0), slots.data_or_null(1), slots.data_or_null(2),
                      dy.data(), xv.data(), mean.data(), invstd.data(),
                      gv.defined() ? gv.data() : nullptr, N, C, S, M, sums.data(), sum_all);
                },
                {{"eps", o.eps},
                 {"training", 1.0},
                 {"running_mean", running_mean},
                 {"running_var", running_var}});
}
}  // namespace

void set_batch_norm_sync(ChannelSum sum) {
  batch_norm_sync() = std::move(sum);
}

Var batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
               Tensor running_var, const BatchNormOptions& o) {
  check_batch_norm("batch_norm", x, gamma, beta, running_mean, running_var, o);
  if (o.training && batch_norm_sync())
    return synced_batch_norm(x, gamma, beta, running_mean, running_var, o);
  const Shape& xs = x.shape();
  const int64_t N = xs[0], C = xs[1], S = xs.rank() == 4 ? xs[2] * xs[3] : 1;
  const Shape cs{C};
  Tensor xv = x.value();
  Tensor gv = gamma.defined() ? gamma.value() : Tensor();
  Tensor bv = beta.defined() ? beta.value() : Tensor();
  const float* g_ptr = gv.defined() ? gv.data() : nullptr;
  const float* b_ptr = bv.defined() ? bv.data() : nullptr;
  Tensor y = Tensor::empty(xs), mean = Tensor::empty(cs), invstd = Tensor::empty(cs);
  kernels::batchnorm_forward<float>(y.data(), mean.data(), invstd.data(), xv.data(), g_ptr, b_ptr,
                                    running_mean.defined() ? running_mean.data() : nullptr,
                                    running_var.defined() ? running_var.data() : nullptr,
                                    o.training, o.momentum, o.eps, N, C, S);
  // Undefined gamma/beta still occupy their slots so the closure's indices stay fixed.
  std::vector<Var> inputs{x, gamma.defined() ? gamma : Var(Tensor::full(cs, 1.0f)),
                          beta.defined() ? beta : Var(Tensor::zeros(cs))};
  // Keep the output rather than the input for the backward when γ allows (x̂ = (y − β)/γ): the
  // next conv or PReLU keeps the output anyway, so the input's memory is freed after this op
  // (with batch_norm_prelu below, an IR block keeps 3 activation-sized tensors instead of 6).
  if (kernels::batchnorm_output_invertible(g_ptr, b_ptr, C)) {
    Tensor yv = y;
    return record(
        "batch_norm", std::move(y), inputs,
        [yv, gv, bv, invstd, training = o.training, N, C, S](const Tensor& dy, GradSlots& slots) {
          kernels::batchnorm_backward_from_output<float>(
              slots.data_or_null(0), slots.data_or_null(1), slots.data_or_null(2), dy.data(),
              yv.data(), gv.defined() ? gv.data() : nullptr, bv.defined() ? bv.data() : nullptr,
              invstd.data(), training, N, C, S);
        },
        {{"eps", o.eps},
         {"training", o.training ? 1.0 : 0.0},
         {"running_mean", running_mean},
         {"running_var", running_var}});
  }
  return record(
      "batch_norm", std::move(y), inputs,
      [xv, gv, mean, invstd, training = o.training, N, C, S](const Tensor& dy, GradSlots& slots) {
        kernels::batchnorm_backward<float>(slots.data_or_null(0), slots.data_or_null(1),
                                           slots.data_or_null(2), dy.data(), xv.data(), mean.data(),
                                           invstd.data(), gv.defined() ? gv.data() : nullptr,
                                           training, N, C, S);
      },
      {{"eps", o.eps},
       {"training", o.training ? 1.0 : 0.0},
       {"running_mean", running_mean},
       {"running_var", running_var}});
}

Var batch_norm_prelu(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
                     Tensor running_var, const BatchNormOptions& o, const Var& alpha) {
  check_batch_norm("batch_norm_prelu", x, gamma, beta, running_mean, running_var, o);
  const Shape& xs = x.shape();
  const int64_t N = xs[0], C = xs[1], S = xs.rank() == 4 ? xs[2] * xs[3] : 1;
  const Shape cs{C};
  MF_CHECK(alpha.shape() == cs, "batch_norm_prelu: ", alpha.shape(), " slopes for input ", xs);
  Tensor gv = gamma.defined() ? gamma.value() : Tensor();
  Tensor bv = beta.defined() ? beta.value() : Tensor();
  Tensor av = alpha.value();
  const float* g_ptr = gv.defined() ? gv.data() : nullptr;
  const float* b_ptr = bv.defined() ? bv.data() : nullptr;
  if (!kernels::batchnorm_output_invertible(g_ptr, b_ptr, C) ||
      !kernels::prelu_invertible(av.data(), C) || (o.training && batch_norm_sync()))
    return prelu(batch_norm(x, gamma, beta, running_mean, running_var, o), alpha);

  Tensor p = Tensor::empty(xs), mean = Tensor::empty(cs), invstd = Tensor::empty(cs);
  kernels::batchnorm_forward<float>(p.data(), mean.data(), invstd.data(), x.value().data(), g_ptr,
                                    b_ptr, running_mean.defined() ? running_mean.data() : nullptr,
                                    running_var.defined() ? running_var.data() : nullptr,
                                    o.training, o.momentum, o.eps, N, C, S, av.data());
  std::vector<Var> inputs{x, gamma.defined() ? gamma : Var(Tensor::full(cs, 1.0f)),
                          beta.defined() ? beta : Var(Tensor::zeros(cs)), alpha};
  // Only the output is kept: BN's output and input are recomputed from it (see the kernel).
  Tensor pv = p;
  return record(
      "batch_norm_prelu", std::move(p), inputs,
      [pv, gv, bv, av, invstd, training = o.training, N, C, S](const Tensor& dp, GradSlots& slots) {
        kernels::batchnorm_prelu_backward<float>(
            slots.data_or_null(0), slots.data_or_null(1), slots.data_or_null(2),
            slots.data_or_null(3), dp.data(), pv.data(), gv.defined() ? gv.data() : nullptr,
            bv.defined() ? bv.data() : nullptr, av.data(), invstd.data(), training, N, C, S);
      },
      {{"eps", o.eps},
       {"training", o.training ? 1.0 : 0.0},
       {"running_mean", running_mean},
       {"running_var", running_var}});
}

Var prelu(const Var& x, const Var& alpha) {
  const Shape& xs = x.shape();
  MF_CHECK(xs.rank() >= 2, "prelu: expected (N, C, ...), got ", xs);
  MF_CHECK(alpha.shape() == Shape({xs[1]}), "prelu: ", alpha.shape(), " slopes for input ", xs);
  const int64_t N = xs[0], C = xs[1], S = x.value().numel() / (N * C);
  Tensor xv = x.value(), av = alpha.value();
  Tensor y = Tensor::empty(xs);
  kernels::prelu_forward<float>(y.data(), xv.data(), av.data(), N, C, S);
  return record("prelu", std::move(y), {x, alpha},
                [xv, av, N, C, S](const Tensor& dy, GradSlots& slots) {
                  kernels::prelu_backward<float>(slots.data_or_null(0), slots.data_or_null(1),
                                                 dy.data(), xv.data(), av.data(), N, C, S);
                });
}

Var l2_normalize(const Var& x, float eps) {
  MF_CHECK(x.shape().rank() == 2, "l2_normalize: expected rows (N, D), got ", x.shape());
  const int64_t N = x.dim(0), D = x.dim(1);
  Tensor y = Tensor::empty(x.shape()), norms = Tensor::empty({N});
  kernels::l2_normalize_forward<float>(y.data(), norms.data(), x.value().data(), N, D, eps);
  return record("l2_normalize", y, {x},
                [y, norms, N, D, eps](const Tensor& dy, GradSlots& slots) {
                  kernels::l2_normalize_backward<float>(slots.grad(0).data(), dy.data(), y.data(),
                                                        norms.data(), N, D, eps);
                },
                {{"eps", eps}});
}

}  // namespace mf
