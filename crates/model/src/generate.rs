//! Autoregressive sampling. Each row draws its tokens from its own seeded stream ([`Streams`]),
//! on the host, so sampling is reproducible on every backend and for any batching. The CPU
//! runs the decoder (`decode`); other devices the model's tensor forward pass with its KV cache.

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use kernels::KernelPath;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::decode;
use crate::gpt::KvCache;
use crate::phase::{self, Phase};
use crate::Gpt;

#[derive(Debug, Clone, Copy)]
pub struct SamplingOptions {
    pub max_new_tokens: usize,
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables the filter.
    pub top_k: usize,
    /// Generation of a row stops after this token.
    pub stop_token: Option<u32>,
}

/// Where each sampled row's random draws come from: row `i` of a call draws from its own
/// stream, seeded from (`seed`, i), or (`seed`, first row + i) for a call made with
/// [`skip`](Self::skip). A row's tokens therefore depend on its stream alone, not
/// on the batch it is decoded in, the other rows, the grouping of prompts or the thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    seed: u64,
    /// The index of this call's row 0 among the rows of the whole draw.
    first_row: u64,
}

impl Streams {
    pub fn new(seed: u64) -> Self {
        Self { seed, first_row: 0 }
    }

    /// The streams of a draw's rows from `rows` on: row `i` of a call with these gets the
    /// stream of row `rows + i` of the whole draw, so that a draw made in parts (to stop early)
    /// samples what one call would.
    pub fn skip(self, rows: usize) -> Self {
        Self {
            first_row: self.first_row + rows as u64,
            ..self
        }
    }

    /// The streams of step `step` of a run seeded `seed`: rows draw from (seed, step, row).
    pub fn for_step(seed: u64, step: u64) -> Self {
        Self::new(mix(seed, step))
    }

    /// Row `row`'s stream.
    pub fn row(self, row: usize) -> StdRng {
        StdRng::seed_from_u64(mix(self.seed, self.first_row + row as u64))
    }
}

/// SplitMix64's finaliser over both words: nearby (seed, index) pairs get unrelated seeds.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Continues every prompt in `prompts` (of any lengths) and returns the new tokens of each
/// row, cut after `stop_token`; row `i` draws from `streams.row(i)`. Generation never runs
/// past the model's block size.
///
/// On the CPU this is the decoder (`decode`), one batch of rows per core; on a GPU, the tensor
/// path ([`generate_with_tensors`]). Both give the same tokens for the same streams.
pub fn generate(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: SamplingOptions,
    streams: Streams,
    device: &Device,
) -> Vec<Vec<u32>> {
    phase::timed(Phase::Sampling, || {
        if KernelPath::of(device).is_cpu() {
            decode::generate(model, prompts, options, streams)
        } else {
            generate_with_tensors(model, prompts, options, streams, device, true)
        }
    })
}

/// [`generate`] for one prompt, handing each new token to `on_token` as soon as it is drawn
/// (a terminal shows the continuation as it is written).
pub fn generate_streaming(
    model: &Gpt,
    prompt: &[u32],
    options: SamplingOptions,
    streams: Streams,
    device: &Device,
    on_token: &mut dyn FnMut(u32),
) -> Vec<u32> {
    if KernelPath::of(device).is_cpu() {
        return decode::generate_streaming(model, prompt, options, streams, on_token);
    }
    let prompts = [prompt.to_vec()];
    let mut rngs = vec![streams.row(0)];
    let mut on_row_token = |_, token| on_token(token);
    decode_same_length(
        model,
        &prompts,
        options,
        &mut rngs,
        device,
        true,
        &mut on_row_token,
    )
    .remove(0)
}

