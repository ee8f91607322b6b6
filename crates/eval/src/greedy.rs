use std::collections::BTreeMap;

use anyhow::Result;
use burn::tensor::Device;
use data::tokenizer::END;
use data::TextTokenizer;
use model::generate::{generate, SamplingOptions};
use model::Gpt;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Rows decoded together; bounds memory for large evaluation sets.
const MAX_BATCH: usize = 256;

/// Greedy completion of every prompt, cut after the end symbol `#`. Prompts are grouped by
/// token length so each group decodes as one KV-cached batch without padding.
pub fn greedy_completions(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    prompts: &[String],
    device: &Device,
) -> Result<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(0); // unused by greedy decoding
    sampled_completions(model, tokenizer, prompts, 0.0, &mut rng, device)
}

/// Like [`greedy_completions`], sampling at `temperature` (0 = greedy) from `rng`.
pub fn sampled_completions(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    prompts: &[String],
    temperature: f32,
    rng: &mut StdRng,
    device: &Device,
) -> Result<Vec<String>> {
    let end = tokenizer.symbol_id(END)?;
    let mut by_length: BTreeMap<usize, Vec<(usize, Vec<u32>)>> = BTreeMap::new();
    for (i, prompt) in prompts.iter().enumerate() {
        let ids = tokenizer.encode(prompt)?;
        by_length.entry(ids.len()).or_default().push((i, ids));
    }
    let mut outputs = vec![String::new(); prompts.len()];
    for group in by_length.values() {
        for chunk in group.chunks(MAX_BATCH) {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|(_, ids)| ids.clone()).collect();
            let options = SamplingOptions {
                max_new_tokens: model.block_size(),
                temperature,
                top_k: 0,
                stop_token: Some(end),
            };
            let generated = generate(model, &ids, options, rng, device);
            for ((index, _), tokens) in chunk.iter().zip(generated) {
                outputs[*index] = tokenizer.decode(&tokens);
            }
        }
    }
    Ok(outputs)
}
