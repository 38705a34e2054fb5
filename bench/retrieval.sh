#!/usr/bin/env bash
# Embedded HNSW index (C#) vs hnswlib-node 3.0.0 on the same 100,000 x 384 vectors and parameters.
# Usage: bench/retrieval.sh [--n 100000] [--dim 384] [--queries 1000] [--m 16] [--ef-construction 200] [--ef 32,64,128] [--passes 3]
# Each engine builds its index once, single-threaded, and saves it; then query rounds alternate the engines (ROUNDS,
# default 3), each running every ef `passes` times. The fastest pass of all rounds is reported.
# hnswlib runs twice: npm's own build (no -march, SSE only) and a -march=native rebuild of the same sources.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/bench/out/retrieval"
NODE_DIR="$ROOT/bench/Retrieval/node"
mkdir -p "$OUT"

# npm finds node's headers through nodedir; Debian keeps them under /usr.
NODEDIR_ARGS=()
if [ -f /usr/include/node/node.h ] && ! npm config get nodedir 2>/dev/null | grep -q /; then NODEDIR_ARGS=(--nodedir=/usr); fi

if [ ! -f "$NODE_DIR/node_modules/hnswlib-node/build/Release/addon.node" ]; then
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --foreground-scripts "${NODEDIR_ARGS[@]}")
fi
NATIVE="$NODE_DIR/native/node_modules/hnswlib-node"
if [ ! -f "$NATIVE/build/Release/addon.node" ]; then
  mkdir -p "$NODE_DIR/native"
  rm -rf "$NODE_DIR/native/node_modules"
  cp -r "$NODE_DIR/node_modules" "$NODE_DIR/native/node_modules"
  rm -rf "$NATIVE/build"
  (cd "$NATIVE" && CXXFLAGS="-march=native -O3" npm rebuild --foreground-scripts "${NODEDIR_ARGS[@]}" >/dev/null)
fi

dotnet build -c Release bench/Retrieval/AspireTune.Retrieval.Bench.csproj -v q -nologo
DOTNET_BENCH=(dotnet bench/Retrieval/bin/Release/net10.0/linux-x64/AspireTune.Retrieval.Bench.dll --out "$OUT")
ROUNDS=${ROUNDS:-3}
rm -f "$OUT"/*-query-*.json
# Build phase: the .NET side also writes the shared vectors, queries and exact top-k that the node runs read.
"${DOTNET_BENCH[@]}" --phase build "$@" >/dev/null
node "$NODE_DIR/bench.js" --out "$OUT" --label hnswlib-node --phase build "$@" >/dev/null
node "$NODE_DIR/bench.js" --out "$OUT" --label hnswlib-native --module "$NATIVE" --phase build "$@" >/dev/null
# Query rounds alternate the engines; each loads its saved index. The best pass of all rounds is reported.
for round in $(seq 1 "$ROUNDS"); do
  "${DOTNET_BENCH[@]}" --phase query --round "$round" "$@" >/dev/null
  node "$NODE_DIR/bench.js" --out "$OUT" --label hnswlib-node --phase query --round "$round" "$@" >/dev/null
  node "$NODE_DIR/bench.js" --out "$OUT" --label hnswlib-native --module "$NATIVE" --phase query --round "$round" "$@" >/dev/null
done

python3 - "$OUT" <<'PY'
import json, sys, os, glob
out = sys.argv[1]
def load(label):
    build = json.load(open(os.path.join(out, f"{label}-build.json")))["build_s"]
    rounds = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, f"{label}-query-*.json")))]
    best = {}
    for r in rounds:
        for run in r["runs"]:
            if run["ef"] not in best or run["qps"] > best[run["ef"]]["qps"]:
                best[run["ef"]] = run
    meta = rounds[0]
    return meta, build, [best[ef] for ef in sorted(best)], len(rounds)
(d, db, dr, rounds), (_, hb, hr, _), (_, nb, nr, _) = load("dotnet"), load("hnswlib-node"), load("hnswlib-native")
print(f"{d['n']} x {d['dim']} vectors, M={d['m']}, efConstruction={d['ef_construction']}, k={d['k']}, single thread, {d['passes']} passes x {rounds} alternating rounds per ef (fastest pass reported); cpu: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
print(f"{'':22}{'.NET HNSW':>12}{'hnswlib npm':>14}{'hnswlib native':>16}{'ratio npm':>11}{'ratio native':>14}")
print(f"{'build (s)':22}{db:12.1f}{hb:14.1f}{nb:16.1f}{hb/db:11.2f}{nb/db:14.2f}")
for a, b, c in zip(dr, hr, nr):
    ef = a['ef']
    print(f"ef={ef:<4} recall@{d['k']:<9}{a['recall']:12.4f}{b['recall']:14.4f}{c['recall']:16.4f}")
    print(f"ef={ef:<4} QPS{'':15}{a['qps']:12.0f}{b['qps']:14.0f}{c['qps']:16.0f}{a['qps']/b['qps']:11.2f}{a['qps']/c['qps']:14.2f}")
    print(f"ef={ef:<4} p50 (ms){'':10}{a['p50_ms']:12.3f}{b['p50_ms']:14.3f}{c['p50_ms']:16.3f}{b['p50_ms']/a['p50_ms']:11.2f}{c['p50_ms']/a['p50_ms']:14.2f}")
    print(f"ef={ef:<4} p99 (ms){'':10}{a['p99_ms']:12.3f}{b['p99_ms']:14.3f}{c['p99_ms']:16.3f}")
print("ratios above 1 mean .NET is better: QPS .NET/hnswlib; build time and p50 hnswlib/.NET. Build is a single run, so it feels the load most.")
PY
