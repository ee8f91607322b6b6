//! `cargo xtask logits`: a checkpoint's logits for one prompt, and its greedy completion, as
//! JSON, for the independent checks in `bench/parity.py` and `bench/hf_check.py`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::{Int, Tensor, TensorData};
use clap::Args;
use data::tokenizer::END;
use model::generate::{generate, SamplingOptions, Streams};
use model::DeviceChoice;

use crate::inference::LoadedStage;

#[derive(Args)]
pub struct LogitsArgs {
    /// A stage folder, e.g. runs/default/pretrain.
    #[arg(long)]
    from: PathBuf,
    #[arg(long)]
    prompt: String,
    /// Where to write `{"prompt", "ids", "logits": [T][V], "greedy": [ids]}`; `greedy` is the
    /// argmax continuation up to and including the end token `#`, or to the block's end.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "flex")]
    device: DeviceChoice,
}

pub fn run(args: &LogitsArgs) -> Result<()> {
    let device = args.device.device().map_err(anyhow::Error::msg)?;
    let stage = LoadedStage::load(&args.from, &device)?;
    let (model, config, tokenizer) = (&stage.model, &stage.config, &stage.tokenizer);
    let ids = tokenizer
        .encode(&args.prompt)
        .context("encoding --prompt")?;
    anyhow::ensure!(
        !ids.is_empty() && ids.len() <= config.block_size,
        "--prompt must be 1..={} tokens, got {}",
        config.block_size,
        ids.len()
    );
    let tokens = Tensor::<2, Int>::from_data(
        TensorData::new(ids.iter().map(|&i| i as i64).collect(), [1, ids.len()]),
        &device,
    );
    let logits: Vec<f32> = model
        .forward(tokens)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    let rows: Vec<&[f32]> = logits.chunks(config.vocab_size).collect();
    let greedy = SamplingOptions {
        max_new_tokens: config.block_size,
        temperature: 0.0,
        top_k: 0,
        stop_token: Some(tokenizer.symbol_id(END)?),
    };
    let streams = Streams::new(0); // greedy decoding draws nothing
    let completion =
        generate(model, std::slice::from_ref(&ids), greedy, streams, &device).remove(0);
    let json = serde_json::json!({
        "prompt": args.prompt,
        "ids": ids,
        "logits": rows,
        "greedy": completion,
    });
    std::fs::write(&args.out, serde_json::to_string(&json)?)
        .with_context(|| format!("writing {}", args.out.display()))
}
