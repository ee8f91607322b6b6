//! `cargo xtask bench --rollout`: sampling tokens/s on the lesson model (RLVR's rollouts,
//! pass@k, evaluation): the tensor path without and with the KV cache, and the CPU's decoder,
//! against the arithmetic bound of the cores it runs on. A benchmark, not a test.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;
use kernels::peak::fma_peak_gflops;
use kernels::{KernelPath, SimdLevel};
use model::generate::{generate, generate_with_tensors, SamplingOptions, Streams};
use model::{Gpt, GptConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::measure::rayon_threads;

/// Every benchmarked prompt has this many tokens (a digit-sum prompt's length).
pub const PROMPT_TOKENS: usize = 12;

/// `rows` random prompts of [`PROMPT_TOKENS`] tokens.
pub fn prompts(config: &GptConfig, rows: usize) -> Vec<Vec<u32>> {
    let mut rng = StdRng::seed_from_u64(0);
    (0..rows)
        .map(|_| {
            (0..PROMPT_TOKENS)
                .map(|_| rng.random_range(0..config.vocab_size as u32))
                .collect()
        })
        .collect()
}

/// Each prompt continued to the block size, without a stop token.
pub fn options(config: &GptConfig, temperature: f32) -> SamplingOptions {
    SamplingOptions {
        max_new_tokens: config.block_size - PROMPT_TOKENS,
        temperature,
        top_k: 0,
        stop_token: None,
    }
}

/// How tokens are sampled: through the model's tensor forward pass, or the CPU's decoder.
#[derive(Clone, Copy)]
pub enum Sampler {
    Tensors { use_cache: bool },
    Decoder,
}

/// A sampler is timed over at least this long: a fast one's five batches take about 0.15 s,
/// which one busy moment on a shared machine moves by 10%.
const MIN_TIMED_S: f64 = 1.0;

/// Tokens/s of `sampler` after one warmup batch, over at least `repeats` timed batches and
/// at least [`MIN_TIMED_S`] of them.
pub fn tokens_per_s(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: SamplingOptions,
    sampler: Sampler,
    repeats: usize,
    device: &Device,
) -> f64 {
    let (mut elapsed, mut tokens) = (0.0, 0);
    for i in 0.. {
        if i > repeats && elapsed >= MIN_TIMED_S {
            break;
        }
        let streams = Streams::new(i as u64);
        let start = Instant::now();
        let out = match sampler {
            Sampler::Tensors { use_cache } => {
                generate_with_tensors(model, prompts, options, streams, device, use_cache)
            }
            Sampler::Decoder => generate(model, prompts, options, streams, device),
        };
        if i > 0 {
            elapsed += start.elapsed().as_secs_f64();
            tokens += out.iter().map(Vec::len).sum::<usize>();
        }
    }
    tokens as f64 / elapsed
}

/// Multiply-adds ×2 of one sampled token at `position` (attending to `position + 1` keys):
/// the products of every layer, attention's two products over the cache, and the head.
pub fn flops_per_token(config: &GptConfig, position: usize) -> f64 {
    let (d, l, v) = (config.d_model, config.n_layers, config.vocab_size);
    let products = l * (3 * d * d + d * d + 8 * d * d) + d * v;
    let attention = l * 2 * (position + 1) * d;
    2.0 * (products + attention) as f64
}

/// The mean of [`flops_per_token`] over the positions the benchmark samples at.
pub fn mean_flops_per_token(config: &GptConfig) -> f64 {
    let positions = PROMPT_TOKENS - 1..config.block_size - 1;
    let count = positions.len() as f64;
    positions.map(|p| flops_per_token(config, p)).sum::<f64>() / count
}

/// Tokens/s the cores could sample if they did nothing but FMAs at their measured peak:
/// what "% of the arithmetic bound" is read against.
pub struct ArithmeticBound {
    pub level: SimdLevel,
    pub peak_gflops_per_core: f64,
    pub threads: usize,
    pub flops_per_token: f64,
}

impl ArithmeticBound {
    pub fn measure(config: &GptConfig) -> Self {
        let level = SimdLevel::active();
        Self {
            level,
            peak_gflops_per_core: fma_peak_gflops(level),
            threads: rayon::current_num_threads(),
            flops_per_token: mean_flops_per_token(config),
        }
    }

    pub fn tokens_per_s(&self) -> f64 {
        self.peak_gflops_per_core * 1e9 * self.threads as f64 / self.flops_per_token
    }

    pub fn describe(&self) -> String {
        format!(
            "{:.2} MFLOP/token × {:.0}k tokens/s = {:.0} GFLOP/s: {} FMA peak {:.0} GFLOP/s per core × {} threads",
            self.flops_per_token / 1e6,
            self.tokens_per_s() / 1e3,
            self.tokens_per_s() * self.flops_per_token / 1e9,
            self.level.name(),
            self.peak_gflops_per_core,
            self.threads
        )
    }
}

/// `rows` rows of 12-token prompts, each prompt repeated in `group` consecutive rows (as
/// RLVR's groups are), each row continued to the block size at temperature 1.
pub fn run(
    device: &Device,
    config: &GptConfig,
    rows: usize,
    group: usize,
    repeats: usize,
) -> Result<()> {
    device.seed(0);
    let model = Gpt::new(config, device);
    let prompts: Vec<Vec<u32>> = prompts(config, rows / group)
        .into_iter()
        .flat_map(|prompt| std::iter::repeat_n(prompt, group))
        .collect();
    let options = options(config, 1.0);
    let shape = match group {
        1 => format!("{rows} prompts"),
        _ => format!("{rows} rows ({} prompts × {group})", rows / group),
    };
    println!(
        "rollouts: {shape} of {PROMPT_TOKENS} tokens → {} new tokens each, d {} L {} h {} V {}, \
         temperature 1 | rayon threads {} | decoder {}",
        options.max_new_tokens,
        config.d_model,
        config.n_layers,
        config.n_heads,
        config.vocab_size,
        rayon_threads(),
        SimdLevel::active().name()
    );
    println!(
        "{:<26} {:>10} {:>12} {:>12}",
        "", "ms/batch", "tokens/s", "vs no cache"
    );
    let mut samplers = vec![
        (
            "tensors, no KV cache",
            Sampler::Tensors { use_cache: false },
        ),
        ("tensors, KV cache", Sampler::Tensors { use_cache: true }),
    ];
    let on_cpu = KernelPath::of(device).is_cpu();
    if on_cpu {
        samplers.push(("decoder (what runs)", Sampler::Decoder));
    }
    let tokens_per_batch = (rows * options.max_new_tokens) as f64;
    let mut baseline = None;
    let mut decoder = 0.0;
    for (name, sampler) in samplers {
        let per_s = tokens_per_s(&model, &prompts, options, sampler, repeats, device);
        let base = *baseline.get_or_insert(per_s);
        println!(
            "{name:<26} {:>10.1} {per_s:>12.0} {:>11.2}×",
            1e3 * tokens_per_batch / per_s,
            per_s / base
        );
        decoder = per_s;
    }
    if on_cpu {
        let bound = ArithmeticBound::measure(config);
        println!("arithmetic bound: {}", bound.describe());
        println!(
            "the decoder runs at {:.0}% of it",
            100.0 * decoder / bound.tokens_per_s()
        );
    }
    Ok(())
}
