//! The frozen reference's log-probs. The reference never changes, so TRL's
//! `precompute_ref_log_probs` computes them once, before training, and every step reads them;
//! without it, each step runs the frozen reference over its batch.

use burn::tensor::{Device, Tensor};
use model::Gpt;
use trainer::Reference;

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

/// Where a step's reference log-probs come from.
pub enum ReferenceSource<'a> {
    /// A reference-free loss (SimPO, ORPO).
    None,
    /// Every example's, computed once before training (`precompute_ref_log_probs`).
    Cached(ReferenceLogps),
    /// A pass of the frozen reference over each batch.
    Fresh(Reference<'a>),
}

impl<'a> ReferenceSource<'a> {
    /// With `precompute`, one pass of `reference` over all of `pairs` now.
    pub fn new(
        reference: Option<Reference<'a>>,
        precompute: bool,
        pairs: &[TokenizedPair],
        pad_id: u32,
    ) -> Self {
        match reference {
            None => Self::None,
            Some(r) if precompute => {
                let all: Vec<&TokenizedPair> = pairs.iter().collect();
                Self::Cached(ReferenceLogps::compute(r.model, &all, pad_id, r.device))
            }
            Some(r) => Self::Fresh(r),
        }
    }

    /// The reference's log-probs of chosen and rejected of `batch` (pairs `indices`), as
    /// tensors on the policy's `device`; `None` for a reference-free loss.
    pub fn logps(
        &self,
        indices: &[usize],
        batch: &[&TokenizedPair],
        pad_id: u32,
        device: &Device,
    ) -> Option<(Tensor<1>, Tensor<1>)> {
        match self {
            Self::None => None,
            Self::Cached(cache) => Some(cache.select(indices, device)),
            Self::Fresh(r) => {
                let fresh = ReferenceLogps::compute(r.model, batch, pad_id, r.device);
                Some(fresh.select(&(0..batch.len()).collect::<Vec<_>>(), device))
            }
        }
    }
}
