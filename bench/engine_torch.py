"""PyTorch side of the engine benchmark: the same GPT-2-small training step (bf16 autocast, SDPA, AdamW,
clip 1.0) in eager mode (foreach or fused AdamW) or torch.compile, LoRA on a Llama-3.2-1B shape (bf16 frozen
base, rank 16 on every linear), and transformers generate().
Prints one JSON line. Usage: python3 engine_torch.py train eager|fused|compile [batch seq steps warmup]
                              python3 engine_torch.py lora eager|compile|checkpoint [batch seq steps warmup]
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
    """Llama-3.2-1B's shape: 16 layers of 2048, 32/8 heads, SwiGLU 8192, tied 128,256-token head, bf16 frozen base."""
    def __init__(self, vocab=128256, d=2048, layers=16, heads=32, kv=8, ff=8192, rank=16, checkpoint=False):
        super().__init__()
        self.embed = nn.Embedding(vocab, d, dtype=torch.bfloat16).requires_grad_(False)
        nn.init.normal_(self.embed.weight, std=0.02)
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
        return F.linear(self.norm(x), self.embed.weight)


def lora(variant, batch=8, seq=1024, steps=10, warmup=3):
    torch.manual_seed(0)
    model = Llama(checkpoint=variant == "checkpoint").cuda()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, foreach=True)
    fwd = torch.compile(model) if variant == "compile" else model
    data = torch.randint(0, 128256, (batch, seq + 1), device="cuda")
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    s, loss = timed(lambda: step(fwd, model, opt, x, y), max(warmup, 5) if variant == "compile" else warmup, steps)
    print(json.dumps({"impl": f"pytorch-lora-{variant}", "params": sum(p.numel() for p in model.parameters()),
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
    elif sys.argv[1] == "lora":
        lora(sys.argv[2], *[int(a) for a in sys.argv[3:]])
    else:
        generate(*[int(a) for a in sys.argv[2:]])
