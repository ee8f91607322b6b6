#!/usr/bin/env bash
# Does a change move any result? Runs the quick pipeline with two xtask binaries (say, one built
# before a refactor and one after) and compares what they made:
#   - the five checkpoints, by SHA-256;
#   - the report card: the second binary's `report` on the first binary's run folder must give
#     the same bytes as the first binary's own (the report holds wall times and throughput, so
#     two runs' reports differ in those cells even when every weight is the same).
# Exits non-zero on any difference. About two runs of `pipeline --quick` (2-4 min on 2 cores).
#
#   git stash; cargo build --release -p xtask; cp target/release/xtask /tmp/xtask-before
#   git stash pop; cargo build --release -p xtask
#   bench/same_chain.sh /tmp/xtask-before target/release/xtask
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 BEFORE_XTASK AFTER_XTASK" >&2
    exit 2
fi
before=$(realpath "$1")
after=$(realpath "$2")
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for side in before after; do
    bin=${!side}
    echo "$side: $bin pipeline --quick"
    "$bin" pipeline --quick --runs-dir "$work/$side" --run quick --quiet >"$work/$side.log" 2>&1 \
        || { tail -5 "$work/$side.log"; exit 1; }
done

status=0
(cd "$work/before/quick" && sha256sum */model.safetensors) >"$work/before.sha"
(cd "$work/after/quick" && sha256sum */model.safetensors) >"$work/after.sha"
if diff "$work/before.sha" "$work/after.sha"; then
    echo "checkpoints: the same ($(wc -l <"$work/before.sha") files)"
else
    echo "checkpoints: DIFFERENT"
    status=1
fi

(cd "$work/before/quick" && sha256sum report.md report.html report/*.svg) >"$work/report.sha"
"$after" report --runs-dir "$work/before" --run quick 2>/dev/null
if (cd "$work/before/quick" && sha256sum --quiet -c "$work/report.sha"); then
    echo "report on the same run folder: the same bytes ($(wc -l <"$work/report.sha") files)"
else
    echo "report on the same run folder: DIFFERENT"
    status=1
fi
exit $status
