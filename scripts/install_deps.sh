#!/usr/bin/env bash
# Installs the Debian packages marginface needs, only those missing (idempotent, quick when all
# are present). Run as root on Debian 12. Set MF_WITH_TORCH=1 to also install PyTorch, h5py and
# OpenCV for Python (only needed to regenerate the reference fixtures, convert insightface weights
# or run the PyTorch comparisons).
set -euo pipefail

packages=(g++ make cmake pkg-config libeigen3-dev libopenblas-dev libopenblas-openmp-dev libopencv-dev libyaml-cpp-dev
          libhdf5-dev libgtest-dev libbenchmark-dev clang-format
          libonnx-dev libprotobuf-dev  # ONNX export (marginface export)
          libopenmpi-dev openmpi-bin  # data-parallel training (mpirun -np N marginface train)
          clang libclang-rt-14-dev)  # clang: the libFuzzer harnesses (scripts/fuzz.sh)
if [[ "${MF_WITH_TORCH:-0}" == 1 ]]; then
  packages+=(python3-torch python3-h5py python3-matplotlib python3-opencv)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_deps: done"
