//! Where along a trace DPO moves the likelihood: the per-token log-ratio log πθ − log π_ref
//! on the chosen and on the rejected response of each pair, placed by the token's offset
//! from the first token where the rejected response leaves the chosen one. Plain DPO on
//! pairs one edit apart lowers the chosen trace too, most of all at and after that token
//! (likelihood displacement: Pal et al. 2024, arXiv 2402.13228; Razin et al. 2024, arXiv
//! 2410.08847); `xtask displacement` prints this for a DPO checkpoint against its parent.

use burn::tensor::Device;
use data::batch::{PaddedBatch, TokenizedExample};
use model::Gpt;
use serde::Serialize;
use trainer::tensors::padded_batch;

use crate::logps::TokenizedPair;

/// Offsets from the divergence reported one by one; tokens further away are pooled into the
/// regions only.
pub const OFFSETS: i64 = 12;

/// Pairs per forward pass.
const BATCH: usize = 64;

#[derive(Debug, Clone, Serialize)]
pub struct Displacement {
    pub pairs: usize,
    /// Means over pairs of the whole response's log-prob, under the policy and the reference.
    pub policy_chosen: f64,
    pub policy_rejected: f64,
    pub reference_chosen: f64,
    pub reference_rejected: f64,
    /// Mean per-token log-ratio before, at and after the divergence.
    pub regions: Vec<Region>,
    /// Mean per-token log-ratio at each offset from the divergence, −OFFSETS..=OFFSETS.
    pub by_offset: Vec<Offset>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Region {
    pub name: &'static str,
    /// Mean per-token log πθ − log π_ref on the chosen response's tokens in this region.
    pub chosen: Option<f64>,
    pub rejected: Option<f64>,
    pub chosen_tokens: usize,
    pub rejected_tokens: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Offset {
    pub offset: i64,
    pub chosen: Option<f64>,
    pub rejected: Option<f64>,
}

/// Running sums of log-ratios, per region and per offset.
#[derive(Default)]
struct Sums {
    regions: [(f64, usize); 3],
    offsets: Vec<(f64, usize)>,
}

impl Sums {
    fn new() -> Self {
        Self {
            regions: [(0.0, 0); 3],
            offsets: vec![(0.0, 0); (2 * OFFSETS + 1) as usize],
        }
    }

    /// Adds one response's per-token log-ratios; `divergence` indexes its first token that
    /// differs from the other response (its length when it is a prefix of the other).
    fn add(&mut self, ratios: &[f64], divergence: usize) {
        for (i, &r) in ratios.iter().enumerate() {
            let region = i.cmp(&divergence) as i64 + 1; // before 0, at 1, after 2
            let cell = &mut self.regions[region as usize];
            cell.0 += r;
            cell.1 += 1;
            let offset = i as i64 - divergence as i64;
            if offset.abs() <= OFFSETS {
                let cell = &mut self.offsets[(offset + OFFSETS) as usize];
                cell.0 += r;
                cell.1 += 1;
            }
        }
    }
}

fn mean((sum, n): (f64, usize)) -> Option<f64> {
    (n > 0).then(|| sum / n as f64)
}

/// Measures `pairs` under `policy` and `reference`.
pub fn measure(
    policy: &Gpt,
    reference: &Gpt,
    pairs: &[TokenizedPair],
    pad_id: u32,
    device: &Device,
) -> Displacement {
    let (mut chosen, mut rejected) = (Sums::new(), Sums::new());
    let mut totals = [0.0f64; 4];
    for batch in pairs.chunks(BATCH) {
        let rows: Vec<&TokenizedExample> = batch
            .iter()
            .map(|p| &p.chosen)
            .chain(batch.iter().map(|p| &p.rejected))
            .collect();
        let policy_logps = completion_logps(policy, &rows, pad_id, device);
        let reference_logps = completion_logps(reference, &rows, pad_id, device);
        for (i, pair) in batch.iter().enumerate() {
            let divergence = pair
                .chosen
                .completion
                .iter()
                .zip(&pair.rejected.completion)
                .take_while(|(a, b)| a == b)
                .count();
            for (side, row, sums) in [(0, i, &mut chosen), (1, batch.len() + i, &mut rejected)] {
                let (p, r) = (&policy_logps[row], &reference_logps[row]);
                totals[side] += p.iter().sum::<f64>();
                totals[2 + side] += r.iter().sum::<f64>();
                let ratios: Vec<f64> = p.iter().zip(r).map(|(p, r)| p - r).collect();
                sums.add(&ratios, divergence);
            }
        }
    }
    let n = pairs.len().max(1) as f64;
    let regions = ["before", "at", "after"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| Region {
            name,
            chosen: mean(chosen.regions[i]),
            rejected: mean(rejected.regions[i]),
            chosen_tokens: chosen.regions[i].1,
            rejected_tokens: rejected.regions[i].1,
        })
        .collect();
    let by_offset = (-OFFSETS..=OFFSETS)
        .map(|offset| {
            let at = (offset + OFFSETS) as usize;
            Offset {
                offset,
                chosen: mean(chosen.offsets[at]),
                rejected: mean(rejected.offsets[at]),
            }
        })
        .collect();
    Displacement {
        pairs: pairs.len(),
        policy_chosen: totals[0] / n,
        policy_rejected: totals[1] / n,
        reference_chosen: totals[2] / n,
        reference_rejected: totals[3] / n,
        regions,
        by_offset,
    }
}

/// log π of each completion token of each row, in order.
fn completion_logps(
    model: &Gpt,
    rows: &[&TokenizedExample],
    pad_id: u32,
    device: &Device,
) -> Vec<Vec<f64>> {
    let batch = PaddedBatch::new(rows, pad_id, true);
    let (tokens, _) = padded_batch(&batch, device);
    let logits = trainer::parallel::sharded_forward(model, tokens.clone());
    let width = batch.width - 1;
    let all = logprob::token_logprobs(logits, tokens)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 log-probs");
    rows.iter()
        .enumerate()
        .map(|(b, row)| {
            // Token t is scored at entry t − 1 of its row.
            let start = b * width + row.prompt.len() - 1;
            all[start..start + row.completion.len()]
                .iter()
                .map(|&x| x as f64)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_fall_into_regions_by_their_offset_from_the_divergence() {
        let mut sums = Sums::new();
        sums.add(&[-1.0, -2.0, -3.0, -4.0], 1);
        assert_eq!(sums.regions[0], (-1.0, 1));
        assert_eq!(sums.regions[1], (-2.0, 1));
        assert_eq!(sums.regions[2], (-7.0, 2));
        assert_eq!(sums.offsets[(OFFSETS - 1) as usize], (-1.0, 1));
        assert_eq!(sums.offsets[(OFFSETS + 2) as usize], (-4.0, 1));
        // A response that is a prefix of the other has every token before the divergence.
        let mut prefix = Sums::new();
        prefix.add(&[0.5, 0.5], 2);
        assert_eq!(prefix.regions[0], (1.0, 2));
        assert_eq!(prefix.regions[1].1 + prefix.regions[2].1, 0);
    }
}
