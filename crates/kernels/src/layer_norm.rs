//! Layer norm as one differentiable operation, for training on a GPU (`KernelPath::GpuOps`).
//!
//! Burn differentiates `LayerNorm` through the operations its forward pass is made of (mean,
//! subtract, square, mean, add, sqrt, divide, scale, shift). Each has its own backward, and the
//! shapes alternate between `[.., d]` and `[.., 1]`, which Burn's fusion on wgpu mostly runs one
//! operation per kernel (`docs/perf.md`, "Why the wgpu step is slow"). Here autodiff sees one
//! operation. Its
//! backward is the textbook formula, with g = dy·γ and x̂ the normalised input:
//!
//! dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)),  dγ = Σ dy · x̂,  dβ = Σ dy.
//!
//! It is written as a few reductions with the elementwise work between them, which fusion
//! can join. The CPU path and a GPU's forward-only passes keep Burn's `LayerNorm`: flex runs its
//! forward pass as one kernel, layer norms are a small share of the CPU profile, and a GPU
//! fuses the forward pass well.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::nn::LayerNorm;
use burn::tensor::{Shape, Tensor};

use crate::dispatch::KernelPath;

/// `norm` applied to `x` over its last axis. On the `GpuOps` path this is one operation with a
/// hand-written backward (see the module doc); on the others it is Burn's own `LayerNorm`.
pub fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    match KernelPath::of(&x.device()) {
        KernelPath::GpuOps => one_operation(norm, x),
        KernelPath::FusedCpu | KernelPath::Burn => norm.forward(x),
    }
}

/// The one-operation layer norm (`LayerNormOps`), with ε = [`EPSILON`].
fn one_operation<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let beta = norm
        .beta
        .as_ref()
        .expect("the model's layer norms have a shift (beta)");
    Tensor::from_dispatch(<Dispatch as LayerNormOps>::layer_norm_last(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        beta.val().into_dispatch(),
        EPSILON,
    ))
}

/// The ε the one-operation layer norm uses: `LayerNormConfig`'s default, which the model's layer
/// norms are built with (Burn keeps a `LayerNorm`'s own ε private, so it cannot be read off).
pub const EPSILON: f64 = 1e-5;

#[backend_extension(Flex, Cube: cfg(feature = "wgpu"), Autodiff)]
pub trait LayerNormOps: Backend {
    /// y = x̂·γ + β over the last axis, where x̂ = (x − mean)·rstd and rstd = 1/sqrt(var + ε).
    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::layer_norm_with_stats(x, gamma, beta, epsilon).0
    }

    /// The forward pass, also returning x̂ and rstd (`[.., 1]`), which the backward pass needs.
    fn layer_norm_with_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let last = x.shape().num_dims() - 1;
        let mean = Self::float_mean_dim(x.clone(), last);
        let centred = Self::float_sub(x, mean);
        let variance =
            Self::float_mean_dim(Self::float_mul(centred.clone(), centred.clone()), last);
        let rstd = Self::float_recip(Self::float_sqrt(Self::float_add_scalar(
            variance,
            epsilon.into(),
        )));
        let normalised = Self::float_mul(centred, rstd.clone());
        let shape = normalised.shape();
        let y = Self::float_add(
            Self::float_mul(normalised.clone(), along_last::<Self>(gamma, &shape)),
            along_last::<Self>(beta, &shape),
        );
        (y, normalised, rstd)
    }

    /// The gradients with respect to x, γ and β, given the output's gradient and what
    /// [`layer_norm_with_stats`](Self::layer_norm_with_stats) returned.
    fn layer_norm_backward(
        grad: FloatTensor<Self>,
        normalised: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let shape = grad.shape();
        let last = shape.num_dims() - 1;
        let width = shape[last];
        let rows = Shape::new([shape.num_elements() / width, width]);
        // The parameters' gradients: sums over every row.
        let grad_rows = Self::float_reshape(grad.clone(), rows.clone());
        let normalised_rows = Self::float_reshape(normalised.clone(), rows);
        let beta_grad = Self::float_sum_dim(grad_rows.clone(), 0);
        let gamma_grad = Self::float_sum_dim(Self::float_mul(grad_rows, normalised_rows), 0);
        // The input's gradient.
        let g = Self::float_mul(grad, along_last::<Self>(gamma, &shape));
        let mean_g = Self::float_mean_dim(g.clone(), last);
        let mean_gx = Self::float_mean_dim(Self::float_mul(g.clone(), normalised.clone()), last);
        let x_grad = Self::float_mul(
            Self::float_sub(
                Self::float_sub(g, mean_g),
                Self::float_mul(normalised, mean_gx),
            ),
            rstd,
        );
        (
            x_grad,
            Self::float_reshape(gamma_grad, Shape::new([width])),
            Self::float_reshape(beta_grad, Shape::new([width])),
        )
    }
}

