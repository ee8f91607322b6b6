//! The lesson-01 GPT, shared unchanged by every stage.
//!
//! `config` holds the shape; `gpt`, `block`, `attention` and `mlp` the forward pass (with the
//! KV cache for decoding), `init` the GPT-2 initialisation; `generate` the sampling loop and `decode` the CPU's decoder
//! behind it;
//! `checkpoint` the safetensors I/O; `phase` where a stage's time goes; `device` the one place a backend is chosen (and how many
//! data-parallel shards it wants). The operations the forward pass is made of (`linear`,
//! `causal_attention`, `gelu`, `layer_norm`) come from the `kernels` crate, which picks their
//! fused CPU or GPU implementation: this crate holds no kernel code.

pub mod attention;
pub mod block;
pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod device;
pub mod generate;
pub mod gpt;
pub mod init;
pub mod mlp;
pub mod phase;
pub mod rope;

pub use burn;
pub use config::{GptConfig, Position};
pub use device::DeviceChoice;
pub use gpt::Gpt;

#[cfg(test)]
mod tests;
