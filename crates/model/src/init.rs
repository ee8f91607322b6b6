//! GPT-2 style initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm scales,
//! and residual output projections shrunk by 1/sqrt(2L) so the residual stream's variance
//! does not grow with depth.

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor};

pub const INIT_STD: f64 = 0.02;

pub fn normal<const D: usize>(shape: [usize; D], std: f64, device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::random(
        shape,
        Distribution::Normal(0.0, std),
        device,
    ))
}

pub fn zeros<const D: usize>(shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::zeros(shape, device))
}

/// Std of a projection that writes into the residual stream.
pub fn residual_std(n_layers: usize) -> f64 {
    INIT_STD / (2.0 * n_layers as f64).sqrt()
}
