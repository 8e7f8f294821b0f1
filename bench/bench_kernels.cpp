// Google Benchmark micro-benchmarks of the compute kernels at IR-50 shapes (batch 32), with raw
// OpenBLAS sgemm as the reference ceiling.
//
// Timing calls the kernels directly (tensor/kernels/conv.h, tensor/kernels/gemm.h), not the
// autograd ops, so the numbers leave out tape recording, output allocation and gradient zeroing.
// The linear benchmarks issue the same three GEMMs as mf::linear (without bias: its O(N·out) adds
// are noise next to the products).
//
// Every benchmark takes its thread count as the argument "nthreads" and starts with
// mf::set_num_threads, which sets OpenMP and OpenBLAS alike. Inputs are allocated and filled once
// per run, outside the timed loop, and one untimed call warms scratch buffers and thread pools.
// Times are wall-clock (UseRealTime) since the work is multi-threaded. The "GFLOP/s" counter holds
// 1e-9 × FLOPs per iteration, flagged as a per-iteration rate, so it prints as GFLOP per second
// (the console appends "/s" to every rate counter). Run through scripts/bench_kernels.sh for a
// markdown summary.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "tensor/kernels/conv.h"
#include "tensor/kernels/gemm.h"
#include "tensor/kernels/gemm_bf16.h"
#include "tensor/kernels/gemm_fp32.h"
#include "tensor/kernels/winograd.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace {

using mf::Shape;
using mf::Tensor;
using mf::kernels::ConvGeometry;

constexpr double kMinTimeSeconds = 1.0;
constexpr int64_t kBatch = 32;

Tensor random_tensor(const Shape& shape, mf::Rng& rng) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.uniform(-1.0, 1.0));
  return t;
}

void set_threads(const benchmark::State& state) {
  mf::set_num_threads(static_cast<int>(state.range(0)));
}

void report_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Runs `step` once untimed, then in the timed loop.
template <class Step>
void time_loop(benchmark::State& state, Step&& step) {
  step();
  for (auto _ : state) {
    step();
    benchmark::ClobberMemory();
  }
}

// ---- reference: C (n, n) = A (n, n) · B (n, n) ----
void BM_Sgemm(benchmark::State& state, int64_t n) {
  set_threads(state);
  mf::Rng rng(1);
  Tensor a = random_tensor({n, n}, rng), b = random_tensor({n, n}, rng);
  Tensor c = Tensor::empty({n, n});
  const int ni = static_cast<int>(n);
  time_loop(state, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0f, a.data(), ni, b.data(),
                ni, 0.0f, c.data(), ni);
  });
  report_flops(state, 2.0 * static_cast<double>(n) * n * n);
}

// ---- bf16 GEMM, one backend (single-threaded as the convolution calls it): C (M, N) = A (M, K) ·
// B (K, N) on packed operands, packing outside the timed loop ----
void BM_Bf16Gemm(benchmark::State& state, mf::kernels::bf16::Backend backend, int64_t M, int64_t K,
                 int64_t N) {
  set_threads(state);
  mf::Rng rng(1);
  Tensor a = random_tensor({M, K}, rng), b = random_tensor({K, N}, rng), c = Tensor::empty({M, N});
  mf::kernels::bf16::PackedA pa;
  mf::kernels::bf16::PackedB pb;
  mf::kernels::bf16::pack_a(pa, false, M, K, a.data(), K);
  mf::kernels::bf16::pack_b(pb, false, K, N, b.data(), N);
  time_loop(state, [&] { mf::kernels::bf16::gemm(backend, pa, pb, c.data(), N, false); });
  report_flops(state, 2.0 * double(M) * double(K) * double(N));
}

