#!/usr/bin/env python3
"""Curves across a sweep's seeds that its report card does not tabulate: SFT's mask ablation
per evaluation step and RLVR's dead-group rate and live groups per logged window, as mean ± sd
over seeds (Markdown). Reads only the seeds' metrics files.

    python3 bench/sweep_curves.py runs/chain            # every seed-S folder in it
"""

import json
import statistics
import sys
from pathlib import Path


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def by_step(path, key):
    return {r["step"]: r[key] for r in rows(path) if key in r and r[key] is not None}


def cell(values, scale=1.0, digits=1):
    values = [scale * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(title, label, curves, steps, scale, digits):
    print(f"\n{title}\n")
    print("| " + " | ".join(["step"] + [str(s) for s in steps]) + " |")
    print("|" + "---|" * (len(steps) + 1))
    for name, per_seed in curves:
        cells = [cell([c[s] for c in per_seed if s in c], scale, digits) for s in steps]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n({label})")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sweep = Path(sys.argv[1])
    seeds = sorted(p for p in sweep.glob("seed-*") if p.is_dir())
    if not seeds:
        sys.exit(f"{sweep}: no seed-S folders")
    names = ", ".join(p.name for p in seeds)

    sft = [
        (mode, [by_step(s / "sft" / file, "eval/accuracy") for s in seeds])
        for mode, file in [("prompt masked", "metrics.jsonl"), ("unmasked", "metrics.unmasked.jsonl")]
    ]
    steps = sorted(set.intersection(*[set(c) for _, cs in sft for c in cs]))
    table("SFT: held-out reverse-word accuracy (%)", names, sft, steps, 100.0, 1)

    dead = [(key, [by_step(s / "rlvr" / "metrics.jsonl", key) for s in seeds])
            for key in ["frac_reward_zero_std", "live_groups", "reward"]]
    logged = sorted(set.intersection(*[set(c) for c in dead[0][1]]))
    steps = [s for s in logged if s == logged[0] or s % 100 == 0]
    table("RLVR: per 20-step window", names, dead, steps, 1.0, 3)


if __name__ == "__main__":
    main()
