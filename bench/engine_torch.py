"""PyTorch side of the engine benchmark: the same GPT-2-small training step (bf16 autocast, SDPA, AdamW,
clip 1.0) in eager mode (foreach or fused AdamW) or torch.compile, LoRA on a Llama-3.2-1B shape (bf16 frozen
base, rank 16 on every linear), and transformers generate().
Prints one JSON line. Usage: python3 engine_torch.py train eager|fused|compile [batch seq steps warmup]
                              python3 engine_torch.py lora eager|compile|checkpoint [batch seq steps warmup]
                              python3 engine_torch.py lora8b eager|compile|checkpoint [batch seq steps warmup]  (Llama-3-8B shape)
                              python3 engine_torch.py curve-init DIR DATA [steps batch seq]  (random GPT-2 small + batches)
                              python3 engine_torch.py curve DIR DATA NAME CURVES [order_seed]  (200-step loss curve)
                              python3 engine_torch.py curve-compare CURVES SVG
                              python3 engine_torch.py generate [prompt new]
PROFILE=FILE: after the timed steps, profiles three more with torch.profiler and writes the kernel table there."""
import json, math, os, sys, time

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


def step(fwd, model, opt, x, y):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = fwd(x)
    loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.view(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def timed(run, warmup, steps):
    """Seconds for `steps` calls of run after `warmup` untimed ones (then the optional profile), and the last loss."""
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = run()
    torch.cuda.synchronize()
    s = time.perf_counter() - t0
    profile(run)
    return s, loss


def profile(run):
    path = os.environ.get("PROFILE")
    if not path:
        return
    from torch.profiler import ProfilerActivity, profile as prof
    with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(3):
            run()
        torch.cuda.synchronize()
    with open(path, "w") as f:
        f.write(p.key_averages().table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=70))


class LoraLinear(nn.Module):
    """A frozen bf16 linear layer with a trainable fp32 LoRA adapter (A [r, in], B [out, r], B starts at zero)."""
    def __init__(self, d_in, d_out, rank):
        super().__init__()
        self.base = nn.Linear(d_in, d_out, bias=False, dtype=torch.bfloat16).requires_grad_(False)
        nn.init.normal_(self.base.weight, std=0.02)
        self.lora_A = nn.Parameter(torch.empty(rank, d_in))
        self.lora_B = nn.Parameter(torch.zeros(d_out, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = 2.0

    def forward(self, x):
        return self.base(x) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d), requires_grad=False), eps

    def forward(self, x):
        h = x.float()
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps))


def rope(x, cos, sin):
    a, b = x.chunk(2, -1)
    return x * cos + torch.cat([-b, a], -1) * sin


