"""PyTorch reference of the lesson-01 GPT: the peer our Burn implementation is measured against.

    python bench/pytorch_reference.py train --d 128 --layers 4 --heads 4 --seq 64 --batch 32
    python bench/pytorch_reference.py logits --from runs/default/pretrain --prompt "ROMEO:"

`train` times the same training step as `cargo xtask bench` (cross-entropy over every position,
backward, global-norm clip 1.0, AdamW lr 3e-4 betas 0.9/0.95 wd 0.1) and a forward pass, for each
variant (hand-written attention or scaled_dot_product_attention, default or fused AdamW, eager or
torch.compile) and prints one JSON object per variant. `logits` loads one of our checkpoints and
tokenizer.json and prints the logits of a prompt as JSON.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, sdpa):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def attention(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
            mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), 1)
            y = scores.masked_fill(mask, float("-inf")).softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, block, d, layers, heads, sdpa=False):
        super().__init__()
        self.tok = nn.Parameter(torch.randn(vocab, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(block, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, heads, sdpa) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, idx):
        x = self.tok[idx] + self.pos[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.tok.T  # head tied to the token embedding


def load_ours(stage):
    """Our safetensors checkpoint into the PyTorch model (our matrices are [in, out])."""
    from safetensors import safe_open

    with safe_open(f"{stage}/model.safetensors", framework="pt") as f:
        cfg = json.loads(f.metadata()["gpt_config"])
        w = {k: f.get_tensor(k) for k in f.keys()}
    model = GPT(cfg["vocab_size"], cfg["block_size"], cfg["d_model"], cfg["n_layers"], cfg["n_heads"])
    with torch.no_grad():
        model.tok.copy_(w["token_embedding"])
        position = cfg.get("position", "learned")
        if position == "rope":
            sys.exit(f"{stage}: the PyTorch reference has learned positions or none, not rope")
        if position == "learned":
            model.pos.copy_(w["position_embedding"])
        else:  # position "none": no position signal, the same as adding zeros
            model.pos.zero_()
        model.ln_f.weight.copy_(w["ln_f.gamma"])
        model.ln_f.bias.copy_(w["ln_f.beta"])
        for i, b in enumerate(model.blocks):
            p = f"blocks.{i}."
            b.ln1.weight.copy_(w[p + "ln1.gamma"]), b.ln1.bias.copy_(w[p + "ln1.beta"])
            b.ln2.weight.copy_(w[p + "ln2.gamma"]), b.ln2.bias.copy_(w[p + "ln2.beta"])
            b.qkv.weight.copy_(w[p + "attn.qkv"].T)
            b.proj.weight.copy_(w[p + "attn.proj"].T)
            b.fc.weight.copy_(w[p + "mlp.fc_weight"].T), b.fc.bias.copy_(w[p + "mlp.fc_bias"])
            b.out.weight.copy_(w[p + "mlp.proj_weight"].T), b.out.bias.copy_(w[p + "mlp.proj_bias"])
    return model


def logits(args):
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(f"{args.stage}/tokenizer.json").encode(args.prompt, add_special_tokens=False).ids
    with torch.no_grad():
        out = load_ours(args.stage)(torch.tensor([ids]))[0]
    print(json.dumps({"prompt": args.prompt, "ids": ids, "logits": out.tolist()}))


def train(args):
    torch.manual_seed(0)
    variants = [
        ("eager", False, False, False),
        ("eager+sdpa", True, False, False),
        ("eager+sdpa+fused-adamw", True, True, False),
        ("compile+sdpa+fused-adamw", True, True, True),
    ]
    if args.variants:
        variants = [v for v in variants if v[0] in args.variants.split(",")]
    tokens = args.batch * args.seq
    dev = torch.device(args.device)

    def sync():  # CUDA queues work; time what has finished
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for name, sdpa, fused, compiled in variants:
        model = GPT(args.vocab, args.seq, args.d, args.layers, args.heads, sdpa).to(dev)
        optim = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=fused)
        run = torch.compile(model) if compiled else model
        batch = torch.randint(0, args.vocab, (args.batch, args.seq), device=dev)

        def step():
            logits = run(batch)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, args.vocab), batch[:, 1:].reshape(-1))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()

        try:
            start = time.perf_counter()
            step()
            sync()
            first_step_s = time.perf_counter() - start
            for _ in range(max(args.warmup - 1, 0)):
                step()
            sync()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync()
            train_s = (time.perf_counter() - start) / args.steps
            with torch.no_grad():
                for _ in range(args.warmup):
                    run(batch)
                sync()
                start = time.perf_counter()
                for _ in range(args.steps):
                    run(batch)
                sync()
                forward_s = (time.perf_counter() - start) / args.steps
        except Exception as e:  # torch.compile needs a C compiler; report, don't hide
            print(json.dumps({"variant": name, "error": str(e).splitlines()[0][:200]}), flush=True)
            continue
        print(json.dumps({
            "variant": name,
            "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "first_step_s": first_step_s,
            "train_ms": 1e3 * train_s,
            "train_tokens_per_s": tokens / train_s,
            "forward_ms": 1e3 * forward_s,
            "forward_tokens_per_s": tokens / forward_s,
        }), flush=True)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    for name, default in [("vocab", 65), ("d", 128), ("layers", 4), ("heads", 4), ("seq", 64),
                          ("batch", 32), ("steps", 20), ("warmup", 3), ("threads", 0)]:
        t.add_argument(f"--{name}", type=int, default=default)
    t.add_argument("--variants", default="", help="comma-separated subset")
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    l = sub.add_parser("logits")
    l.add_argument("--from", dest="stage", required=True)
    l.add_argument("--prompt", required=True)
    args = parser.parse_args()
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    train(args) if args.command == "train" else logits(args)


if __name__ == "__main__":
    main()
