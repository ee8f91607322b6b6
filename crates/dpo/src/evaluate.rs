//! Held-out preference accuracy: the fraction of unseen pairs whose implicit reward ranks
//! chosen above rejected, with the mean margin; and the sets every trained policy is scored on.

use burn::tensor::Device;
use eval::EvalRow;
use model::Gpt;
use trainer::Reference;

use crate::config::{LossConfig, LossType};
use crate::logps::{pair_logps, to_host, TokenizedPair};
use crate::loss::{pair_loss, PairInputs};
use crate::reference::ReferenceLogps;
use crate::HELD_OUT_VS_PARENT;

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

/// The pairs every trained policy is scored on, a sample of the training pairs and held-out
/// ones, each with the parent's log-probs of them, computed once for every loss variant.
pub struct PreferenceSets<'a> {
    sets: [(&'static str, Vec<TokenizedPair>, ReferenceLogps); 2],
    pad_id: u32,
    /// The plain device the policy is scored on.
    device: &'a Device,
}

impl<'a> PreferenceSets<'a> {
    pub fn new(
        parent: Reference<'a>,
        train_sample: Vec<TokenizedPair>,
        held_out: Vec<TokenizedPair>,
        pad_id: u32,
    ) -> Self {
        let parent_logps = |set: &[TokenizedPair]| {
            let set: Vec<&TokenizedPair> = set.iter().collect();
            ReferenceLogps::compute(parent.model, &set, pad_id, parent.device)
        };
        let train_logps = parent_logps(&train_sample);
        let held_out_logps = parent_logps(&held_out);
        Self {
            sets: [
                ("train", train_sample, train_logps),
                ("held_out", held_out, held_out_logps),
            ],
            pad_id,
            device: parent.device,
        }
    }

    /// `policy`'s preference accuracy on each set under `loss`'s own reward and, for a loss
    /// with no reference (SimPO, ORPO), the lesson's margin against the parent on the held-out
    /// set; each row's mode ends in `suffix`.
    pub fn rows(&self, policy: &Gpt, loss: &LossConfig, suffix: &str) -> Vec<EvalRow> {
        let score = |(_, pairs, parent): &(&str, Vec<TokenizedPair>, ReferenceLogps),
                     loss: &LossConfig,
                     mode: String| {
            preference_accuracy(
                policy,
                Some(parent),
                pairs,
                loss,
                self.pad_id,
                self.device,
                &mode,
            )
        };
        let mut rows: Vec<EvalRow> = self
            .sets
            .iter()
            .map(|set| score(set, loss, format!("{}{suffix}", set.0)))
            .collect();
        if !loss.loss_type.needs_reference() {
            let lesson_margin = LossConfig {
                loss_type: LossType::Sigmoid,
                ..loss.clone()
            };
            let mode = format!("{HELD_OUT_VS_PARENT}{suffix}");
            rows.push(score(&self.sets[1], &lesson_margin, mode));
        }
        rows
    }
}
