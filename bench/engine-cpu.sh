#!/usr/bin/env bash
# CPU training and generation speed of the engine for the embedded demo's model (GPT-2 vocabulary,
# 4 layers of 256, seq 128): flat-buffer AdamW (what the trainer uses) against TorchSharp's stock AdamW,
# alternated for ROUNDS rounds (medians reported) because the shared 2-core machine is noisy.
#   bench/engine-cpu.sh [batch] [seq] [steps] [rounds]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
B=${1:-8}; S=${2:-128}; N=${3:-5}; R=${4:-3}
dotnet build "$repo/bench/Engine" -c Release >/dev/null
app="$repo/bench/Engine/bin/Release/net10.0/linux-x64/AspireTune.Bench.Engine"
runs=()
for _ in $(seq "$R"); do
  runs+=("$("$app" train --device cpu --shape demo --batch "$B" --seq "$S" --steps "$N" --warmup 1 --optimizer flat)")
  runs+=("$("$app" train --device cpu --shape demo --batch "$B" --seq "$S" --steps "$N" --warmup 1 --optimizer stock)")
done
gen=$("$app" generate --device cpu --shape demo --prompt 32 --new 64)
python3 - "$gen" "${runs[@]}" <<'PY'
import json, statistics, sys
gen = json.loads(sys.argv[1])
runs = [json.loads(a) for a in sys.argv[2:]]
med = lambda impl, key: statistics.median(r[key] for r in runs if r["impl"] == impl)
flat, stock = med("aspiretune-flat", "tokens_per_s"), med("aspiretune-stock", "tokens_per_s")
print(f"{'CPU, demo model (' + str(runs[0]['params'] // 10**6) + 'M params), medians':<46}{'tokens/s':>10}{'ms/step':>10}")
print(f"{'engine, flat AdamW':<46}{flat:>10.0f}{med('aspiretune-flat', 'ms_per_step'):>10.0f}")
print(f"{'TorchSharp stock AdamW':<46}{stock:>10.0f}{med('aspiretune-stock', 'ms_per_step'):>10.0f}")
print(f"{'ratio flat / stock':<46}{flat / stock:>10.2f}x")
print(f"{'generation, KV cache, batch 1':<46}{gen['tokens_per_s']:>10.1f}{gen['ms_per_token']:>10.1f} ms/token")
PY
