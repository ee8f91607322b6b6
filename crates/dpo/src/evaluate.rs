//! Held-out preference accuracy: the fraction of unseen pairs whose implicit reward ranks
//! chosen above rejected, with the mean margin.

use burn::tensor::Device;
use eval::EvalRow;
use model::Gpt;

use crate::config::{LossConfig, LossType};
use crate::logps::{pair_logps, to_host, TokenizedPair};
use crate::loss::{pair_loss, PairInputs};
use crate::reference::ReferenceLogps;

const BATCH: usize = 128;

/// `policy` on the plain `device`; `reference` holds the frozen reference's log-probs of
/// `pairs`, computed once however many policies are scored. Rewards are the loss type's own
/// (β·log-ratio for DPO-style losses, β·average log-prob for SimPO/ORPO); KTO is scored as DPO,
/// since its pairs are the same pairs seen through labels.
pub fn preference_accuracy(
    policy: &Gpt,
    reference: Option<&ReferenceLogps>,
    pairs: &[TokenizedPair],
    loss: &LossConfig,
    pad_id: u32,
    device: &Device,
    split: &str,
) -> EvalRow {
    let loss = LossConfig {
        loss_type: match loss.loss_type {
            LossType::Kto => LossType::Sigmoid,
            other => other,
        },
        ..loss.clone()
    };
    let mut correct = 0;
    let mut margin_sum = 0.0;
    for (index, chunk) in pairs.chunks(BATCH).enumerate() {
        let chunk: Vec<&TokenizedPair> = chunk.iter().collect();
        let (chosen, rejected) = pair_logps(policy, &chunk, pad_id, device);
        let start = index * BATCH;
        let positions: Vec<usize> = (start..start + chunk.len()).collect();
        let reference_logps = reference
            .filter(|_| loss.loss_type.needs_reference())
            .map(|r| r.select(&positions, device));
        let out = pair_loss(
            &loss,
            PairInputs {
                chosen,
                rejected,
                reference: reference_logps,
            },
        );
        let margins = to_host(out.chosen_rewards - out.rejected_rewards);
        correct += margins.iter().filter(|&&m| m > 0.0).count();
        margin_sum += margins.iter().map(|&m| m as f64).sum::<f64>();
    }
    EvalRow::preference(
        split,
        pairs.len(),
        correct,
        margin_sum / pairs.len().max(1) as f64,
    )
}
