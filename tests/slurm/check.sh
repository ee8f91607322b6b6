#!/usr/bin/env bash
# `sweep --launcher slurm` against a live one-node cluster (tests/slurm/cluster.sh), run by
# .ci/run after the suite, with the suite's release binary:
#   1. the tiny sweep, 2 seeds × a 2-value grid, locally and through Slurm: the report is
#      written and all 20 checkpoints hash the same either way; with --no-wait, the job ids
#      come back at once and the report follows;
#   2. a task killed while it runs: the sweep exits non-zero naming the run and its log, the
#      report job does not hang, and the same command then resubmits only that run;
#   3. a partition the cluster does not have is refused in one line.
# The cluster is brought up in a temporary folder and torn down (its own daemons, by pid)
# whatever happens.
#
#   tests/slurm/check.sh [XTASK]    (default: target/release/xtask)
set -euo pipefail
cd "$(dirname "$0")/../.."
xtask="$(realpath "${1:-target/release/xtask}")"
[ -x "$xtask" ] || { echo "slurm check: no xtask binary at $xtask (build it first)" >&2; exit 1; }

work=$(mktemp -d)
cluster="$work/cluster"
trap 'tests/slurm/cluster.sh down "$cluster" || true; rm -rf "$work"' EXIT
tests/slurm/cluster.sh up "$cluster"
export SLURM_CONF="$cluster/slurm.conf"

fail() {
    echo "slurm check: FAILED: $*" >&2
    exit 1
}
show_and_fail() { # LOG MESSAGE
    cat "$1" >&2
    fail "$2"
}

echo "slurm check: 1. the tiny grid, locally and on Slurm"
grid=(sweep --seeds 0,1 --grid dpo.loss.loss_type=sigmoid,orpo --config tests/tiny.toml
    --quiet --run g)
start=$SECONDS
"$xtask" "${grid[@]}" --runs-dir "$work/local" 2>"$work/local.log" \
    || show_and_fail "$work/local.log" "the local sweep"
local_s=$((SECONDS - start))
start=$SECONDS
"$xtask" "${grid[@]}" --runs-dir "$work/slurm" --launcher slurm 2>"$work/slurm.log" \
    || show_and_fail "$work/slurm.log" "the Slurm sweep"
slurm_s=$((SECONDS - start))
grep -q "4 of 4 runs submitted" "$work/slurm.log" || show_and_fail "$work/slurm.log" "submission"
[ -s "$work/slurm/g/report.md" ] || fail "the Slurm sweep wrote no report"
grep -q "## After dpo" "$work/slurm/g/report.md" || fail "the grid report has no DPO section"
hashes() { # RUNS_DIR: every stage's checkpoint hash, by run and stage
    (cd "$1" && grep -o '"checkpoint_hash": *"[0-9a-f]*"' -r --include=manifest.json . | sort)
}
hashes "$work/local" >"$work/local.hashes"
hashes "$work/slurm" >"$work/slurm.hashes"
[ "$(wc -l <"$work/local.hashes")" -eq 20 ] || fail "expected 20 checkpoints locally"
diff "$work/local.hashes" "$work/slurm.hashes" || fail "checkpoints differ between launchers"
echo "slurm check: 20 checkpoints the same; local ${local_s} s, Slurm ${slurm_s} s"

# --no-wait: the two job ids on stdout at once; the report appears when the jobs are done.
ids=$("$xtask" sweep --seeds 0 --config tests/tiny.toml --quiet --run nowait \
    --runs-dir "$work/nowait" --launcher slurm --no-wait 2>"$work/nowait.log") \
    || show_and_fail "$work/nowait.log" "the --no-wait sweep"
[[ "$ids" =~ ^[0-9]+\ [0-9]+$ ]] || fail "--no-wait printed '$ids', not two job ids"
for _ in $(seq 600); do
    [ -n "$(squeue -h -j "${ids/ /,}" 2>/dev/null)" ] || break
    sleep 0.1
done
[ -s "$work/nowait/nowait/report.md" ] || fail "no report after the --no-wait jobs ended"

echo "slurm check: 2. a task killed while it runs"
# Slower runs (a longer pretraining), so that task 1 is surely still running when killed.
slow=(sweep --seeds 0,1 --config tests/tiny.toml --quiet --run k --set pretrain.steps=3000
    --launcher slurm --runs-dir "$work/killed")
"$xtask" "${slow[@]}" 2>"$work/killed.log" &
sweep_pid=$!
job=""
for _ in $(seq 600); do
    job=$(sed -n 's/.*submitted as job array \([0-9]*\).*/\1/p' "$work/killed.log")
    # Running, and past its script's first line (its log exists): killed mid-training.
    if [ -n "$job" ] && squeue -h -j "$job" -o "%i %T" | grep -q "^${job}_1 RUNNING" \
        && [ -s "$work/killed/k/logs/seed-1.log" ]; then
        break
    fi
    sleep 0.1
done
[ -n "$job" ] || show_and_fail "$work/killed.log" "the slow sweep was not submitted"
scancel "${job}_1"
status=0
timeout 600 tail --pid="$sweep_pid" -f /dev/null || fail "the sweep did not return"
wait "$sweep_pid" || status=$?
[ "$status" -ne 0 ] || show_and_fail "$work/killed.log" "a killed task, yet the sweep succeeded"
grep -q "run k/seed-1 (task ${job}_1) did not finish; its log: $work/killed/k/logs/seed-1.log" \
    "$work/killed.log" || show_and_fail "$work/killed.log" "the killed run is not named"
grep -q "^error: 1 of 2 submitted runs failed on Slurm" "$work/killed.log" \
    || show_and_fail "$work/killed.log" "the error line"
[ -f "$work/killed/k/logs/seed-1.log" ] || fail "the killed run's log is missing"
[ -z "$(squeue -h)" ] || fail "jobs left in the queue: $(squeue -h)"
"$xtask" "${slow[@]}" 2>"$work/resumed.log" \
    || show_and_fail "$work/resumed.log" "the resubmitted sweep"
grep -q "1 of 2 runs submitted" "$work/resumed.log" \
    || show_and_fail "$work/resumed.log" "not only the killed run was resubmitted"
[ -s "$work/killed/k/report.md" ] || fail "no report after the resubmission"

echo "slurm check: 3. a partition the cluster does not have"
if "$xtask" "${grid[@]}" --runs-dir "$work/slurm" --launcher slurm --partition nosuch \
    2>"$work/partition.log"; then
    fail "an unknown partition was accepted"
fi
[ "$(wc -l <"$work/partition.log")" -eq 1 ] || show_and_fail "$work/partition.log" "one line"
grep -q "no such partition (sinfo lists: debug)" "$work/partition.log" \
    || show_and_fail "$work/partition.log" "the partition error"

echo "slurm check: passed"
