#!/usr/bin/env bash
# Configures and builds marginface in build/ (Release, -O3 -march=native; pass -DMF_NATIVE=OFF for
# a portable build). Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$jobs"
