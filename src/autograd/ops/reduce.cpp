// Pooling, reductions, softmax and target-column ops.
#include <cmath>

#include "autograd/ops.h"
#include "tensor/kernels/pool.h"
#include "tensor/kernels/rows.h"
#include "util/error.h"

namespace mf {

namespace {
void check_labels(const char* op, const Labels& labels, int64_t N, int64_t K) {
  MF_CHECK(static_cast<int64_t>(labels.size()) == N, op, ": ", labels.size(), " labels for ", N,
           " rows");
  for (size_t n = 0; n < labels.size(); ++n)
    MF_CHECK(labels[n] >= 0 && labels[n] < K, op, ": label ", labels[n], " of row ", n,
             " is outside [0, ", K, ")");
}
}  // namespace

Var global_avg_pool(const Var& x) {
  const Shape& xs = x.shape();
  MF_CHECK(xs.rank() == 4, "global_avg_pool: expected (N, C, H, W), got ", xs);
  const int64_t NC = xs[0] * xs[1], S = xs[2] * xs[3];
  Tensor y = Tensor::empty({xs[0], xs[1], 1, 1});
  kernels::global_avg_pool_forward<float>(y.data(), x.value().data(), NC, S);
  return record("global_avg_pool", std::move(y), {x}, [NC, S](const Tensor& dy, GradSlots& slots) {
    kernels::global_avg_pool_backward<float>(slots.grad(0).data(), dy.data(), NC, S);
  });
}

Var max_pool2d(const Var& x, int64_t kernel, int64_t stride, int64_t pad) {
  const Shape& xs = x.shape();
  MF_CHECK(xs.rank() == 4, "max_pool2d: expected (N, C, H, W), got ", xs);
  MF_CHECK(kernel >= 1 && stride >= 1 && pad >= 0 && 2 * pad <= kernel,
           "max_pool2d: invalid kernel ", kernel, ", stride ", stride, ", pad ", pad);
  kernels::PoolGeometry g{.N = xs[0],
                          .C = xs[1],
                          .H = xs[2],
                          .W = xs[3],
                          .kernel = kernel,
                          .stride = stride,
                          .pad = pad};
  MF_CHECK(g.Ho() >= 1 && g.Wo() >= 1, "max_pool2d: kernel ", kernel, " larger than input ", xs);
  Tensor y = Tensor::empty({g.N, g.C, g.Ho(), g.Wo()});
  auto argmax = std::make_shared<std::vector<int32_t>>(y.numel());
  kernels::max_pool_forward<float>(y.data(), argmax->data(), x.value().data(), g);
  return record("max_pool2d", std::move(y), {x},
                [argmax, g](const Tensor& dy, GradSlots& slots) {
                  kernels::max_pool_backward<float>(slots.grad(0).data(), dy.data(), argmax->data(),
                                                    g);
                },
                {{"kernel", double(kernel)}, {"stride", double(stride)}, {"pad", double(pad)}});
}

Var log_softmax(const Var& x) {
  MF_CHECK(x.shape().rank() == 2, "log_softmax: expected rows (N, K), got ", x.shape());
  const int64_t N = x.dim(0), K = x.dim(1);
  Tensor y = Tensor::empty(x.shape());
  kernels::log_softmax_forward<float>(y.data(), x.value().data(), N, K);
  return record("log_softmax", y, {x}, [y, N, K](const Tensor& dy, GradSlots& slots) {
    kernels::log_softmax_backward<float>(slots.grad(0).data(), dy.data(), y.data(), N, K);
  });
}

Var cross_entropy(const Var& logits, const Labels& labels) {
  MF_CHECK(logits.shape().rank() == 2, "cross_entropy: expected logits (N, K), got ",
           logits.shape());
  const int64_t N = logits.dim(0), K = logits.dim(1);
  MF_CHECK(N > 0, "cross_entropy: empty batch");
  check_labels("cross_entropy", labels, N, K);
  Tensor prob = Tensor::empty({N, K});
  const float loss =
      kernels::softmax_xent_forward<float>(prob.data(), logits.value().data(), labels.data(), N, K);
  return record("cross_entropy", Tensor::scalar(loss), {logits},
                [prob, labels, N, K](const Tensor& dy, GradSlots& slots) {
                  kernels::softmax_xent_backward<float>(slots.grad(0).data(), dy.item(),
                                                        prob.data(), labels.data(), N, K);
                });
}

Var sum(const Var& x) {
  const float* p = x.value().data();
  double total = 0;  // double accumulation: sums of many activations lose digits in float
  for (int64_t i = 0; i < x.value().numel(); ++i) total += p[i];
  return record("sum", Tensor::scalar(static_cast<float>(total)), {x},
                [](const Tensor& dy, GradSlots& slots) {
                  Tensor& g = slots.grad(0);
                  const float d = dy.item();
                  for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] += d;
                });
}

Var mean(const Var& x) {
  const int64_t n = x.value().numel();
  MF_CHECK(n > 0, "mean: empty tensor ", x.shape());
  return affine(sum(x), 1.0f / static_cast<float>(n));
}

Var gather_target(const Var& z, const Labels& labels) {
  MF_CHECK(z.shape().rank() == 2, "gather_target: expected (N, K), got ", z.shape());
  const int64_t N = z.dim(0), K = z.dim(1);
  check_labels("gather_target", labels, N, K);
  Tensor t = Tensor::empty({N});
  kernels::gather_target_forward<float>(t.data(), z.value().data(), labels.data(), N, K);
  return record("gather_target", std::move(t), {z},
                [labels, N, K](const Tensor& dy, GradSlots& slots) {
                  kernels::gather_target_backward<float>(slots.grad(0).data(), dy.data(),
                                                         labels.data(), N, K);
                });
}

Var replace_target(const Var& z, const Var& t, const Labels& labels) {
  MF_CHECK(z.shape().rank() == 2, "replace_target: expected (N, K), got ", z.shape());
  const int64_t N = z.dim(0), K = z.dim(1);
  MF_CHECK(t.shape() == Shape({N}), "replace_target: targets ", t.shape(), " for logits ",
           z.shape());
  check_labels("replace_target", labels, N, K);
  Tensor out = Tensor::empty(z.shape());
  kernels::replace_target_forward<float>(out.data(), z.value().data(), t.value().data(),
                                         labels.data(), N, K);
  return record("replace_target", std::move(out), {z, t},
                [labels, N, K](const Tensor& dy, GradSlots& slots) {
                  kernels::replace_target_backward<float>(
                      slots.data_or_null(0), slots.data_or_null(1), dy.data(), labels.data(), N, K);
                });
}

}  // namespace mf
