//! `cargo xtask sample`: a stage's checkpoint continues a prompt.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use model::generate::{generate, SamplingOptions, Streams};
use model::DeviceChoice;

use crate::inference::LoadedStage;

#[derive(Args)]
pub struct SampleArgs {
    /// A stage folder, e.g. runs/default/pretrain.
    #[arg(long)]
    from: PathBuf,
    #[arg(long, default_value = "\n")]
    prompt: String,
    #[arg(long, default_value_t = 200)]
    max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample from the k most likely tokens only (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "flex")]
    device: DeviceChoice,
}

/// Prints the prompt and its continuation. Long outputs slide: once the block is full the
/// context is re-fed from its last `block_size / 2` tokens.
pub fn run(args: &SampleArgs) -> Result<()> {
    let device = args.device.device().map_err(anyhow::Error::msg)?;
    let stage = LoadedStage::load(&args.from, &device)?;
    let (model, config, tokenizer) = (&stage.model, &stage.config, &stage.tokenizer);
    let mut context = tokenizer
        .encode(&args.prompt)
        .context("encoding --prompt")?;
    anyhow::ensure!(!context.is_empty(), "--prompt must not be empty");
    let keep = (config.block_size / 2).max(1);
    if context.len() >= config.block_size {
        context.drain(..context.len() - keep);
    }
    print!("{}", args.prompt);
    let mut remaining = args.max_tokens;
    // Each window of the sliding context draws from its own streams, from (seed, window).
    for window in 0u64.. {
        if remaining == 0 {
            break;
        }
        let options = SamplingOptions {
            max_new_tokens: remaining,
            temperature: args.temperature,
            top_k: args.top_k,
            stop_token: None,
        };
        let new = generate(
            model,
            &[context.clone()],
            options,
            Streams::for_step(args.seed, window),
            &device,
        )
        .remove(0);
        if new.is_empty() {
            break;
        }
        print!("{}", tokenizer.decode(&new));
        remaining -= new.len();
        context.extend(new);
        if context.len() >= config.block_size {
            context.drain(..context.len() - keep);
        }
    }
    println!();
    Ok(())
}
