//! The frozen reference's log-probs. The reference never changes, so TRL's
//! `precompute_ref_log_probs` computes them once, before training, and every step reads them.

use burn::tensor::{Device, Tensor};
use model::Gpt;

use crate::logps::{host_tensor, pair_logps, to_host, TokenizedPair};

/// Pairs per forward pass when precomputing.
const BATCH: usize = 128;

/// log π_ref of every pair's chosen and rejected response, in the order of the pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceLogps {
    pub chosen: Vec<f32>,
    pub rejected: Vec<f32>,
}

impl ReferenceLogps {
    /// One pass over `pairs` with the frozen `reference` on its plain (no-autodiff) device.
    pub fn compute(
        reference: &Gpt,
        pairs: &[&TokenizedPair],
        pad_id: u32,
        device: &Device,
    ) -> Self {
        let mut out = Self {
            chosen: Vec::with_capacity(pairs.len()),
            rejected: Vec::with_capacity(pairs.len()),
        };
        for chunk in pairs.chunks(BATCH) {
            let (chosen, rejected) = pair_logps(reference, chunk, pad_id, device);
            out.chosen.extend(to_host(chosen.sum));
            out.rejected.extend(to_host(rejected.sum));
        }
        out
    }

    /// The cached values of pairs `indices`, as tensors on `device`.
    pub fn select(&self, indices: &[usize], device: &Device) -> (Tensor<1>, Tensor<1>) {
        let pick = |values: &[f32]| indices.iter().map(|&i| values[i]).collect();
        (
            host_tensor(pick(&self.chosen), device),
            host_tensor(pick(&self.rejected), device),
        )
    }
}
