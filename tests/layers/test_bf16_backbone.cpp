// The bf16 fast path on a whole backbone: IR-18 (quarter width) embeddings and parameter
// gradients with bf16 convolutions against the exact fp32 ones, same weights and batch. The
// tolerances are the contract of `train.precision: bf16`; the measured agreement is printed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "autograd/ops.h"
#include "layers/backbones/registry.h"
#include "support/gradcheck.h"
#include "tensor/kernels/gemm_bf16.h"

namespace mf::test {
namespace {

struct Pass {
  Tensor embedding;
  std::map<std::string, Tensor> grads;
};

Pass run(Backbone& net, const Tensor& images, const Tensor& weights, kernels::ConvPrecision p) {
  kernels::set_conv_precision(p);
  for (auto& [name, param] : net.named_parameters()) param.zero_grad();
  Var e = net.forward(Var(images));
  backward(sum(mul(e, Var(weights))));  // Σ e ⊙ R: every output's gradient at once
  Pass out{e.value().clone(), {}};
  for (auto& [name, param] : net.named_parameters())
    if (param.grad().defined()) out.grads[name] = param.grad().clone();
  kernels::set_conv_precision(kernels::ConvPrecision::fp32);
  return out;
}

double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += double(a.data()[i]) * b.data()[i];
  return s;
}

TEST(Bf16Backbone, Ir18EmbeddingsAndGradientsAgreeWithExact) {
  std::string why;
  if (!kernels::bf16::available(&why)) GTEST_SKIP() << "no bf16 path: " << why;
  Rng rng(3);
  Params p("backbone");
  p.set("width", "0.25");
  auto net = builtin_backbones().create("ir18", p, rng);
  net->train();
  const Tensor images = random_tensor(rng, {4, 3, 112, 112});
  const Tensor weights = random_tensor(rng, {4, net->embedding_size()});
  const Pass exact = run(*net, images, weights, kernels::ConvPrecision::fp32);
  const Pass fast = run(*net, images, weights, kernels::ConvPrecision::bf16);

  // Embeddings: relative RMS difference.
  Tensor diff = fast.embedding.clone();
  for (int64_t i = 0; i < diff.numel(); ++i) diff.data()[i] -= exact.embedding.data()[i];
  const double embedding_error = std::sqrt(dot(diff, diff) / dot(exact.embedding, exact.embedding));
  // Gradients: cosine between the whole fp32 and bf16 gradient vectors, and the worst convolution
  // weight's (the tensors bf16 multiplies; a BN bias's gradient can be a near-zero sum whose
  // direction means little).
  double ab = 0, aa = 0, bb = 0, worst_cosine = 1;
  std::string worst;
  for (const auto& [name, g] : exact.grads) {
    const Tensor& h = fast.grads.at(name);
    const double gh = dot(g, h), gg = dot(g, g), hh = dot(h, h);
    ab += gh;
    aa += gg;
    bb += hh;
    const bool conv_weight = name.find("conv") != std::string::npos && g.rank() == 4;
    if (conv_weight && gh / std::sqrt(gg * hh) < worst_cosine) {
      worst_cosine = gh / std::sqrt(gg * hh);
      worst = name;
    }
  }
  const double cosine = ab / std::sqrt(aa * bb);
  std::printf(
      "bf16 vs fp32, ir18 ×0.25, batch 4: embedding relative RMS %.4f; gradient cosine "
      "%.6f overall, worst convolution weight %.6f (%s)\n",
      embedding_error, cosine, worst_cosine, worst.c_str());
  EXPECT_LT(embedding_error, 0.02);
  EXPECT_GT(cosine, 0.995);
  EXPECT_GT(worst_cosine, 0.99);
}

}  // namespace
}  // namespace mf::test
