#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang + ASan + UBSan and runs each for a fixed time
# on a corpus seeded from real files, then replays every committed crash input in
# fuzz/regressions/<harness>/. Prints, per harness, the executions and the coverage libFuzzer
# reached; fails (exit 1) on any crash, leak, timeout or sanitizer report, keeping the input in
# build-fuzz/crashes/ — commit it to fuzz/regressions/<harness>/ with the fix.
#   MF_FUZZ_SECONDS=20 (per harness)   MF_FUZZ_ONLY="fuzz_bin fuzz_image" (a subset)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${MF_FUZZ_SECONDS:-20}
jobs=$(nproc 2>/dev/null || echo 2)
command -v clang++ >/dev/null || { echo "fuzz: clang++ is not installed (scripts/install_deps.sh)"; exit 1; }
start=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
  -DMF_FUZZ=ON -DMF_NATIVE=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzzers | grep -vE "^\[ *[0-9]+%\] (Built target|Building|Linking)" || true
echo "fuzz: harnesses built in $(( $(date +%s) - start )) s"

# Seeds: committed inputs plus the real files of the repository (and ../shared when present).
seed() {  # seed NAME FILES...
  local dir=build-fuzz/corpus/$1; shift
  mkdir -p "$dir"
  for f in "$@"; do [[ -f $f ]] && cp -f "$f" "$dir/" || true; done
}
seed fuzz_config configs/*.yaml fuzz/corpus/config/*
seed fuzz_pairs fuzz/corpus/pairs/*
[[ -f ../shared/data/lfw/pairsDevTest.txt ]] && head -c 4000 ../shared/data/lfw/pairsDevTest.txt \
  > build-fuzz/corpus/fuzz_pairs/shared_pairsDevTest_head.txt
seed fuzz_image tests/fixtures/embed/grey.png $(find tests/fixtures/embed/images -type f | head -8)
shared_jpg=$(find ../shared/data/aligned/orl -name '*.jpg' 2>/dev/null | head -2 || true)
[[ -n $shared_jpg ]] && seed fuzz_image $shared_jpg
seed fuzz_bin tests/fixtures/packs/*.bin
seed fuzz_recordio fuzz/corpus/recordio/*
seed fuzz_checkpoint

mkdir -p build-fuzz/crashes
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
printf '%-16s %10s %8s %8s %s\n' harness runs cov ft "regressions"
for bin in ${MF_FUZZ_ONLY:-fuzz_config fuzz_pairs fuzz_image fuzz_bin fuzz_recordio fuzz_checkpoint}; do
  log=build-fuzz/$bin.log
  replayed=0
  if compgen -G "fuzz/regressions/$bin/*" >/dev/null; then
    if ! build-fuzz/bin/$bin fuzz/regressions/$bin/* >"$log.replay" 2>&1; then
      cat "$log.replay"; echo "fuzz: $bin fails a committed regression input"; status=1; continue
    fi
    replayed=$(ls fuzz/regressions/$bin | wc -l)
  fi
  if ! build-fuzz/bin/$bin -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/$bin- \
      build-fuzz/corpus/$bin >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $bin found a failure; the input is in build-fuzz/crashes/"
    status=1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
  printf '%-16s %10s %8s %8s %s\n' "$bin" "$runs" "$cov" "$ft" "$replayed replayed"
done
echo "fuzz: ${seconds} s per harness, $(( $(date +%s) - start )) s in all"
exit $status
