#!/usr/bin/env bash
# Ours against PyTorch on the same machine, alternating the programs round by round so that the
# machine's drift hits both alike; prints medians over rounds and ratios (ours / PyTorch).
#
#   scripts/bench_compare.sh                       # ir18 and ir50, train and infer, batch 32, 2 threads
#   BACKBONES="ir18" MODES=train ROUNDS=5 scripts/bench_compare.sh
#
# PyTorch runs as it starts by default (fp32 NCHW, glibc's allocator as set) and in its best
# configurations, with glibc told to keep its large buffers (MALLOC_MMAP_THRESHOLD_,
# MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_: on VMs where page faults are expensive PyTorch is
# several times slower without them): fp32 NCHW, fp32 channels_last, bf16 autocast. Ours runs
# `marginface bench` in exact fp32 and, where the CPU has AMX-BF16 or AVX512-BF16, also with
# --precision bf16 (compared with PyTorch's bf16) and, in inference, with --winograd (the approximate
# Winograd path, compared with PyTorch's faster fp32). The environment is left as the machine sets it
# (OPENBLAS_CORETYPE included). Environment: BUILD_DIR (build), BACKBONES, MODES, BATCH (32),
# THREADS (2), ITERS (5 timed iterations per run), WARMUP (3 untimed first: PyTorch's first
# iterations after one warm-up still ran up to 2× slower), ROUNDS (3), HEAD (arcface), CLASSES
# (1000), OUT (a folder for the raw JSON lines).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BACKBONES=${BACKBONES:-"ir18 ir50"}
MODES=${MODES:-"train infer"}
BATCH=${BATCH:-32}
THREADS=${THREADS:-2}
ITERS=${ITERS:-5}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
HEAD=${HEAD:-arcface}
CLASSES=${CLASSES:-1000}
OUT=${OUT:-$(mktemp -d /tmp/bench_compare.XXXXXX)}
PY=/usr/bin/python3
BIN="$BUILD_DIR/bin/marginface"

[[ -x "$BIN" ]] || { echo "bench_compare: $BIN not found; run scripts/build.sh first" >&2; exit 1; }
"$PY" -c "import torch" 2>/dev/null || {
  echo "bench_compare: PyTorch missing for $PY; install with MF_WITH_TORCH=1 scripts/install_deps.sh" >&2
  exit 1
}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

run_ours() {  # backbone mode precision config [extra flags...]
  local tmp="$OUT/ours.json"
  OMP_NUM_THREADS=$THREADS "$BIN" bench --backbone "$1" --mode "$2" --head "$HEAD" --classes "$CLASSES" \
    --batch "$BATCH" --threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP" --precision "$3" --json "$tmp" "${@:5}" >/dev/null
  "$PY" -c "import json,sys; d=json.load(open('$tmp')); d['config']='$4'; print(json.dumps(d))" >>"$RESULTS"
}

# Our bf16 fast path runs only on CPUs with AMX-BF16 or AVX512-BF16; elsewhere its column stays
# empty.
OURS_BF16=0
if "$BIN" bench --backbone ir18 --width 0.25 --batch 2 --iters 1 --warmup 0 --precision bf16 >/dev/null 2>&1; then
  OURS_BF16=1
fi

TUNED="MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824"
run_torch() {  # backbone mode config allocator-env extra-flags...
  local backbone=$1 mode=$2 config=$3 allocator=$4
  shift 4
  env $allocator OMP_NUM_THREADS=$THREADS "$PY" scripts/bench_torch.py --backbone "$backbone" --mode "$mode" --head "$HEAD" \
    --classes "$CLASSES" --batch "$BATCH" --threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP" "$@" |
    "$PY" -c "import json,sys; d=json.loads(sys.stdin.read()); d['config']='$config'; print(json.dumps(d))" >>"$RESULTS"
}

echo "bench_compare: batch $BATCH, $THREADS threads, $ITERS iterations per run, $ROUNDS rounds; raw results in $RESULTS"
for backbone in $BACKBONES; do
  for mode in $MODES; do
    for round in $(seq "$ROUNDS"); do
      echo "  $backbone $mode round $round/$ROUNDS" >&2
      run_ours "$backbone" "$mode" fp32 ours
      [[ $OURS_BF16 == 1 ]] && run_ours "$backbone" "$mode" bf16 ours_bf16
      # The approximate Winograd path (inference only; `--winograd`).
      [[ $mode == infer ]] && run_ours "$backbone" "$mode" fp32 ours_winograd --winograd
      run_torch "$backbone" "$mode" torch_default ""
      run_torch "$backbone" "$mode" torch_fp32 "$TUNED"
      # In inference PyTorch's best layouts also time each layer (one more pass, forward hooks).
      layers=()
      [[ $mode == infer ]] && layers=(--layers)
      run_torch "$backbone" "$mode" torch_channels_last "$TUNED" --channels-last "${layers[@]}"
      run_torch "$backbone" "$mode" torch_bf16 "$TUNED" --bf16 "${layers[@]}"
    done
  done
done

"$PY" - "$RESULTS" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = sorted({(r["backbone"], r["mode"]) for r in rows}, key=lambda k: (k[0], k[1] != "train"))
cpu = next((r["cpu"] for r in rows if r.get("cpu")), "unknown CPU")
gemm = next((r["gemm"] for r in rows if r.get("gemm")), "?")
def med(b, m, c, field):
    v = [r[field] for r in rows if (r["backbone"], r["mode"], r["config"]) == (b, m, c)]
    return statistics.median(v) if v else float("nan")
