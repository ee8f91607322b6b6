#!/usr/bin/env python3
"""Greedy held-out accuracy per K of stage folders from runs made outside one sweep (e.g. a
stage rerun with `xtask stage --from` and other settings), mean ± sd over seeds, and each
column's change from the first, paired by seed, marked with the sweep report's noise test
(a port of `report::stats::change`: the 95% t-interval of the paired differences excludes 0,
their spread floored at the binomial error of one held-out set).

    python3 bench/compare_stages.py --ks 6,7,8,9,10 \
        --column "parent=runs/probe/seed-{s}/dpo" --column "rlvr=runs/cur/seed-{s}/rlvr" \
        --seeds 0,1,2

Each column is NAME=PATH with `{s}` standing for the seed (NAME without `=`); PATH/skills.json
is read (every skill after training), or PATH/eval.json where there is none.
"""

import argparse
import json
import math
import sys

T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


def mean_sd(values):
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def change(diffs, n_problems, accuracy):
    mean, sd = mean_sd(diffs)
    if len(diffs) < 2:
        return mean, ""
    p = (accuracy * n_problems + 1) / (n_problems + 2)
    floor = math.sqrt(2 * p * (1 - p) / n_problems)
    se = max(sd, floor) / math.sqrt(len(diffs))
    if abs(mean) > T95[len(diffs) - 2] * se:
        return mean, "▲" if mean > 0 else "▼"
    return mean, "~"


def accuracies(path):
    """{skill: (accuracy, n)} of a stage folder: `reverse` and each K of the CoT digit sums, from
    its skills.json (every skill, measured after training), else its eval.json."""
    for name in ("skills.json", "eval.json"):
        try:
            with open(f"{path}/{name}") as f:
                data = json.load(f)
            break
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            sys.exit(f"error: {path}/{name}: {e}")
    else:
        sys.exit(f"error: {path}: neither skills.json nor eval.json")
    rows = data["rows"] if isinstance(data, dict) else data
    out = {}
    for r in rows:
        if r.get("task") == "digit_sum" and r.get("mode") == "cot":
            out[r["k"]] = (r["accuracy"], r["n"])
        elif r.get("task") == "reverse":
            out["reverse"] = (r["accuracy"], r["n"])
    return out


def pass_at(path):
    """{K: {"1": pass@1, …}} of PATH/pass_at_k.json (written by `xtask eval --samples N --out
    PATH/suite.json`), else of a stage folder's skills.json (its `pass_at_k` rows)."""
    for name in ("pass_at_k.json", "skills.json"):
        try:
            with open(f"{path}/{name}") as f:
                data = json.load(f)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            sys.exit(f"error: {path}/{name}: {e}")
        rows = data.get("pass_at_k") or [] if isinstance(data, dict) else data
        return {r["k"]: r["pass_at"] for r in rows}
    sys.exit(f"error: {path}: neither pass_at_k.json nor skills.json")


def pass_at_k_table(columns, seeds, ks):
    """Mean ± sd over seeds of pass@1, 2, 4, … per K, then each seed's pass@1 and pass@8."""
    rows = []
    for name, path in columns:
        per_seed = [pass_at(path.format(s=s)) for s in seeds]
        for k in ks:
            if not all(k in seed for seed in per_seed):
                continue
            ats = sorted(per_seed[0][k], key=int)
            rows.append((k, name, ats, [[seed[k][a] for seed in per_seed] for a in ats]))
    header = max((r[2] for r in rows), key=len, default=[])
    print("| K | stage | " + " | ".join(f"pass@{a}" for a in header) + " | per seed: pass@1; pass@8 |")
    print("|---|---" + "|---" * len(header) + "|---|")
    for k, name, ats, values in sorted(rows, key=lambda r: r[0]):
        cells = []
        for v in values:
            mean, sd = mean_sd(v)
            cells.append(f"{100 * mean:.1f} ± {100 * sd:.1f}")
        by_at = dict(zip(ats, values))
        seeds_cell = "; ".join(
            ", ".join(f"{100 * v:.1f}" for v in by_at[a]) for a in ("1", "8") if a in by_at
        )
        print(f"| {k} | {name} | " + " | ".join(cells) + f" | {seeds_cell} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--column", action="append", required=True, help="NAME=PATH with {s}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ks", default="2,3,4,5,6,7,8,9,10")
    parser.add_argument(
        "--pass-at-k",
        action="store_true",
        help="pass@k per K instead, from each PATH/pass_at_k.json (eval's --out folder) or a "
        "stage folder's skills.json",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.pass_at_k:
        pairs = [c.partition("=")[::2] for c in args.column]
        ks = [int(k) for k in args.ks.split(",")]
        return pass_at_k_table(pairs, seeds, ks)
    ks = ["reverse"] + [int(k) for k in args.ks.split(",")]
    columns = []
    for column in args.column:
        name, _, path = column.partition("=")
        if not path:
            sys.exit(f"error: --column {column!r}: expected NAME=PATH")
        columns.append((name, [accuracies(path.format(s=s)) for s in seeds]))
    print("| skill | " + " | ".join(name for name, _ in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for k in ks:
        cells = []
        base = [runs[k][0] for runs in columns[0][1] if k in runs]
        for i, (_, runs) in enumerate(columns):
            values = [r[k][0] for r in runs if k in r]
            if len(values) != len(seeds):
                cells.append("—")
                continue
            mean, sd = mean_sd(values)
            cell = f"{100 * mean:.1f} ± {100 * sd:.1f}"
            if i > 0 and len(base) == len(values):
                diffs = [v - b for v, b in zip(values, base)]
                n = max(r[k][1] for r in runs)
                mid = mean_sd([(v + b) / 2 for v, b in zip(values, base)])[0]
                delta, mark = change(diffs, n, mid)
                cell += f" ({100 * delta:+.1f} {mark})"
            cells.append(cell)
        label = "reverse words" if k == "reverse" else f"K = {k}"
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
