//! One step of a paired preference loss: policy log-probs, loss and gradients, with the batch
//! split into data-parallel shards (one per core on the CPU, see `trainer::parallel`).
//!
//! Every paired loss is a mean over pairs, so a shard's loss times its share of the pairs adds
//! up to the batch loss; the NLL terms (ORPO's, rpo_alpha's) are pooled over the batch's
//! tokens, so a shard adds its tokens' sum over the batch's count. The shards' gradients add up
//! to the batch gradient. KTO is not sharded: its reference point z₀ is estimated
//! from the whole batch.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use model::Gpt;
use trainer::parallel::sharded_backward_with;

use crate::config::{LossConfig, LossType};
use crate::logps::{pair_logps, TokenizedPair};
use crate::loss::{pair_loss, pooled_nll, PairInputs, PairLoss, SequenceLogps};

/// The step's gradients, its loss and implicit rewards (detached), and the policy's log-probs
/// of chosen and rejected as TRL logs them (detached), all over the whole batch.
pub struct PairStep {
    pub grads: GradientsParams,
    pub out: PairLoss,
    pub logps: (Tensor<1>, Tensor<1>),
}

/// `batch`'s loss under `loss` and its gradients, on `shards` shards of pairs. `reference`
/// holds the reference's log-probs of chosen and rejected (`[B]` each) for losses that use one.
pub fn pair_loss_backward(
    policy: &Gpt,
    batch: &[&TokenizedPair],
    reference: Option<(Tensor<1>, Tensor<1>)>,
    loss: &LossConfig,
    pad_id: u32,
    device: &Device,
    shards: usize,
) -> PairStep {
    let pairs = batch.len();
    // The NLL terms are one cross-entropy each, pooled over the batch's chosen tokens; each
    // shard adds its tokens' part of that mean. rpo_alpha's scores the responses (TRL's
    // DPOTrainer), ORPO's the prompts too (TRL's ORPOTrainer labels every non-pad token).
    let chosen_tokens: usize = batch.iter().map(|p| p.chosen.completion.len()).sum();
    let chosen_tokens_with_prompt: usize = batch.iter().map(|p| p.chosen.len() - 1).sum();
    let per_shard = pairs.div_ceil(shards.max(1)).max(1);
    let pieces: Vec<Shard> = batch
        .chunks(per_shard)
        .enumerate()
        .map(|(i, shard)| {
            let (start, len) = (i * per_shard, shard.len());
            Shard {
                pairs: shard.to_vec(),
                reference: reference.as_ref().map(|(chosen, rejected)| {
                    (
                        chosen.clone().narrow(0, start, len),
                        rejected.clone().narrow(0, start, len),
                    )
                }),
            }
        })
        .collect();

    let (grads, total, reports) =
        sharded_backward_with(policy, device, pieces, |replica, shard| {
            let share = shard.pairs.len() as f64 / pairs as f64;
            let (chosen, rejected) = pair_logps(replica, &shard.pairs, pad_id, device);
            let logps = (logged(loss, &chosen), logged(loss, &rejected));
            let rpo_nll = pooled_nll(chosen.sum.clone(), chosen_tokens);
            let orpo_nll = pooled_nll(
                chosen.sum.clone() + chosen.prompt_sum.clone(),
                chosen_tokens_with_prompt,
            );
            let out = pair_loss(
                loss,
                PairInputs {
                    chosen,
                    rejected,
                    reference: shard.reference,
                },
            );
            let mut shard_loss = out.loss * share;
            if loss.loss_type == LossType::Orpo {
                shard_loss = shard_loss + orpo_nll;
            }
            if loss.rpo_alpha > 0.0 {
                shard_loss = shard_loss + rpo_nll * loss.rpo_alpha;
            }
            let report = (out.chosen_rewards, out.rejected_rewards, logps);
            (shard_loss, report)
        });

    let (mut chosen_rewards, mut rejected_rewards) = (Vec::new(), Vec::new());
    let (mut logps_chosen, mut logps_rejected) = (Vec::new(), Vec::new());
    for (chosen, rejected, (logp_chosen, logp_rejected)) in reports {
        chosen_rewards.push(chosen);
        rejected_rewards.push(rejected);
        logps_chosen.push(logp_chosen);
        logps_rejected.push(logp_rejected);
    }
    PairStep {
        grads,
        out: PairLoss {
            loss: total,
            chosen_rewards: Tensor::cat(chosen_rewards, 0),
            rejected_rewards: Tensor::cat(rejected_rewards, 0),
        },
        logps: (Tensor::cat(logps_chosen, 0), Tensor::cat(logps_rejected, 0)),
    }
}

/// The log-probs TRL logs as `logps/chosen` and `logps/rejected`: the ones its loss uses,
/// per-token means for the length-normalised IPO, SimPO and ORPO, sums otherwise.
fn logged(loss: &LossConfig, logps: &SequenceLogps) -> Tensor<1> {
    match loss.loss_type {
        LossType::Ipo | LossType::Simpo | LossType::Orpo => logps.mean().detach(),
        _ => logps.sum.clone().detach(),
    }
}

/// A run of consecutive pairs and their slice of the reference log-probs.
struct Shard<'a> {
    pairs: Vec<&'a TokenizedPair>,
    reference: Option<(Tensor<1>, Tensor<1>)>,
}
