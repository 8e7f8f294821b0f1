#!/usr/bin/env bash
# Fault injection against the real `marginface train`: kill -9 at random moments and while a
# checkpoint is being written, two trainings on one folder, a full disk and a read-only output
# folder (where this machine lets us make them; skipped with a message otherwise). After every
# fault the run is resumed with --resume auto and must end where an uninterrupted run ends: the
# same loss at every step, each step logged once, the same final embeddings.
#   usage: tests/faults/fault_injection.sh MARGINFACE_BIN SHARED_DATA_DIR [SEED]
set -uo pipefail
bin=$1
shared=$2
seed=${3:-$(date +%s)}
RANDOM=$seed
faces=$shared/aligned/orl
if [[ ! -d $faces ]]; then
  echo "SKIP: $faces not found (../shared absent)"
  exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/mf_faults_XXXXXX")
trap 'umount "$work/full" 2>/dev/null; umount "$work/ro" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
echo "fault injection in $work (seed $seed)"
mkdir -p "$work/logs"
log_of() { echo "$work/logs/$(basename "$1").txt"; }

steps=40
cat >"$work/config.yaml" <<YAML
seed: 5
data: {train: [$faces], max_identities: 6, batch_size: 12, augment: {flip: true}, loader_threads: 1}
model: {backbone: ir18, width: 0.0625, embedding_size: 16}
head: {type: arcface, s: 16, m: 0.3, margin_warmup_steps: 10}
optim: {type: sgd, lr: 0.05, momentum: 0.9}
train: {max_steps: $steps, checkpoint_every: 3, keep_checkpoints: 2, threads: 1, log_every: 1000}
YAML
run() {  # run OUTPUT_DIR [extra args...]: one training segment in the background; sets $pid
  local out=$1; shift
  OMP_NUM_THREADS=1 "$bin" train --config "$work/config.yaml" --set "train.output_dir=$out" "$@" \
    >>"$work/logs/$(basename "$out").txt" 2>&1 &
  pid=$!
}
losses() { grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*' "$1/log.jsonl"; }
same_as_reference() {  # same_as_reference RUN_DIR WHAT
  local dir=$1 what=$2
  [[ $(grep -c '"loss"' "$dir/log.jsonl") == "$steps" ]] || fail "$what: log.jsonl holds $(grep -c '"loss"' "$dir/log.jsonl") step records, not $steps"
  diff <(losses "$work/reference") <(losses "$dir") >/dev/null || fail "$what: the losses differ from the uninterrupted run"
  "$bin" compare --checkpoint "$dir/checkpoints/last.h5" --threshold 0.5 "$probe_a" "$probe_b" >"$dir.cmp" 2>&1 ||
    fail "$what: compare failed: $(cat "$dir.cmp")"
  diff "$work/reference.cmp" "$dir.cmp" >/dev/null || fail "$what: final weights differ ($(cat "$dir.cmp"))"
  echo "ok: $what"
}
resume_until_done() {  # resume_until_done RUN_DIR
  run "$1" --resume auto
  wait "$pid" || fail "resume of $1 failed: $(tail -3 "$(log_of "$1")")"
}

# The uninterrupted reference.
probe_a=$(find "$faces" -name '*.jpg' | sort | head -1)
probe_b=$(find "$faces" -name '*.jpg' | sort | sed -n 15p)
run "$work/reference"
wait "$pid" || fail "the reference run failed: $(cat "$(log_of "$work/reference")")"
"$bin" compare --checkpoint "$work/reference/checkpoints/last.h5" --threshold 0.5 "$probe_a" "$probe_b" \
  >"$work/reference.cmp" 2>&1 || fail "compare on the reference failed"

# 1. kill -9 at random moments, five times, resuming after each.
dir=$work/random_kills
run "$dir"
for k in 1 2 3 4 5; do
  sleep "0.$(( RANDOM % 9 + 1 ))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  [[ -f $dir/checkpoints/last.h5 ]] && run "$dir" --resume auto || run "$dir"
done
wait "$pid" || resume_until_done "$dir"
[[ $(grep -c '"loss"' "$dir/log.jsonl") == "$steps" ]] || resume_until_done "$dir"
same_as_reference "$dir" "five kill -9 at random moments"

# 2. kill -9 while a checkpoint is being written (its temporary file exists).
dir=$work/checkpoint_kills
run "$dir"
kills=0
while kill -0 "$pid" 2>/dev/null && (( kills < 3 )); do
  if compgen -G "$dir/checkpoints/*.tmp" >/dev/null; then
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    kills=$((kills + 1))
    [[ -f $dir/checkpoints/last.h5 ]] && run "$dir" --resume auto || run "$dir"
  fi
done
wait "$pid" 2>/dev/null
[[ $(grep -c '"loss"' "$dir/log.jsonl") == "$steps" ]] || resume_until_done "$dir"
same_as_reference "$dir" "kill -9 during checkpoint writes ($kills caught mid-write)"

# 3. Two trainings on one folder: the second is refused naming the first's PID; the first ends
# as if alone.
dir=$work/two_runs
run "$dir"
first=$pid
sleep 0.3
OMP_NUM_THREADS=1 "$bin" train --config "$work/config.yaml" --set "train.output_dir=$dir" >"$work/second.txt" 2>&1
status=$?
wait "$first" || fail "the first of two runs failed: $(tail -3 "$(log_of "$dir")")"
if grep -q "in use by another training (PID $first)" "$work/second.txt"; then
  [[ $status == 1 ]] || fail "the refused second run exited $status"
  echo "ok: a second training on a busy folder is refused (PID $first named)"
elif grep -q "already holds a run" "$work/second.txt"; then
  echo "ok: the second training started after the first had checkpointed and was refused"
else
  fail "the second run on a busy folder was not refused: $(cat "$work/second.txt")"
fi
same_as_reference "$dir" "the first of two trainings on one folder"

# 4. A full disk: a small tmpfs (root only), resumed after it is given room again.
dir=$work/full/run
mkdir -p "$work/full"
if mount -t tmpfs -o size=600k tmpfs "$work/full" 2>/dev/null; then
  run "$dir"
  wait "$pid"
  status=$?
  grep -q "No space left on device" "$(log_of "$dir")" || fail "full disk: no clear message: $(tail -3 "$(log_of "$dir")")"
  [[ $status == 1 ]] || fail "full disk: exit status $status"
  mount -o remount,size=64m "$work/full" || fail "cannot enlarge the tmpfs"
  [[ -f $dir/checkpoints/last.h5 ]] && resume_until_done "$dir" || { run "$dir"; wait "$pid"; }
  same_as_reference "$dir" "a full disk, then room again"
  umount "$work/full"
else
  echo "SKIP: full disk (cannot mount a tmpfs here: not root, or no CAP_SYS_ADMIN)"
fi

# 5. A read-only output folder: a clear error, nothing written.
mkdir -p "$work/ro_src"
if mkdir -p "$work/ro" && mount --bind "$work/ro_src" "$work/ro" 2>/dev/null &&
    mount -o remount,bind,ro "$work/ro" 2>/dev/null; then
  OMP_NUM_THREADS=1 "$bin" train --config "$work/config.yaml" --set "train.output_dir=$work/ro/run" \
    >"$work/ro.txt" 2>&1
  status=$?
  [[ $status == 1 ]] || fail "read-only folder: exit status $status"
  grep -q "Read-only file system" "$work/ro.txt" || fail "read-only folder: unclear message: $(cat "$work/ro.txt")"
  echo "ok: a read-only output folder fails clearly ($(head -c 120 "$work/ro.txt"))"
  umount "$work/ro"
elif [[ $(id -u) != 0 ]]; then
  mkdir -p "$work/ro_plain" && chmod 555 "$work/ro_plain"
  OMP_NUM_THREADS=1 "$bin" train --config "$work/config.yaml" --set "train.output_dir=$work/ro_plain/run" \
    >"$work/ro.txt" 2>&1
  [[ $? == 1 ]] && grep -q "Permission denied" "$work/ro.txt" || fail "read-only folder: $(cat "$work/ro.txt")"
  echo "ok: a read-only output folder fails clearly"
else
  echo "SKIP: read-only folder (root here, and no read-only bind mount allowed)"
fi
echo "fault injection: all passed"
