// margin_logits, row_norm, contrastive_loss, triplet_loss.
#include <memory>

#include "autograd/margin_ops.h"
#include "util/error.h"

namespace mf {

namespace {
void check_rows_labels(const char* op, const Labels& labels, int64_t N, int64_t K) {
  MF_CHECK(static_cast<int64_t>(labels.size()) == N, op, ": ", labels.size(), " labels for ", N,
           " rows");
  for (size_t n = 0; n < labels.size(); ++n)
    MF_CHECK(labels[n] >= 0 && labels[n] < K, op, ": label ", labels[n], " of row ", n,
             " is outside [0, ", K, ")");
}
}  // namespace

Var margin_logits(const Var& cos, const Labels& labels, const kernels::MarginSpec& spec,
                  float scale) {
  MF_CHECK(cos.shape().rank() == 2, "margin_logits: expected cosines (N, K), got ", cos.shape());
  const int64_t N = cos.dim(0), K = cos.dim(1);
  check_rows_labels("margin_logits", labels, N, K);
  Tensor z = Tensor::empty({N, K}), dfdc = Tensor::empty({N});
  kernels::margin_logits_forward<float>(z.data(), dfdc.data(), cos.value().data(), labels.data(), N,
                                        K, spec, scale);
  return record("margin_logits", std::move(z), {cos},
                [dfdc, labels, N, K, scale](const Tensor& dz, GradSlots& slots) {
                  kernels::margin_logits_backward<float>(slots.grad(0).data(), dz.data(),
                                                         dfdc.data(), labels.data(), N, K, scale);
                });
}

Var row_norm(const Var& x) {
  MF_CHECK(x.shape().rank() == 2, "row_norm: expected rows (N, D), got ", x.shape());
  const int64_t N = x.dim(0), D = x.dim(1);
  Tensor xv = x.value(), r = Tensor::empty({N, 1});
  kernels::row_norm_forward<float>(r.data(), xv.data(), N, D);
  return record("row_norm", r, {x}, [xv, r, N, D](const Tensor& dr, GradSlots& slots) {
    kernels::row_norm_backward<float>(slots.grad(0).data(), dr.data(), xv.data(), r.data(), N, D);
  });
}

Var contrastive_loss(const Var& f, const Labels& labels, float margin) {
  MF_CHECK(f.shape().rank() == 2, "contrastive_loss: expected rows (N, D), got ", f.shape());
  const int64_t N = f.dim(0), D = f.dim(1);
  MF_CHECK(N >= 2, "contrastive_loss: needs at least two embeddings, got ", f.shape());
  MF_CHECK(static_cast<int64_t>(labels.size()) == N, "contrastive_loss: ", labels.size(),
           " labels for ", N, " rows");
  Tensor fv = f.value();
  const float loss = kernels::contrastive_forward<float>(fv.data(), labels.data(), N, D, margin);
  return record("contrastive_loss", Tensor::scalar(loss), {f},
                [fv, labels, N, D, margin](const Tensor& dy, GradSlots& slots) {
                  kernels::contrastive_backward<float>(slots.grad(0).data(), dy.item(), fv.data(),
                                                       labels.data(), N, D, margin);
                });
}

Var triplet_loss(const Var& f, const std::vector<kernels::Triplet>& triplets, float alpha) {
  MF_CHECK(f.shape().rank() == 2, "triplet_loss: expected rows (N, D), got ", f.shape());
  const int64_t N = f.dim(0), D = f.dim(1);
  MF_CHECK(!triplets.empty(), "triplet_loss: no triplets");
  for (const auto& t : triplets)
    MF_CHECK(t.a >= 0 && t.a < N && t.p >= 0 && t.p < N && t.n >= 0 && t.n < N,
             "triplet_loss: triplet (", t.a, ", ", t.p, ", ", t.n, ") outside the batch of ", N);
  Tensor fv = f.value();
  auto kept = std::make_shared<const std::vector<kernels::Triplet>>(triplets);
  const float loss = kernels::triplet_forward<float>(fv.data(), D, *kept, alpha);
  return record("triplet_loss", Tensor::scalar(loss), {f},
                [fv, kept, D, alpha](const Tensor& dy, GradSlots& slots) {
                  kernels::triplet_backward<float>(slots.grad(0).data(), dy.item(), fv.data(), D,
                                                   *kept, alpha);
                });
}

}  // namespace mf
