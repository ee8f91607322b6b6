//! Batches of fixed-length windows cut from the token stream.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::Rng;

/// `batch` windows of `len` tokens at uniformly random offsets (the lesson's sampler).
pub fn random_windows(
    ids: &[u32],
    len: usize,
    batch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> Tensor<2, Int> {
    let windows: Vec<&[u32]> = (0..batch)
        .map(|_| {
            let start = rng.random_range(0..=ids.len() - len);
            &ids[start..start + len]
        })
        .collect();
    to_tensor(&windows, device)
}

/// `n_batches` batches of windows spread evenly over the validation tokens: the same
/// windows at every evaluation, so validation curves compare like with like.
pub fn validation_windows(
    ids: &[u32],
    len: usize,
    batch: usize,
    n_batches: usize,
    device: &Device,
) -> Vec<Tensor<2, Int>> {
    let count = batch * n_batches;
    let span = ids.len() - len;
    let starts: Vec<usize> = (0..count).map(|i| i * span / count.max(1)).collect();
    starts
        .chunks(batch)
        .map(|chunk| {
            let windows: Vec<&[u32]> = chunk.iter().map(|&s| &ids[s..s + len]).collect();
            to_tensor(&windows, device)
        })
        .collect()
}

pub fn to_tensor(windows: &[&[u32]], device: &Device) -> Tensor<2, Int> {
    let len = windows[0].len();
    let flat: Vec<i64> = windows
        .iter()
        .flat_map(|w| w.iter().map(|&t| t as i64))
        .collect();
    Tensor::from_data(TensorData::new(flat, [windows.len(), len]), device)
}
