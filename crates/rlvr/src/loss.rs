//! GRPO's loss on the live groups. The lesson's form (`loss_type = "lesson"`, the default):
//! −(1/K) Σ A·log πθ(y|x) averaged over groups, each response's log-probs summed, + β·mean k3
//! KL from the frozen reference over the response tokens. TRL's forms put the KL inside a
//! per-token loss, −min(r·A, clip(r, 1 − ε, 1 + ε_high)·A) + β·k3, with r = πθ/πold per token,
//! and differ only in how they average it (`aggregate`). πold is the policy that sampled the
//! rollouts: with one update per batch (TRL's `num_iterations` = 1) it is πθ itself, detached,
//! so r = 1 and the gradient is that of A·log πθ; with more, the later updates move away from
//! it and the clip bounds how far.

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

/// TRL's clipped surrogate per token, −min(r·A, clip(r, 1 − ε_low, 1 + ε_high)·A) with
/// r = exp(logps − old_logps), zero off the response; `advantages` is `[n, 1]`.
pub fn clipped_surrogate(
    logps: Tensor<2>,
    old_logps: Tensor<2>,
    advantages: Tensor<2>,
    response: Tensor<2>,
    (epsilon_low, epsilon_high): (f64, f64),
) -> Tensor<2> {
    let ratio = (logps - old_logps).exp();
    let unclipped = ratio.clone() * advantages.clone();
    let clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high) * advantages;
    -unclipped.min_pair(clipped) * response
}

/// What one update measured, under TRL's names: `kl`, `entropy` and `clip_ratio/*` (the
/// share of response tokens whose ratio the clip held: below 1 − ε with A < 0, above
/// 1 + ε_high with A > 0, either).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpdateStats {
    pub kl: f64,
    pub entropy: f64,
    pub clip_low: f64,
    pub clip_high: f64,
    pub clip_region: f64,
}

/// The clip shares of [`UpdateStats`] from per-token ratios, each token's advantage and the
/// response mask (row-major `[n, T]`, the advantages `[n]`).
pub fn clip_shares(
    ratios: &[f32],
    advantages: &[f32],
    response: &[f32],
    (epsilon_low, epsilon_high): (f64, f64),
) -> (f64, f64, f64) {
    let width = ratios.len() / advantages.len().max(1);
    let (mut low, mut high, mut tokens) = (0usize, 0usize, 0.0f64);
    for (i, (&ratio, &scored)) in ratios.iter().zip(response).enumerate() {
        if scored == 0.0 {
            continue;
        }
        tokens += 1.0;
        let (ratio, advantage) = (ratio as f64, advantages[i / width]);
        low += usize::from(ratio < 1.0 - epsilon_low && advantage < 0.0);
        high += usize::from(ratio > 1.0 + epsilon_high && advantage > 0.0);
    }
    let share = |count: usize| count as f64 / tokens.max(1.0);
    (share(low), share(high), share(low + high))
}

/// Per-token log-probs `[n, T − 1]` on the plain device that stay fixed while the policy
/// updates on one batch of rollouts (`GrpoLoss::frozen`).
pub struct Frozen {
    pub reference: Tensor<2>,
    pub old: Option<Tensor<2>>,
}

/// The loss's fixed parts: the frozen reference the KL term anchors the policy to, the KL's
/// weight β, how the loss averages, the ratio's clip, the padding token, and the autodiff
/// device the policy trains on.
pub struct GrpoLoss<'a> {
    pub reference: Reference<'a>,
    pub beta: f64,
    pub loss_type: GrpoLossType,
    pub clip_range: (f64, f64),
    pub pad_id: u32,
    pub device: &'a Device,
}

