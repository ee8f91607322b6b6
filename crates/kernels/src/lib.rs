//! The fused CPU and GPU kernels the GPT runs on, each behind a plain function, with its
//! backward pass and its tests.
//!
//! - [`linear`] and [`matmul()`]: matrix products, straight into their output on the CPU.
//! - [`causal_attention`]: two products around `causal_softmax`, one pass forward and one
//!   backward on the CPU, one autodiff operation on a GPU; Burn's fused attention on a GPU's
//!   forward-only passes.
//! - [`gelu()`]: the exact (erf) GELU, fused and vectorised on the CPU.
//! - [`layer_norm()`]: one autodiff operation with its own backward for training on a GPU.
//! - [`peak`]: one core's FMA rate from registers alone, the ceiling the products are held to.
//!
//! Which implementation runs is decided in one place, [`dispatch`], from the tensor's device.
//! The CPU kernels read and write flex tensors as plain buffers (`flex_buffer`), use a
//! branch-free `erf` and `exp` (`fastmath`) and are compiled for the CPU's vector unit
//! (`simd`). Burn's internals (backend extensions, autodiff `Backward` steps, flex's storage)
//! and the `unsafe` code live here, so that the model crate has none.

pub mod attention;
pub mod causal_softmax;
pub mod decode;
pub mod dispatch;
pub mod fastmath;
mod flex_buffer;
pub mod gelu;
pub mod layer_norm;
pub mod matmul;
pub mod peak;
pub mod simd;

pub use attention::causal_attention;
pub use dispatch::KernelPath;
pub use gelu::gelu;
pub use layer_norm::layer_norm;
pub use matmul::{linear, matmul};
pub use simd::{gemm_level, SimdLevel, SIMD_VAR};
