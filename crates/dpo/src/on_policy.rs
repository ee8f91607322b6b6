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
    /// Every pair found, in the order of the problems (a caller that caps them keeps a prefix).
    pub pairs: Vec<PreferencePair>,
    /// Prompts sampled: all of them, or fewer when sampling stopped at `max_pairs`.
    pub prompts: usize,
    pub all_correct: usize,
    pub none_correct: usize,
    /// Per K: (prompts sampled, pairs found), before any cap.
    pub per_k: BTreeMap<usize, (usize, usize)>,
}

/// Problems sampled per call when the pairs are capped: enough rows to keep every core busy,
/// few enough that the last call samples little past the cap.
const PROBLEMS_PER_CALL: usize = 64;

/// `samples` completions per problem at temperature 1 from `model`, labelled by the strict
/// CoT verifier. Prompts where every sample agrees give no pair (the DPO analogue of
/// GRPO's dead groups) and are counted. With `max_pairs`, the problems are sampled in order,
/// 64 at a time, until at least that many pairs are found, and the later parts are not
/// sampled. Each row keeps its stream, so on the CPU's decoder (where a row's tokens do not
/// depend on its batch) the pairs are bit for bit the first ones that one call over every
/// problem gives; on a GPU the tensor path batches the rows differently, so a sample can
/// differ by float rounding. The caller keeps as many as it wants.
pub fn sample_pairs(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    problems: &[DigitSum],
    samples: usize,
    max_pairs: Option<usize>,
    seed: u64,
    device: &Device,
) -> Result<OnPolicyPairs> {
    let mut found = OnPolicyPairs {
        pairs: Vec::new(),
        prompts: 0,
        all_correct: 0,
        none_correct: 0,
        per_k: BTreeMap::new(),
    };
    let per_call = max_pairs.map_or(problems.len().max(1), |_| PROBLEMS_PER_CALL);
    for (part, problems) in problems.chunks(per_call).enumerate() {
        if max_pairs.is_some_and(|max| found.pairs.len() >= max) {
            break;
        }
        let streams = Streams::new(seed).skip(part * per_call * samples);
        add_pairs(
            &mut found, model, tokenizer, problems, samples, streams, device,
        )?;
    }
    Ok(found)
}

/// Samples `problems` and adds what they give to `found`.
fn add_pairs(
    found: &mut OnPolicyPairs,
    model: &Gpt,
    tokenizer: &TextTokenizer,
    problems: &[DigitSum],
    samples: usize,
    streams: Streams,
    device: &Device,
) -> Result<()> {
    let prompts: Vec<String> = problems
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.prompt(), samples))
        .collect();
    let outputs = sampled_completions(model, tokenizer, &prompts, 1.0, streams, device)?;
    found.prompts += problems.len();
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
    Ok(())
}