print(f"\n{cpu}; our fp32 GEMM: {gemm}")
print("\n| backbone | mode | ours fp32 img/s | PyTorch default | ×ours/default | PyTorch fp32 tuned | ×ours/fp32 | PyTorch channels_last tuned | ×ours/CL | ours Winograd img/s | ×Winograd/best fp32 | ours bf16 img/s | PyTorch bf16 tuned | ×ours bf16/bf16 | ours RSS MiB | PyTorch best fp32 RSS MiB | RSS ratio |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for b, m in keys:
    o = med(b, m, "ours", "images_per_s")
    cells = [f"{o:.2f}"]
    for c in ["torch_default", "torch_fp32", "torch_channels_last"]:
        t = med(b, m, c, "images_per_s")
        cells += [f"{t:.2f}", f"{o / t:.2f}"]
    # Winograd (inference only) against PyTorch's faster tuned fp32 layout.
    ow = med(b, m, "ours_winograd", "images_per_s")
    tf = max(med(b, m, c, "images_per_s") for c in ["torch_fp32", "torch_channels_last"])
    cells += ["–" if ow != ow else f"{ow:.2f}", "–" if ow != ow else f"{ow / tf:.2f}"]
    ob, tb = med(b, m, "ours_bf16", "images_per_s"), med(b, m, "torch_bf16", "images_per_s")
    cells += ["–" if ob != ob else f"{ob:.2f}", f"{tb:.2f}", "–" if ob != ob else f"{ob / tb:.2f}"]
    # RSS against the faster of PyTorch's tuned fp32 layouts (the one a user would run).
    best = max(["torch_fp32", "torch_channels_last"], key=lambda c: med(b, m, c, "images_per_s"))
    ro, rt = med(b, m, "ours", "peak_rss_mib"), med(b, m, best, "peak_rss_mib")
    cells += [f"{ro:.0f}", f"{rt:.0f}", f"{ro / rt:.2f}"]
    print(f"| {b} | {m} | " + " | ".join(cells) + " |")
print("\nmedians over rounds; ratios > 1 mean ours is faster (img/s) — RSS ratio < 1 means ours uses less; "
      "'tuned' = glibc keeps its large buffers (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_)")

# Per layer, from each configuration's fastest round (the least disturbed): ours as `marginface
# bench` reports it (GFLOP/s as a fraction of the ceiling its kernels run against: the fp32 FMA
# peak, or the bf16 dot peak for bf16 convolutions), and in inference PyTorch's convolutions
# beside ours, keyed by shapes (ours fold BN, PReLU and the residual add into the convolution).
def fastest(b, m, c):
    runs = [r for r in rows if (r["backbone"], r["mode"], r["config"]) == (b, m, c)]
    return max(runs, key=lambda r: r["images_per_s"]) if runs else None
def shape_key(name):
    op, _, shapes = name.partition(" ")
    op = op.split("+")[0]
    return op + " " + shapes
def rate(layer, ms_key, gflop, peak):
    ms = layer[ms_key]
    if gflop <= 0 or ms <= 0 or not peak:
        return "–"
    g = gflop / (ms * 1e-3)
    return f"{g:.0f} ({100 * g / peak:.0f} %)"
pairs = [("ours", "torch_channels_last"), ("ours_winograd", "torch_channels_last"), ("ours_bf16", "torch_bf16")]
for b, m in keys:
    for ours_config, torch_config in pairs:
        o = fastest(b, m, ours_config)
        if not o or "layers" not in o:
            continue
        t = fastest(b, m, torch_config) if m == "infer" else None
        fp32 = o.get("fp32_peak_gflops_per_s", 0)
        conv = o.get("conv_peak_gflops_per_s", fp32)
        total = sum(l["forward_ms"] + l["backward_ms"] for l in o["layers"])
        torch_rows = {l["layer"]: l for l in (t or {}).get("layers", [])}
        print(f"\n{b} {m}, {ours_config} ({o['images_per_s']:.1f} img/s)" +
              (f" beside {torch_config} ({t['images_per_s']:.1f} img/s)" if t else "") +
              f"; ceilings: fp32 {fp32:.0f}, convolutions {conv:.0f} GFLOP/s; layers ≥ 2 % of the time")
        head = "| layer | calls | ours fwd ms | ours bwd ms | share | ours fwd GFLOP/s | ours bwd GFLOP/s |"
        if t:
            head += " PyTorch fwd ms | PyTorch fwd GFLOP/s |"
        print(head)
        print("|---" * (head.count("|") - 1) + "|")
        for l in sorted(o["layers"], key=lambda l: -(l["forward_ms"] + l["backward_ms"])):
            share = (l["forward_ms"] + l["backward_ms"]) / max(total, 1e-9)
            if share < 0.02:
                continue
            name = l["layer"]
            peak = conv if name.startswith("conv2d") and "groups=" not in name else fp32
            gflop = l["forward_gflop"]
            cells = [name, f"{l['calls']:.0f}", f"{l['forward_ms']:.1f}", f"{l['backward_ms']:.1f}",
                     f"{100 * share:.1f} %", rate(l, "forward_ms", gflop, peak),
                     rate(l, "backward_ms", 2 * gflop, peak)]
            if t:
                tl = torch_rows.get(shape_key(name))
                # PyTorch's time for as many calls as ours (ours may split a shape by what is
                # fused into it: conv2d+bn+prelu and conv2d+bn+add).
                cells += ["–", "–"] if not tl else [f"{tl['forward_ms'] / tl['calls'] * l['calls']:.1f}",
                                                  rate(tl, "forward_ms", tl["forward_gflop"], peak)]
            print("| " + " | ".join(cells) + " |")
PYEOF
