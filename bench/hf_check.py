"""Hugging Face transformers itself loads a folder from `cargo xtask export` and must agree with us:

    cargo xtask export --from runs/NAME/STAGE --out DIR
    cargo xtask logits --from runs/NAME/STAGE --prompt "3+4+5=" --out l.json
    python bench/hf_check.py --hf DIR --expect l.json

`AutoTokenizer` must give our token ids, `AutoModelForCausalLM` our logits to --tolerance, and
`model.generate` (greedy, stopping at generation_config.json's eos) our greedy completion,
token for token. Needs torch and transformers (e.g. in the bench's target/pytorch-venv).
"""

import argparse
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hf", required=True, help="a folder written by `cargo xtask export`")
    parser.add_argument("--expect", required=True, help="JSON from `cargo xtask logits`")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    expected = json.load(open(args.expect))
    tokenizer = AutoTokenizer.from_pretrained(args.hf)
    model = AutoModelForCausalLM.from_pretrained(args.hf, dtype=torch.float32).eval()
    ids = tokenizer(expected["prompt"], add_special_tokens=False)["input_ids"]
    if ids != expected["ids"]:
        print(f"token ids differ:\n transformers {ids}\n rust         {expected['ids']}")
        return 1
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids).logits[0].double()
        err = float((logits - torch.tensor(expected["logits"], dtype=torch.float64)).abs().max())
        room = model.config.n_positions - len(ids)
        out = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=room,
        )
    completion = out[0, len(ids):].tolist()
    print(
        f"transformers {type(model).__name__}: {len(ids)} tokens, ids equal, "
        f"max |logit diff| = {err:.2e}"
    )
    same = completion == expected["greedy"]
    text = tokenizer.decode(completion)
    print(
        f"greedy completion {text!r} ({len(completion)} tokens) "
        + ("equal" if same else f"differs:\n transformers {completion}\n rust         {expected['greedy']}")
    )
    return 0 if err <= args.tolerance and same else 1


if __name__ == "__main__":
    sys.exit(main())
