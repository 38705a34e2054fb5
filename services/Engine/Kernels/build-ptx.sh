#!/usr/bin/env bash
# Regenerates engine_kernels.ptx from engine_kernels.cu (needs the CUDA toolkit; run on the GPU machine,
# bench/engine-gpu.sh run does it and leaves the PTX in its output folder). Usage: build-ptx.sh [OUT.ptx]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
nvcc="${NVCC:-/usr/local/cuda/bin/nvcc}"
"$nvcc" -ptx -arch=sm_90 -O3 -o "${1:-$here/engine_kernels.ptx}" "$here/engine_kernels.cu"
