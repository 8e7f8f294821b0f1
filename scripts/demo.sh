#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install what is missing, build, then train a face
# recogniser on the shared real faces and report its LFW accuracy.
#
#   configs/demo_small.yaml: a narrow IResNet-18 (16/32/64/128 channels, 512-d embedding) with a
#   softmax head, trained on the identities outside LFW (CelebA subset + Extended Yale B + ORL:
#   377 identities, 9,152 aligned faces), then evaluated on LFW View 2 (6,000 pairs, 10 folds).
#
# Extra arguments go to `marginface train`, e.g. --set head.type=arcface --set train.epochs=2.
# A run that is interrupted continues where it stopped when the script is started again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh

shared=../shared/data
if [[ ! -d $shared/aligned/celeba || ! -f $shared/lfw/pairs.txt ]]; then
  echo "demo: the shared face data is missing ($shared); see ../shared/data/README.md" >&2
  exit 1
fi

run=runs/demo_small
resume=()
[[ -f $run/checkpoints/last.h5 ]] && resume=(--resume auto)
# LFW is evaluated once below (with a JSON report and the ROC curve), not inside training.
build/bin/marginface train --config configs/demo_small.yaml --set eval.lfw.pairs= "${resume[@]}" "$@"
echo
build/bin/marginface eval --checkpoint "$run/checkpoints/last.h5" \
  --lfw "$shared/lfw/pairs.txt" --root "$shared/aligned/lfw" \
  --json "$run/lfw.json" --roc "$run/lfw_roc.png"
