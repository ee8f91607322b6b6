//! The causal softmax of attention, fused into one pass for the CPU backend.
//!
//! Under autodiff Burn builds attention from separate operations (its `attention_fallback`):
//! scale, causal mask, max, subtract, exp, sum, divide, each a trip through memory and each
//! with its own backward. Here one pass computes `softmax(scale · scores)` with the positions
//! after each query masked out, and one pass its backward,
//! `scale · P ⊙ (dP − rowsum(dP ⊙ P))`. A Burn backend extension runs it on flex, with the
//! backward written by hand for autodiff. The masking is aligned bottom-right like Burn's, so
//! a cached decoding step (fewer queries than keys) sees every key it should.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use rayon::prelude::*;

use crate::fastmath::exp_f32;

/// Softmax over the last axis of `scale · scores` (`[.., queries, keys]`), where query `i`
/// sees keys `0..=i + keys − queries`. Masked positions get probability 0. Flex only: other
/// backends use Burn's `attention`, which is fused there in its own way.
pub fn causal_softmax<const D: usize>(scores: Tensor<D>, scale: f32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedCausalSoftmax>::causal_softmax(
        scores.into_dispatch(),
        scale,
    ))
}

#[backend_extension(Flex, Autodiff)]
pub trait FusedCausalSoftmax: Backend {
    /// P = causal-masked softmax(scale · scores) over the last axis.
    fn causal_softmax(scores: FloatTensor<Self>, scale: f32) -> FloatTensor<Self>;
    /// The gradient with respect to the scores: scale · P ⊙ (dP − rowsum(dP ⊙ P)).
    fn causal_softmax_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;
}

impl FusedCausalSoftmax for Flex {
    fn causal_softmax(scores: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        with_f32(scores, |scores| {
            let dims = scores.layout().shape().to_vec();
            let (queries, keys) = (dims[dims.len() - 2], dims[dims.len() - 1]);
            let mut values = contiguous_f32(scores);
            par_rows(&mut values, queries * keys, |matrix| {
                for (i, row) in matrix.chunks_exact_mut(keys).enumerate() {
                    let visible = (i + 1 + keys).saturating_sub(queries).min(keys);
                    softmax_row(row, visible, scale);
                }
            });
            FlexTensor::from_data(TensorData::new(values, dims))
        })
    }

    fn causal_softmax_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        with_f32(grad, |grad| {
            let probs = probs.to_contiguous();
            let probs = probs.storage::<f32>();
            let dims = grad.layout().shape().to_vec();
            let keys = dims[dims.len() - 1];
            let mut grad = contiguous_f32(grad);
            let rows_per_task = (ROWS_PER_TASK_ELEMENTS / keys).max(1);
            grad.par_chunks_mut(rows_per_task * keys)
                .zip(probs.par_chunks(rows_per_task * keys))
                .for_each(|(grad, probs)| {
                    for (g, p) in grad.chunks_exact_mut(keys).zip(probs.chunks_exact(keys)) {
                        softmax_backward_row(g, p, scale);
                    }
                });
            FlexTensor::from_data(TensorData::new(grad, dims))
        })
    }
}

impl<B: Backend + FusedCausalSoftmax, C: CheckpointStrategy> FusedCausalSoftmax for Autodiff<B, C> {
    fn causal_softmax(scores: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct CausalSoftmaxBackward;

        impl<B: Backend + FusedCausalSoftmax> Backward<B, 1> for CausalSoftmaxBackward {
            type State = (FloatTensor<B>, f32);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (probs, scale) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::causal_softmax_backward(probs, grad, scale)
                });
            }
        }

        // The backward pass needs P, the output, not the scores: keep P.
        match CausalSoftmaxBackward
            .prepare::<C>([scores.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let probs = B::causal_softmax(scores.into_primitive(), scale);
                prep.finish((probs.clone(), scale), probs)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::causal_softmax(scores.into_primitive(), scale))
            }
        }
    }

    /// Only reached when the derivative is itself differentiated, which no stage does. It is
    /// composed of differentiable operations so that it stays right there, only not fused.
    fn causal_softmax_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let last = probs.shape().num_dims() - 1;
        let weighted = Self::float_mul(grad.clone(), probs.clone());
        let row_sums = Self::float_sum_dim(weighted, last);
        let centred = Self::float_sub(grad, row_sums);
        Self::float_mul_scalar(Self::float_mul(probs, centred), scale.into())
    }
}

/// Rows are handed to rayon in groups of about this many elements: small enough that a
/// one-shard DPO pass uses both cores, large enough that scheduling costs nothing.
const ROWS_PER_TASK_ELEMENTS: usize = 1 << 15;

/// Runs `each_matrix` on every `[queries, keys]` matrix of `values`, in parallel.
fn par_rows(values: &mut [f32], matrix_len: usize, each_matrix: impl Fn(&mut [f32]) + Sync) {
    let matrices_per_task = (ROWS_PER_TASK_ELEMENTS / matrix_len).max(1);
    values
        .par_chunks_mut(matrices_per_task * matrix_len)
        .for_each(|task| task.chunks_exact_mut(matrix_len).for_each(&each_matrix));
}

/// In place: the first `visible` entries become softmax(scale · row), the rest 0.
fn softmax_row(row: &mut [f32], visible: usize, scale: f32) {
    let (live, masked) = row.split_at_mut(visible);
    masked.fill(0.0);
    if live.is_empty() {
        return;
    }
    let max = live.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    // Separate loops so that each one vectorises (a running sum would serialise the exp).
    for x in live.iter_mut() {
        *x = exp_f32((*x - max) * scale);
    }
    let inverse_sum = 1.0 / sum(live);
    for x in live.iter_mut() {
        *x *= inverse_sum;
    }
}

