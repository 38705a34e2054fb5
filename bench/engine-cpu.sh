#!/usr/bin/env bash
# CPU training and generation speed of the engine for the embedded demo's model (GPT-2 vocabulary,
# 4 layers of 256, seq 128): flat-buffer AdamW (what the trainer uses) against TorchSharp's stock AdamW.
#   bench/engine-cpu.sh [batch] [seq] [steps]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
B=${1:-8}; S=${2:-128}; N=${3:-5}
dotnet build "$repo/bench/Engine" -c Release >/dev/null
app="$repo/bench/Engine/bin/Release/net10.0/linux-x64/AspireTune.Bench.Engine"
flat=$("$app" train --device cpu --shape demo --batch "$B" --seq "$S" --steps "$N" --warmup 1 --optimizer flat)
stock=$("$app" train --device cpu --shape demo --batch "$B" --seq "$S" --steps "$N" --warmup 1 --optimizer stock)
gen=$("$app" generate --device cpu --shape demo --prompt 32 --new 64)
python3 - "$flat" "$stock" "$gen" <<'PY'
import json, sys
flat, stock, gen = (json.loads(a) for a in sys.argv[1:])
print(f"{'CPU, demo model (' + str(flat['params'] // 10**6) + 'M params)':<40}{'tokens/s':>10}{'ms/step':>10}")
print(f"{'engine, flat AdamW':<40}{flat['tokens_per_s']:>10.0f}{flat['ms_per_step']:>10.0f}")
print(f"{'TorchSharp stock AdamW':<40}{stock['tokens_per_s']:>10.0f}{stock['ms_per_step']:>10.0f}")
print(f"{'ratio flat / stock':<40}{flat['tokens_per_s'] / stock['tokens_per_s']:>10.2f}x")
print(f"{'generation, KV cache, batch 1':<40}{gen['tokens_per_s']:>10.1f}{gen['ms_per_token']:>10.1f} ms/token")
PY
