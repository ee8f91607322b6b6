//! The one place that decides which positions count.
//!
//! Conventions, for every function here:
//! - `logits` is `[B, T, V]`, the model's output on `tokens` (`[B, T]`).
//! - `mask` is `[B, T]` float over *tokens*: 1 where that token is part of the response
//!   (or otherwise scored), 0 for prompt and padding. Token t is predicted by the logits
//!   at position t − 1, so position 0 is never scored: the shift by one happens here.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Log-probability of every next token: `[B, T − 1]`, entry t is log p(tokens[t+1] | tokens[..=t]).
pub fn token_logprobs(logits: Tensor<3>, tokens: Tensor<2, Int>) -> Tensor<2> {
    let t = logits.dims()[1];
    let predicting = logits.narrow(1, 0, t - 1);
    let targets = tokens.narrow(1, 1, t - 1);
    log_softmax(predicting, 2)
        .gather(2, targets.unsqueeze_dim::<3>(2))
        .squeeze_dim::<2>(2)
}

/// Entropy of the next-token distribution at every predicting position, in nats: `[B, T − 1]`,
/// aligned with [`token_logprobs`] (TRL's `entropy` metric is its mean over response tokens).
pub fn token_entropy(logits: Tensor<3>) -> Tensor<2> {
    let t = logits.dims()[1];
    let logp = log_softmax(logits.narrow(1, 0, t - 1), 2);
    (-(logp.clone().exp() * logp).sum_dim(2)).squeeze_dim::<2>(2)
}

/// The target-side mask: `mask[:, 1:]`, aligned with `token_logprobs`.
pub fn shifted_mask(mask: Tensor<2>) -> Tensor<2> {
    let t = mask.dims()[1];
    mask.narrow(1, 1, t - 1)
}

/// Sum of the response tokens' log-probs per sequence: `[B]`.
/// This is the lesson-05 `gather_logprobs`: log π(y | x) for each row.
pub fn gather_logprobs(logits: Tensor<3>, tokens: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<1> {
    (token_logprobs(logits, tokens) * shifted_mask(mask))
        .sum_dim(1)
        .squeeze_dim::<1>(1)
}

/// Per-token log-probs with the mask applied and the count of scored tokens per row:
/// `(masked [B, T − 1], counts [B])`. Used for length-normalised losses (IPO, SimPO, ORPO).
pub fn masked_token_logprobs(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    mask: Tensor<2>,
) -> (Tensor<2>, Tensor<1>) {
    mask_token_logprobs(token_logprobs(logits, tokens), mask)
}

/// [`masked_token_logprobs`] on log-probs already gathered by [`token_logprobs`].
pub fn mask_token_logprobs(token_logps: Tensor<2>, mask: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
    let mask = shifted_mask(mask);
    let counts = mask.clone().sum_dim(1).squeeze_dim::<1>(1);
    (token_logps * mask, counts)
}

/// Raised when a batch has no scored token: the mean over zero tokens is undefined,
/// and silently returning NaN would poison the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyMask;

impl std::fmt::Display for EmptyMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the response mask selects no token in this batch (nothing to train on)")
    }
}

impl std::error::Error for EmptyMask {}

/// Token-level cross-entropy averaged over the scored tokens of the whole batch (the
/// `ignore_index = -100` convention): `[1]`. An all-zero mask is an error, never NaN.
pub fn masked_cross_entropy(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    mask: Tensor<2>,
) -> Result<Tensor<1>, EmptyMask> {
    let count = scored_token_count(mask.clone());
    if count <= 0.0 {
        return Err(EmptyMask);
    }
    Ok(masked_nll_sum(logits, tokens, mask) / count)
}

/// How many tokens `mask` scores (position 0 never is).
pub fn scored_token_count(mask: Tensor<2>) -> f32 {
    shifted_mask(mask).sum().into_scalar::<f32>()
}

/// The summed negative log-likelihood of the scored tokens: `[1]`. Divided by the batch's
/// [`scored_token_count`] it is [`masked_cross_entropy`]; a shard of the batch divides by the
/// whole batch's count, so that the shards' losses add up to the batch's.
pub fn masked_nll_sum(logits: Tensor<3>, tokens: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<1> {
    -(token_logprobs(logits, tokens) * shifted_mask(mask)).sum()
}

/// Plain next-token cross-entropy over every position (pretraining): `[1]`.
pub fn cross_entropy(logits: Tensor<3>, tokens: Tensor<2, Int>) -> Tensor<1> {
    -token_logprobs(logits, tokens).mean()
}

/// Schulman's k3 estimator of KL(π‖π_ref) per token, from log-probs of tokens sampled
/// from π: with `r = log π_ref − log π`, `k3 = e^r − r − 1`. It is ≥ 0 everywhere and
/// exactly 0 where the two agree. (Using `log π − log π_ref` instead is the classic sign bug.)
pub fn k3_kl<const D: usize>(
    policy_logprobs: Tensor<D>,
    reference_logprobs: Tensor<D>,
) -> Tensor<D> {
    let r = reference_logprobs - policy_logprobs;
    r.clone().exp() - r - 1.0
}

#[cfg(test)]
mod tests;
