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

namespace {
Var margin_logits(const Var& cos, const Labels& labels, const kernels::MarginSpec* specs,
                  int64_t spec_stride, float scale) {
  MF_CHECK(cos.shape().rank() == 2, "margin_logits: expected cosines (N, K), got ", cos.shape());
  const int64_t N = cos.dim(0), K = cos.dim(1);
  check_rows_labels("margin_logits", labels, N, K);
  Tensor z = Tensor::empty({N, K}), dfdc = Tensor::empty({N});
  kernels::margin_logits_forward<float>(z.data(), dfdc.data(), cos.value().data(), labels.data(), N,
                                        K, specs, spec_stride, scale);
  return record("margin_logits", std::move(z), {cos},
                [dfdc, labels, N, K, scale](const Tensor& dz, GradSlots& slots) {
                  kernels::margin_logits_backward<float>(slots.grad(0).data(), dz.data(),
                                                         dfdc.data(), labels.data(), N, K, scale);
                });
}
}  // namespace

Var margin_logits(const Var& cos, const Labels& labels, const kernels::MarginSpec& spec,
                  float scale) {
  return margin_logits(cos, labels, &spec, 0, scale);
}

Var margin_logits(const Var& cos, const Labels& labels,
                  const std::vector<kernels::MarginSpec>& row_specs, float scale) {
  MF_CHECK(cos.shape().rank() == 2 && int64_t(row_specs.size()) == cos.dim(0),
           "margin_logits: ", row_specs.size(), " row margins for cosines ", cos.shape());
  return margin_logits(cos, labels, row_specs.data(), 1, scale);
}

Var curricular_logits(const Var& cos, const Labels& labels, double m, float t, float scale) {
  MF_CHECK(cos.shape().rank() == 2, "curricular_logits: expected cosines (N, K), got ",
           cos.shape());
  const int64_t N = cos.dim(0), K = cos.dim(1);
  check_rows_labels("curricular_logits", labels, N, K);
  Tensor c = cos.value(), z = Tensor::empty({N, K}), phi = Tensor::empty({N}),
         dfdc = Tensor::empty({N});
  kernels::curricular_logits_forward<float>(z.data(), phi.data(), dfdc.data(), c.data(),
                                            labels.data(), N, K, m, t, scale);
  return record("curricular_logits", std::move(z), {cos},
                [c, phi, dfdc, labels, N, K, t, scale](const Tensor& dz, GradSlots& slots) {
                  kernels::curricular_logits_backward<float>(slots.grad(0).data(), dz.data(),
                                                             c.data(), phi.data(), dfdc.data(),
                                                             labels.data(), N, K, t, scale);
                });
}

Var magface_logits(const Var& cos, const Var& margin, const Labels& labels, float scale) {
  MF_CHECK(cos.shape().rank() == 2, "magface_logits: expected cosines (N, K), got ", cos.shape());
  const int64_t N = cos.dim(0), K = cos.dim(1);
  MF_CHECK(margin.shape() == Shape({N, 1}), "magface_logits: expected margins (", N, ", 1), got ",
           margin.shape());
  check_rows_labels("magface_logits", labels, N, K);
  Tensor z = Tensor::empty({N, K}), dfdc = Tensor::empty({N}), dfdm = Tensor::empty({N});
  const float* c = cos.value().data();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) z.data()[n * K + k] = scale * c[n * K + k];
    const auto v = kernels::magface_target<float>(c[n * K + labels[n]], margin.value().data()[n]);
    z.data()[n * K + labels[n]] = scale * v.f;
    dfdc.data()[n] = v.df;
    dfdm.data()[n] = v.dm;
  }
  return record("magface_logits", std::move(z), {cos, margin},
                [dfdc, dfdm, labels, N, K, scale](const Tensor& dz, GradSlots& slots) {
                  if (slots.wants(0))
                    kernels::margin_logits_backward<float>(slots.grad(0).data(), dz.data(),
                                                           dfdc.data(), labels.data(), N, K, scale);
                  if (slots.wants(1))
                    for (int64_t n = 0; n < N; ++n)
                      slots.grad(1).data()[n] +=
                          scale * dfdm.data()[n] * dz.data()[n * K + labels[n]];
                });
}

Var group_max(const Var& x, int64_t groups) {
  MF_CHECK(x.shape().rank() == 2 && groups >= 1 && x.dim(1) % groups == 0,
           "group_max: expected (N, K·", groups, "), got ", x.shape());
  const int64_t N = x.dim(0), K = x.dim(1) / groups;
  Tensor y = Tensor::empty({N, K});
  auto arg = std::make_shared<std::vector<int64_t>>(N * K);
  kernels::group_max_forward<float>(y.data(), arg->data(), x.value().data(), N, K, groups);
  return record("group_max", std::move(y), {x},
                [arg, N, K, groups](const Tensor& dy, GradSlots& slots) {
                  kernels::group_max_backward<float>(slots.grad(0).data(), dy.data(), arg->data(),
                                                     N, K, groups);
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
