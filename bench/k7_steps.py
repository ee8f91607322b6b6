#!/usr/bin/env python3
"""How many steps a checkpoint writes in its trace for K-digit sums it was never shown:
samples 4 completions (temperature 1) for each of 25 random K-digit prompts with
`cargo xtask sample` and counts the `=` signs inside `{…}`. A right K = 7 trace has 6.

    python3 bench/k7_steps.py runs/chain/seed-0/rlvr [K]     # K defaults to 7
"""

import collections
import random
import subprocess
import sys

XTASK = "./target/release/xtask"


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    source = sys.argv[1]
    k = int(sys.argv[2]) if len(sys.argv) == 3 else 7
    rng = random.Random(7)
    steps = collections.Counter()
    for _ in range(25):
        prompt = "+".join(str(rng.randrange(10)) for _ in range(k)) + "="
        for seed in range(4):
            out = subprocess.run(
                [XTASK, "sample", "--from", source, "--prompt", prompt, "--max-tokens", "64",
                 "--temperature", "1.0", "--seed", str(seed)],
                capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]
            trace = out[len(prompt):].split("}")[0]
            steps[trace.count("=")] += 1
    total = sum(steps.values())
    print(f"{source}: steps written in {total} K={k} samples at temperature 1: "
          f"{dict(sorted(steps.items()))} (a right trace has {k - 1})")


if __name__ == "__main__":
    main()
