use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};
use kernels::layer_norm;

use crate::attention::{CausalSelfAttention, LayerCache};
use crate::config::GptConfig;
use crate::mlp::Mlp;

/// One pre-norm transformer block: `x + Attn(LN(x))`, then `x + MLP(LN(x))`.
#[derive(Module, Debug)]
pub struct Block {
    pub ln1: LayerNorm,
    pub attn: CausalSelfAttention,
    pub ln2: LayerNorm,
    pub mlp: Mlp,
}

impl Block {
    pub fn new(config: &GptConfig, device: &Device) -> Self {
        let d_model = config.d_model;
        Self {
            ln1: LayerNormConfig::new(d_model).init(device),
            attn: CausalSelfAttention::new(config, device),
            ln2: LayerNormConfig::new(d_model).init(device),
            mlp: Mlp::new(d_model, config.n_layers, device),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(layer_norm(&self.ln1, x));
        x.clone() + self.mlp.forward(layer_norm(&self.ln2, x))
    }

    pub fn forward_cached(&self, x: Tensor<3>, cache: &mut Option<LayerCache>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward_cached(layer_norm(&self.ln1, x), cache);
        x.clone() + self.mlp.forward(layer_norm(&self.ln2, x))
    }
}
