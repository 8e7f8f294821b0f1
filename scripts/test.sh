#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   1. an AddressSanitizer + UndefinedBehaviorSanitizer build running the engine, layer and head
#      tests (the code most exposed to memory errors) and the readers of untrusted pack bytes
#      (RecordIO .rec/.idx, the .bin pickle reader, with their mutated-input cases);
#   2. the libFuzzer harnesses of fuzz/ (clang + ASan + UBSan), MF_FUZZ_SECONDS (20) each, after
#      replaying every committed crash input (scripts/fuzz.sh);
#   3. the Release build (-Werror) running the whole suite with ctest, whose summary closes the run.
# Set MF_SKIP_SANITIZE=1 to skip step 1, MF_SKIP_FUZZ=1 to skip step 2 during development.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)

if [[ "${MF_SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== sanitizer build (ASan + UBSan) =="
  # -O1 -g1: sanitizer builds compile several times faster than -O2 -g and still catch everything.
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
        -DMF_SANITIZE=ON -DMF_WERROR=ON -DMF_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$jobs" --target test_tensor test_autograd test_layers test_losses test_data
  log=build-asan/ctest.log
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir build-asan -L 'tensor|autograd|layers|losses' --output-on-failure \
      -j"$jobs" >"$log" 2>&1; then
    cat "$log"
    echo "sanitizer tests failed"
    exit 1
  fi
  grep -E "tests passed|tests failed" "$log"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      build-asan/bin/test_data --gtest_filter='BinPack*:RecordIO*' >"$log" 2>&1; then
    cat "$log"
    echo "sanitizer pack-reader tests failed"
    exit 1
  fi
  grep -E "^\[  PASSED  \]" "$log" | sed 's/^/pack readers under the sanitizers: /'
  echo "sanitizer pass took $(( $(date +%s) - start )) s"
fi

if [[ "${MF_SKIP_FUZZ:-0}" != 1 ]]; then
  echo "== fuzzing (libFuzzer, clang + ASan + UBSan) =="
  MF_FUZZ_SECONDS=${MF_FUZZ_SECONDS:-20} scripts/fuzz.sh
  echo "total time so far $(( $(date +%s) - start )) s"
fi

echo "== release build =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMF_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "total time so far $(( $(date +%s) - start )) s"
ctest --test-dir build --output-on-failure -j"$jobs"
