//! Rollouts: `group_size` samples per prompt from the current policy, KV-cached, batched over
//! every prompt of the same token length.

use anyhow::Result;
use burn::tensor::Device;
use data::tokenizer::END;
use data::TextTokenizer;
use model::generate::{generate, SamplingOptions};
use model::Gpt;
use rand::rngs::StdRng;

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
/// `[i·group_size, (i+1)·group_size)` answer prompt i.
pub fn rollouts(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    prompts: &[String],
    options: RolloutOptions,
    rng: &mut StdRng,
    device: &Device,
) -> Result<Vec<Rollout>> {
    let RolloutOptions {
        group_size,
        temperature,
        top_k,
    } = options;
    let end = tokenizer.symbol_id(END)?;
    let by_length = data::batch::group_by_token_length(tokenizer, prompts)?;
    let mut slots: Vec<Option<Rollout>> = vec![None; prompts.len() * group_size];
    for group in &by_length {
        let rows: Vec<Vec<u32>> = group
            .iter()
            .flat_map(|(_, ids)| std::iter::repeat_n(ids.clone(), group_size))
            .collect();
        let options = SamplingOptions {
            max_new_tokens: model.block_size(),
            temperature,
            top_k,
            stop_token: Some(end),
        };
        let generated = generate(model, &rows, options, rng, device);
        for (row, completion) in generated.into_iter().enumerate() {
            let (prompt_index, ids) = &group[row / group_size];
            let slot = prompt_index * group_size + row % group_size;
            slots[slot] = Some(Rollout {
                prompt_index: *prompt_index,
                prompt: ids.clone(),
                clipped: completion.last() != Some(&end),
                text: tokenizer.decode(&completion),
                completion,
            });
        }
    }
    Ok(slots
        .into_iter()
        .map(|r| r.expect("every slot sampled"))
        .collect())
}
