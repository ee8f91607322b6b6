//! Autoregressive sampling with the KV cache. Logits of the last position come back to the
//! host, where a seeded RNG draws the next token, so sampling is reproducible on every backend.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::Rng;

use crate::gpt::KvCache;
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

/// Continues every prompt in `prompts` (all the same length) and returns the new tokens of
/// each row, cut after `stop_token`. Generation never runs past the model's block size.
/// Each step feeds only the newest token and reuses the cached keys and values.
pub fn generate(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: SamplingOptions,
    rng: &mut StdRng,
    device: &Device,
) -> Vec<Vec<u32>> {
    decode(model, prompts, options, rng, device, true, &mut |_, _| {})
}

/// [`generate`] for one prompt, handing each new token to `on_token` as soon as it is drawn
/// (a terminal shows the continuation as it is written).
pub fn generate_streaming(
    model: &Gpt,
    prompt: &[u32],
    options: SamplingOptions,
    rng: &mut StdRng,
    device: &Device,
    on_token: &mut dyn FnMut(u32),
) -> Vec<u32> {
    let prompts = [prompt.to_vec()];
    decode(
        model,
        &prompts,
        options,
        rng,
        device,
        true,
        &mut |_, token| on_token(token),
    )
    .remove(0)
}

/// [`generate`] without the KV cache: every step runs the whole sequence again. Same tokens
/// for the same seed; kept as the baseline of the rollout benchmark.
pub fn generate_without_cache(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: SamplingOptions,
    rng: &mut StdRng,
    device: &Device,
) -> Vec<Vec<u32>> {
    decode(model, prompts, options, rng, device, false, &mut |_, _| {})
}

fn decode(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: SamplingOptions,
    rng: &mut StdRng,
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
            let token = sample_token(row_logits, options.temperature, options.top_k, rng);
            if !done[row] {
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
