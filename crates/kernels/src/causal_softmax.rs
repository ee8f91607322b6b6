//! The causal softmax of attention, fused into one pass for the CPU backend.
//!
//! Under autodiff Burn builds attention from separate operations (its `attention_fallback`):
//! scale, causal mask, max, subtract, exp, sum, divide, each a trip through memory and each
//! with its own backward. Here one pass computes `softmax(scale · scores)` with the positions
//! after each query masked out, and one pass its backward,
//! `scale · P ⊙ (dP − rowsum(dP ⊙ P))`. A Burn backend extension runs it on flex, with the
//! backward written by hand for autodiff. The masking is aligned bottom-right like Burn's, so
//! a cached decoding step (fewer queries than keys) sees every key it should.
//!
//! On the GPU (wgpu) the same operation is made of tensor operations: an additive mask and a
//! softmax forward, three operations backward. Autodiff sees it as one operation, so training
//! does not pay for the graph of Burn's attention fallback, which rebuilds the mask in every
//! layer and differentiates the max and the clamps of its softmax (`docs/perf.md`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
#[cfg(feature = "wgpu")] // the concrete GPU backend's operations, called by name
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::fastmath::exp_f32;
use crate::flex_buffer;
use crate::simd::simd_kernel;

/// Softmax over the last axis of `scale · scores` (`[.., queries, keys]`), where query `i`
/// sees keys `0..=i + keys − queries`. Masked positions get probability 0. For the
/// `FusedCpu` and `GpuOps` paths of [`causal_attention`](crate::causal_attention); a GPU's
/// forward-only passes use Burn's fused `attention` instead.
pub fn causal_softmax<const D: usize>(scores: Tensor<D>, scale: f32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedCausalSoftmax>::causal_softmax(
        scores.into_dispatch(),
        scale,
    ))
}

#[backend_extension(Flex, Cube: cfg(feature = "wgpu"), Autodiff)]
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
        flex_buffer::as_f32(scores, |scores| {
            let dims = flex_buffer::dims(&scores);
            let (queries, keys) = (dims[dims.len() - 2], dims[dims.len() - 1]);
            // The scores are a fresh matrix product: normally overwritten in place.
            let mut values = flex_buffer::into_vec(scores);
            let matrices_per_task = (ELEMENTS_PER_TASK / (queries * keys)).max(1);
            values
                .par_chunks_mut(matrices_per_task * queries * keys)
                .for_each(|task| softmax_matrices(task, queries, keys, scale));
            flex_buffer::from_vec(values, dims)
        })
    }

    fn causal_softmax_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        flex_buffer::as_f32(grad, |grad| {
            let probs = flex_buffer::to_f32(probs);
            let dims = flex_buffer::dims(&grad);
            let keys = dims[dims.len() - 1];
            let mut grad = flex_buffer::into_vec(grad);
            let task_len = (ELEMENTS_PER_TASK / keys).max(1) * keys;
            flex_buffer::read(&probs, |probs| {
                grad.par_chunks_mut(task_len)
                    .zip(probs.par_chunks(task_len))
                    .for_each(|(grad, probs)| softmax_backward_rows(grad, probs, keys, scale));
            });
            flex_buffer::from_vec(grad, dims)
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
        composed_backward::<Self>(probs, grad, scale)
    }
}

/// scale · P ⊙ (dP − rowsum(dP ⊙ P)) from any backend's tensor operations.
fn composed_backward<B: Backend>(
    probs: FloatTensor<B>,
    grad: FloatTensor<B>,
    scale: f32,
) -> FloatTensor<B> {
    let last = probs.shape().num_dims() - 1;
    let row_sums = B::float_sum_dim(B::float_mul(grad.clone(), probs.clone()), last);
    let centred = B::float_sub(grad, row_sums);
    B::float_mul_scalar(B::float_mul(probs, centred), scale.into())
}

/// How many keys query `i` of `queries` sees among `keys`: the mask is aligned bottom-right, so
/// the last query sees every key.
fn visible_keys(i: usize, queries: usize, keys: usize) -> usize {
    (i + 1 + keys).saturating_sub(queries).min(keys)
}

