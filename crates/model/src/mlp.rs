use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use kernels::{gelu, linear};

use crate::init;

/// The 4x-wide feed-forward block with biases and exact (erf) GELU.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc_weight: Param<Tensor<2>>,
    pub fc_bias: Param<Tensor<1>>,
    pub proj_weight: Param<Tensor<2>>,
    pub proj_bias: Param<Tensor<1>>,
}

impl Mlp {
    pub fn new(d_model: usize, n_layers: usize, device: &Device) -> Self {
        let hidden = 4 * d_model;
        Self {
            fc_weight: init::normal([d_model, hidden], init::INIT_STD, device),
            fc_bias: init::zeros([hidden], device),
            proj_weight: init::normal([hidden, d_model], init::residual_std(n_layers), device),
            proj_bias: init::zeros([d_model], device),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = linear(x, self.fc_weight.val()) + self.fc_bias.val().unsqueeze();
        linear(gelu(h), self.proj_weight.val()) + self.proj_bias.val().unsqueeze()
    }
}
