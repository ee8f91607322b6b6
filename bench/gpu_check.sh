#!/usr/bin/env bash
# The GPU check of issue 7 in one device call: our wgpu training step against PyTorch CUDA on
# the same card, then two plain warm runs. What to expect is in docs/perf.md ("Why the wgpu
# step is slow"): the step launches 338 kernels, down from 818 when last timed on a GPU. The
# device has no Rust toolchain: build here, strip, gzip, and carry the binary with the Vulkan
# loader packages.
#
#   cargo build --release -p xtask --features wgpu
#   mkdir -p .devbin && strip -o .devbin/xtask target/release/xtask && gzip -f .devbin/xtask
#   device run, carry [".gl", ".devbin"]:  bash bench/gpu_check.sh .devbin/xtask.gz
#
# .gl holds the Vulkan loader packages (the device README says how to fetch them); $OUT, set
# by the device tool, receives the logs.
set -uo pipefail
binary=${1:?usage: gpu_check.sh path/to/xtask.gz}
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
gunzip -c "$binary" > /tmp/xtask && chmod +x /tmp/xtask
nvidia-smi -L
echo "== 1. against PyTorch CUDA (first step is cold: kernel compilation and autotune)"
timeout 240 /tmp/xtask bench --device wgpu --vs-pytorch --torch-python python3 --steps 50 --warmup 5 2>&1 | tee "$out/vs-pytorch.log"
for attempt in a b; do
  echo "== 2$attempt. warm"
  timeout 60 /tmp/xtask bench --device wgpu --steps 50 --warmup 5 2>&1 | tee "$out/warm-$attempt.log"
done
