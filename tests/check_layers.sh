#!/usr/bin/env bash
# Checks every #include "folder/…" in src/ (headers too, which compile only where included)
# against the layering CMake builds: a file in src/X may include from folder Y only when the
# build's view of X (build/views/X/, made by mf_library in CMakeLists.txt) holds Y.
#   usage: tests/check_layers.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1/src
views=$2/views
status=0
for dir in "$src"/*/; do
  folder=$(basename "$dir")
  [[ $folder == apps ]] && continue  # the top floor sees everything
  if [[ ! -d $views/$folder ]]; then
    echo "check_layers: src/$folder has no view in $views (add it with mf_library in CMakeLists.txt)"
    status=1
    continue
  fi
  while IFS=: read -r file line text; do
    used=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([^/"]+)\/.*/\1/' <<<"$text")
    [[ $used == "$text" ]] && continue  # not a "folder/file" include
    [[ -d $src/$used ]] || continue      # a local "file.h" or a system folder
    if [[ ! -e $views/$folder/$used ]]; then
      echo "${file#"$1"/}:$line: src/$folder must not include from src/$used (upward or sideways in the layering)"
      status=1
    fi
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "$dir" || true)
done
[[ $status == 0 ]] && echo "check_layers: every #include in src/ follows the layering"
exit $status
