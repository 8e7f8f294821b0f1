// `marginface bench`: images/s of a whole training step (forward, loss, backward, SGD step) or of
// inference, on random data, with a per-op forward/backward time table (like `caffe time`).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <utility>
#include <vector>

#include "apps/commands.h"
#include "apps/model_source.h"
#include "autograd/ops.h"
#include "dist/communicator.h"
#include "layers/backbones/registry.h"
#include "losses/head.h"
#include "losses/partial_fc.h"
#include "optim/optimizer.h"
#include "tensor/allocator.h"
#include "tensor/kernels/gemm_bf16.h"
#include "tensor/kernels/gemm_fp32.h"
#include "tensor/kernels/peak.h"
#include "tensor/kernels/winograd.h"
#include "tensor/parallel.h"
#include "util/args.h"
#include "util/error.h"
#include "util/json.h"

namespace mf::apps {

namespace {
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // kilobytes on Linux
}
// The sum over the processes of a gradient the size of `backbone`'s parameters, in one MPI
// allreduce after a barrier (so waiting for a slower process is not counted): the communication
// alone, for the scaling model (scripts/scaling_model.py).
// `bench --peak`: the ceiling every kernel is measured against.
int bench_peak(int threads) {
  std::printf("CPU: %s\n%-24s %14s %14s\n", kernels::cpu_name().c_str(), "instruction", "1 thread",
              (std::to_string(threads) + " threads").c_str());
  const auto kinds = kernels::peak_kinds();
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (!kinds[i].available) {
      std::printf("%-24s %29s\n", kinds[i].name.c_str(), ("n/a: " + kinds[i].why).c_str());
      continue;
    }
    const double one = kernels::measure_peak(i, 1, 0.5),
                 all = kernels::measure_peak(i, threads, 0.5);
    std::printf("%-24s %8.1f GFLOP/s %8.1f GFLOP/s\n", kinds[i].name.c_str(), one, all);
  }
  return 0;
}

int bench_allreduce(const Backbone& backbone, int iters, int warmup) {
  dist::Communicator& comm = dist::world();
  int64_t n = 0;
  for (const Var& p : backbone.parameters()) n += p.value().numel();
  std::vector<float> buffer(n, 1.0f);
  std::vector<double> ms;
  for (int i = 0; i < warmup + iters; ++i) {
    comm.barrier("the allreduce benchmark");
    const auto t0 = std::chrono::steady_clock::now();
    comm.sum(buffer.data(), n, "the allreduce benchmark");
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) ms.push_back(1e3 * t);
  }
  std::sort(ms.begin(), ms.end());
  if (comm.is_root())
    std::printf(
        "allreduce of %lld floats (%.1f MiB) over %d processes: %.2f ms (median of %d; "
        "min %.2f, max %.2f), %.2f GiB/s algorithm bandwidth\n",
        (long long)n, n * 4.0 / 1048576.0, comm.size(), ms[ms.size() / 2], iters, ms.front(),
        ms.back(), n * 4.0 / (ms[ms.size() / 2] * 1e-3) / 1073741824.0);
  return 0;
}

}  // namespace