/// [`generate`] through the model's tensor forward pass, on any device: prompts of one length
/// decode together, each step feeding the newest token with the KV cache (`use_cache`) or the
/// whole sequence again (without it: the rollout benchmark's baseline). The reference the CPU
/// decoder is tested against.
pub fn generate_with_tensors(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: SamplingOptions,
    streams: Streams,
    device: &Device,
    use_cache: bool,
) -> Vec<Vec<u32>> {
    let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, prompt) in prompts.iter().enumerate() {
        by_length.entry(prompt.len()).or_default().push(i);
    }
    let mut outputs = vec![Vec::new(); prompts.len()];
    for rows in by_length.values().flat_map(|rows| rows.chunks(MAX_BATCH)) {
        let group: Vec<Vec<u32>> = rows.iter().map(|&i| prompts[i].clone()).collect();
        let mut rngs: Vec<StdRng> = rows.iter().map(|&i| streams.row(i)).collect();
        let generated = decode_same_length(
            model,
            &group,
            options,
            &mut rngs,
            device,
            use_cache,
            &mut |_, _| {},
        );
        for (&i, tokens) in rows.iter().zip(generated) {
            outputs[i] = tokens;
        }
    }
    outputs
}

/// Rows the tensor path decodes together at most: bounds a GPU's memory for large
/// evaluation sets.
const MAX_BATCH: usize = 256;

fn decode_same_length(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: SamplingOptions,
    rngs: &mut [StdRng],
    device: &Device,
    use_cache: bool,
    on_token: &mut dyn FnMut(usize, u32),
) -> Vec<Vec<u32>> {
    let batch = prompts.len();
    if batch == 0 {
        return Vec::new();
    }
    let prompt_len = prompts[0].len();
    assert!(
        prompts.iter().all(|p| p.len() == prompt_len),
        "prompts must share one length"
    );
    let budget = options
        .max_new_tokens
        .min(model.block_size().saturating_sub(prompt_len));

    let mut cache = KvCache::default();
    let mut outputs = vec![Vec::new(); batch];
    let mut done = vec![false; batch];
    let mut sequences: Vec<Vec<u32>> = prompts.to_vec();
    let mut input = ids_tensor(prompts, device);
    for _ in 0..budget {
        let logits = if use_cache {
            model.forward_cached(input, &mut cache)
        } else {
            model.forward(input)
        };
        let [_, t, vocab] = logits.dims();
        let last = logits.narrow(1, t - 1, 1).reshape([batch, vocab]);
        let last: Vec<f32> = last
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 logits");
        let mut next = Vec::with_capacity(batch);
        for (row, row_logits) in last.chunks(vocab).enumerate() {
            // A finished row draws nothing more (its stream is its own) and feeds a filler.
            let mut token = 0;
            if !done[row] {
                token = sample_token(
                    row_logits,
                    options.temperature,
                    options.top_k,
                    &mut rngs[row],
                );
                outputs[row].push(token);
                on_token(row, token);
                done[row] = options.stop_token == Some(token);
            }
            next.push(vec![token]);
            sequences[row].push(token);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        input = if use_cache {
            ids_tensor(&next, device)
        } else {
            ids_tensor(&sequences, device)
        };
    }
    outputs
}

fn ids_tensor(rows: &[Vec<u32>], device: &Device) -> Tensor<2, Int> {
    let len = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().map(|&id| id as i64).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), len]), device)
}

/// Draws one token id from `logits` with temperature and top-k; temperature 0 is argmax.
pub fn sample_token(logits: &[f32], temperature: f32, top_k: usize, rng: &mut StdRng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .unwrap_or(0)
    };
    if temperature <= 0.0 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    if top_k > 0 && top_k < logits.len() {
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        order.truncate(top_k);
    }
    let max = order
        .iter()
        .map(|&i| logits[i])
        .fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| (((logits[i] - max) / temperature) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut draw = rng.random::<f64>() * total;
    for (&i, w) in order.iter().zip(&weights) {
        if draw < *w {
            return i as u32;
        }
        draw -= w;
    }
    *order.last().unwrap() as u32
}
