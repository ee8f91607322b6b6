use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use kernels::{causal_attention, linear};

use crate::config::{GptConfig, Position};
use crate::{init, rope};

/// Multi-head causal self-attention with one fused, bias-free QKV projection.
/// Weights are stored `[d_in, d_out]` (Burn's layout): `y = x @ W`.
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    pub qkv: Param<Tensor<2>>,
    pub proj: Param<Tensor<2>>,
    n_heads: usize,
    /// Queries and keys turned by their positions (`model.position = "rope"`).
    rope: bool,
}

/// Per-layer cache of keys and values, `[B, h, t, k]`, grown along the time axis.
#[derive(Clone, Debug)]
pub struct LayerCache {
    pub keys: Tensor<4>,
    pub values: Tensor<4>,
}

impl CausalSelfAttention {
    pub fn new(config: &GptConfig, device: &Device) -> Self {
        let d_model = config.d_model;
        Self {
            qkv: init::normal([d_model, 3 * d_model], init::INIT_STD, device),
            proj: init::normal(
                [d_model, d_model],
                init::residual_std(config.n_layers),
                device,
            ),
            n_heads: config.n_heads,
            rope: config.position == Position::Rope,
        }
    }

    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    /// Whether queries and keys are turned by position (RoPE).
    pub fn rope(&self) -> bool {
        self.rope
    }

    /// `x`: `[B, T, d]` → `[B, T, d]`, position t attends to positions ≤ t.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let (q, k, v) = self.split_heads(x.clone(), 0);
        self.attend(q, k, v, x.dims())
    }

    /// Same as `forward` for the new positions in `x`, reusing (and extending) `cache`.
    pub fn forward_cached(&self, x: Tensor<3>, cache: &mut Option<LayerCache>) -> Tensor<3> {
        let dims = x.dims();
        let offset = cache.as_ref().map_or(0, |past| past.keys.dims()[2]);
        let (q, k, v) = self.split_heads(x, offset);
        let (k, v) = match cache.take() {
            Some(past) => (
                Tensor::cat(vec![past.keys, k], 2),
                Tensor::cat(vec![past.values, v], 2),
            ),
            None => (k, v),
        };
        *cache = Some(LayerCache {
            keys: k.clone(),
            values: v.clone(),
        });
        self.attend(q, k, v, dims)
    }

    /// `[B, h, T, k]` queries, keys and values of `x`, whose first token is at `offset`.
    fn split_heads(&self, x: Tensor<3>, offset: usize) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [b, t, d] = x.dims();
        let head_dim = d / self.n_heads;
        // One product per projection, each through its `[d, d]` column block of the fused
        // weight: the outputs are contiguous, so `[B, T, h, k]` is a view, not a copy (a
        // narrowed slice of one `[B, T, 3d]` product would have to be copied to reshape).
        let weight = self.qkv.val();
        let take = |i: usize| {
            linear(x.clone(), weight.clone().narrow(1, i * d, d))
                .reshape([b, t, self.n_heads, head_dim])
                .swap_dims(1, 2)
        };
        let (q, k) = (take(0), take(1));
        if self.rope {
            (rope::rotate(q, offset), rope::rotate(k, offset), take(2))
        } else {
            (q, k, take(2))
        }
    }

    /// softmax(q·kᵀ / sqrt(k), causal) · v in every head, the heads joined back into `[B, T, d]`
    /// and projected.
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, [b, t, d]: [usize; 3]) -> Tensor<3> {
        let y = causal_attention(q, k, v).swap_dims(1, 2).reshape([b, t, d]);
        linear(y, self.proj.val())
    }
}
