"""transformers' `generate` on a folder written by `cargo xtask bench --rollout --vs-transformers`:
the peer a user would reach for, timed on the same checkpoint, batch, prompts and new tokens.

    python bench/transformers_generate.py --hf DIR --prompts prompts.json --new-tokens 52 \
        --threads 2 --repeats 3

Prints one JSON object: tokens/s sampled (do_sample, temperature 1, no top-k) and greedy,
with the versions and the vector unit PyTorch ran (`torch.backends.cpu.get_cpu_capability`).
Needs torch and transformers (the bench's target/pytorch-venv has them).
"""

import argparse
import json
import time

import torch
import transformers
from transformers import GPT2LMHeadModel


def tokens_per_s(model, ids, new_tokens, repeats, sample):
    mask = torch.ones_like(ids)
    elapsed, tokens = 0.0, 0
    for i in range(repeats + 1):
        torch.manual_seed(i)
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=mask,
                do_sample=sample,
                temperature=1.0 if sample else None,
                top_k=0 if sample else None,
                top_p=None,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                use_cache=True,
                pad_token_id=0,
            )
        if i > 0:  # the first batch is warmup
            elapsed += time.perf_counter() - start
            tokens += (out.shape[1] - ids.shape[1]) * out.shape[0]
    return tokens / elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hf", required=True, help="the exported model folder")
    parser.add_argument("--prompts", required=True, help="JSON list of token-id lists, one per row")
    parser.add_argument("--new-tokens", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = GPT2LMHeadModel.from_pretrained(args.hf, dtype=torch.float32).eval()
    ids = torch.tensor(json.load(open(args.prompts)), dtype=torch.long)
    result = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "vector_unit": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "sampled_tokens_per_s": tokens_per_s(model, ids, args.new_tokens, args.repeats, True),
        "greedy_tokens_per_s": tokens_per_s(model, ids, args.new_tokens, args.repeats, False),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
