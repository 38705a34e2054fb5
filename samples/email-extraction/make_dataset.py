#!/usr/bin/env python3
"""Builds samples/email-extraction/emails.jsonl from samples/spam-assassin/spam.jsonl (SpamAssassin, contents CC0 1.0).

Usage: python3 make_dataset.py ../spam-assassin/spam.jsonl > emails.jsonl
Each line: {"input": "Subject: ...\n\n<first 160 characters of the body>",
            "expected": {"subject": "...", "is_reply": true|false, "category": "ham"|"spam"},
            "metadata": {"id": "..."}}
The first 30 ham and the first 30 spam messages whose subject is 4-60 characters long. Deterministic.
"""
import json, sys

PER_LABEL = 30
taken = {"ham": 0, "spam": 0}
with open(sys.argv[1], encoding="utf-8") as fh:
    for line in fh:
        row = json.loads(line)
        label = row["expected"]
        head, _, body = row["input"].partition("\n\n")
        subject = head[len("Subject:"):].strip() if head.startswith("Subject:") else ""
        if taken[label] >= PER_LABEL or not 4 <= len(subject) <= 60 or '"' in subject or "\\" in subject:
            continue
        taken[label] += 1
        expected = {"subject": subject, "is_reply": subject.lower().startswith("re:"), "category": label}
        out = {"input": f"Subject: {subject}\n\n{body[:160]}", "expected": expected, "metadata": {"id": row["metadata"]["id"]}}
        print(json.dumps(out, ensure_ascii=False))
