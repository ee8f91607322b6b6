//! Sequence log-probs of pairs: chosen and rejected rows go through the model in one
//! concatenated forward pass, scored by the log-prob crate.

use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use data::batch::tokenize_all;
use data::batch::{PaddedBatch, TokenizedExample};
use data::tasks::preference::{LabeledCompletion, PreferencePair};
use data::tasks::Example;
use data::TextTokenizer;
use model::Gpt;
use trainer::tensors::padded_batch;

use crate::loss::SequenceLogps;

/// Two responses to one prompt, tokenized. For KTO, `chosen` is the labelled completion and
/// `rejected` a mismatched probe (this prompt, another example's completion) whose log-ratio
/// estimates the KL reference point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedPair {
    pub chosen: TokenizedExample,
    pub rejected: TokenizedExample,
}

pub fn tokenize_pairs(
    pairs: &[PreferencePair],
    tokenizer: &TextTokenizer,
    block_size: usize,
) -> Result<Vec<TokenizedPair>> {
    let side = |pick: fn(&PreferencePair) -> &String| -> Vec<Example> {
        pairs
            .iter()
            .map(|p| Example {
                prompt: p.prompt.clone(),
                completion: pick(p).clone(),
            })
            .collect()
    };
    let chosen = tokenize_all(&side(|p| &p.chosen), tokenizer, block_size)?;
    let rejected = tokenize_all(&side(|p| &p.rejected), tokenizer, block_size)?;
    Ok(zip_pairs(chosen, rejected))
}

/// KTO rows: each labelled completion with its mismatched probe, and the label as 1.0
/// (desirable) / 0.0. As TRL's KTOTrainer builds its KL dataset, the rows are cut into
/// consecutive chunks of `batch_size` and each row's probe is the completion of the row before
/// it in its chunk (the chunk's first takes its last).
pub fn tokenize_labeled(
    rows: &[LabeledCompletion],
    tokenizer: &TextTokenizer,
    block_size: usize,
    batch_size: usize,
) -> Result<(Vec<TokenizedPair>, Vec<f32>)> {
    let n = rows.len();
    let matched: Vec<Example> = rows
        .iter()
        .map(|r| Example {
            prompt: r.prompt.clone(),
            completion: r.completion.clone(),
        })
        .collect();
    let mismatched: Vec<Example> = (0..n)
        .map(|i| Example {
            prompt: rows[i].prompt.clone(),
            completion: rows[kl_probe_row(i, n, batch_size)].completion.clone(),
        })
        .collect();
    let pairs = zip_pairs(
        tokenize_all(&matched, tokenizer, block_size)?,
        tokenize_all(&mismatched, tokenizer, block_size)?,
    );
    let labels = rows
        .iter()
        .map(|r| if r.label { 1.0 } else { 0.0 })
        .collect();
    Ok((pairs, labels))
}

/// The row whose completion row `i` is probed with: the one before it in its chunk of
/// `batch_size` consecutive rows, the chunk's last for its first (TRL's `_get_kl_dataset`).
fn kl_probe_row(i: usize, n: usize, batch_size: usize) -> usize {
    let batch_size = batch_size.max(1);
    let start = i / batch_size * batch_size;
    let len = batch_size.min(n - start);
    start + (i - start + len - 1) % len
}

fn zip_pairs(chosen: Vec<TokenizedExample>, rejected: Vec<TokenizedExample>) -> Vec<TokenizedPair> {
    chosen
        .into_iter()
        .zip(rejected)
        .map(|(chosen, rejected)| TokenizedPair { chosen, rejected })
        .collect()
}

/// log π(y|x) of each example's completion: `[B]` sums and token counts, and the prompt's own
/// log-probs (ORPO's NLL scores them), from one forward pass.
pub fn sequence_logps(
    model: &Gpt,
    examples: &[&TokenizedExample],
    pad_id: u32,
    device: &Device,
) -> SequenceLogps {
    let batch = PaddedBatch::new(examples, pad_id, true);
    let (tokens, mask) = padded_batch(&batch, device);
    let whole = PaddedBatch::new(examples, pad_id, false);
    let (_, whole_mask) = padded_batch(&whole, device);
    let logits = trainer::parallel::sharded_forward(model, tokens.clone());
    let token_logps = logprob::token_logprobs(logits, tokens);
    let prompt_mask = logprob::shifted_mask(whole_mask - mask.clone());
    let (masked, count) = logprob::mask_token_logprobs(token_logps.clone(), mask);
    SequenceLogps {
        sum: masked.sum_dim(1).squeeze_dim::<1>(1),
        count,
        prompt_sum: (token_logps * prompt_mask).sum_dim(1).squeeze_dim::<1>(1),
    }
}

/// Chosen and rejected log-probs of `pairs` from one concatenated forward pass.
pub fn pair_logps(
    model: &Gpt,
    pairs: &[&TokenizedPair],
    pad_id: u32,
    device: &Device,
) -> (SequenceLogps, SequenceLogps) {
    let rows: Vec<&TokenizedExample> = pairs
        .iter()
        .map(|p| &p.chosen)
        .chain(pairs.iter().map(|p| &p.rejected))
        .collect();
    let both = sequence_logps(model, &rows, pad_id, device);
    let b = pairs.len();
    let half = |t: &Tensor<1>, start| t.clone().narrow(0, start, b);
    (
        SequenceLogps {
            sum: half(&both.sum, 0),
            count: half(&both.count, 0),
            prompt_sum: half(&both.prompt_sum, 0),
        },
        SequenceLogps {
            sum: half(&both.sum, b),
            count: half(&both.count, b),
            prompt_sum: half(&both.prompt_sum, b),
        },
    )
}

/// The lesson's four passes: policy and reference, chosen and rejected, one forward each.
/// Kept for the benchmark against the concatenated pass with a cached reference.
pub fn four_pass_logps(
    policy: &Gpt,
    reference: &Gpt,
    pairs: &[&TokenizedPair],
    pad_id: u32,
    policy_device: &Device,
    reference_device: &Device,
) -> (SequenceLogps, SequenceLogps, Tensor<1>, Tensor<1>) {
    let chosen: Vec<&TokenizedExample> = pairs.iter().map(|p| &p.chosen).collect();
    let rejected: Vec<&TokenizedExample> = pairs.iter().map(|p| &p.rejected).collect();
    let policy_chosen = sequence_logps(policy, &chosen, pad_id, policy_device);
    let policy_rejected = sequence_logps(policy, &rejected, pad_id, policy_device);
    let ref_chosen = sequence_logps(reference, &chosen, pad_id, reference_device).sum;
    let ref_rejected = sequence_logps(reference, &rejected, pad_id, reference_device).sum;
    (
        policy_chosen,
        policy_rejected,
        to_device(ref_chosen, policy_device),
        to_device(ref_rejected, policy_device),
    )
}

/// Host round trip onto `device` (the reference lives on the plain device, the policy on
/// the autodiff one); the result carries no graph.
pub fn to_device(t: Tensor<1>, device: &Device) -> Tensor<1> {
    host_tensor(to_host(t), device)
}

/// A `[B]` tensor's values on the host.
pub fn to_host(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 values")
}

pub fn host_tensor(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

#[cfg(test)]
mod tests {
    use super::kl_probe_row;

    #[test]
    fn kl_probes_rotate_within_each_chunk_of_a_batch() {
        // 7 rows in chunks of 3: [0 1 2] [3 4 5] [6].
        let probes: Vec<usize> = (0..7).map(|i| kl_probe_row(i, 7, 3)).collect();
        assert_eq!(probes, vec![2, 0, 1, 5, 3, 4, 6]);
    }
}
