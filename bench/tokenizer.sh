#!/usr/bin/env bash
# Encode speed of the engine's tokenizer for a model directory against the official JavaScript port of Hugging Face
# tokenizers (npm @huggingface/tokenizers, unpacked) on the same text: the sample lines of samples/sotu and
# samples/spam-assassin, one per line. The total id counts are compared too (the tests compare the ids themselves).
#   bench/tokenizer.sh MODEL_DIR HF_TOKENIZERS_PACKAGE_DIR [rounds]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir=$1; hf=$2; R=${3:-5}
text=$(mktemp)
python3 -c "import json,sys
for f in sys.argv[1:]:
    for l in open(f, encoding='utf-8'):
        print(json.loads(l)['input'].replace('\n', ' '))" "$repo/samples/sotu/sotu.jsonl" "$repo/samples/spam-assassin/spam.jsonl" > "$text"
dotnet build "$repo/bench/Engine" -c Release >/dev/null
ours=$("$repo/bench/Engine/bin/Release/net10.0/linux-x64/AspireTune.Bench.Engine" tokenize "$dir" "$text" --rounds "$R")
ref=$(node --input-type=module - "$hf" "$dir" "$text" "$R" <<'JS'
import fs from 'node:fs'; import path from 'node:path'; import { pathToFileURL } from 'node:url';
const [hf, dir, file, rounds] = process.argv.slice(2);
const { Tokenizer } = await import(pathToFileURL(path.resolve(hf, 'dist/tokenizers.mjs')).href);
const lines = fs.readFileSync(file, 'utf8').split('\n').filter(l => l.length > 0);
let t = performance.now();
const tok = new Tokenizer(JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')));
const load = (performance.now() - t) / 1000;
const pass = () => { const s = performance.now(); let n = 0; for (const l of lines) n += tok.encode(l, { add_special_tokens: false }).ids.length; return [(performance.now() - s) / 1000, n]; };
const [cold, ids] = pass();
const warm = Array.from({ length: Number(rounds) }, () => pass()[0]).sort((a, b) => a - b)[Math.floor(Number(rounds) / 2)];
const chars = lines.join('\n').length;
console.log(JSON.stringify({ impl: 'hf-tokenizers-js', chars, ids, load_s: load, lines_cold_s: cold, lines_warm_s: warm, mchars_per_s: chars / warm / 1e6 }));
JS
)
rm -f "$text"
python3 - "$ours" "$ref" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'':<32}{'load s':>8}{'cold s':>9}{'warm s':>9}{'Mchar/s':>9}{'ids':>9}")
for r in (a, b):
    print(f"{r['impl']:<32}{r['load_s']:>8.2f}{r['lines_cold_s']:>9.3f}{r['lines_warm_s']:>9.3f}{r['mchars_per_s']:>9.2f}{r['ids']:>9}")
print("total id counts equal" if a["ids"] == b["ids"] else "TOTAL ID COUNTS DIFFER")
PY