int run_bench(const std::vector<std::string>& argv) {
  Args args(
      "bench",
      "Times a training step (forward, head loss, backward, SGD step) or inference on random\n"
      "data: warm-up, then the median images/s over --iters iterations, GFLOP/s, peak RSS,\n"
      "and the time per op type.");
  args.option("backbone", "backbone registry name", "ir50");
  args.option("width", "channel multiplier", "1");
  args.option("embedding-size", "embedding size D", "512");
  args.option("head", "head type (train mode)", "arcface");
  args.option("classes", "number of classes K", "1000");
  args.option("partial-fc",
              "Partial FC sample rate in (0, 1]; 1 = the full head. Under mpirun the class "
              "weights are split over the processes (each times its --batch images; the "
              "backbone's gradients are not summed: that is --mode allreduce)",
              "1");
  args.option("batch", "batch size", "32");
  args.option("threads", "threads (0 = OMP_NUM_THREADS or all cores)", "0");
  args.option("mode",
              "train, infer, or allreduce (under mpirun: the gradient allreduce of the "
              "backbone's parameters alone, each timed after a barrier)",
              "train");
  add_conv_kernel_options(args,
                          "convolution GEMMs: fp32 (exact) or bf16 (AMX or AVX512-BF16 fast path)");
  args.option("gemm",
              "fp32 GEMM: avx512 or avx2 (our own kernels) or blas (OpenBLAS); default: the "
              "fastest this CPU has, or the MF_GEMM environment variable",
              "");
  args.flag("unfused",
            "inference: run convolution, BatchNorm, PReLU and residual add as separate ops "
            "instead of one fused convolution (to measure what the fusion gains)");
  args.option("iters", "timed iterations", "5");
  args.option("warmup", "untimed iterations first", "1");
  args.option("json", "write the results as JSON to this file");
  args.flag("scaling",
            "also time 1, 2, 4, … threads up to --threads (profiling off) and report the speed-up "
            "and parallel efficiency of each");
  args.flag("peak",
            "measure the CPU's arithmetic peak instead (fp32 FMA AVX2/AVX-512, bf16 dot "
            "AVX512-BF16; 1 thread and --threads threads) and stop");
  if (!args.parse(argv)) return 0;
  if (args.has("peak")) {
    set_num_threads(args.get_int("threads", 0, 1024));
    return bench_peak(num_threads());
  }
  const std::string mode = args.get("mode");
  MF_CHECK(mode == "train" || mode == "infer" || mode == "allreduce",
           "--mode must be train, infer or allreduce (got '", mode, "')");
  const int batch = args.get_int("batch"), iters = args.get_int("iters"),
            warmup = args.get_int("warmup");
  MF_CHECK(batch >= 2 && iters >= 1 && warmup >= 0, "need --batch ≥ 2, --iters ≥ 1, --warmup ≥ 0");
  set_num_threads(args.get_int("threads", 0, 1024));  // 0: all cores
  MF_CHECK(!args.has("winograd") || mode == "infer",
           "--winograd is an inference path: use it with --mode infer");
  apply_conv_kernel_options(args);
  set_inference_fusion(!args.has("unfused"));
  if (!args.get("gemm").empty())
    kernels::sgemm::set_active(kernels::sgemm::parse(args.get("gemm"), "--gemm"));

  Rng rng(1);
  Params bp("backbone");
  bp.set("width", args.get("width"));
  bp.set("embedding_size", args.get("embedding-size"));
  auto backbone = builtin_backbones().create(args.get("backbone"), bp, rng);
  if (mode == "allreduce") return bench_allreduce(*backbone, iters, warmup);
  const int64_t K = args.get_int("classes");
  Params head_params("head");
  head_params.set("partial_fc.sample_rate", args.get("partial-fc"));
  dist::Communicator* comm = dist::launched_by_mpi() ? &dist::world() : nullptr;
  auto head = create_head(args.get("head"), head_params, backbone->embedding_size(), K, rng, comm);
  double macs = 0;
  for (const auto& st : backbone->stages()) macs += static_cast<double>(st.macs);
  const double gflop_per_image = 2e-9 * macs * (mode == "train" ? 3.0 : 1.0);

  std::vector<ParamGroup> groups{{backbone->named_parameters(), 1.0f, 5e-4f},
                                 {head->named_parameters(), 1.0f, 5e-4f}};
  for (auto& g : groups)
    g.params.erase(std::remove_if(g.params.begin(), g.params.end(),
                                  [](const auto& p) { return !p.second.requires_grad(); }),
                   g.params.end());
  Sgd sgd(groups, 0.9, false);

  Tensor images = Tensor::empty({batch, 3, backbone->input_height(), backbone->input_width()});
  for (int64_t i = 0; i < images.numel(); ++i)
    images.data()[i] = static_cast<float>(rng.uniform(-1, 1));
  Labels labels(batch);
  for (auto& l : labels) l = static_cast<int64_t>(rng.below(K));

  auto iteration = [&] {
    if (mode == "train") {
      backbone->train();
      sgd.zero_grad();
      profile_mark();
      HeadOutput out = head->forward(backbone->forward(Var(images)), labels, {0});
      backward(out.loss);
      if (out.sparse)  // Partial FC: only the sampled rows
        sgd.add_sparse_rows(out.sparse->param, out.sparse->rows, out.sparse->rows_weight.grad());
      sgd.step(0.01);
    } else {
      backbone->eval();
      NoGradGuard no_grad;
      profile_mark();
      backbone->forward(Var(images));
    }
  };
  // Images/s of each timed iteration, sorted.
  auto timed_rates = [&] {
    std::vector<double> out;
    for (int i = 0; i < iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      iteration();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      out.push_back(batch / s);
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  for (int i = 0; i < warmup; ++i) iteration();
  set_profiling(true);
  profile_reset();
  const std::vector<double> rates = timed_rates();
  set_profiling(false);
  const double median = rates[rates.size() / 2];
  const double rss = peak_rss_mib();

  std::printf(
      "%s%s %s, %s, batch %d, %d threads: %.2f images/s (median of %d; min %.2f, max %.2f), "
      "%.1f GFLOP/s, peak RSS %.0f MiB\n",
      comm && comm->size() > 1 ? ("process " + std::to_string(comm->rank()) + ": ").c_str() : "",
      args.get("backbone").c_str(), args.get("width").c_str(), mode.c_str(), batch, num_threads(),
      median, iters, rates.front(), rates.back(), median * gflop_per_image, rss);
  const double peak = kernels::fp32_peak(num_threads());
  // The dense convolutions' ceiling: the fp32 FMA peak, or on the bf16 path the AVX512-BF16 dot
  // product's (AMX has no peak loop: its convolutions are then read against fp32's).
  double conv_peak = peak;
  std::string conv_peak_name = "fp32 FMA";
  const bool bf16_convs = kernels::conv_precision() == kernels::ConvPrecision::bf16;
  if (bf16_convs && kernels::bf16::backends().front() == kernels::bf16::Backend::avx512_bf16) {
    const auto kinds = kernels::peak_kinds();
    for (size_t k = 0; k < kinds.size(); ++k)
      if (kinds[k].available && kinds[k].name.find("bf16") != std::string::npos) {
        conv_peak = kernels::measure_peak(k, num_threads(), 0.2);
        conv_peak_name = kinds[k].name;
      }
  }
  if (peak > 0)
    std::printf(
        "%s: %.0f %% of the fp32 FMA peak measured now (%.0f GFLOP/s on %d threads%s)\n",
        kernels::cpu_name().c_str(), 100.0 * median * gflop_per_image / peak, peak, num_threads(),
        bf16_convs
            ? (std::string("; convolutions on bf16 ") +
               kernels::bf16::name(kernels::bf16::backends().front()) +
               (conv_peak != peak ? ", their rows below against the " + conv_peak_name + " peak, " +
                                        std::to_string(int(conv_peak)) + " GFLOP/s"
                                  : std::string(", read against fp32's peak")))
                  .c_str()
            : "");
  std::printf(
      "fp32 GEMM: %s%s%s\n", kernels::sgemm::name(kernels::sgemm::active()),
      kernels::sgemm::active() == kernels::sgemm::Backend::blas ? " (OpenBLAS)"
                                                                : " (our own kernels)",
      kernels::winograd::enabled() ? "; 3x3 stride-1 convolutions by Winograd F(4x4,3x3)" : "");
  if (mode == "infer")
    std::printf("inference: %s\n", args.has("unfused")
                                       ? "convolution, BatchNorm, PReLU and add as separate ops"
                                       : "convolution → BatchNorm → PReLU / + residual fused");
  const AllocatorStats memory = storage::stats();
  std::printf("tensor arena: peak in use %.0f MiB, pages touched %.0f MiB\n",
              memory.peak_live_bytes / 1048576.0, memory.touched_bytes / 1048576.0);
  std::printf("\n%-18s %8s %12s %8s %12s %7s\n", "op", "calls/it", "forward ms", "", "backward ms",
              "share");
  const auto report = profile_report();
  double total = 0;
  for (const auto& t : report) total += t.forward_ms + t.backward_ms;
  for (const auto& t : report)
    std::printf("%-18s %8.0f %12.2f %8s %12.2f %6.1f%%\n", t.op.c_str(),
                double(t.forward_calls) / iters, t.forward_ms / iters, "", t.backward_ms / iters,
                100.0 * (t.forward_ms + t.backward_ms) / std::max(total, 1e-9));
  // Per layer (op and per-sample shapes; layers of equal shape share a row), like `caffe time`.
  const auto layers = profile_report(true);
  const size_t shown = std::min<size_t>(layers.size(), 25);
  // GFLOP/s of the matrix ops (conv2d, linear, matmul) and their fraction of the fp32 peak
  // measured above; the backward counts twice the forward's FLOPs (input and weight gradients).
  // Dense convolutions on the bf16 path are read against the bf16 ceiling (conv_peak).
  auto rate = [&](const std::string& layer, double flop, double ms) {
    char cell[32];
    if (flop <= 0 || ms <= 0) return std::string("–");
    const double gflops = flop / (ms * 1e6);
    const bool dense_conv =
        layer.rfind("conv2d", 0) == 0 && layer.find("groups=") == std::string::npos;
    const double ceiling = dense_conv ? conv_peak : peak;
    if (ceiling > 0)
      std::snprintf(cell, sizeof cell, "%.0f (%.0f%%)", gflops, 100.0 * gflops / ceiling);
    else
      std::snprintf(cell, sizeof cell, "%.0f", gflops);
    return std::string(cell);
  };
  std::printf("\n%-54s %8s %12s %12s %7s %7s %14s %14s\n", "layer (per-sample shapes)", "calls/it",
              "forward ms", "backward ms", "share", "cum.", "fwd GFLOP/s", "bwd GFLOP/s");
  double cumulative = 0;
  for (size_t i = 0; i < shown; ++i) {
    const auto& t = layers[i];
    const double share = 100.0 * (t.forward_ms + t.backward_ms) / std::max(total, 1e-9);
    cumulative += share;
    const double backward_flop =
        t.forward_calls > 0
            ? 2.0 * t.forward_flop * double(t.backward_calls) / double(t.forward_calls)
            : 0.0;
    std::printf("%-54s %8.0f %12.2f %12.2f %6.1f%% %6.1f%% %14s %14s\n", t.op.c_str(),
                double(t.forward_calls) / iters, t.forward_ms / iters, t.backward_ms / iters, share,
                cumulative, rate(t.op, t.forward_flop, t.forward_ms).c_str(),
                rate(t.op, backward_flop, t.backward_ms).c_str());
  }
  if (shown < layers.size()) std::printf("(%zu more layer shapes)\n", layers.size() - shown);
  // Thread scaling: the same iterations (profiling off, after their own warm-up) at 1, 2, 4, …
  // threads and at the run's count; speed-up over 1 thread, efficiency = speed-up / threads.
  std::vector<std::pair<int, double>> scaling;
  if (args.has("scaling")) {
    const int full = num_threads();
    for (int t = 1;; t = std::min(2 * t, full)) {
      set_num_threads(t);
      for (int i = 0; i < std::max(warmup, 1); ++i) iteration();
      const std::vector<double> r = timed_rates();
      scaling.emplace_back(t, r[r.size() / 2]);
      if (t == full) break;
    }
    set_num_threads(full);
    std::printf("\nthread scaling (%s; median images/s, speed-up over 1 thread, efficiency):\n",
                kernels::cpu_name().c_str());
    for (const auto& [t, r] : scaling)
      std::printf("  %3d thread%s %10.2f %8.2fx %7.0f%%\n", t, t == 1 ? " " : "s", r,
                  r / scaling.front().second, 100.0 * r / scaling.front().second / t);
  }
  if (args.has("json")) {
    json::Value v = json::Value::object();
    v.set("backbone", args.get("backbone"));
    v.set("width", args.get_double("width"));
    v.set("mode", mode);
    v.set("precision", args.get("precision"));
    v.set("winograd", kernels::winograd::enabled());
    v.set("fused", !args.has("unfused"));
    v.set("batch", batch);
    v.set("threads", num_threads());
    v.set("images_per_s", median);
    v.set("gflops_per_s", median * gflop_per_image);
    v.set("peak_rss_mib", rss);
    v.set("cpu", kernels::cpu_name());
    v.set("fp32_peak_gflops_per_s", peak);
    v.set("conv_peak_gflops_per_s",
          conv_peak);  // the ceiling the dense convolutions are read against
    v.set("conv_peak_kind", conv_peak_name);
    v.set("gemm", kernels::sgemm::name(kernels::sgemm::active()));
    v.set("images_per_s_all", json::Value::array_of(rates));
    json::Value ops = json::Value::array();
    for (const auto& t : report) {
      json::Value o = json::Value::object();
      o.set("op", t.op);
      o.set("forward_ms", t.forward_ms / iters);
      o.set("backward_ms", t.backward_ms / iters);
      ops.push_back(o);
    }
    v.set("ops", ops);
    json::Value layer_rows = json::Value::array();
    for (const auto& t : layers) {
      json::Value o = json::Value::object();
      o.set("layer", t.op);
      o.set("calls", double(t.forward_calls) / iters);
      o.set("forward_ms", t.forward_ms / iters);
      o.set("backward_ms", t.backward_ms / iters);
      o.set("forward_gflop", t.forward_flop / iters * 1e-9);
      layer_rows.push_back(o);
    }
    v.set("layers", layer_rows);
    if (!scaling.empty()) {
      json::Value rows = json::Value::array();
      for (const auto& [t, r] : scaling) {
        json::Value o = json::Value::object();
        o.set("threads", t);
        o.set("images_per_s", r);
        rows.push_back(o);
      }
      v.set("thread_scaling", rows);
    }
    std::ofstream(args.get("json")) << v.dump() << '\n';
  }
  return 0;
}

}  // namespace mf::apps
