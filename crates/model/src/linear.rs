//! `x @ W` for activations `[B, T, d_in]` and a weight `[d_in, d_out]`.
//!
//! Broadcasting the weight to `[1, d_in, d_out]` makes Burn run B small matrix products and,
//! in backward, B weight gradients that are then summed. Folding batch and time into one
//! `[B·T, d_in]` matrix gives one large product each way, which the CPU matmul runs much
//! faster (docs/perf.md).

use burn::tensor::Tensor;

use crate::matmul::matmul;

pub fn linear(x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
    let [b, t, d_in] = x.dims();
    let [_, d_out] = weight.dims();
    matmul(x.reshape([b * t, d_in]), weight).reshape([b, t, d_out])
}