/// A `[d]` parameter reshaped to broadcast along the last axis of `shape`.
fn along_last<B: Backend>(param: FloatTensor<B>, shape: &Shape) -> FloatTensor<B> {
    let rank = shape.num_dims();
    let dims: Vec<usize> = (0..rank)
        .map(|i| if i + 1 == rank { shape[i] } else { 1 })
        .collect();
    B::float_reshape(param, Shape::from(dims))
}

impl LayerNormOps for Flex {}

#[cfg(feature = "wgpu")]
impl LayerNormOps for burn::backend::Cube {}

impl<B: Backend + LayerNormOps, C: CheckpointStrategy> LayerNormOps for Autodiff<B, C> {
    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNormBackward;

        impl<B: Backend + LayerNormOps> Backward<B, 3> for LayerNormBackward {
            /// x̂, rstd and γ.
            type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [x_node, gamma_node, beta_node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (normalised, rstd, gamma) = ops.state;
                let (x_grad, gamma_grad, beta_grad) =
                    B::layer_norm_backward(grad, normalised, rstd, gamma);
                for (node, grad) in [
                    (x_node, x_grad),
                    (gamma_node, gamma_grad),
                    (beta_node, beta_grad),
                ] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let gamma = gamma.into_primitive();
                let (y, normalised, rstd) = B::layer_norm_with_stats(
                    x.into_primitive(),
                    gamma.clone(),
                    beta.into_primitive(),
                    epsilon,
                );
                prep.finish((normalised, rstd, gamma), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_last(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                epsilon,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    use super::*;

    use test_support::{max_abs_diff, values};

    #[test]
    fn epsilon_is_the_one_burns_layer_norms_are_built_with() {
        assert_eq!(LayerNormConfig::new(4).epsilon, EPSILON);
    }

    #[test]
    fn output_and_gradients_match_burns_layer_norm() {
        let device = Device::flex().autodiff();
        // Drawn under test-support's lock: the tests of this binary seed the device in parallel.
        let (norm, x, weights) = test_support::seeded(&device, 3, || {
            let mut norm = LayerNormConfig::new(8).init(&device);
            // Parameters away from 1 and 0, so a wrong γ or β gradient shows.
            norm.gamma =
                Param::from_tensor(Tensor::random([8], Distribution::Normal(1.0, 0.5), &device));
            norm.beta = Some(Param::from_tensor(Tensor::random(
                [8],
                Distribution::Normal(0.0, 0.5),
                &device,
            )));
            let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.5, 2.0), &device)
                .require_grad();
            // A loss that weights every output differently.
            let weights = Tensor::<3>::random([2, 3, 8], Distribution::Default, &device);
            (norm, x, weights)
        });
        let run = |y: Tensor<3>| {
            let grads = (y.clone() * weights.clone()).sum().backward();
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(norm.gamma.val().grad(&grads).unwrap()),
                values(norm.beta.as_ref().unwrap().val().grad(&grads).unwrap()),
            )
        };
        let (y_ref, dx_ref, dgamma_ref, dbeta_ref) = run(norm.forward(x.clone()));
        let (y, dx, dgamma, dbeta) = run(one_operation(&norm, x.clone()));
        assert!(max_abs_diff(&y, &y_ref) < 1e-5, "{y:?} vs {y_ref:?}");
        assert!(max_abs_diff(&dx, &dx_ref) < 1e-5, "{dx:?} vs {dx_ref:?}");
        assert!(max_abs_diff(&dgamma, &dgamma_ref) < 1e-5);
        assert!(max_abs_diff(&dbeta, &dbeta_ref) < 1e-5);
        assert!(dx.iter().any(|g| g.abs() > 1e-3), "a real gradient");
    }

    #[test]
    fn off_the_graph_it_is_the_plain_forward_pass() {
        let device = Device::flex();
        let norm = LayerNormConfig::new(4).init(&device);
        let x = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 5.0], [1, 2, 4]),
            &device,
        );
        let diff = max_abs_diff(
            &values(one_operation(&norm, x.clone())),
            &values(norm.forward(x)),
        );
        assert!(diff < 1e-5, "{diff}");
    }
}
