//! Profiling aid: the CPU decoder alone on `bench --rollout`'s batch (32 prompts of 12 tokens
//! continued to the block size), for `perf record`. Usage: `decode_only [BATCHES [BLOCK_SIZE]]`
//! (the lesson's 64 by default; the chain's `pipeline.toml` has 128). `GROUP=4 PROMPT=14 NEW=30`
//! makes RLVR's calls instead: 32 rows, each distinct prompt repeated GROUP times, `PROMPT`
//! tokens each, `NEW` new tokens.
use std::time::Instant;

use burn::tensor::Device;
use model::generate::{generate, SamplingOptions, Streams};
use model::{Gpt, GptConfig};

fn main() {
    let device = Device::flex();
    device.seed(0);
    let mut args = std::env::args().skip(1);
    let batches: usize = args.next().map_or(200, |s| s.parse().unwrap());
    let config = GptConfig {
        vocab_size: 65,
        block_size: args.next().map_or(64, |s| s.parse().unwrap()),
        ..GptConfig::default()
    };
    let model = Gpt::new(&config, &device);
    let setting = |name: &str, default: usize| {
        std::env::var(name).map_or(default, |s| s.parse().expect("a whole number"))
    };
    let (group, prompt_len) = (setting("GROUP", 1) as u32, setting("PROMPT", 12) as u32);
    let prompts: Vec<Vec<u32>> = (0..32u32)
        .map(|r| r / group)
        .map(|r| (0..prompt_len).map(|i| (r * 31 + i * 7) % 65).collect())
        .collect();
    let options = SamplingOptions {
        max_new_tokens: setting("NEW", config.block_size - prompt_len as usize),
        temperature: 1.0,
        top_k: 0,
        stop_token: None,
    };
    let start = Instant::now();
    let (mut tokens, mut hash) = (0, 0u64);
    for b in 0..batches {
        let out = generate(&model, &prompts, options, Streams::new(b as u64), &device);
        tokens += out.iter().map(Vec::len).sum::<usize>();
        for &token in out.iter().flatten() {
            hash = hash.wrapping_mul(1_000_003).wrapping_add(token as u64);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{:.0} tokens/s, tokens hash {hash:016x}",
        tokens as f64 / seconds
    );
}
