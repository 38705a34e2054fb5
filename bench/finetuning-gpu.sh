#!/usr/bin/env bash
# The FineTuning service end to end on the accelerator machine: the same job (demo-sized GPT-2 over bytes,
# 4 x 256, 400 examples, 2 epochs, batch 16) trained by the service's worker on CUDA and on the CPU, then
# served on /v1. Here: publish and pack; there: bench/finetuning-gpu.sh run.
#   here:  bench/finetuning-gpu.sh pack      (writes .device/ftpub.tar.gz, carry it)
#   there: bench/finetuning-gpu.sh run
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-run}" in
pack)
  # TorchSharp's managed binding only: the device brings libtorch (GPU.md).
  dotnet publish "$repo/services/FineTuning" -c Release -r linux-x64 --self-contained -p:InvariantGlobalization=true \
    -p:TorchSharpNativePackage=TorchSharp -p:TreatWarningsAsErrors=false -o /tmp/ftpub >/dev/null
  mkdir -p "$repo/.device" && tar czf "$repo/.device/ftpub.tar.gz" -C /tmp/ftpub . ;;
run)
  TL=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
  rm -rf /tmp/ftapp && mkdir -p /tmp/ftapp && tar xzf "$repo/.device/ftpub.tar.gz" -C /tmp/ftapp
  export LD_LIBRARY_PATH=$TL
  gpu=$(python3 "$repo/bench/finetuning_service.py" /tmp/ftapp/AspireTune.FineTuning cuda)
  cpu=$(CUDA_VISIBLE_DEVICES= python3 "$repo/bench/finetuning_service.py" /tmp/ftapp/AspireTune.FineTuning cpu)
  echo "$gpu"; echo "$cpu"
  python3 - "$gpu" "$cpu" <<'PY'
import json, sys
g, c = (json.loads(a) for a in sys.argv[1:])
print(f"{'service job, 4x256 GPT-2, 400 ex, 2 epochs':<44}{'CUDA':>12}{'CPU':>12}{'ratio':>8}")
print(f"{'device (from the job events)':<44}{g['device']:>12}{c['device']:>12}")
print(f"{'training tokens/s (median step)':<44}{g['tokens_per_s']:>12.0f}{c['tokens_per_s']:>12.0f}{g['tokens_per_s'] / max(1e-9, c['tokens_per_s']):>7.1f}x")
print(f"{'job running time, s (incl. evals, ckpts)':<44}{g['train_s']:>12.0f}{c['train_s']:>12.0f}{c['train_s'] / max(1, g['train_s']):>7.1f}x")
print(f"{'chat completion, 16 tokens, ms (median)':<44}{g['chat_ms']:>12.0f}{c['chat_ms']:>12.0f}{c['chat_ms'] / max(1e-9, g['chat_ms']):>7.1f}x")
print(f"{'status / fit':<44}{g['status'] + '/' + str(g['fit']):>12}{c['status'] + '/' + str(c['fit']):>12}")
PY
  ;;
esac
