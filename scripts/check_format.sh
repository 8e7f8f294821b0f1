#!/usr/bin/env bash
# Fails (listing the files) when a C++ file under src/, tests/ or bench/ differs from what
# clang-format makes of it with the project's .clang-format. Fix with:  scripts/check_format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check_format: clang-format is not installed (scripts/install_deps.sh)"; exit 1; }
# Tracked files plus new ones not yet added (--others): a new file is formatted before its commit.
mapfile -t files < <(git ls-files --cached --others --exclude-standard 'src/*.cpp' 'src/*.h' \
                       'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'bench/*.h' 2>/dev/null ||
                     find src tests bench -name '*.cpp' -o -name '*.h')
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  echo "check_format: formatted ${#files[@]} files"
  exit 0
fi
# One clang-format process for all files; its warnings start with "file:line:col: error".
mapfile -t bad < <(clang-format --dry-run -Werror "${files[@]}" 2>&1 | grep -oE '^[^:]+:[0-9]+:[0-9]+: error' |
                   cut -d: -f1 | sort -u || true)
if [[ ${#bad[@]} -gt 0 ]]; then
  printf 'check_format: not clang-formatted: %s\n' "${bad[@]}"
  echo "check_format: run scripts/check_format.sh --fix"
  exit 1
fi
echo "check_format: all ${#files[@]} C++ files are clang-formatted ($(clang-format --version | grep -o 'version [0-9.]*'))"
