//! Matrix products: [`matmul`] and [`linear`], the model's `x @ W`.
//!
//! On the CPU path flex would allocate each product's output zeroed, copy it into an aligned
//! buffer and only then let gemm overwrite it: two passes over every output that buy nothing
//! (`docs/perf.md`, change 9). Here gemm writes straight into a fresh `Vec<f32>` that becomes
//! the tensor without a copy. A Burn backend extension runs it on flex, with the backward pass (two
//! more products, on transposed views) written for autodiff. The products use the same gemm
//! kernels and the same threading rules as flex's own, so they round the same way.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{binary, Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::dispatch::KernelPath;
use crate::flex_buffer;

/// `x @ W` for activations `[B, T, d_in]` and a weight `[d_in, d_out]`.
///
/// Batch and time are folded into one `[B·T, d_in]` matrix: one large product each way, where
/// broadcasting the weight to `[1, d_in, d_out]` would make Burn run B small products and, in
/// backward, B weight gradients to sum (`docs/perf.md`, change 2).
pub fn linear(x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
    let [b, t, d_in] = x.dims();
    let [_, d_out] = weight.dims();
    matmul(x.reshape([b * t, d_in]), weight).reshape([b, t, d_out])
}

/// `lhs @ rhs` over the last two axes; leading axes must agree (no broadcasting on flex).
pub fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    match KernelPath::of(&lhs.device()) {
        KernelPath::FusedCpu => Tensor::from_dispatch(<Dispatch as DirectMatmul>::direct_matmul(
            lhs.into_dispatch(),
            rhs.into_dispatch(),
        )),
        KernelPath::GpuOps | KernelPath::Burn => lhs.matmul(rhs),
    }
}

#[backend_extension(Flex, Autodiff)]
pub trait DirectMatmul: Backend {
    fn direct_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl DirectMatmul for Flex {
    fn direct_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        match Product::of(&lhs, &rhs) {
            Some(product) => product.run(&lhs, &rhs),
            // Other dtypes, broadcasting, empty operands: flex's own product.
            None => Flex::float_matmul(lhs, rhs),
        }
    }
}

impl<B: Backend + DirectMatmul, C: CheckpointStrategy> DirectMatmul for Autodiff<B, C> {
    fn direct_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MatmulBackward;

        impl<B: Backend + DirectMatmul> Backward<B, 2> for MatmulBackward {
            /// Each gradient needs the other operand.
            type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (lhs, rhs) = ops.state;
                binary::<B, _, _>(
                    ops.parents,
                    ops.node,
                    grads,
                    |grad| B::direct_matmul(grad, transposed::<B>(rhs.expect("rhs kept"))),
                    |grad| B::direct_matmul(transposed::<B>(lhs.expect("lhs kept")), grad),
                );
            }
        }

        let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
        match MatmulBackward
            .prepare::<C>([lhs.node(), rhs.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = (
                    rhs_tracked.then(|| lhs.primitive().clone()),
                    lhs_tracked.then(|| rhs.primitive().clone()),
                );
                prep.finish(
                    state,
                    B::direct_matmul(lhs.into_primitive(), rhs.into_primitive()),
                )
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::direct_matmul(lhs.into_primitive(), rhs.into_primitive()))
            }
        }
    }
}

/// Swaps the last two axes: a view on flex, no copy.
fn transposed<B: Backend>(tensor: FloatTensor<B>) -> FloatTensor<B> {
    let rank = tensor.shape().num_dims();
    B::float_swap_dims(tensor, rank - 2, rank - 1)
}

/// Matrix products below this many multiply-adds run on one thread (flex's threshold).
const PARALLEL_MACS: usize = 192 * 192 * 192;
/// A batch of small products this large runs its products in parallel (flex's threshold).
const BATCH_PARALLEL_MACS: usize = 128 * 128 * 128;

/// The shape of a batch of `[m, k] @ [k, n]` products.
struct Product {
    batch_dims: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
}

impl Product {
    fn of(lhs: &FlexTensor, rhs: &FlexTensor) -> Option<Self> {
        let (l, r) = (flex_buffer::dims(lhs), flex_buffer::dims(rhs));
        let rank = l.len();
        let usable = lhs.dtype() == DType::F32
            && rhs.dtype() == DType::F32
            && rank >= 2
            && r.len() == rank
            && l[..rank - 2] == r[..rank - 2]
            && l[rank - 1] == r[rank - 2]
            && l.iter().chain(&r).all(|&d| d > 0);
        usable.then(|| Product {
            batch_dims: l[..rank - 2].to_vec(),
            m: l[rank - 2],
            k: l[rank - 1],
            n: r[rank - 1],
        })
    }

