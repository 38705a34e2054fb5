# PyTorch DDP anchor for bench/engine-dp.sh: GPT-2-small shape over a byte vocabulary (320 rows, as the engine side), global batch split over
# the ranks, AdamW, bf16 autocast; rank 0 prints one JSON line with tokens/s measured after two warm-up steps.
import argparse, json, os, time
import torch, torch.distributed as dist
from transformers import GPT2Config, GPT2LMHeadModel

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=16); p.add_argument("--seq", type=int, default=1024); p.add_argument("--steps", type=int, default=20)
a = p.parse_args()
dist.init_process_group("nccl")
rank, world = dist.get_rank(), dist.get_world_size()
torch.cuda.set_device(rank)
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(vocab_size=320, n_positions=a.seq, n_embd=768, n_layer=12, n_head=12, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0,
                                   attn_implementation="sdpa")).cuda()
ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])
opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, foreach=True)
local = a.batch // world
g = torch.Generator(device="cuda").manual_seed(rank)
def step():
    x = torch.randint(0, 256, (local, a.seq), device="cuda", generator=g)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = ddp(input_ids=x, labels=x).loss
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return loss
for _ in range(2): step()
torch.cuda.synchronize(); t = time.time()
for _ in range(a.steps): loss = step()
torch.cuda.synchronize(); dt = time.time() - t
if rank == 0:
    print(json.dumps({"mode": "torch-ddp", "world": world, "steps": a.steps, "last_loss": loss.item(), "seconds": dt,
                      "tokens_per_s": a.batch * a.seq * a.steps / dt}))
dist.destroy_process_group()
