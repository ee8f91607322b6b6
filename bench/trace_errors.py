#!/usr/bin/env python3
"""What goes wrong in a checkpoint's sampled chain-of-thought traces at one K: each of N random
problems is continued S times at temperature 1 with `xtask sample` (seeds 0..S-1), and each
trace is sorted into right, an arithmetic slip (a running total that is not the sum), a wrong
operand (a step that adds another digit than the next one), a wrong step count, or other
(unparseable). Needs `cargo build --release -p xtask` first.

    python3 bench/trace_errors.py runs/chain/seed-0/rlvr --k 7 --problems 40 --samples 4
"""

import argparse
import random
import subprocess


def classify(digits, completion):
    body = completion.split("#")[0]
    if not body.startswith("{") or "}" not in body:
        return "other"
    steps_text, _, answer = body[1:].partition("}")
    steps = steps_text.split(";")
    total = digits[0]
    for j, step in enumerate(steps):
        try:
            lhs, rhs = step.split("=")
            a, b = (int(x) for x in lhs.split("+"))
            rhs = int(rhs)
        except ValueError:
            return "other"
        if j + 1 >= len(digits) or a != total or b != digits[j + 1]:
            return "count" if j + 1 >= len(digits) else "operand"
        if rhs != total + b:
            return "slip"
        total = rhs
    if len(steps) != len(digits) - 1:
        return "count"
    return "right" if answer == str(total) else "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a stage folder")
    parser.add_argument("--k", type=int, default=7)
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7, help="the problems' seed")
    parser.add_argument("--show", type=int, default=8, help="wrong traces to print")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts = {kind: 0 for kind in ("right", "slip", "operand", "count", "other")}
    shown = 0
    for _ in range(args.problems):
        digits = [rng.randint(0, 9) for _ in range(args.k)]
        prompt = "+".join(map(str, digits)) + "="
        for s in range(args.samples):
            out = subprocess.run(
                ["target/release/xtask", "sample", "--from", args.checkpoint, "--prompt", prompt,
                 "--temperature", "1", "--seed", str(s), "--max-tokens", str(12 * args.k)],
                capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]
            kind = classify(digits, out[len(prompt):])
            counts[kind] += 1
            if kind != "right" and shown < args.show:
                print(f"{kind:8} {out.split('#')[0]}#")
                shown += 1
    n = sum(counts.values())
    print(", ".join(f"{kind} {c}/{n} ({100 * c / n:.1f}%)" for kind, c in counts.items()))


if __name__ == "__main__":
    main()
