//! GRPO's loss on the live groups: −(1/K) Σ A·log πθ(y|x) averaged over groups, + β·mean k3
//! KL from the frozen reference over the response tokens.

use burn::tensor::{Device, Tensor, TensorData};
use data::batch::{PaddedBatch, TokenizedExample};
use model::Gpt;
use trainer::tensors::padded_batch;
use trainer::Reference;

use crate::groups::LiveGroup;

/// The loss's fixed parts: the frozen reference the KL term anchors the policy to, the KL's
/// weight β, the padding token, and the autodiff device the policy trains on.
pub struct GrpoLoss<'a> {
    pub reference: Reference<'a>,
    pub beta: f64,
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
        let kl =
            (logprob::k3_kl(policy_tokens.clone(), reference_tokens) * response).sum() / n_tokens;
        let advantages: Vec<f32> = live
            .iter()
            .flat_map(|g| g.advantages.iter().map(|&a| a as f32))
            .collect();
        let n = advantages.len();
        let advantages = Tensor::<1>::from_data(TensorData::new(advantages, [n]), device);
        let sequence_logps = policy_tokens.sum_dim(1).squeeze_dim::<1>(1);
        // −(1/K) Σ_group Σ_i A_i log π(y_i|x), averaged over the live groups: n / K of them.
        let groups = n as f64 / group_size as f64;
        let policy_gradient = -(advantages * sequence_logps).sum() / (group_size as f64 * groups);
        let kl_value = kl.clone().into_scalar::<f32>() as f64;
        (policy_gradient + kl * self.beta, kl_value)
    }
}
