//! The one rule that decides which implementation a kernel runs on a tensor's device.
//!
//! [`KernelPath::of`] reads it off the device:
//! - **flex** (Burn's CPU backend), with autodiff or without → [`KernelPath::FusedCpu`];
//! - **any other device under autodiff** (training on a GPU) → [`KernelPath::GpuOps`];
//! - **any other device without autodiff** (a GPU's forward-only passes) → [`KernelPath::Burn`].
//!
//! Every entry point of this crate matches on it, and so does the trainer's choice of optimizer.
//! What each one runs on each path:
//!
//! | entry point | `FusedCpu` | `GpuOps` | `Burn` |
//! |---|---|---|---|
//! | [`matmul`](crate::matmul()), [`linear`](crate::linear) | gemm straight into the output | Burn's `matmul` | Burn's `matmul` |
//! | [`gelu`](crate::gelu()) | the fused, vectorised GELU | Burn's `gelu` | Burn's `gelu` |
//! | [`layer_norm`](crate::layer_norm()) | Burn's `LayerNorm` (one kernel on flex) | one operation with its own backward | Burn's `LayerNorm` |
//! | [`causal_attention`](crate::causal_attention) | two products around the fused causal softmax | Burn's products around the GPU causal softmax (one operation) | Burn's fused `attention` |
//! | the optimizer (`trainer::step`) | Burn's AdamW, tensor by tensor | one flat AdamW | one flat AdamW |
//!
//! On the `FusedCpu` path each kernel's loop then picks the CPU's widest vector unit at run time
//! (`simd_kernel!`, in `simd.rs`).
//!
//! Why three paths: on the CPU the fused kernels beat Burn's operations; a GPU pays per kernel
//! launch, so under autodiff it wants few operations, each with a backward that fusion can join;
//! and a GPU's forward-only pass already fuses well through Burn's own operations.

use burn::tensor::Device;

/// Which implementation of a kernel runs on a device; see the module doc for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// Flex, with or without autodiff: this crate's fused CPU kernels.
    FusedCpu,
    /// Another device under autodiff: this crate's GPU operations, each one autodiff node with a
    /// hand-written backward.
    GpuOps,
    /// Another device without autodiff: Burn's own operations.
    Burn,
}

impl KernelPath {
    /// The rule: flex → `FusedCpu`; otherwise autodiff → `GpuOps`, else `Burn`.
    pub fn of(device: &Device) -> Self {
        // Device equality ignores autodiff: a flex autodiff device equals `Device::flex()`.
        if *device == Device::flex() {
            KernelPath::FusedCpu
        } else if device.is_autodiff() {
            KernelPath::GpuOps
        } else {
            KernelPath::Burn
        }
    }

    /// Whether the device is the CPU (flex), where the fused CPU kernels run.
    pub fn is_cpu(self) -> bool {
        self == KernelPath::FusedCpu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_takes_the_fused_cpu_path_with_or_without_autodiff() {
        assert_eq!(KernelPath::of(&Device::flex()), KernelPath::FusedCpu);
        assert_eq!(
            KernelPath::of(&Device::flex().autodiff()),
            KernelPath::FusedCpu
        );
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn a_gpu_takes_its_own_operations_under_autodiff_and_burns_otherwise() {
        let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
        assert_eq!(KernelPath::of(&gpu.clone().autodiff()), KernelPath::GpuOps);
        assert_eq!(KernelPath::of(&gpu), KernelPath::Burn);
    }
}
