"""An independent check of our model and tokenizer: a NumPy forward pass of the lesson-01 GPT
read from one of our checkpoints, and Python `tokenizers` reading our tokenizer.json.

    python3 bench/parity.py --from runs/NAME/STAGE --expect logits.json

`logits.json` comes from `cargo xtask logits --from runs/NAME/STAGE --prompt ... --out logits.json`.
Exits non-zero when the token ids differ or any logit differs by more than --tolerance.
Needs numpy, safetensors and tokenizers from PyPI.
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


def forward(w, cfg, ids):
    """Lesson 01: tok + pos, L pre-norm blocks (fused QKV, causal softmax attention, 4x MLP),
    final LayerNorm, head tied to the token embedding. Shapes: weights are [in, out]."""
    d, h = cfg["d_model"], cfg["n_heads"]
    hd = d // h
    t = len(ids)
    x = w["token_embedding"][ids] + w["position_embedding"][:t]
    mask = np.triu(np.ones((t, t), dtype=bool), k=1)
    for layer in range(cfg["n_layers"]):
        p = f"blocks.{layer}."
        a = layer_norm(x, w[p + "ln1.gamma"], w[p + "ln1.beta"])
        qkv = (a @ w[p + "attn.qkv"]).reshape(t, 3, h, hd)
        q, k, v = (qkv[:, i].transpose(1, 0, 2) for i in range(3))  # [h, t, hd]
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        scores[:, mask] = -np.inf
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        y = (scores @ v).transpose(1, 0, 2).reshape(t, d)
        x = x + y @ w[p + "attn.proj"]
        m = layer_norm(x, w[p + "ln2.gamma"], w[p + "ln2.beta"])
        m = gelu(m @ w[p + "mlp.fc_weight"] + w[p + "mlp.fc_bias"])
        x = x + m @ w[p + "mlp.proj_weight"] + w[p + "mlp.proj_bias"]
    x = layer_norm(x, w["ln_f.gamma"], w["ln_f.beta"])
    return x @ w["token_embedding"].T


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="stage", required=True, help="a stage folder")
    parser.add_argument("--expect", required=True, help="JSON from `cargo xtask logits`")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    expected = json.load(open(args.expect))
    tokenizer = Tokenizer.from_file(f"{args.stage}/tokenizer.json")
    ids = tokenizer.encode(expected["prompt"], add_special_tokens=False).ids
    if ids != expected["ids"]:
        print(f"token ids differ:\n python {ids}\n rust   {expected['ids']}")
        return 1

    with safe_open(f"{args.stage}/model.safetensors", framework="numpy") as f:
        cfg = json.loads(f.metadata()["gpt_config"])
        weights = {k: f.get_tensor(k).astype(np.float64) for k in f.keys()}
    logits = forward(weights, cfg, np.array(ids))
    ours = np.array(expected["logits"], dtype=np.float64)
    err = float(np.abs(logits - ours).max())
    print(f"{len(ids)} tokens, vocab {cfg['vocab_size']}: ids equal, max |logit diff| = {err:.2e}")
    return 0 if err <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
