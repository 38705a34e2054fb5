#!/usr/bin/env bash
# Near-duplicate removal of the fine-tuning quality gate: MinHash + LSH (what the gate runs) against the
# exhaustive exact-Jaccard comparison of every pair, on synthetic sets with 10% planted near duplicates.
#   bench/curation.sh [sizes...]   (default 2000 4000 8000)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
sizes=("${@:-2000 4000 8000}")
dotnet build "$repo/bench/Curation" -c Release >/dev/null
app="$repo/bench/Curation/bin/Release/net10.0/linux-x64/AspireTune.Bench.Curation"
results=()
for n in ${sizes[@]}; do results+=("$("$app" "$n")"); done
python3 - "${results[@]}" <<'PY'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
print(f"{'examples':>9}{'MinHash+LSH s':>15}{'all pairs s':>13}{'speed-up':>10}{'removed (LSH / all)':>22}{'same lines':>12}")
for r in rows:
    print(f"{r['n']:>9}{r['lsh_s']:>15.3f}{r['exhaustive_s']:>13.3f}{r['exhaustive_s'] / r['lsh_s']:>9.1f}x"
          f"{str(r['lsh_removed']) + ' / ' + str(r['exhaustive_removed']):>22}{str(r['same_lines']):>12}")
PY
