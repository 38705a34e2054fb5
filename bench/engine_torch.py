"""PyTorch side of the engine benchmark: the same GPT-2-small training step (bf16 autocast, SDPA, AdamW,
clip 1.0) in eager mode (foreach or fused AdamW) or torch.compile, and transformers generate().
Prints one JSON line. Usage: python3 engine_torch.py train eager|fused|compile [batch seq steps warmup]
                              python3 engine_torch.py generate [prompt new]"""
import json, math, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = True


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab=50257, d=768, layers=12, heads=12, ctx=1024):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.h = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.h:
            x = blk(x)
        return F.linear(self.ln_f(x), self.wte.weight)


def train(variant, batch=16, seq=1024, steps=20, warmup=5):
    torch.manual_seed(0)
    model = GPT().cuda()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    if variant == "fused":
        opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), fused=True)
    else:
        opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), foreach=True)
    fwd = torch.compile(model) if variant == "compile" else model
    data = torch.randint(0, 50257, (batch, seq + 1), device="cuda")
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    if variant == "compile":
        warmup = max(warmup, 8)
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    s = time.perf_counter() - t0
    print(json.dumps({"impl": f"pytorch-{variant}", "params": sum(p.numel() for p in model.parameters()), "batch": batch,
                      "seq": seq, "steps": steps, "ms_per_step": 1000 * s / steps, "tokens_per_s": batch * seq * steps / s,
                      "loss": loss.item(), "max_allocated_gb": torch.cuda.max_memory_allocated() / 2**30,
                      "max_reserved_gb": torch.cuda.max_memory_reserved() / 2**30}))


def generate(prompt_len=32, new=128):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).cuda().eval()
    prompt = torch.tensor([[(i * 97 + 13) % 50257 for i in range(prompt_len)]], device="cuda")
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        model.generate(prompt, max_new_tokens=8, min_new_tokens=8, **kw)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=new, min_new_tokens=new, **kw)
        torch.cuda.synchronize()
    s = time.perf_counter() - t0
    n = out.shape[1] - prompt_len
    print(json.dumps({"impl": "transformers-generate", "new_tokens": n, "tokens_per_s": n / s, "ms_per_token": 1000 * s / n}))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], *[int(a) for a in sys.argv[3:]])
    else:
        generate(*[int(a) for a in sys.argv[2:]])
