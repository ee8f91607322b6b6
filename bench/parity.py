"""An independent check of our model and tokenizer: a NumPy forward pass of the lesson-01 GPT
read from one of our checkpoints, and Python `tokenizers` reading our tokenizer.json.

    python3 bench/parity.py --from runs/NAME/STAGE --expect logits.json
    python3 bench/parity.py --hf DIR --expect logits.json

`logits.json` comes from `cargo xtask logits --from runs/NAME/STAGE --prompt ... --out logits.json`.
With `--hf`, DIR is a folder written by `cargo xtask export`: the weights are read by
transformers' GPT-2 names and the shape by its config.json (transformers' own GPT-2 forward,
written out in NumPy, biases included), and the greedy completion must also match ours, token for
token, stopping at generation_config.json's eos_token_id.
Exits non-zero when the token ids differ, any logit differs by more than --tolerance, or (with
--hf) the greedy completions differ. Needs numpy, safetensors and tokenizers from PyPI.
"""

import argparse
import json
import math
import sys

import numpy as np
from safetensors import safe_open
from tokenizers import Tokenizer


def layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


erf = np.vectorize(math.erf)


def gelu(x):  # exact GELU, as the model uses
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def causal_attention(q, k, v):
    """softmax(q·kᵀ / sqrt(hd)) · v per head, position t seeing positions ≤ t: [h, t, hd]."""
    t, hd = q.shape[1], q.shape[2]
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
    scores[:, np.triu(np.ones((t, t), dtype=bool), k=1)] = -np.inf
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    return scores @ v


def rope(x):
    """RoFormer's rotary embedding, GPT-NeoX's half-split form: the two halves of each head's
    vector are the coordinates of hd/2 planes, plane i at position p turned by
    p * 10000^(-2i/hd). x: [h, t, hd]."""
    t, hd = x.shape[1], x.shape[2]
    half = hd // 2
    angle = np.arange(t)[:, None] * 10000.0 ** (-2.0 * np.arange(half) / hd)  # [t, half]
    cos, sin = np.cos(angle), np.sin(angle)
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def forward(w, cfg, ids):
    """Lesson 01: tok + pos (learned, or none), L pre-norm blocks (fused QKV, causal softmax attention, 4x MLP),
    final LayerNorm, head tied to the token embedding. Shapes: weights are [in, out]."""
    d, h = cfg["d_model"], cfg["n_heads"]
    hd = d // h
    t = len(ids)
    position = cfg.get("position", "learned")
    x = w["token_embedding"][ids]
    if position == "learned":
        x = x + w["position_embedding"][:t]
    # "none" (NoPE): nothing is added; "rope": queries and keys are turned below.
    for layer in range(cfg["n_layers"]):
        p = f"blocks.{layer}."
        a = layer_norm(x, w[p + "ln1.gamma"], w[p + "ln1.beta"])
        qkv = (a @ w[p + "attn.qkv"]).reshape(t, 3, h, hd)
        q, k, v = (qkv[:, i].transpose(1, 0, 2) for i in range(3))  # [h, t, hd]
        if position == "rope":
            q, k = rope(q), rope(k)
        y = causal_attention(q, k, v).transpose(1, 0, 2).reshape(t, d)
        x = x + y @ w[p + "attn.proj"]
        m = layer_norm(x, w[p + "ln2.gamma"], w[p + "ln2.beta"])
        m = gelu(m @ w[p + "mlp.fc_weight"] + w[p + "mlp.fc_bias"])
        x = x + m @ w[p + "mlp.proj_weight"] + w[p + "mlp.proj_bias"]
    x = layer_norm(x, w["ln_f.gamma"], w["ln_f.beta"])
    return x @ w["token_embedding"].T


def forward_gpt2(w, cfg, ids):
    """transformers' GPT2LMHeadModel as its config.json describes it (Conv1D weights are
    [in, out]; c_attn's output splits into q, k, v), with the head tied to wte."""
    if cfg.get("activation_function") != "gelu":
        raise SystemExit(f"activation_function {cfg.get('activation_function')!r} is not exact GELU")
    d, h, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    hd = d // h
    t = len(ids)
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][:t]
    for layer in range(cfg["n_layer"]):
        p = f"transformer.h.{layer}."
        a = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (m.reshape(t, h, hd).transpose(1, 0, 2) for m in np.split(qkv, 3, axis=-1))
        y = causal_attention(q, k, v).transpose(1, 0, 2).reshape(t, d)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = gelu(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["transformer.wte.weight"]
    return x @ head.T


def greedy(forward_fn, ids, block_size, eos):
    """Argmax continuation up to and including eos, or to the end of the block."""
    seq, out = list(ids), []
    while len(seq) < block_size:
        token = int(np.argmax(forward_fn(np.array(seq))[-1]))
        out.append(token)
        seq.append(token)
        if token == eos:
            break
    return out


def load(path):
    with safe_open(path, framework="numpy") as f:
        return f.metadata() or {}, {k: f.get_tensor(k).astype(np.float64) for k in f.keys()}


def main():
    parser = argparse.ArgumentParser()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="stage", help="a stage folder")
    source.add_argument("--hf", help="a folder written by `cargo xtask export`")
    parser.add_argument("--expect", required=True, help="JSON from `cargo xtask logits`")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    folder = args.stage or args.hf
    expected = json.load(open(args.expect))
    tokenizer = Tokenizer.from_file(f"{folder}/tokenizer.json")
    ids = tokenizer.encode(expected["prompt"], add_special_tokens=False).ids
    if ids != expected["ids"]:
        print(f"token ids differ:\n python {ids}\n rust   {expected['ids']}")
        return 1

    metadata, weights = load(f"{folder}/model.safetensors")
    if args.hf:
        cfg = json.load(open(f"{folder}/config.json"))
        eos = json.load(open(f"{folder}/generation_config.json"))["eos_token_id"]
        run = lambda seq: forward_gpt2(weights, cfg, seq)  # noqa: E731
        vocab, block = cfg["vocab_size"], cfg["n_positions"]
    else:
        cfg = json.loads(metadata["gpt_config"])
        run = lambda seq: forward(weights, cfg, seq)  # noqa: E731
        vocab, block = cfg["vocab_size"], cfg["block_size"]
    logits = run(np.array(ids))
    ours = np.array(expected["logits"], dtype=np.float64)
    err = float(np.abs(logits - ours).max())
    print(f"{len(ids)} tokens, vocab {vocab}: ids equal, max |logit diff| = {err:.2e}")
    ok = err <= args.tolerance
    if args.hf:
        completion = greedy(run, ids, block, eos)
        same = completion == expected["greedy"]
        print(f"greedy completion ({len(completion)} tokens) "
              + ("equal" if same else f"differs:\n python {completion}\n rust   {expected['greedy']}"))
        ok = ok and same
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
