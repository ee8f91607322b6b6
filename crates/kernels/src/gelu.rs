//! The exact (erf) GELU, fused and vectorised for the CPU backend.
//!
//! Flex computes GELU and its derivative one element at a time through libm's scalar `erff`,
//! whose branches keep the loop scalar (`docs/perf.md`, change 6). Here
//! `erf` is a branch-free rational approximation (Eigen's `generic_fast_erf_float`, within a
//! few ulp of `erff`) and `exp` a branch-free polynomial, so the compiler vectorises the loop.
//! A Burn backend extension runs it on flex, with a hand-written backward pass for autodiff.
//! The GPU paths keep Burn's own `gelu`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::ops::binary::binary_op;
use burn::backend::flex::ops::unary::unary_op;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::DType;
use burn::tensor::{activation, Tensor};

use crate::dispatch::KernelPath;
use crate::fastmath::{erf_f32, exp_f32};
use crate::flex_buffer;
use crate::simd::simd_kernel;

/// GELU(x) = x · Φ(x), exact (erf) form, on any device: fused on the CPU, Burn's own on a GPU.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match KernelPath::of(&x.device()) {
        KernelPath::FusedCpu => {
            Tensor::from_dispatch(<Dispatch as FusedGelu>::fused_gelu(x.into_dispatch()))
        }
        KernelPath::GpuOps | KernelPath::Burn => activation::gelu(x),
    }
}

#[backend_extension(Flex, Autodiff)]
pub trait FusedGelu: Backend {
    /// x · Φ(x).
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// grad · (Φ(x) + x · φ(x)).
    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl FusedGelu for Flex {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 {
            return unary_op(x, gelu_f32, |x: f64| {
                0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
            });
        }
        // Autodiff keeps x for the backward pass, so the output gets a buffer of its own.
        let mut out = vec![0.0; x.layout().num_elements()];
        flex_buffer::read(&x, |x| gelu_slice(x, &mut out));
        flex_buffer::from_vec(out, flex_buffer::dims(&x))
    }

    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 || x.layout().shape() != grad.layout().shape() {
            return binary_op(
                x,
                grad,
                |x: f32, g| g * gelu_derivative_f32(x),
                |x: f64, g| {
                    let cdf = 0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2));
                    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
                    g * (cdf + x * pdf)
                },
                None,
            );
        }
        let dims = flex_buffer::dims(&grad);
        let mut grad = flex_buffer::into_vec(grad);
        flex_buffer::read(&x, |x| gelu_backward_slice(x, &mut grad));
        flex_buffer::from_vec(grad, dims)
    }
}

simd_kernel! {
    /// out = GELU(x), element by element.
    fn gelu_slice(x: &[f32], out: &mut [f32]) {
        for (out, &x) in out.iter_mut().zip(x) {
            *out = gelu_f32(x);
        }
    }
}

simd_kernel! {
    /// grad ← grad · GELU'(x), element by element.
    fn gelu_backward_slice(x: &[f32], grad: &mut [f32]) {
        for (grad, &x) in grad.iter_mut().zip(x) {
            *grad *= gelu_derivative_f32(x);
        }
    }
}

impl<B: Backend + FusedGelu, C: CheckpointStrategy> FusedGelu for Autodiff<B, C> {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GeluBackward;

        impl<B: Backend + FusedGelu> Backward<B, 1> for GeluBackward {
            type State = NodeId;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let input = checkpointer.retrieve_node_output(ops.state);
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::fused_gelu_backward(input, grad)
                });
            }
        }

        // Compute-bound: the backward pass keeps x rather than recomputing it.
        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::fused_gelu(x.primitive().clone()))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_gelu(x.into_primitive())),
        }
    }

    /// Only reached when the derivative is itself differentiated, which no stage does. It is
    /// composed of differentiable operations so that it stays right there, only not fused.
    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let scaled = Self::float_mul_scalar(x.clone(), std::f64::consts::FRAC_1_SQRT_2.into());
        let cdf = Self::float_mul_scalar(
            Self::float_add_scalar(Self::float_erf(scaled), 1.0.into()),
            0.5.into(),
        );
        let squared = Self::float_mul(x.clone(), x.clone());
        let pdf = Self::float_mul_scalar(
            Self::float_exp(Self::float_mul_scalar(squared, (-0.5).into())),
            (1.0 / (2.0 * std::f64::consts::PI).sqrt()).into(),
        );
        Self::float_mul(grad, Self::float_add(cdf, Self::float_mul(x, pdf)))
    }
}