class LlamaLayer(nn.Module):
    def __init__(self, d, heads, kv, ff, rank):
        super().__init__()
        self.h, self.kv, self.hd = heads, kv, d // heads
        self.q, self.k = LoraLinear(d, d, rank), LoraLinear(d, kv * self.hd, rank)
        self.v, self.o = LoraLinear(d, kv * self.hd, rank), LoraLinear(d, d, rank)
        self.gate, self.up, self.down = LoraLinear(d, ff, rank), LoraLinear(d, ff, rank), LoraLinear(ff, d, rank)
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        h = self.n1(x)
        q = self.q(h).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k(h).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v(h).view(b, t, self.kv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(y)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    """Llama-3.2-1B's shape: 16 layers of 2048, 32/8 heads, SwiGLU 8192, tied 128,256-token head, bf16 frozen base
    (tie=False: a separate frozen bf16 head, as Llama-3-8B has)."""
    def __init__(self, vocab=128256, d=2048, layers=16, heads=32, kv=8, ff=8192, rank=16, checkpoint=False, tie=True):
        super().__init__()
        self.embed = nn.Embedding(vocab, d, dtype=torch.bfloat16).requires_grad_(False)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.head = None
        if not tie:
            self.head = nn.Linear(d, vocab, bias=False, dtype=torch.bfloat16).requires_grad_(False)
            nn.init.normal_(self.head.weight, std=0.02)
        self.layers = nn.ModuleList(LlamaLayer(d, heads, kv, ff, rank) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.hd, self.checkpoint = d // heads, checkpoint

    def forward(self, idx):
        t = idx.shape[1]
        inv = 1.0 / (500000 ** (torch.arange(0, self.hd, 2, device=idx.device).float() / self.hd))
        f = torch.outer(torch.arange(t, device=idx.device).float(), inv)
        emb = torch.cat([f, f], -1)
        cos, sin = emb.cos().to(torch.bfloat16), emb.sin().to(torch.bfloat16)
        x = self.embed(idx)
        for layer in self.layers:
            if self.checkpoint:
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, use_reentrant=False)
            else:
                x = layer(x, cos, sin)
        return F.linear(self.norm(x), (self.head if self.head is not None else self.embed).weight)


LLAMA_8B = dict(d=4096, layers=32, heads=32, kv=8, ff=14336, tie=False)


def lora(variant, batch=8, seq=1024, steps=10, warmup=3, shape=None):
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Llama(checkpoint=variant == "checkpoint", **(shape or {}))
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, foreach=True)
    fwd = torch.compile(model) if variant == "compile" else model
    data = torch.randint(0, 128256, (batch, seq + 1), device="cuda")
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    s, loss = timed(lambda: step(fwd, model, opt, x, y), max(warmup, 5) if variant == "compile" else warmup, steps)
    print(json.dumps({"impl": f"pytorch-lora{'8b' if shape else ''}-{variant}", "params": sum(p.numel() for p in model.parameters()),
                      "trainable": sum(p.numel() for p in trainable), "batch": batch, "seq": seq, "steps": steps,
                      "ms_per_step": 1000 * s / steps, "tokens_per_s": batch * seq * steps / s, "loss": loss.item(),
                      "max_allocated_gb": torch.cuda.max_memory_allocated() / 2**30,
                      "max_reserved_gb": torch.cuda.max_memory_reserved() / 2**30}))


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
    s, loss = timed(lambda: step(fwd, model, opt, x, y), max(warmup, 8) if variant == "compile" else warmup, steps)
    print(json.dumps({"impl": f"pytorch-{variant}", "params": sum(p.numel() for p in model.parameters()), "batch": batch,
                      "seq": seq, "steps": steps, "ms_per_step": 1000 * s / steps, "tokens_per_s": batch * seq * steps / s,
                      "loss": loss.item(), "max_allocated_gb": torch.cuda.max_memory_allocated() / 2**30,
                      "max_reserved_gb": torch.cuda.max_memory_reserved() / 2**30}))


def generate(prompt_len=32, new=128, batch=1):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).cuda().eval()
    # Row c is the prompt the serving benchmark's client c sends (ServingBench.cs).
    prompt = torch.tensor([[(i * 97 + 13 + c * 31) % 50257 for i in range(prompt_len)] for c in range(batch)], device="cuda")
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        model.generate(prompt, max_new_tokens=8, min_new_tokens=8, **kw)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=new, min_new_tokens=new, **kw)
        torch.cuda.synchronize()
    s = time.perf_counter() - t0
    n = out.shape[1] - prompt_len
    name = "transformers-generate" if batch == 1 else f"transformers-generate-b{batch}"
    print(json.dumps({"impl": name, "batch": batch, "new_tokens": n, "tokens_per_s": batch * n / s, "ms_per_token": 1000 * s / (batch * n),
                      "ms_per_step": 1000 * s / n, "first_ids": out[0, prompt_len:prompt_len + 8].tolist()}))