impl GrpoLoss<'_> {
    /// Every live rollout, prompt and completion, padded into one batch.
    fn batch(&self, live: &[LiveGroup]) -> PaddedBatch {
        let examples: Vec<TokenizedExample> = live
            .iter()
            .flat_map(|g| &g.rollouts)
            .map(|r| TokenizedExample {
                prompt: r.prompt.clone(),
                completion: r.completion.clone(),
            })
            .collect();
        let refs: Vec<&TokenizedExample> = examples.iter().collect();
        PaddedBatch::new(&refs, self.pad_id, true)
    }

    /// The per-token log-probs `[n, T − 1]` of `model` on the live rollouts, on the plain
    /// device (no graph, no gradient).
    fn frozen_logprobs(&self, model: &Gpt, live: &[LiveGroup]) -> Tensor<2> {
        let (tokens, mask) = padded_batch(&self.batch(live), self.reference.device);
        let logits = trainer::parallel::sharded_forward(model, tokens.clone());
        logprob::masked_token_logprobs(logits, tokens, mask).0
    }

    /// What every update on one batch of rollouts compares the policy with, computed once per
    /// batch: the frozen reference's log-probs, and `sampler`'s (the policy that drew the
    /// rollouts, for the ratio of later updates; `None` when there is one update).
    pub fn frozen(&self, live: &[LiveGroup], sampler: Option<&Gpt>) -> Frozen {
        Frozen {
            reference: self.frozen_logprobs(self.reference.model, live),
            old: sampler.map(|sampler| self.frozen_logprobs(sampler, live)),
        }
    }

    /// The loss of `policy` on `live` (whole groups of equal size), and what it measured.
    /// Without `frozen.old` the policy is taken to be the one that sampled (r = 1).
    pub fn compute(
        &self,
        policy: &Gpt,
        live: &[LiveGroup],
        frozen: &Frozen,
    ) -> (Tensor<1>, UpdateStats) {
        let device = self.device;
        let group_size = live[0].rollouts.len();
        let (tokens, mask) = padded_batch(&self.batch(live), device);

        let logits = policy.forward(tokens.clone());
        let entropy_tokens = logprob::token_entropy(logits.clone().detach());
        let (policy_tokens, _) = logprob::masked_token_logprobs(logits, tokens, mask.clone());
        let response = logprob::shifted_mask(mask);
        let on_device = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), device);
        let reference_tokens = on_device(&frozen.reference);

        let n_tokens = response.clone().sum();
        let token_kl = logprob::k3_kl(policy_tokens.clone(), reference_tokens) * response.clone();
        let kl = token_kl.clone().sum() / n_tokens.clone();
        let advantages: Vec<f32> = live
            .iter()
            .flat_map(|g| g.advantages.iter().map(|&a| a as f32))
            .collect();
        let n = advantages.len();
        let advantage_tensor =
            Tensor::<1>::from_data(TensorData::new(advantages.clone(), [n]), device);
        let mut stats = UpdateStats {
            kl: kl.clone().into_scalar::<f32>() as f64,
            entropy: ((entropy_tokens * response.clone()).sum() / n_tokens).into_scalar::<f32>()
                as f64,
            ..UpdateStats::default()
        };
        if !self.loss_type.is_lesson() {
            // TRL: the clipped surrogate + β·k3 per token, then averaged as the type says.
            let old = match &frozen.old {
                Some(old) => on_device(old),
                None => policy_tokens.clone().detach(),
            };
            let ratios = (policy_tokens.clone().detach() - old.clone()).exp();
            (stats.clip_low, stats.clip_high, stats.clip_region) = clip_shares(
                &host(ratios),
                &advantages,
                &host(response.clone()),
                self.clip_range,
            );
            let per_token = clipped_surrogate(
                policy_tokens,
                old,
                advantage_tensor.unsqueeze_dim::<2>(1),
                response.clone(),
                self.clip_range,
            ) + token_kl * self.beta;
            let max_completion = policy.block_size();
            let loss = aggregate(per_token, response, self.loss_type, max_completion);
            return (loss, stats);
        }
        let sequence_logps = policy_tokens.sum_dim(1).squeeze_dim::<1>(1);
        // −(1/K) Σ_group Σ_i A_i log π(y_i|x), averaged over the live groups: n / K of them.
        let groups = n as f64 / group_size as f64;
        let policy_gradient =
            -(advantage_tensor * sequence_logps).sum() / (group_size as f64 * groups);
        (policy_gradient + kl * self.beta, stats)
    }
}

fn host(tensor: Tensor<2>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 values")
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

    /// TRL's clipped surrogate on hand-computed tokens, ε = 0.2, ε_high = 0.3: ratios
    /// e^0.5 ≈ 1.65 (clipped at 1.3 for A > 0, not for A < 0), e^−0.5 ≈ 0.61 (clipped at 0.8
    /// for A < 0, not for A > 0), and 1 inside; the padding token contributes nothing.
    #[test]
    fn clipped_surrogate_and_clip_shares_match_trl_by_hand() {
        let device = Device::flex();
        let tensor = |v: Vec<f32>, shape: [usize; 2]| {
            Tensor::<2>::from_data(TensorData::new(v, shape), &device)
        };
        let old = tensor(vec![0.0; 6], [2, 3]);
        let logps = tensor(vec![0.5, -0.5, 0.0, 0.5, -0.5, 9.0], [2, 3]);
        let advantages = tensor(vec![1.0, -2.0], [2, 1]);
        let response = tensor(vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0], [2, 3]);
        let clip = (0.2, 0.3);
        let got = host(clipped_surrogate(logps, old, advantages, response, clip));
        let (up, down) = (0.5f64.exp(), (-0.5f64).exp());
        // Row 0, A = 1: −min(r, clip(r)) per token; row 1, A = −2: −min(−2r, −2·clip(r)).
        let want = [-1.3, -down, -1.0, 2.0 * up, 2.0 * 0.8, 0.0];
        for (got, want) in got.iter().zip(want) {
            assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
        let ratios = [up as f32, down as f32, 1.0, up as f32, down as f32, 1.0];
        let (low, high, region) =
            clip_shares(&ratios, &[1.0, -2.0], &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0], clip);
        // Of 5 response tokens: row 0's e^0.5 is high-clipped, row 1's e^−0.5 low-clipped.
        assert_eq!((low, high, region), (0.2, 0.2, 0.4));
    }
}
