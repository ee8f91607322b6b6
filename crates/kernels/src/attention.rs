//! Causal self-attention over heads: `softmax(q·kᵀ / sqrt(k) + causal mask) · v`.

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::Tensor;

use crate::causal_softmax::causal_softmax;
use crate::dispatch::KernelPath;
use crate::matmul::matmul;

/// Attention of `q` (`[B, h, queries, k]`) over `k` and `v` (`[B, h, keys, k]`), scaled by
/// 1/sqrt(k), where query `i` sees keys `0..=i + keys − queries`: the mask is aligned
/// bottom-right, so it is also right for cached decoding, where there are fewer queries than
/// keys. Returns `[B, h, queries, k]`.
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    match KernelPath::of(&q.device()) {
        // Two matrix products around one causal softmax with its own backward.
        KernelPath::FusedCpu | KernelPath::GpuOps => {
            let scale = 1.0 / (q.dims()[3] as f32).sqrt();
            matmul(causal_softmax(matmul(q, k.swap_dims(2, 3)), scale), v)
        }
        // Burn's fused attention kernel; its default scale is 1/sqrt(k).
        KernelPath::Burn => {
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: true,
            };
            attention(q, k, v, None, None, options)
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn heads(queries: usize, seed: usize, device: &Device) -> Tensor<4> {
        let values: Vec<f32> = (0..2 * 3 * queries * 8)
            .map(|i| (((i + seed) * 53 % 97) as f32 - 48.0) * 0.03)
            .collect();
        Tensor::from_data(TensorData::new(values, [2, 3, queries, 8]), device)
    }

    fn burns(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        attention(q, k, v, None, None, options)
    }

    #[test]
    fn matches_burns_attention_for_training_and_for_a_cached_step() {
        let device = Device::flex();
        // As many queries as keys (training), and fewer (a cached decoding step).
        for queries in [11, 3] {
            let (q, k, v) = (
                heads(queries, 0, &device),
                heads(11, 1, &device),
                heads(11, 2, &device),
            );
            let ours = causal_attention(q.clone(), k.clone(), v.clone());
            let diff = (ours - burns(q, k, v)).abs().max().into_scalar::<f32>();
            assert!(
                diff < 1e-5,
                "{queries} queries: attention differs by {diff}"
            );
        }
    }
}
