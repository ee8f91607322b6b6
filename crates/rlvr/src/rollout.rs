//! Rollouts: `group_size` samples per prompt from the current policy, every row of a step
//! decoded together, each from its own random stream.

use anyhow::Result;
use burn::tensor::Device;
use data::tokenizer::END;
use data::TextTokenizer;
use model::generate::{generate, SamplingOptions, Streams};
use model::Gpt;

/// One sampled response.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Index of the prompt it answers (rollouts come grouped, prompt-major).
    pub prompt_index: usize,
    pub prompt: Vec<u32>,
    pub completion: Vec<u32>,
    pub text: String,
    /// Cut at the length limit before the end symbol.
    pub clipped: bool,
}

/// How rollouts are drawn.
#[derive(Debug, Clone, Copy)]
pub struct RolloutOptions {
    pub group_size: usize,
    pub temperature: f32,
    pub top_k: usize,
}

/// `group_size` rollouts for each prompt, returned prompt-major: rollouts
/// `[i·group_size, (i+1)·group_size)` answer prompt i, and rollout `j` draws from
/// `streams.row(j)`.
pub fn rollouts(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    prompts: &[String],
    options: RolloutOptions,
    streams: Streams,
    device: &Device,
) -> Result<Vec<Rollout>> {
    let RolloutOptions {
        group_size,
        temperature,
        top_k,
    } = options;
    let end = tokenizer.symbol_id(END)?;
    let encoded = prompts
        .iter()
        .map(|prompt| tokenizer.encode(prompt))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<Vec<u32>> = encoded
        .iter()
        .flat_map(|ids| std::iter::repeat_n(ids.clone(), group_size))
        .collect();
    let options = SamplingOptions {
        max_new_tokens: model.block_size(),
        temperature,
        top_k,
        stop_token: Some(end),
    };
    let generated = generate(model, &rows, options, streams, device);
    Ok(generated
        .into_iter()
        .enumerate()
        .map(|(row, completion)| Rollout {
            prompt_index: row / group_size,
            prompt: encoded[row / group_size].clone(),
            clipped: completion.last() != Some(&end),
            text: tokenizer.decode(&completion),
            completion,
        })
        .collect())
}