    fn run(&self, lhs: &FlexTensor, rhs: &FlexTensor) -> FlexTensor {
        let len = self.batch_dims.iter().product::<usize>() * self.m * self.n;
        // Left uninitialised: gemm writes every element without reading it (read_dst = false;
        // tested below), so zeroing the output first would be one more pass over it for nothing.
        let mut out: Vec<f32> = Vec::with_capacity(len);
        self.write(
            lhs,
            rhs,
            &mut out.spare_capacity_mut()[..len],
            gemm::gemm::<f32>,
        );
        // SAFETY: `write` wrote all `len` elements.
        unsafe { out.set_len(len) };
        let mut dims = self.batch_dims.clone();
        dims.extend([self.m, self.n]);
        flex_buffer::from_vec(out, dims)
    }

    /// Writes every product of the batch into `out`, one row-major `m × n` matrix after another,
    /// with `gemm` (`gemm::gemm`, or in tests one of its kernel sets chosen by hand).
    fn write(
        &self,
        lhs: &FlexTensor,
        rhs: &FlexTensor,
        out: &mut [MaybeUninit<f32>],
        gemm: GemmFn,
    ) {
        let (m, k, n) = (self.m, self.k, self.n);
        let batch: usize = self.batch_dims.iter().product();
        let matrix_len = m * n;
        assert_eq!(out.len(), batch * matrix_len, "output of the wrong size");
        let lhs_matrices = Operand::new(lhs, &self.batch_dims);
        let rhs_matrices = Operand::new(rhs, &self.batch_dims);

        let one = |b: usize, dst: &mut [MaybeUninit<f32>], parallelism: gemm::Parallelism| {
            // SAFETY: `dst` holds one m × n matrix, written whole and never read (read_dst =
            // false); the operand pointers and strides come from the tensors' own layouts.
            unsafe {
                gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr().cast::<f32>(),
                    1,
                    n as isize,
                    false,
                    lhs_matrices.matrix(b),
                    lhs_matrices.col_stride,
                    lhs_matrices.row_stride,
                    rhs_matrices.matrix(b),
                    rhs_matrices.col_stride,
                    rhs_matrices.row_stride,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                )
            }
        };

        let macs = m * n * k;
        if batch >= 4 && macs * batch >= BATCH_PARALLEL_MACS && macs < PARALLEL_MACS {
            out.par_chunks_mut(matrix_len)
                .enumerate()
                .for_each(|(b, dst)| one(b, dst, gemm::Parallelism::None));
        } else {
            let parallelism = if macs >= PARALLEL_MACS {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            };
            for (b, dst) in out.chunks_mut(matrix_len).enumerate() {
                one(b, dst, parallelism);
            }
        }
    }
}

/// `gemm::gemm`'s signature for f32.
type GemmFn = unsafe fn(
    usize,
    usize,
    usize,
    *mut f32,
    isize,
    isize,
    bool,
    *const f32,
    isize,
    isize,
    *const f32,
    isize,
    isize,
    f32,
    f32,
    bool,
    bool,
    bool,
    gemm::Parallelism,
);