// ---- fp32 GEMM, one backend, on one thread (as the convolution calls it): the three GEMMs of a
// 3×3 convolution with 128 channels over a block of 1,024 output pixels (rows = 128·9):
// forward y (128, 1024) = w · col, weight gradient dw (128, 1152) = dy · colᵀ, input gradient
// dcol (1152, 1024) = wᵀ · dy. Packing is inside the timed loop, as in training. ----
enum class ConvGemm { forward, weight_grad, input_grad };
void BM_SgemmConv(benchmark::State& state, mf::kernels::sgemm::Backend backend, ConvGemm which) {
  set_threads(state);
  const int64_t O = 128, R = 1152, P = 1024;
  mf::Rng rng(1);
  Tensor w = random_tensor({O, R}, rng), col = random_tensor({R, P}, rng);
  Tensor dy = random_tensor({O, P}, rng), y = Tensor::empty({O, P});
  Tensor dw = Tensor::zeros({O, R}), dcol = Tensor::empty({R, P});
  using mf::kernels::sgemm::gemm;
  time_loop(state, [&] {
    switch (which) {
      case ConvGemm::forward:
        return gemm(backend, false, false, O, P, R, 1, w.data(), R, col.data(), P, 0, y.data(), P);
      case ConvGemm::weight_grad:
        return gemm(backend, false, true, O, R, P, 1, dy.data(), P, col.data(), P, 1, dw.data(), R);
      case ConvGemm::input_grad:
        return gemm(backend, true, false, R, P, O, 1, w.data(), R, dy.data(), P, 0, dcol.data(), P);
    }
  });
  report_flops(state, 2.0 * double(O) * double(R) * double(P));
}

// ---- conv2d (no bias: IR-50 convolutions feed batch norm) ----
ConvGeometry conv3x3(int64_t channels, int64_t size) {
  ConvGeometry g;
  g.N = kBatch;
  g.C = g.O = channels;
  g.H = g.W = size;
  g.kH = g.kW = 3;
  g.stride = 1;
  g.pad = 1;
  return g;
}

Shape input_shape(const ConvGeometry& g) {
  return {g.N, g.C, g.H, g.W};
}
Shape weight_shape(const ConvGeometry& g) {
  return {g.O, g.Cg(), g.kH, g.kW};
}
Shape output_shape(const ConvGeometry& g) {
  return {g.N, g.O, g.Ho(), g.Wo()};
}

// winograd: Winograd F(4×4, 3×3) on the same shape instead; "GFLOP/s" always counts the direct
// convolution's FLOPs, so winograd_fwd over conv2d_fwd reads as its speed-up.
void BM_Conv2dForward(benchmark::State& state, ConvGeometry g, bool winograd) {
  set_threads(state);
  mf::Rng rng(1);
  Tensor x = random_tensor(input_shape(g), rng), w = random_tensor(weight_shape(g), rng);
  Tensor y = Tensor::empty(output_shape(g));
  time_loop(state, [&] {
    if (winograd)
      mf::kernels::winograd::forward(y.data(), x.data(), w.data(), nullptr, g);
    else
      mf::kernels::conv2d_forward<float>(y.data(), x.data(), w.data(), nullptr, g);
  });
  report_flops(state, 2.0 * static_cast<double>(g.macs()));
}

// One training step: forward, then dx and dw (both accumulate, as in autograd).
void BM_Conv2dTrain(benchmark::State& state, ConvGeometry g) {
  set_threads(state);
  mf::Rng rng(1);
  Tensor x = random_tensor(input_shape(g), rng), w = random_tensor(weight_shape(g), rng);
  Tensor dy = random_tensor(output_shape(g), rng);
  Tensor y = Tensor::empty(output_shape(g));
  Tensor dx = Tensor::zeros(input_shape(g)), dw = Tensor::zeros(weight_shape(g));
  time_loop(state, [&] {
    mf::kernels::conv2d_forward<float>(y.data(), x.data(), w.data(), nullptr, g);
    mf::kernels::conv2d_backward<float>(dx.data(), dw.data(), nullptr, dy.data(), x.data(),
                                        w.data(), g);
  });
  report_flops(state, 3 * 2.0 * static_cast<double>(g.macs()));
}

// ---- linear: y (N, out) = x (N, in) · Wᵀ, W (out, in) ----
struct LinearShape {
  int64_t N, in, out;
  double flops() const { return 2.0 * static_cast<double>(N) * in * out; }
};

void BM_LinearForward(benchmark::State& state, LinearShape s) {
  set_threads(state);
  mf::Rng rng(1);
  Tensor x = random_tensor({s.N, s.in}, rng), w = random_tensor({s.out, s.in}, rng);
  Tensor y = Tensor::empty({s.N, s.out});
  time_loop(state, [&] {
    mf::kernels::gemm<float>(false, true, s.N, s.out, s.in, 1.0f, x.data(), w.data(), 0.0f,
                             y.data());
  });
  report_flops(state, s.flops());
}

