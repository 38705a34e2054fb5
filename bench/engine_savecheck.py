"""Loads the directories AspireTune saved (bench/Engine savecheck) with transformers and compares logits
and tokenization with what AspireTune computed. Usage: python3 engine_savecheck.py DIR"""
import json, os, sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

root = sys.argv[1]
ok = True
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name)
    ref_path = os.path.join(path, "aspiretune-reference.json")
    if not os.path.exists(ref_path):
        continue
    ref = json.load(open(ref_path))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        logits = model(torch.tensor([ref["input_ids"]])).logits.flatten()
    diff = (logits - torch.tensor(ref["logits"])).abs().max().item()
    tok = AutoTokenizer.from_pretrained(path)
    same_tokens = all(tok.encode(s, add_special_tokens=False) == ids for s, ids in zip(ref["samples"], ref["sample_ids"]))
    good = diff < 1e-4 and same_tokens
    ok &= good
    print(json.dumps({"check": name, "class": type(model).__name__, "tokenizer": type(tok).__name__,
                      "max_abs_logit_diff": diff, "same_token_ids": same_tokens, "ok": good}))
print(json.dumps({"savecheck_all_ok": ok}))