/// Where each matrix of a (possibly strided) batch starts, and its row and column strides.
struct Operand<'a> {
    data: &'a [f32],
    start: isize,
    batch_dims: &'a [usize],
    batch_strides: &'a [isize],
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Operand<'a> {
    fn new(tensor: &'a FlexTensor, batch_dims: &'a [usize]) -> Self {
        let layout = tensor.layout();
        let strides = layout.strides();
        let rank = strides.len();
        Operand {
            data: tensor.storage::<f32>(),
            start: layout.start_offset() as isize,
            batch_dims,
            batch_strides: &strides[..rank - 2],
            row_stride: strides[rank - 2],
            col_stride: strides[rank - 1],
        }
    }

    /// A pointer to the first element of matrix `b` (row-major index over the batch axes).
    fn matrix(&self, b: usize) -> *const f32 {
        let mut rest = b;
        let mut offset = self.start;
        for (&dim, &stride) in self.batch_dims.iter().zip(self.batch_strides).rev() {
            offset += (rest % dim) as isize * stride;
            rest /= dim;
        }
        // SAFETY: the layout keeps every element of the tensor inside its storage.
        unsafe { self.data.as_ptr().offset(offset) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn values<const D: usize>(dims: [usize; D], seed: usize, device: &Device) -> Tensor<D> {
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| (((i + seed) * 37 % 101) as f32 - 50.0) * 0.02)
            .collect();
        Tensor::from_data(TensorData::new(values, dims), device)
    }

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn matches_burns_product_for_plain_batched_and_transposed_operands() {
        let device = Device::flex();
        let (a, b) = (values([70, 33], 0, &device), values([33, 50], 1, &device));
        assert!(max_diff(matmul(a.clone(), b.clone()), a.matmul(b)) < 1e-5);

        let (q, k) = (
            values([2, 3, 9, 8], 2, &device),
            values([2, 3, 9, 8], 3, &device),
        );
        let k_t = k.swap_dims(2, 3); // a strided view
        assert!(max_diff(matmul(q.clone(), k_t.clone()), q.matmul(k_t)) < 1e-5);

        // Batch axes that are themselves permuted (as after swap_dims(1, 2) on heads).
        let x = values([2, 9, 3, 8], 4, &device).swap_dims(1, 2);
        let y = values([2, 3, 8, 5], 5, &device);
        assert!(max_diff(matmul(x.clone(), y.clone()), x.matmul(y)) < 1e-5);

        // A batch of 64 small products takes the parallel-over-batch path.
        let (p, v) = (
            values([64, 40, 40], 6, &device),
            values([64, 40, 24], 7, &device),
        );
        assert!(max_diff(matmul(p.clone(), v.clone()), p.matmul(v)) < 1e-5);
    }

    /// gemm's AVX2 + FMA kernels, through the same driver `gemm::gemm` gives them on a CPU
    /// without AVX-512 (`__inject_mod!(fma, f32, 8, V3, false)` in gemm-common): the products'
    /// AVX2 path, run even on a CPU with AVX-512, where gemm itself would pick its AVX-512 kernels.
    #[cfg(target_arch = "x86_64")]
    // The only allowance of the workspace: these are `gemm::gemm`'s own 19 arguments, since the
    // test passes this function where `gemm::gemm` goes (a `GemmFn`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_avx2(
        m: usize,
        n: usize,
        k: usize,
        dst: *mut f32,
        dst_cs: isize,
        dst_rs: isize,
        read_dst: bool,
        lhs: *const f32,
        lhs_cs: isize,
        lhs_rs: isize,
        rhs: *const f32,
        rhs_cs: isize,
        rhs_rs: isize,
        alpha: f32,
        beta: f32,
        conj_dst: bool,
        conj_lhs: bool,
        conj_rhs: bool,
        parallelism: gemm::Parallelism,
    ) {
        use gemm_common::simd::{MixedSimd, V3};
        use gemm_f32::microkernel::fma::f32::{H_M, H_N, H_UKR, MR_DIV_N, NR, UKR};
        const LANES: usize = 8;
        let simd = <V3 as MixedSimd<f32, f32, f32, f32>>::try_new().expect("AVX2 + FMA");
        gemm_common::gemm::gemm_basic_generic::<
            _,
            f32,
            LANES,
            { MR_DIV_N * LANES },
            NR,
            MR_DIV_N,
            H_M,
            H_N,
        >(
            simd,
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            read_dst,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            alpha,
            beta,
            conj_dst,
            conj_lhs,
            conj_rhs,
            |a, b, c| a * b + c,
            &UKR,
            &H_UKR,
            false,
            parallelism,
        )
    }

    /// gemm as the products run it, and its AVX2 kernels wherever the CPU has them (so that the
    /// AVX2 path is tested on machines with AVX-512 too).
    fn gemm_kernel_sets() -> Vec<(&'static str, GemmFn)> {
        let mut sets: Vec<(&'static str, GemmFn)> = vec![("gemm's own pick", gemm::gemm::<f32>)];
        #[cfg(target_arch = "x86_64")]
        if crate::SimdLevel::supported() >= crate::SimdLevel::Avx2 {
            sets.push(("gemm's AVX2 kernels", gemm_avx2));
        }
        sets
    }

    /// Every element of the output, checked against a product in f64, with each of
    /// [`gemm_kernel_sets`]: a destination that starts as NaN shows any element gemm read
    /// before writing, or never wrote.
    #[test]
    fn gemm_writes_every_output_without_reading_it() {
        use burn::backend::flex::FlexTensor;
        use burn::tensor::TensorData;
        // Tile edges, gemm's small-product and one-row paths, a deep sum, a parallel product
        // and a batch of small ones, each with plain and transposed operands.
        let shapes = [
            (1, 1, 1, 1),
            (1, 1, 128, 65),
            (1, 7, 5, 3),
            (1, 16, 16, 16),
            (1, 3, 1024, 65),
            (1, 300, 130, 70),
            (1, 256, 256, 256),
            (64, 40, 16, 40),
        ];
        for (batch, m, k, n) in shapes {
            for (lhs_t, rhs_t) in [(false, false), (true, false), (false, true), (true, true)] {
                let values = |len: usize, seed: usize| -> Vec<f32> {
                    (0..len)
                        .map(|i| (((i * 37 + seed * 11) % 101) as f32 - 50.0) * 0.02)
                        .collect()
                };
                let (a, b) = (values(batch * m * k, 1), values(batch * k * n, 2));
                // A transposed operand is stored the other way round and viewed through strides.
                let operand = |v: &[f32], rows: usize, cols: usize, t: bool| {
                    let dims = if t {
                        [batch, cols, rows]
                    } else {
                        [batch, rows, cols]
                    };
                    let tensor = FlexTensor::from_data(TensorData::new(v.to_vec(), dims));
                    if t {
                        Flex::float_swap_dims(tensor, 1, 2)
                    } else {
                        tensor
                    }
                };
                let (lhs, rhs) = (operand(&a, m, k, lhs_t), operand(&b, k, n, rhs_t));
                let at =
                    |v: &[f32], rows: usize, cols: usize, t: bool, q: usize, i: usize, j: usize| {
                        if t {
                            v[q * rows * cols + j * rows + i]
                        } else {
                            v[q * rows * cols + i * cols + j]
                        }
                    };
                let product = Product::of(&lhs, &rhs).expect("a plain product");
                for (kernels, gemm) in gemm_kernel_sets() {
                    let mut out = vec![MaybeUninit::new(f32::NAN); batch * m * n];
                    product.write(&lhs, &rhs, &mut out, gemm);
                    for q in 0..batch {
                        for i in 0..m {
                            for j in 0..n {
                                let expected: f64 = (0..k)
                                    .map(|p| {
                                        at(&a, m, k, lhs_t, q, i, p) as f64
                                            * at(&b, k, n, rhs_t, q, p, j) as f64
                                    })
                                    .sum();
                                // SAFETY: initialised as NaN above, then (we check) overwritten.
                                let got = unsafe { out[(q * m + i) * n + j].assume_init() } as f64;
                                assert!(
                                    (got - expected).abs() <= 1e-4 * (1.0 + expected.abs()),
                                    "{kernels}, {batch}×{m}×{k}·{k}×{n} (lhs_t {lhs_t}, \
                                 rhs_t {rhs_t}): ({q}, {i}, {j}) is {got}, not {expected}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn linear_is_one_folded_product() {
        let device = Device::flex();
        let (x, w) = (values([3, 5, 8], 0, &device), values([8, 6], 1, &device));
        let broadcast = x.clone().matmul(w.clone().unsqueeze::<3>());
        assert!(max_diff(linear(x, w), broadcast) < 1e-5);
    }

    #[test]
    fn falls_back_to_burn_where_it_cannot_help() {
        let device = Device::flex();
        // Broadcast batch axes.
        let (a, b) = (values([3, 4, 5], 0, &device), values([1, 5, 6], 1, &device));
        assert!(max_diff(matmul(a.clone(), b.clone()), a.matmul(b)) < 1e-6);
    }

    #[test]
    fn gradients_match_burns() {
        let device = Device::flex().autodiff();
        let a = values([2, 3, 7, 5], 0, &device).require_grad();
        let b = values([2, 3, 5, 6], 1, &device).require_grad();
        let weights = values([2, 3, 7, 6], 2, &device).cos();
        let ours = (matmul(a.clone(), b.clone()) * weights.clone())
            .sum()
            .backward();
        let theirs = (a.clone().matmul(b.clone()) * weights).sum().backward();
        assert!(max_diff(a.grad(&ours).unwrap(), a.grad(&theirs).unwrap()) < 1e-5);
        assert!(max_diff(b.grad(&ours).unwrap(), b.grad(&theirs).unwrap()) < 1e-5);
    }

    #[test]
    fn a_constant_operand_gets_no_gradient_and_the_other_one_does() {
        let device = Device::flex().autodiff();
        let x = values([6, 4], 0, &device); // data, not a parameter
        let w = values([4, 3], 1, &device).require_grad();
        let grads = matmul(x.clone(), w.clone()).sum().backward();
        assert!(x.grad(&grads).is_none());
        let expected = x.swap_dims(0, 1).matmul(Tensor::ones([6, 3], &device));
        assert!(max_diff(w.grad(&grads).unwrap(), expected) < 1e-5);
    }
}