def curve_init(directory, data_path, steps=200, batch=8, seq=512):
    """Random GPT-2 small (seed 0, dropout 0) saved as safetensors, and `steps` batches of int32 tokens [batch, seq + 1]:
    each row repeats a 64-token Zipf-distributed pattern, so the loss falls (unigram first, then copying)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    GPT2LMHeadModel(cfg).save_pretrained(directory, safe_serialization=True)
    g = torch.Generator().manual_seed(1)
    weights = 1.0 / torch.arange(1, 2001, dtype=torch.float64)
    pattern = torch.multinomial(weights, steps * batch * 64, replacement=True, generator=g).view(steps, batch, 64)
    data = pattern.repeat(1, 1, (seq + 1 + 63) // 64)[:, :, :seq + 1].to(torch.int32).contiguous()
    data.numpy().tofile(data_path)
    print(json.dumps({"curve_init": directory, "data": data_path, "shape": list(data.shape)}))


def curve(directory, data_path, name, curves, order_seed=None, batch=8, seq=512):
    """Trains the saved model on the batches in order (or shuffled with order_seed): bf16 autocast, AdamW lr 3e-4,
    betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on tensors of 2+ dims, clip 1.0, as `bench train` does."""
    import numpy as np
    from transformers import GPT2LMHeadModel
    model = GPT2LMHeadModel.from_pretrained(directory, attn_implementation="sdpa", dtype=torch.float32).cuda().train()
    data = torch.from_numpy(np.fromfile(data_path, dtype=np.int32)).view(-1, batch, seq + 1).long().cuda()
    order = torch.arange(data.shape[0])
    if order_seed is not None:
        order = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(int(order_seed)))
    params = list(dict(model.named_parameters()).values())  # the tied head once
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    losses = []
    t0 = time.perf_counter()
    for i in order.tolist():
        x, y = data[i, :, :-1].contiguous(), data[i, :, 1:].contiguous()
        losses.append(step(lambda t: model(t, use_cache=False).logits, model, opt, x, y).item())
    row = {"impl": name, "order_seed": order_seed, "seconds": time.perf_counter() - t0, "losses": losses}
    with open(curves, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "losses"} | {"first": losses[0], "last": losses[-1]}))


def curve_compare(curves, svg):
    rows = {d["impl"]: d["losses"] for d in map(json.loads, open(curves))}
    ref = rows["pytorch"]

    def diff(name):
        d = [abs(a - b) for a, b in zip(rows[name], ref)]
        tail = d[len(d) // 2:]
        return {"against": "pytorch", "run": name, "steps": len(d), "max_abs": max(d), "mean_abs": sum(d) / len(d),
                "mean_abs_last_half": sum(tail) / len(tail)}
    for name in rows:
        if name != "pytorch":
            print(json.dumps(diff(name)))
    w, h, pad = 720, 360, 40
    lo, hi = min(min(v) for v in rows.values()), max(max(v) for v in rows.values())
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{pad}" y="20">GPT-2 small, 200 steps, batch 8 x 512, same init and batches: training loss</text>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        yy = h - pad - (h - 2 * pad) * k / 4
        parts.append(f'<line x1="{pad}" x2="{w - pad}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/><text x="4" y="{yy + 4:.1f}">{v:.2f}</text>')
    for c, (name, ls) in enumerate(rows.items()):
        pts = " ".join(f"{pad + (w - 2 * pad) * i / (len(ls) - 1):.1f},{h - pad - (h - 2 * pad) * (l - lo) / (hi - lo):.1f}" for i, l in enumerate(ls))
        parts.append(f'<polyline fill="none" stroke="{colors[c % 4]}" stroke-width="1.2" points="{pts}"/>')
        parts.append(f'<text x="{w - pad - 200}" y="{50 + 16 * c}" fill="{colors[c % 4]}">{name}</text>')
    parts.append(f'<text x="{w / 2 - 20}" y="{h - 10}">step</text></svg>')
    open(svg, "w").write("\n".join(parts))


if __name__ == "__main__":
    if sys.argv[1] == "curve-init":
        curve_init(sys.argv[2], sys.argv[3], *[int(a) for a in sys.argv[4:]])
    elif sys.argv[1] == "curve":
        curve(*sys.argv[2:])
    elif sys.argv[1] == "curve-compare":
        curve_compare(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "lora8b":
        lora(sys.argv[2], *[int(a) for a in sys.argv[3:]], shape=LLAMA_8B)
    elif sys.argv[1] == "train":
        train(sys.argv[2], *[int(a) for a in sys.argv[3:]])
    elif sys.argv[1] == "lora":
        lora(sys.argv[2], *[int(a) for a in sys.argv[3:]])
    else:
        generate(*[int(a) for a in sys.argv[2:]])
