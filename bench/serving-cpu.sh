#!/usr/bin/env bash
# CPU serving throughput of the embedded demo's model (GPT-2 vocabulary, 4 layers of 256): C concurrent clients
# through continuous batching (BatchedGenerator, what /v1 serves with) against the same C requests one at a time
# (TextGenerator, how /v1 served before), alternated for ROUNDS rounds, medians reported (the shared machine is noisy).
#   bench/serving-cpu.sh [concurrency 8] [new tokens 64] [rounds 3]     THREADS=N sets torch's CPU threads (default 1)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
C=${1:-8}; N=${2:-64}; R=${3:-3}
export OMP_NUM_THREADS=${THREADS:-1}
dotnet build "$repo/bench/Engine" -c Release >/dev/null
app="$repo/bench/Engine/bin/Release/net10.0/linux-x64/AspireTune.Bench.Engine"
runs=()
for _ in $(seq "$R"); do
  runs+=("$("$app" serve --device cpu --shape demo --prompt 32 --new "$N" --concurrency "$C" --sequential 1)")
  runs+=("$("$app" serve --device cpu --shape demo --prompt 32 --new "$N" --concurrency "$C")")
done
python3 - "$C" "${runs[@]}" <<'PY'
import json, statistics, sys
c, runs = int(sys.argv[1]), [json.loads(a) for a in sys.argv[2:]]
med = lambda impl, key: statistics.median(r[key] for r in runs if r["impl"] == impl)
one, batched = "aspiretune-one-at-a-time", f"aspiretune-serve-c{c}"
print(f"{'CPU, demo model, ' + str(c) + ' requests of 32 + ' + str(runs[0]['new_tokens']) + ' tokens, medians':<52}{'tokens/s':>10}{'ms/token':>10}")
print(f"{'one at a time (TextGenerator)':<52}{med(one, 'tokens_per_s'):>10.1f}{med(one, 'ms_per_token'):>10.1f}")
print(f"{'continuous batching, ' + str(c) + ' concurrent (BatchedGenerator)':<52}{med(batched, 'tokens_per_s'):>10.1f}{med(batched, 'ms_per_token'):>10.1f}")
print(f"{'ratio':<52}{med(batched, 'tokens_per_s') / med(one, 'tokens_per_s'):>10.2f}x")
same = all(r["first_ids"] == runs[0]["first_ids"] for r in runs)
print(f"first request's first 8 tokens identical in every run: {same}")
PY
