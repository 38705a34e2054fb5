#!/usr/bin/env bash
# Data-parallel training over NCCL (issue 17), in one call of the accelerator machine.
#   bench/engine-dp.sh pack DIR    here (needs dotnet): the engine benchmark, self-contained without libtorch
#   bash DIR/engine-dp.sh run      there: world size 1 through the NCCL path against the plain path (same losses),
#                                  then the launcher with one process per visible GPU and PyTorch DDP under torchrun
#                                  on the same shape as the anchor; prints JSON lines
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ "${1:-}" == "pack" ]]; then
  out="$(mkdir -p "$2" && cd "$2" && pwd)"
  repo="$(cd "$here/.." && pwd)"
  dotnet publish "$repo/bench/Engine" -c Release -r linux-x64 --self-contained -p:InvariantGlobalization=true \
    -p:IncludeCpuLibTorch=false -o "$out/app-build" >/dev/null
  tar czf "$out/app.tar.gz" -C "$out/app-build" . && rm -rf "$out/app-build"
  cp "$here/engine-dp.sh" "$here/engine_ddp.py" "$out/"
  du -sh "$out"; exit 0
fi
[[ "${1:-}" == "run" ]] || { echo "usage: $0 pack DIR | run" >&2; exit 2; }
TL="$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib"
app=/tmp/dp-app; rm -rf "$app"; mkdir -p "$app"; tar xzf "$here/app.tar.gz" -C "$app"
export LD_LIBRARY_PATH="$TL${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
gpus=$(nvidia-smi -L | wc -l)
echo "gpus: $gpus"; nvidia-smi --query-gpu=name --format=csv,noheader | head -1
ls "$TL"/libnccl* "$(dirname "$TL")"/../nvidia/nccl/lib/libnccl* /usr/lib/x86_64-linux-gnu/libnccl.so* 2>/dev/null || true
shape=${SHAPE:-gpt2-small}; steps=${STEPS:-20}
"$app/AspireTune.Bench.Engine" dp-parity --shape "$shape" --batch 8 --seq 1024 --steps 10
[[ -n "${PARITY_ONLY:-}" ]] && exit 0
for w in $(seq 1 "$gpus"); do
  [[ $w == 1 || $w == 2 || $w == "$gpus" ]] || continue
  "$app/AspireTune.Bench.Engine" dp-launch --world "$w" --shape "$shape" --batch 16 --seq 1024 --steps "$steps"
  torchrun --standalone --nproc_per_node "$w" "$here/engine_ddp.py" --batch 16 --seq 1024 --steps "$steps" 2>&1 | grep '^{' || true
done
