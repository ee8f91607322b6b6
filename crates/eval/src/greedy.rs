use anyhow::Result;
use burn::tensor::Device;
use data::tokenizer::END;
use data::TextTokenizer;
use model::device::forward_shard_count;
use model::generate::{generate, SamplingOptions};
use model::Gpt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rayon::prelude::*;

/// Rows decoded together; bounds memory for large evaluation sets.
const MAX_BATCH: usize = 256;

/// Greedy completion of every prompt, cut after the end symbol `#`. Prompts are grouped by
/// token length so each group decodes as KV-cached batches without padding; on the CPU a group
/// is split into one batch per core, decoded in parallel.
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
    let by_length = data::batch::group_by_token_length(tokenizer, prompts)?;
    let options = SamplingOptions {
        max_new_tokens: model.block_size(),
        temperature,
        top_k: 0,
        stop_token: Some(end),
    };
    // Greedy decoding draws nothing from `rng`, so its batches can run in parallel, one shard
    // per core; sampling keeps one sequence of draws, so one batch at a time.
    let shards = if temperature == 0.0 {
        forward_shard_count(device)
    } else {
        1
    };
    let mut batches: Vec<&[(usize, Vec<u32>)]> = Vec::new();
    for group in &by_length {
        batches.extend(group.chunks(group.len().div_ceil(shards).clamp(1, MAX_BATCH)));
    }
    let decode = |batch: &[(usize, Vec<u32>)], rng: &mut StdRng| {
        let ids: Vec<Vec<u32>> = batch.iter().map(|(_, ids)| ids.clone()).collect();
        generate(model, &ids, options, rng, device)
    };
    let generated: Vec<Vec<Vec<u32>>> = if shards > 1 {
        batches
            .par_iter()
            .map(|batch| decode(batch, &mut StdRng::seed_from_u64(0)))
            .collect()
    } else {
        batches.iter().map(|batch| decode(batch, rng)).collect()
    };
    let mut outputs = vec![String::new(); prompts.len()];
    for (batch, tokens) in batches.iter().zip(generated) {
        for ((index, _), tokens) in batch.iter().zip(tokens) {
            outputs[*index] = tokenizer.decode(&tokens);
        }
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use data::tokenizer::TokenizerConfig;
    use model::GptConfig;

    use super::*;

    #[test]
    fn parallel_greedy_batches_decode_what_one_batch_does() {
        let tokenizer =
            TextTokenizer::train(&TokenizerConfig::default(), &["0123456789+=#"]).unwrap();
        let device = Device::flex();
        let config = GptConfig {
            block_size: 12,
            ..test_support::tiny(tokenizer.vocab_size())
        };
        let model = test_support::seeded_model(&config, 5, &device);
        // Two prompt lengths, seven prompts: uneven groups and batches.
        let prompts: Vec<String> = ["1+2=", "3+4=", "5+6=", "7+8=", "9+1=", "12+3=", "45+6="]
            .map(String::from)
            .to_vec();
        let in_pool = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                assert_eq!(forward_shard_count(&device), threads);
                greedy_completions(&model, &tokenizer, &prompts, &device).unwrap()
            })
        };
        let (one_batch, three_batches) = (in_pool(1), in_pool(3));
        assert_eq!(one_batch, three_batches);
        assert!(
            one_batch.iter().any(|out| !out.is_empty()),
            "nothing was generated"
        );
    }
}
