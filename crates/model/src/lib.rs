//! The lesson-01 GPT, shared unchanged by every stage.
//!
//! `config` holds the shape, `attention`/`mlp`/`block`/`gpt`/`linear` the forward pass,
//! `gelu` the activation and `causal_softmax` attention's softmax (both fused on the CPU,
//! from `fastmath`'s vectorisable erf and exp), `layer_norm` the GPU path's layer norm (one
//! operation with its own backward), `matmul` the CPU's matrix products,
//! `flex_buffer` the CPU tensors as plain buffers for those kernels, `checkpoint` the
//! safetensors I/O, `device` the one place a backend is chosen (and how many shards it wants),
//! and `generate` the sampling loop.

pub mod attention;
pub mod block;
pub mod causal_softmax;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod fastmath;
pub mod flex_buffer;
pub mod gelu;
pub mod generate;
pub mod gpt;
pub mod init;
pub mod layer_norm;
pub mod linear;
pub mod matmul;
pub mod mlp;

pub use burn;
pub use config::GptConfig;
pub use device::DeviceChoice;
pub use gpt::Gpt;

#[cfg(test)]
mod tests;
