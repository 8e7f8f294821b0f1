#!/usr/bin/env bash
# Builds bench_kernels if needed (Release, in $BUILD_DIR, default build/) and runs it, then prints a
# markdown table: benchmark, threads, ms per iteration, GFLOP/s and the share of raw sgemm at the
# same thread count. Google Benchmark's own console output goes to stderr, the table to stdout.
# Extra arguments go to bench_kernels, e.g. --benchmark_filter=conv2d.
# The raw JSON is kept in $BENCH_JSON (default $BUILD_DIR/bench_kernels.json).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
json=${BENCH_JSON:-$build_dir/bench_kernels.json}
jobs=$(nproc 2>/dev/null || echo 2)

if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build_dir" -j"$jobs" --target bench_kernels >/dev/null

"$build_dir/bin/bench_kernels" --benchmark_out="$json" --benchmark_out_format=json "$@" >&2

python3 - "$json" <<'PY'
import json
import sys

with open(sys.argv[1]) as f:
    report = json.load(f)
runs = report["benchmarks"]
# With --benchmark_repetitions, summarise by the median; otherwise every run is an iteration run.
if any(r.get("run_type") == "aggregate" for r in runs):
    runs = [r for r in runs if r.get("aggregate_name") == "median"]

to_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
rows = []
for r in runs:
    parts = r["run_name"].split("/")
    threads = next((p.split(":", 1)[1] for p in parts if p.startswith("nthreads:")), "?")
    name = "/".join(p for p in parts if ":" not in p and p != "real_time")
    ms = r["real_time"] * to_ms[r.get("time_unit", "ns")]
    rows.append((name, threads, ms, r.get("GFLOP/s")))

ceiling = {t: g for n, t, _, g in rows if n.startswith("sgemm/") and g}
ctx = report["context"]
load = ", ".join(f"{x:.2f}" for x in ctx.get("load_avg", []))
print(f"{ctx.get('date', '')} · {ctx.get('num_cpus', '?')} CPUs · "
      f"OpenBLAS core {ctx.get('openblas_core', '?')} · load average {load}")
print()
print("| benchmark | threads | ms/iter | GFLOP/s | vs sgemm |")
print("|---|---:|---:|---:|---:|")
for name, threads, ms, gflops in rows:
    g = f"{gflops:.1f}" if gflops is not None else "–"
    share = f"{100 * gflops / ceiling[threads]:.0f}%" if gflops and threads in ceiling else "–"
    print(f"| {name} | {threads} | {ms:.2f} | {g} | {share} |")
PY
