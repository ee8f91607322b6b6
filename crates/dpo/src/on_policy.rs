//! On-policy pairs: sample the parent several times per prompt, let the verifier label the
//! samples, and pair a correct completion with an incorrect one for the same prompt.

use std::collections::BTreeMap;

use anyhow::Result;
use burn::tensor::Device;
use data::tasks::digit_sum::{DigitSum, Mode, Verdict};
use data::tasks::preference::PreferencePair;
use data::TextTokenizer;
use eval::sampled_completions;
use model::generate::Streams;
use model::Gpt;

/// What sampling found: the pairs, and how many prompts had no mixed group.
pub struct OnPolicyPairs {
    pub pairs: Vec<PreferencePair>,
    pub prompts: usize,
    pub all_correct: usize,
    pub none_correct: usize,
    /// Per K: (prompts sampled, pairs found).
    pub per_k: BTreeMap<usize, (usize, usize)>,
}

/// `samples` completions per problem at temperature 1 from `model`, labelled by the strict
/// CoT verifier. Prompts where every sample agrees give no pair (the DPO analogue of
/// GRPO's dead groups) and are counted.
pub fn sample_pairs(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    problems: &[DigitSum],
    samples: usize,
    seed: u64,
    device: &Device,
) -> Result<OnPolicyPairs> {
    let prompts: Vec<String> = problems
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.prompt(), samples))
        .collect();
    let outputs = sampled_completions(model, tokenizer, &prompts, 1.0, Streams::new(seed), device)?;
    let mut found = OnPolicyPairs {
        pairs: Vec::new(),
        prompts: problems.len(),
        all_correct: 0,
        none_correct: 0,
        per_k: BTreeMap::new(),
    };
    for (problem, group) in problems.iter().zip(outputs.chunks(samples)) {
        let correct = group
            .iter()
            .find(|o| problem.verify(Mode::Cot, o) == Verdict::Correct);
        // A rejected sample must fit the model's block next to its prompt (a rambling sample
        // cut at the length limit may not; characters bound tokens for both tokenizers) and
        // survive the JSONL round trip (a sampled `<|unk|>` id does not re-encode).
        let fits = |o: &&String| {
            problem.prompt().len() + o.len() <= model.block_size() && tokenizer.encode(o).is_ok()
        };
        let wrong = group
            .iter()
            .filter(fits)
            .find(|o| problem.verify(Mode::Cot, o) != Verdict::Correct);
        let counts = found.per_k.entry(problem.k()).or_default();
        counts.0 += 1;
        match (correct, wrong) {
            (Some(chosen), Some(rejected)) => {
                counts.1 += 1;
                found.pairs.push(PreferencePair {
                    prompt: problem.prompt(),
                    chosen: chosen.clone(),
                    rejected: rejected.clone(),
                })
            }
            (Some(_), None) => found.all_correct += 1,
            _ => found.none_correct += 1,
        }
    }
    Ok(found)
}