/// The GPU's version, composed of tensor operations that Burn's fusion can join.
#[cfg(feature = "wgpu")]
impl FusedCausalSoftmax for burn::backend::Cube {
    fn causal_softmax(scores: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        let shape = scores.shape();
        let last = shape.num_dims() - 1;
        let (queries, keys) = (shape[last - 1], shape[last]);
        // 0 where a query sees the key, −∞ after: exp(−∞) = 0 exactly, as on flex.
        let mut bias = vec![0.0f32; queries * keys];
        for (i, row) in bias.chunks_exact_mut(keys).enumerate() {
            row[visible_keys(i, queries, keys)..].fill(f32::NEG_INFINITY);
        }
        let mut bias_shape = vec![1; shape.num_dims()];
        bias_shape[last - 1] = queries;
        bias_shape[last] = keys;
        let bias = Self::float_from_data(
            burn::tensor::TensorData::new(bias, bias_shape),
            &scores.device(),
        );
        let logits = Self::float_add(Self::float_mul_scalar(scores, scale.into()), bias);
        // Every row sees at least its own key, so its max is finite.
        let max = Self::float_max_dim(logits.clone(), last);
        let exp = Self::float_exp(Self::float_sub(logits, max));
        let sum = Self::float_sum_dim(exp.clone(), last);
        Self::float_div(exp, sum)
    }

    fn causal_softmax_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        composed_backward::<Self>(probs, grad, scale)
    }
}

/// Work is handed to rayon in pieces of about this many elements: small enough that a
/// one-shard DPO pass uses both cores, large enough that scheduling costs nothing.
const ELEMENTS_PER_TASK: usize = 1 << 15;

simd_kernel! {
    /// In place, for whole `[queries, keys]` matrices: row i becomes softmax(scale · row) over
    /// its first i + 1 + keys − queries entries and 0 after them.
    fn softmax_matrices(values: &mut [f32], queries: usize, keys: usize, scale: f32) {
        for matrix in values.chunks_exact_mut(queries * keys) {
            for (i, row) in matrix.chunks_exact_mut(keys).enumerate() {
                let (live, masked) = row.split_at_mut(visible_keys(i, queries, keys));
                masked.fill(0.0);
                if live.is_empty() {
                    continue;
                }
                let max = max(live);
                // Separate loops, so that each one vectorises.
                for x in live.iter_mut() {
                    *x = exp_f32((*x - max) * scale);
                }
                let inverse_sum = 1.0 / sum(live);
                for x in live.iter_mut() {
                    *x *= inverse_sum;
                }
            }
        }
    }
}

simd_kernel! {
    /// In place, row by row: grad ← scale · p ⊙ (grad − ⟨grad, p⟩). Masked positions have p = 0.
    fn softmax_backward_rows(grad: &mut [f32], probs: &[f32], keys: usize, scale: f32) {
        for (grad, probs) in grad.chunks_exact_mut(keys).zip(probs.chunks_exact(keys)) {
            let dot = dot(grad, probs);
            for (g, &p) in grad.iter_mut().zip(probs) {
                *g = scale * p * (*g - dot);
            }
        }
    }
}

/// 16 independent lanes, so that the compiler can keep them in one vector register.
const LANES: usize = 16;

#[inline(always)]
pub(crate) fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = if x > *lane { x } else { *lane };
        }
    }
    lanes.iter().fold(tail, |m, &x| m.max(x))
}

#[inline(always)]
pub(crate) fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;
    use burn::tensor::{Bool, Device, Int, TensorData};

    /// Every vector unit this CPU runs (the AVX2 build on an AVX-512 machine too) agrees with
    /// the baseline build of the same loops: a square matrix and a cached-decoding one.
    #[test]
    fn every_simd_level_matches_the_baseline_build() {
        use crate::simd::SimdLevel;
        for (queries, keys) in [(37, 37), (3, 41)] {
            let scores: Vec<f32> = (0..queries * keys)
                .map(|i| ((i * 7919) % 113) as f32 / 11.0 - 5.0)
                .collect();
            let upstream: Vec<f32> = (0..queries * keys)
                .map(|i| ((i * 104729) % 97) as f32 / 48.0 - 1.0)
                .collect();
            let run = |level: SimdLevel| {
                let mut probs = scores.clone();
                softmax_matrices::at(level, &mut probs, queries, keys, 0.25);
                let mut grad = upstream.clone();
                softmax_backward_rows::at(level, &mut grad, &probs, keys, 0.25);
                (probs, grad)
            };
            let (probs, grad) = run(SimdLevel::Baseline);
            for level in SimdLevel::ALL
                .into_iter()
                .filter(|&l| l <= SimdLevel::supported())
            {
                let (level_probs, level_grad) = run(level);
                for (a, b) in probs
                    .iter()
                    .zip(&level_probs)
                    .chain(grad.iter().zip(&level_grad))
                {
                    assert!(
                        (a - b).abs() <= 1e-6,
                        "{level:?} [{queries}, {keys}]: {a} vs {b}"
                    );
                }
            }
        }
    }

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
}