/// In place: grad ← scale · p ⊙ (grad − ⟨grad, p⟩). Masked positions have p = 0.
fn softmax_backward_row(grad: &mut [f32], probs: &[f32], scale: f32) {
    let dot = dot(grad, probs);
    for (g, &p) in grad.iter_mut().zip(probs) {
        *g = scale * p * (*g - dot);
    }
}

/// Sums with 16 independent lanes, so the compiler can keep them in one vector register.
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let chunks = values.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (a_chunks, b_chunks) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(a).zip(b) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The tensor's values in row-major order, reusing its buffer when nothing else holds it.
fn contiguous_f32(tensor: FlexTensor) -> Vec<f32> {
    let n = tensor.layout().num_elements();
    let tensor = if tensor.is_contiguous() && tensor.layout().start_offset() == 0 {
        tensor
    } else {
        tensor.to_contiguous()
    };
    let mut values = tensor
        .into_data()
        .try_into_vec::<f32>()
        .expect("an f32 tensor");
    values.truncate(n);
    values
}

/// Runs an f32 kernel on any float dtype, converting half precision there and back.
fn with_f32(tensor: FlexTensor, kernel: impl FnOnce(FlexTensor) -> FlexTensor) -> FlexTensor {
    match tensor.dtype() {
        DType::F32 => kernel(tensor),
        dtype => {
            let out = kernel(Flex::float_cast(tensor, FloatDType::F32));
            Flex::float_cast(out, FloatDType::from(dtype))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Bool, Device, Int};

    fn scores(device: &Device, queries: usize, keys: usize) -> Tensor<4> {
        let n = 2 * 3 * queries * keys;
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.07)
            .collect();
        Tensor::from_data(TensorData::new(values, [2, 3, queries, keys]), device)
    }

    /// Burn's own operations: mask the future with -inf, then softmax.
    fn reference(scores: Tensor<4>, scale: f32) -> Tensor<4> {
        let [_, _, queries, keys] = scores.dims();
        let device = scores.device();
        let rows = Tensor::<1, Int>::arange(0..queries as i64, &device)
            .reshape([queries, 1])
            .add_scalar(keys as i64 - queries as i64);
        let cols = Tensor::<1, Int>::arange(0..keys as i64, &device).reshape([1, keys]);
        let future: Tensor<2, Bool> = cols.greater(rows);
        let future = future.unsqueeze::<4>().expand(scores.dims());
        softmax(
            scores
                .mul_scalar(scale)
                .mask_fill(future, f32::NEG_INFINITY),
            3,
        )
    }

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn matches_burns_masked_softmax() {
        // Square (training) and fewer queries than keys (a cached decoding step); 37 keys
        // exercise the 16-lane sums' tails.
        for (queries, keys) in [(37, 37), (5, 37), (1, 8)] {
            let x = scores(&Device::flex(), queries, keys);
            let diff = max_diff(causal_softmax(x.clone(), 0.3), reference(x, 0.3));
            assert!(diff < 1e-6, "{queries}x{keys}: forward differs by {diff}");
        }
    }

    #[test]
    fn gradient_matches_burns() {
        let device = Device::flex().autodiff();
        let x = scores(&device, 37, 37).require_grad();
        let weights = scores(&device, 37, 37).cos(); // a non-uniform upstream gradient
        let ours = (causal_softmax(x.clone(), 0.3) * weights.clone())
            .sum()
            .backward();
        let theirs = (reference(x.clone(), 0.3) * weights).sum().backward();
        let diff = max_diff(x.grad(&ours).unwrap(), x.grad(&theirs).unwrap());
        assert!(diff < 1e-6, "gradient differs by {diff}");
    }

    #[test]
    fn the_autodiff_derivative_matches_the_fused_one() {
        let derivative = |device: &Device| {
            let probs = causal_softmax(scores(device, 9, 9), 0.5);
            let grad = scores(device, 9, 9).sin();
            let out = <Dispatch as FusedCausalSoftmax>::causal_softmax_backward(
                probs.into_dispatch(),
                grad.into_dispatch(),
                0.5,
            );
            Tensor::<4>::from_dispatch(out).into_data()
        };
        let fused = Tensor::<4>::from_data(derivative(&Device::flex()), &Device::flex());
        let composed =
            Tensor::<4>::from_data(derivative(&Device::flex().autodiff()), &Device::flex());
        let diff = max_diff(fused, composed);
        assert!(diff < 1e-6, "derivatives differ by {diff}");
    }

    #[test]
    fn attention_built_on_it_matches_burns_attention() {
        let device = Device::flex();
        let qkv = |seed: usize| {
            let values: Vec<f32> = (0..2 * 3 * 11 * 8)
                .map(|i| (((i + seed) * 53 % 97) as f32 - 48.0) * 0.03)
                .collect();
            Tensor::<4>::from_data(TensorData::new(values, [2, 3, 11, 8]), &device)
        };
        let (q, k, v) = (qkv(0), qkv(1), qkv(2));
        let scale = 1.0 / (8f32).sqrt();
        let ours =
            causal_softmax(q.clone().matmul(k.clone().swap_dims(2, 3)), scale).matmul(v.clone());
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let theirs = attention(q, k, v, None, None, options);
        let diff = max_diff(ours, theirs);
        assert!(diff < 1e-5, "attention differs by {diff}");
    }
}
