//! GRPO's loss on the live groups. The lesson's form (`loss_type = "lesson"`, the default):
//! −(1/K) Σ A·log πθ(y|x) averaged over groups, each response's log-probs summed, + β·mean k3
//! KL from the frozen reference over the response tokens. TRL's forms put the KL inside a
//! per-token loss, −A·log πθ(token) + β·k3(token), and differ only in how they average it
//! (`aggregate`). With one optimisation pass per batch of rollouts (TRL's `num_iterations`
//! = 1) the clipped ratio is 1 and its gradient is that of log πθ, so no ratio appears here.

use burn::tensor::{Device, Tensor, TensorData};
use data::batch::{PaddedBatch, TokenizedExample};
use model::Gpt;
use serde::{Deserialize, Serialize};
use trainer::tensors::padded_batch;
use trainer::Reference;

use crate::groups::LiveGroup;

/// `rlvr.loss_type`: how the policy-gradient loss averages over tokens and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpoLossType {
    /// The lesson's: each response's log-probs summed, −(1/K) Σ A·log π(y|x) per group,
    /// averaged over groups; the KL averaged over every response token, apart.
    #[default]
    Lesson,
    /// TRL's `grpo`: the per-token loss averaged over each response's tokens, then over the
    /// responses (a long response's tokens weigh less).
    Grpo,
    /// TRL's `bnpo`: averaged over every response token of the batch.
    Bnpo,
    /// TRL's `dr_grpo` (Dr. GRPO): summed, then divided by a constant, responses × the longest
    /// completion allowed (TRL's `max_completion_length`; here the model's block size).
    DrGrpo,
    /// TRL's `dapo`: divided by the response tokens of the whole accumulated batch. With one
    /// batch per step and one process, as here, that is `bnpo`.
    Dapo,
}

impl GrpoLossType {
    pub fn is_lesson(&self) -> bool {
        *self == GrpoLossType::Lesson
    }
}

/// A TRL per-token loss (already zero off the response) as one number: `response` is the
/// response mask `[n, T]`, `max_completion` dr_grpo's constant. Not for the lesson's form.
pub fn aggregate(
    per_token: Tensor<2>,
    response: Tensor<2>,
    loss_type: GrpoLossType,
    max_completion: usize,
) -> Tensor<1> {
    let n = per_token.dims()[0];
    match loss_type {
        GrpoLossType::Grpo => {
            let lengths = response.sum_dim(1).clamp_min(1.0);
            (per_token.sum_dim(1) / lengths).mean()
        }
        GrpoLossType::Bnpo | GrpoLossType::Dapo => per_token.sum() / response.sum().clamp_min(1.0),
        GrpoLossType::DrGrpo => per_token.sum() / (n * max_completion) as f64,
        GrpoLossType::Lesson => unreachable!("the lesson's form sums each response whole"),
    }
}

/// The loss's fixed parts: the frozen reference the KL term anchors the policy to, the KL's
/// weight β, how the loss averages, the padding token, and the autodiff device the policy
/// trains on.
pub struct GrpoLoss<'a> {
    pub reference: Reference<'a>,
    pub beta: f64,
    pub loss_type: GrpoLossType,
    pub pad_id: u32,
    pub device: &'a Device,
}

impl GrpoLoss<'_> {
    /// The loss of `policy` on `live` (whole groups of equal size), and the mean per-token k3
    /// KL, for the log.
    pub fn compute(&self, policy: &Gpt, live: &[LiveGroup]) -> (Tensor<1>, f64) {
        let (device, plain) = (self.device, self.reference.device);
        let group_size = live[0].rollouts.len();
        let rollouts = live.iter().flat_map(|g| &g.rollouts);
        let examples: Vec<TokenizedExample> = rollouts
            .map(|r| TokenizedExample {
                prompt: r.prompt.clone(),
                completion: r.completion.clone(),
            })
            .collect();
        let refs: Vec<&TokenizedExample> = examples.iter().collect();
        let batch = PaddedBatch::new(&refs, self.pad_id, true);
        let (tokens, mask) = padded_batch(&batch, device);

        let (policy_tokens, _) =
            logprob::masked_token_logprobs(policy.forward(tokens.clone()), tokens, mask.clone());
        let response = logprob::shifted_mask(mask);
        // The frozen reference runs on the plain device: no graph, no gradient.
        let (plain_tokens, plain_mask) = padded_batch(&batch, plain);
        let (reference_tokens, _) = logprob::masked_token_logprobs(
            trainer::parallel::sharded_forward(self.reference.model, plain_tokens.clone()),
            plain_tokens,
            plain_mask,
        );
        let reference_tokens = Tensor::<2>::from_data(reference_tokens.into_data(), device);

        let n_tokens = response.clone().sum();
        let token_kl = logprob::k3_kl(policy_tokens.clone(), reference_tokens) * response.clone();
        let kl = token_kl.clone().sum() / n_tokens;
        let advantages: Vec<f32> = live
            .iter()
            .flat_map(|g| g.advantages.iter().map(|&a| a as f32))
            .collect();
        let n = advantages.len();
        let advantages = Tensor::<1>::from_data(TensorData::new(advantages, [n]), device);
        let kl_value = kl.clone().into_scalar::<f32>() as f64;
        if !self.loss_type.is_lesson() {
            // TRL: −A·log π(token) + β·k3(token), masked, then averaged as the type says.
            let per_token =
                -(policy_tokens * advantages.unsqueeze_dim::<2>(1)) + token_kl * self.beta;
            let max_completion = policy.block_size();
            let loss = aggregate(per_token, response, self.loss_type, max_completion);
            return (loss, kl_value);
        }
        let sequence_logps = policy_tokens.sum_dim(1).squeeze_dim::<1>(1);
        // −(1/K) Σ_group Σ_i A_i log π(y_i|x), averaged over the live groups: n / K of them.
        let groups = n as f64 / group_size as f64;
        let policy_gradient = -(advantages * sequence_logps).sum() / (group_size as f64 * groups);
        (policy_gradient + kl * self.beta, kl_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two responses of 1 and 3 tokens, per-token losses [2] and [1, 3, 5]: TRL's averages by
    /// hand.
    #[test]
    fn trl_loss_types_average_as_trl_does() {
        let device = Device::flex();
        let tensor = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [2, 3]), &device);
        let per_token = || tensor(vec![2.0, 0.0, 0.0, 1.0, 3.0, 5.0]);
        let mask = || tensor(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let value = |t: GrpoLossType| aggregate(per_token(), mask(), t, 4).into_scalar::<f32>();
        // grpo: mean(2/1, 9/3) = 2.5; bnpo and dapo: 11/4; dr_grpo: 11/(2·4).
        assert_eq!(value(GrpoLossType::Grpo), 2.5);
        assert_eq!(value(GrpoLossType::Bnpo), 2.75);
        assert_eq!(value(GrpoLossType::Dapo), 2.75);
        assert_eq!(value(GrpoLossType::DrGrpo), 1.375);
    }
}