void BM_LinearTrain(benchmark::State& state, LinearShape s) {
  set_threads(state);
  mf::Rng rng(1);
  Tensor x = random_tensor({s.N, s.in}, rng), w = random_tensor({s.out, s.in}, rng);
  Tensor dy = random_tensor({s.N, s.out}, rng);
  Tensor y = Tensor::empty({s.N, s.out});
  Tensor dx = Tensor::zeros({s.N, s.in}), dw = Tensor::zeros({s.out, s.in});
  time_loop(state, [&] {
    mf::kernels::gemm<float>(false, true, s.N, s.out, s.in, 1.0f, x.data(), w.data(), 0.0f,
                             y.data());
    // dx (N, in) += dy (N, out) · W (out, in)
    mf::kernels::gemm<float>(false, false, s.N, s.in, s.out, 1.0f, dy.data(), w.data(), 1.0f,
                             dx.data());
    // dW (out, in) += dyᵀ (out, N) · x (N, in)
    mf::kernels::gemm<float>(true, false, s.out, s.in, s.N, 1.0f, dy.data(), x.data(), 1.0f,
                             dw.data());
  });
  report_flops(state, 3 * s.flops());
}

// Thread counts 1 and 2, wall-clock time in ms, a short minimum time so the suite stays quick.
void configure(benchmark::internal::Benchmark* b) {
  b->ArgName("nthreads")
      ->Arg(1)
      ->Arg(2)
      ->UseRealTime()
      ->MinTime(kMinTimeSeconds)
      ->Unit(benchmark::kMillisecond);
}

// Appends in place (GCC 12 reports a false -Wrestrict on `"literal" + std::string`).
std::string join(std::initializer_list<std::string> parts) {
  std::string out;
  for (const std::string& part : parts) out += part;
  return out;
}

void register_all() {
  configure(benchmark::RegisterBenchmark("sgemm/2048", BM_Sgemm, int64_t{2048}));
  // The bf16 GEMM of each backend this CPU has, on a 3×3 convolution's forward shape (128
  // output channels, 128·9 reduction, a block of 1,024 output pixels).
  for (const auto backend : mf::kernels::bf16::backends())
    benchmark::RegisterBenchmark(
        join({"bf16_gemm/", mf::kernels::bf16::name(backend), "/128x1152x1024"}).c_str(),
        BM_Bf16Gemm, backend, int64_t{128}, int64_t{1152}, int64_t{1024})
        ->ArgName("nthreads")
        ->Arg(1)
        ->UseRealTime()
        ->MinTime(kMinTimeSeconds)
        ->Unit(benchmark::kMillisecond);

  for (const auto backend : mf::kernels::sgemm::backends())
    for (const auto& [which, tag] :
         {std::pair{ConvGemm::forward, "fwd"}, std::pair{ConvGemm::weight_grad, "dw"},
          std::pair{ConvGemm::input_grad, "dx"}})
      benchmark::RegisterBenchmark(
          join({"sgemm_conv/", mf::kernels::sgemm::name(backend), "/", tag}).c_str(), BM_SgemmConv,
          backend, which)
          ->ArgName("nthreads")
          ->Arg(1)
          ->UseRealTime()
          ->MinTime(kMinTimeSeconds)
          ->Unit(benchmark::kMillisecond);

  // The four 3×3 stages of IR-50 (stride-1 convolutions inside the residual units).
  const struct { int64_t channels, size; } stages[] = {{64, 56}, {128, 28}, {256, 14}, {512, 7}};
  for (const auto& st : stages) {
    const ConvGeometry g = conv3x3(st.channels, st.size);
    const std::string tag = join({"c", std::to_string(st.channels), "_", std::to_string(st.size),
                                  "x", std::to_string(st.size)});
    configure(benchmark::RegisterBenchmark(join({"conv2d_fwd/", tag}).c_str(), BM_Conv2dForward, g,
                                           false));
    configure(benchmark::RegisterBenchmark(join({"winograd_fwd/", tag}).c_str(), BM_Conv2dForward,
                                           g, true));
    configure(
        benchmark::RegisterBenchmark(join({"conv2d_train/", tag}).c_str(), BM_Conv2dTrain, g));
  }

  // IR-50's output FC (512·7·7 → 512) and a classifier-head-like layer (512 → 10000 classes).
  const LinearShape linears[] = {{kBatch, 512 * 7 * 7, 512}, {kBatch, 512, 10000}};
  for (const LinearShape& s : linears) {
    const std::string tag =
        join({std::to_string(s.N), "x", std::to_string(s.in), "x", std::to_string(s.out)});
    configure(
        benchmark::RegisterBenchmark(join({"linear_fwd/", tag}).c_str(), BM_LinearForward, s));
    configure(
        benchmark::RegisterBenchmark(join({"linear_train/", tag}).c_str(), BM_LinearTrain, s));
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
