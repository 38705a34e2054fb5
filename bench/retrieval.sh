#!/usr/bin/env bash
# Embedded HNSW index (C#) vs hnswlib-node 3.0.0 on the same 100,000 x 384 vectors and parameters.
# Usage: bench/retrieval.sh [--n 100000] [--dim 384] [--queries 1000] [--m 16] [--ef-construction 200] [--ef 32,64,128] [--passes 3]
# Each engine builds its index once, single-threaded, then runs every ef `passes` times; the fastest pass is reported.
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
# The .NET side writes the shared vectors, queries and exact top-k first; the node runs read the same files.
dotnet bench/Retrieval/bin/Release/net10.0/linux-x64/AspireTune.Retrieval.Bench.dll --out "$OUT" "$@" >/dev/null
node "$NODE_DIR/bench.js" --out "$OUT" --label hnswlib-node "$@" >/dev/null
node "$NODE_DIR/bench.js" --out "$OUT" --label hnswlib-native --module "$NATIVE" "$@" >/dev/null

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
d, h, n = (json.load(open(os.path.join(out, f))) for f in ("dotnet.json", "hnswlib-node.json", "hnswlib-native.json"))
print(f"{d['n']} x {d['dim']} vectors, {len(d['runs'])} ef values x {d['passes']} passes of the queries (best reported), M={d['m']}, efConstruction={d['ef_construction']}, k={d['k']}, single thread; cpu: {os.cpu_count()} cores")
print(f"{'':22}{'.NET HNSW':>12}{'hnswlib npm':>14}{'hnswlib native':>16}{'ratio npm':>11}{'ratio native':>14}")
print(f"{'build (s)':22}{d['build_s']:12.1f}{h['build_s']:14.1f}{n['build_s']:16.1f}{h['build_s']/d['build_s']:11.2f}{n['build_s']/d['build_s']:14.2f}")
for a, b, c in zip(d['runs'], h['runs'], n['runs']):
    ef = a['ef']
    print(f"ef={ef:<4} recall@{d['k']:<9}{a['recall']:12.4f}{b['recall']:14.4f}{c['recall']:16.4f}")
    print(f"ef={ef:<4} QPS{'':15}{a['qps']:12.0f}{b['qps']:14.0f}{c['qps']:16.0f}{a['qps']/b['qps']:11.2f}{a['qps']/c['qps']:14.2f}")
    print(f"ef={ef:<4} p50 (ms){'':10}{a['p50_ms']:12.3f}{b['p50_ms']:14.3f}{c['p50_ms']:16.3f}")
    print(f"ef={ef:<4} p99 (ms){'':10}{a['p99_ms']:12.3f}{b['p99_ms']:14.3f}{c['p99_ms']:16.3f}")
print("ratios: .NET / hnswlib for QPS (above 1 = .NET faster); hnswlib / .NET for build time (above 1 = .NET faster)")
PY
