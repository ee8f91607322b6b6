use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor};
use kernels::{layer_norm, linear};

use crate::attention::LayerCache;
use crate::block::Block;
use crate::config::{GptConfig, Position};
use crate::init;

/// The lesson-01 GPT. The output head is the token embedding itself (`x @ Eᵀ`): one
/// parameter, so the tie survives saving, loading and optimizer steps.
#[derive(Module, Debug)]
pub struct Gpt {
    pub token_embedding: Param<Tensor<2>>,
    /// The lesson's learned positions; `None` with `model.position = "none"` or `"rope"`.
    pub position_embedding: Option<Param<Tensor<2>>>,
    pub blocks: Vec<Block>,
    pub ln_f: LayerNorm,
    block_size: usize,
}

/// KV cache for the whole model: one entry per layer plus the number of positions seen.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    pub layers: Vec<Option<LayerCache>>,
    pub len: usize,
}

impl Gpt {
    pub fn new(config: &GptConfig, device: &Device) -> Self {
        assert!(
            config.vocab_size > 0,
            "GptConfig.vocab_size must be set from the tokenizer"
        );
        let d = config.d_model;
        Self {
            token_embedding: init::normal([config.vocab_size, d], init::INIT_STD, device),
            position_embedding: match config.position {
                Position::Learned => {
                    Some(init::normal([config.block_size, d], init::INIT_STD, device))
                }
                Position::Absent | Position::Rope => None,
            },
            blocks: (0..config.n_layers)
                .map(|_| Block::new(config, device))
                .collect(),
            ln_f: LayerNormConfig::new(d).init(device),
            block_size: config.block_size,
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// A hash of every parameter's bits: equal for the same weights, on any device, so that
    /// a measurement of these weights can be recognised and not taken twice.
    pub fn fingerprint(&self) -> u64 {
        struct Fnv(u64);
        impl ModuleVisitor for Fnv {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let values = param.val().into_data().convert::<f32>();
                for value in values.iter::<f32>() {
                    self.0 = (self.0 ^ value.to_bits() as u64).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
        self.visit(&mut hash);
        hash.0
    }

    /// `idx`: `[B, T]` token ids → logits `[B, T, V]`.
    pub fn forward(&self, idx: Tensor<2, Int>) -> Tensor<3> {
        let mut x = self.embed(idx, 0);
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.head(x)
    }

    /// Logits for the new tokens `idx` (`[B, t]`), given everything already in `cache`.
    pub fn forward_cached(&self, idx: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
        let new_tokens = idx.dims()[1];
        if cache.layers.is_empty() {
            cache.layers = vec![None; self.blocks.len()];
        }
        let mut x = self.embed(idx, cache.len);
        for (block, layer_cache) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward_cached(x, layer_cache);
        }
        cache.len += new_tokens;
        self.head(x)
    }

    fn embed(&self, idx: Tensor<2, Int>, offset: usize) -> Tensor<3> {
        let [_, t] = idx.dims();
        assert!(
            offset + t <= self.block_size,
            "sequence of {} tokens exceeds block_size {}",
            offset + t,
            self.block_size
        );
        let tokens = embedding(self.token_embedding.val(), idx);
        match &self.position_embedding {
            Some(positions) => tokens + positions.val().narrow(0, offset, t).unsqueeze::<3>(),
            None => tokens,
        }
    }

    fn head(&self, x: Tensor<3>) -> Tensor<3> {
        let x = layer_norm(&self.ln_f, x);
        linear(x, self.token_embedding.val().transpose())
    }
}
