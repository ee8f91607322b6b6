//! Host-side batches as tensors on a device.

use burn::tensor::{Device, Int, Tensor, TensorData};
use data::batch::PaddedBatch;

/// A padded batch's tokens `[rows, width]` and its loss mask `[rows, width]` on `device`.
pub fn padded_batch(batch: &PaddedBatch, device: &Device) -> (Tensor<2, Int>, Tensor<2>) {
    let shape = [batch.rows, batch.width];
    (
        Tensor::from_data(TensorData::new(batch.tokens.clone(), shape), device),
        Tensor::from_data(TensorData::new(batch.mask.clone(), shape), device),
    )
}
