// matmul and linear on OpenBLAS sgemm.
#include "autograd/ops.h"
#include "tensor/kernels/gemm.h"
#include "util/error.h"

namespace mf {

using kernels::gemm;

Var matmul(const Var& a, const Var& b, bool trans_a, bool trans_b) {
  MF_CHECK(a.shape().rank() == 2 && b.shape().rank() == 2, "matmul: needs two matrices, got ",
           a.shape(), " and ", b.shape());
  const int64_t M = trans_a ? a.dim(1) : a.dim(0), K = trans_a ? a.dim(0) : a.dim(1);
  const int64_t Kb = trans_b ? b.dim(1) : b.dim(0), N = trans_b ? b.dim(0) : b.dim(1);
  MF_CHECK(K == Kb, "matmul: inner sizes differ: ", a.shape(), (trans_a ? "ᵀ" : ""), " · ",
           b.shape(), (trans_b ? "ᵀ" : ""));
  Tensor av = a.value(), bv = b.value();
  Tensor y = Tensor::empty({M, N});
  gemm<float>(trans_a, trans_b, M, N, K, 1.0f, av.data(), bv.data(), 0.0f, y.data());
  return record("matmul", std::move(y), {a, b},
                [av, bv, M, N, K, trans_a, trans_b](const Tensor& dy, GradSlots& slots) {
                  // C = op(A)·op(B): dop(A) = dC·op(B)ᵀ, dop(B) = op(A)ᵀ·dC; transpose back if
                  // stored so.
                  if (slots.wants(0)) {
                    float* da = slots.grad(0).data();
                    if (!trans_a)  // dA (M, K) = dC (M, N) · op(B)ᵀ
                      gemm<float>(false, !trans_b, M, K, N, 1.0f, dy.data(), N, bv.data(),
                                  trans_b ? K : N, 1.0f, da, K);
                    else  // dA (K, M) = op(B) (K, N) · dCᵀ
                      gemm<float>(trans_b, true, K, M, N, 1.0f, bv.data(), trans_b ? K : N,
                                  dy.data(), N, 1.0f, da, M);
                  }
                  if (slots.wants(1)) {
                    float* db = slots.grad(1).data();
                    if (!trans_b)  // dB (K, N) = op(A)ᵀ (K, M) · dC
                      gemm<float>(!trans_a, false, K, N, M, 1.0f, av.data(), trans_a ? M : K,
                                  dy.data(), N, 1.0f, db, N);
                    else  // dB (N, K) = dCᵀ (N, M) · op(A)
                      gemm<float>(true, trans_a, N, K, M, 1.0f, dy.data(), N, av.data(),
                                  trans_a ? M : K, 1.0f, db, K);
                  }
                });
}

Var linear(const Var& x, const Var& weight, const Var& bias) {
  MF_CHECK(x.shape().rank() == 2 && weight.shape().rank() == 2 && x.dim(1) == weight.dim(1),
           "linear: input ", x.shape(), " does not fit weight ", weight.shape(),
           " (expected input (N, in) and weight (out, in))");
  const int64_t N = x.dim(0), in = x.dim(1), out = weight.dim(0);
  if (bias.defined())
    MF_CHECK(bias.shape() == Shape({out}), "linear: bias ", bias.shape(), " for weight ",
             weight.shape());
  Tensor xv = x.value(), wv = weight.value();
  Tensor y = Tensor::empty({N, out});
  if (bias.defined()) {
    const float* b = bias.value().data();
    for (int64_t n = 0; n < N; ++n) std::copy(b, b + out, y.data() + n * out);
  }
  // y (N, out) = x (N, in) · Wᵀ (in, out) [+ y]
  gemm<float>(false, true, N, out, in, 1.0f, xv.data(), wv.data(), bias.defined() ? 1.0f : 0.0f,
              y.data());
  std::vector<Var> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return record(
      "linear", std::move(y), inputs,
      [xv, wv, N, in, out, has_bias = bias.defined()](const Tensor& dy, GradSlots& slots) {
        if (slots.wants(0))  // dx (N, in) = dy (N, out) · W (out, in)
          gemm<float>(false, false, N, in, out, 1.0f, dy.data(), wv.data(), 1.0f,
                      slots.grad(0).data());
        if (slots.wants(1))  // dW (out, in) = dyᵀ (out, N) · x (N, in)
          gemm<float>(true, false, out, in, N, 1.0f, dy.data(), xv.data(), 1.0f,
                      slots.grad(1).data());
        if (has_bias && slots.wants(2)) {
          float* db = slots.grad(2).data();
          for (int64_t n = 0; n < N; ++n)
            for (int64_t o = 0; o < out; ++o) db[o] += dy.data()[n * out + o];
        }
      });
}

}  // namespace mf
