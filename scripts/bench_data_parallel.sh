#!/usr/bin/env bash
# Data-parallel training on this machine: 1 process × THREADS threads against THREADS processes ×
# 1 thread (mpirun on loopback), alternating round by round; then the processes with the gradient
# allreduce overlapped with backward and without (train.allreduce_overlap), which shows how much
# of the allreduce the overlap hides, and with model.sync_bn (what the batch statistics' allreduce
# costs). Prints medians over rounds of images/s (the "done" line's) and of the allreduce time per
# step left blocked after backward.
#
#   scripts/bench_data_parallel.sh                      # ir18 width 0.5, batch 64, 40 steps, 3 rounds
#   BACKBONE=ir50 WIDTH=1 STEPS=10 scripts/bench_data_parallel.sh
#
# Needs ../shared/data (the CelebA subset trains) and OpenMPI (scripts/install_deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BACKBONE=${BACKBONE:-ir18}
WIDTH=${WIDTH:-0.5}
BATCH=${BATCH:-64}
STEPS=${STEPS:-40}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
DATA=${DATA:-../shared/data/aligned/celeba}
BIN=${BIN:-"$(pwd)/$BUILD_DIR/bin/marginface"}
OUT=$(mktemp -d /tmp/bench_dp.XXXXXX)
[[ -x "$BIN" ]] || { echo "bench_data_parallel: $BIN not found; run scripts/build.sh" >&2; exit 1; }
[[ -d "$DATA" ]] || { echo "bench_data_parallel: $DATA not found" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

cat >"$OUT/bench.yaml" <<EOF
seed: 1
data: {train: [$(realpath "$DATA")], batch_size: $BATCH, augment: {flip: true}, loader_threads: 1}
model: {backbone: $BACKBONE, width: $WIDTH, embedding_size: 512}
head: {type: arcface, s: 64, m: 0.5}
optim: {type: sgd, lr: 0.1}
train: {max_steps: $STEPS, checkpoint_every: 100000, log_every: 100000}
EOF

# run NAME LAUNCHER... : one training, its images/s and allreduce ms/step appended to OUT/NAME.
run() {
  local name=$1
  shift
  rm -rf "$OUT/run"
  "$@" train --config "$OUT/bench.yaml" --set train.output_dir="$OUT/run" ${EXTRA:-} >"$OUT/log" 2>&1 ||
    { cat "$OUT/log" >&2; exit 1; }
  local ips ms
  ips=$(sed -n 's/^done: .*(\([0-9.]*\) img\/s).*/\1/p' "$OUT/log")
  ms=$(sed -n 's/^gradient allreduce: \([0-9.]*\) ms.*/\1/p' "$OUT/log")
  echo "$ips ${ms:-0}" >>"$OUT/$name"
}

mpi="mpirun --oversubscribe --mca btl self,vader -np $THREADS -x OMP_NUM_THREADS=1"
for r in $(seq "$ROUNDS"); do
  OMP_NUM_THREADS=$THREADS EXTRA="--set train.threads=$THREADS" run one "$BIN"
  OMP_NUM_THREADS=1 EXTRA="" run ranks_overlap $mpi "$BIN"
  OMP_NUM_THREADS=1 EXTRA="--set train.allreduce_overlap=false" run ranks_serial $mpi "$BIN"
  OMP_NUM_THREADS=1 EXTRA="--set model.sync_bn=true" run ranks_syncbn $mpi "$BIN"
  echo "round $r of $ROUNDS done" >&2
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo "CPU: $cpu; $BACKBONE width $WIDTH, global batch $BATCH, $STEPS steps, $ROUNDS rounds (medians)"
printf "%-44s %10s %22s\n" "configuration" "images/s" "allreduce ms/step"
for name in one ranks_overlap ranks_serial ranks_syncbn; do
  case $name in
    one) label="1 process x $THREADS threads" ;;
    ranks_overlap) label="$THREADS processes x 1 thread, overlap on" ;;
    ranks_serial) label="$THREADS processes x 1 thread, overlap off" ;;
    ranks_syncbn) label="$THREADS processes x 1 thread, overlap on, sync_bn" ;;
  esac
  ips=$(cut -d' ' -f1 "$OUT/$name" | median)
  ms=$(cut -d' ' -f2 "$OUT/$name" | median)
  printf "%-44s %10s %22s\n" "$label" "$ips" "$([[ $name == one ]] && echo - || echo "$ms")"
done
echo "raw: $OUT"