#[inline(always)]
pub(crate) fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// d/dx [x · Φ(x)] = Φ(x) + x · φ(x).
#[inline(always)]
fn gelu_derivative_f32(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
    cdf + x * INV_SQRT_2PI * exp_f32(-0.5 * x * x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Every vector unit this CPU runs (the AVX2 build on an AVX-512 machine too) agrees with
    /// the baseline build of the same loop, forward and backward.
    #[test]
    fn every_simd_level_matches_the_baseline_build() {
        use crate::simd::SimdLevel;
        let x: Vec<f32> = (0..1037).map(|i| (i as f32 - 518.0) / 97.0).collect();
        let run = |level: SimdLevel| {
            let mut out = vec![0.0; x.len()];
            gelu_slice::at(level, &x, &mut out);
            let mut grad = vec![1.5; x.len()];
            gelu_backward_slice::at(level, &x, &mut grad);
            (out, grad)
        };
        let (out, grad) = run(SimdLevel::Baseline);
        let levels: Vec<SimdLevel> = SimdLevel::ALL
            .into_iter()
            .filter(|&l| l <= SimdLevel::supported())
            .collect();
        eprintln!("levels compared with the baseline: {levels:?}");
        for level in levels {
            let (level_out, level_grad) = run(level);
            for (a, b) in out
                .iter()
                .zip(&level_out)
                .chain(grad.iter().zip(&level_grad))
            {
                assert!(
                    (a - b).abs() <= 1e-6 * (1.0 + a.abs()),
                    "{level:?}: {a} vs {b}"
                );
            }
        }
    }

    fn inputs(device: &Device) -> Tensor<2> {
        let values: Vec<f32> = (0..400).map(|i| (i as f32 - 200.0) * 0.037).collect();
        Tensor::from_data(TensorData::new(values, [20, 20]), device)
    }

    #[test]
    fn fused_gelu_matches_burns_exact_gelu() {
        let x = inputs(&Device::flex());
        let diff = (gelu(x.clone()) - activation::gelu(x))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-6, "forward differs by {diff}");
    }

    #[test]
    fn the_autodiff_derivative_matches_the_fused_one() {
        let derivative = |device: &Device| {
            let (x, grad) = (inputs(device), inputs(device).cos());
            let out = <Dispatch as FusedGelu>::fused_gelu_backward(
                x.into_dispatch(),
                grad.into_dispatch(),
            );
            Tensor::<2>::from_dispatch(out).into_data()
        };
        // Flex's fused kernel against the autodiff backend's composed operations.
        let fused = Tensor::<2>::from_data(derivative(&Device::flex()), &Device::flex());
        let composed =
            Tensor::<2>::from_data(derivative(&Device::flex().autodiff()), &Device::flex());
        let diff = (fused - composed).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "derivatives differ by {diff}");
    }

    #[test]
    fn fused_gelu_gradient_matches_burns() {
        let device = Device::flex().autodiff();
        let x = inputs(&device).require_grad();
        let weights = inputs(&device).cos(); // a non-uniform upstream gradient
        let ours = (gelu(x.clone()) * weights.clone()).sum().backward();
        let theirs = (activation::gelu(x.clone()) * weights).sum().backward();
        let (ours, theirs) = (x.grad(&ours).unwrap(), x.grad(&theirs).unwrap());
        let diff = (ours - theirs).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "gradient differs by {diff}");
    }
}
