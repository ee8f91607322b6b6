use anyhow::Result;
use burn::tensor::Device;
use data::tokenizer::END;
use data::TextTokenizer;
use model::generate::{generate, SamplingOptions, Streams};
use model::phase::{self, Phase};
use model::Gpt;

/// Greedy completion of every prompt, cut after the end symbol `#`. All prompts decode
/// together, whatever their lengths (on the CPU, one batch of rows per core).
pub fn greedy_completions(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    prompts: &[String],
    device: &Device,
) -> Result<Vec<String>> {
    phase::timed(Phase::Evaluation, || {
        // Greedy decoding draws nothing from its streams.
        sampled_completions(model, tokenizer, prompts, 0.0, Streams::new(0), device)
    })
}

/// Like [`greedy_completions`], sampling at `temperature` (0 = greedy); prompt `i` draws from
/// `streams.row(i)`.
pub fn sampled_completions(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    prompts: &[String],
    temperature: f32,
    streams: Streams,
    device: &Device,
) -> Result<Vec<String>> {
    let end = tokenizer.symbol_id(END)?;
    let ids = prompts
        .iter()
        .map(|prompt| tokenizer.encode(prompt))
        .collect::<Result<Vec<_>>>()?;
    let options = SamplingOptions {
        max_new_tokens: model.block_size(),
        temperature,
        top_k: 0,
        stop_token: Some(end),
    };
    let generated = generate(model, &ids, options, streams, device);
    Ok(generated
        .iter()
        .map(|tokens| tokenizer.decode(tokens))
        .collect())
}

#[cfg(test)]
mod tests {
    use data::tokenizer::TokenizerConfig;
    use model::GptConfig;

    use super::*;

    #[test]
    fn greedy_completions_do_not_depend_on_the_thread_count() {
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
            pool.install(|| greedy_completions(&model, &tokenizer, &prompts, &device).unwrap())
        };
        let (one_batch, three_batches) = (in_pool(1), in_pool(3));
        assert_eq!(one_batch, three_batches);
        assert!(
            one_batch.iter().any(|out| !out.is_empty()),
            "nothing was generated"
        );
    }
}
