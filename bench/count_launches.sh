#!/usr/bin/env bash
# Kernel launches per training step + forward pass on the wgpu backend, from CubeCL's own
# kernel log. A GPU step of this tiny model is bound by launches and host work, not by the
# GPU, so the count is the figure to watch when no GPU is at hand (Mesa's lavapipe is enough).
#
#   cargo build --release -p xtask --features wgpu
#   XDG_RUNTIME_DIR=/tmp bench/count_launches.sh [max_blocks]
#
# max_blocks (optional) sets Burn's fusion search width (`[fusion.beam_search] max_blocks`,
# default 5) through a burn.toml in the scratch folder. The lesson shape runs with batch 4:
# the launch count does not depend on the batch size, lavapipe's run time does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
xtask="$root/target/release/xtask"
[ -x "$xtask" ] || { echo "build first: cargo build --release -p xtask --features wgpu" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
printf '[profiling.logger]\nlevel = "minimal"\nfile = "%s/kernels.log"\n' "$scratch" > cubecl.toml
if [ -n "${1:-}" ]; then printf '[fusion.beam_search]\nmax_blocks = %s\n' "$1" > burn.toml; fi
count() { # launches logged by a run with $1 timed steps (after one warmup step)
  rm -f kernels.log
  "$xtask" bench --device wgpu --steps "$1" --warmup 1 --batch 4 --seq-len 64 > "bench-$1.txt"
  cp kernels.log "kernels-$1.log"
  wc -l < kernels.log
}
# The first runs fill the autotune cache; only the difference between two warm runs counts.
count 2 > /dev/null
two=$(count 2); four=$(count 4)
echo "kernel launches per training step + forward pass: $(( (four - two) / 2 ))"
echo "by kernel (per step + pass):"
diff <(cut -d'|' -f1 kernels-2.log | sort) <(cut -d'|' -f1 kernels-4.log | sort) \
  | grep '^>' | cut -c3- | sed 's/^Executing //; s/_[0-9a-f]\{8\} *$//; s/ *$//' \
  | sort | uniq -c | awk '{ $1 = $1 / 2; print }' | sort -rn | head -15
