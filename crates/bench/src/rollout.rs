//! `cargo xtask bench --rollout`: rollout tokens/s with and without the KV cache, on the
//! lesson model (RLVR's sampling cost). A benchmark, not a test.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;
use model::generate::{generate, generate_without_cache, SamplingOptions};
use model::{Gpt, GptConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `rows` prompts of 12 tokens, each continued to the block size at temperature 1.
pub fn run(device: &Device, config: &GptConfig, rows: usize, repeats: usize) -> Result<()> {
    device.seed(0);
    let model = Gpt::new(config, device);
    let mut rng = StdRng::seed_from_u64(0);
    let prompts: Vec<Vec<u32>> = (0..rows)
        .map(|_| {
            (0..12)
                .map(|_| rng.random_range(0..config.vocab_size as u32))
                .collect()
        })
        .collect();
    let options = SamplingOptions {
        max_new_tokens: config.block_size - 12,
        temperature: 1.0,
        top_k: 0,
        stop_token: None,
    };
    println!(
        "rollouts: {rows} prompts of 12 tokens → {} new tokens each, d {} L {} h {} V {}",
        options.max_new_tokens, config.d_model, config.n_layers, config.n_heads, config.vocab_size
    );
    println!(
        "{:<22} {:>10} {:>12} {:>10}",
        "", "ms/batch", "tokens/s", "speed-up"
    );
    let mut baseline = None;
    for (name, cached) in [("without KV cache", false), ("with KV cache", true)] {
        let mut elapsed = 0.0;
        let mut tokens = 0usize;
        for i in 0..repeats + 1 {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let start = Instant::now();
            let out = if cached {
                generate(&model, &prompts, options, &mut rng, device)
            } else {
                generate_without_cache(&model, &prompts, options, &mut rng, device)
            };
            if i > 0 {
                // The first batch is warmup.
                elapsed += start.elapsed().as_secs_f64();
                tokens += out.iter().map(Vec::len).sum::<usize>();
            }
        }
        let per_s = tokens as f64 / elapsed;
        let base = *baseline.get_or_insert(per_s);
        println!(
            "{name:<22} {:>10.1} {per_s:>12.0} {:>9.2}×",
            1e3 * elapsed / repeats as f64,
            per_s / base
        );
    }
    Ok(())
}
