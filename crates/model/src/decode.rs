//! The CPU's decoder: sampling one token per row per step against a KV cache that is
//! allocated once, on plain host buffers and the `kernels::decode` kernels.
//!
//! The tensor path (`generate::generate_with_tensors`) runs a decode step as dozens of tiny
//! tensor operations, each with its own dispatch and allocation. Here a step is, per layer: a
//! layer norm, the QKV product, each row's attention over its own cache, the output product
//! added to the residual, a layer norm, the MLP's two products with GELU between. Nothing is
//! allocated after the start.
//!
//! - **Rows are independent.** Each row has its own position (prompts of any length decode
//!   together: a row reads its whole prompt in the first step, then one token a step), its own
//!   cache and its own random stream ([`Streams`]); a finished row leaves the batch. The kernels give a row
//!   the same bits whatever the other rows, so the rows are split into one batch per core and
//!   the tokens do not depend on the thread count.
//! - **The same model.** The logits are the tensor path's to float rounding (products in
//!   another order), so the same streams draw the same tokens (`tests.rs`).
//! - **A prompt is read once per batch.** RLVR's groups, pass@k and on-policy pairs continue
//!   each prompt several times. The first row with a prompt reads it; the others with the same
//!   prompt copy its keys and values and take its logits, which are the bits they would have
//!   computed, and then draw from their own streams.

use std::collections::HashMap;

use burn::nn::LayerNorm;
use burn::tensor::Tensor;
use kernels::decode::{
    attend_cached, cache_token, copy_cached_positions, gelu_rows, layer_norm_rows,
    rows_times_matrix, CachedRow, PackedMatrix, POSITION_BLOCK,
};
use kernels::layer_norm::EPSILON;
use rand::rngs::StdRng;
use rayon::prelude::*;

use crate::generate::{sample_token, SamplingOptions, Streams};
use crate::rope;
use crate::Gpt;

/// Rows one batch decodes together at most; more prompts make more batches.
const MAX_ROWS: usize = 32;

/// Continues every prompt (any lengths) on the CPU; row `i` draws from `streams.row(i)`.
/// Returns each row's new tokens, cut after `options.stop_token`.
pub fn generate(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: SamplingOptions,
    streams: Streams,
) -> Vec<Vec<u32>> {
    let weights = DecoderWeights::of(model);
    let rows: Vec<usize> = (0..prompts.len()).collect();
    let per_batch = rows
        .len()
        .div_ceil(rayon::current_num_threads())
        .clamp(1, MAX_ROWS);
    rows.par_chunks(per_batch)
        .map(|rows| Batch::new(&weights, prompts, rows, options, streams).run(&mut |_, _, _| {}))
        .collect::<Vec<_>>()
        .concat()
}

/// [`generate`] for one prompt on the calling thread, handing each new token to `on_token` as
/// soon as it is drawn.
pub fn generate_streaming(
    model: &Gpt,
    prompt: &[u32],
    options: SamplingOptions,
    streams: Streams,
    on_token: &mut dyn FnMut(u32),
) -> Vec<u32> {
    let weights = DecoderWeights::of(model);
    let prompts = [prompt.to_vec()];
    Batch::new(&weights, &prompts, &[0], options, streams)
        .run(&mut |_, token, _| on_token(token))
        .remove(0)
}

/// The logits the decoder computes at every position of `tokens`, read as one row's prompt:
/// `[len, vocab]`, what its agreement with the tensor forward pass is tested on.
pub fn logits_along(model: &Gpt, tokens: &[u32]) -> Vec<f32> {
    let weights = DecoderWeights::of(model);
    let prompts = [tokens.to_vec()];
    let options = SamplingOptions {
        max_new_tokens: 0,
        temperature: 0.0,
        top_k: 0,
        stop_token: None,
    };
    let mut batch = Batch::new(&weights, &prompts, &[0], options, Streams::new(0));
    batch.active = vec![0];
    batch.fill_slots();
    batch.forward();
    let padded = weights.padded_vocab;
    batch.logits[..tokens.len() * padded]
        .chunks_exact(padded)
        .flat_map(|row| &row[..weights.vocab])
        .copied()
        .collect()
}

/// Every row's logits at each token it draws, in one batch (so rows with the same prompt share
/// its reading), concatenated: what sharing a prompt is tested on, to the bit.
#[cfg(test)]
pub(crate) fn logits_drawn_from(
    model: &Gpt,
    prompts: &[Vec<u32>],
    options: SamplingOptions,
    streams: Streams,
) -> Vec<Vec<f32>> {
    let weights = DecoderWeights::of(model);
    let rows: Vec<usize> = (0..prompts.len()).collect();
    let mut logits = vec![Vec::new(); prompts.len()];
    Batch::new(&weights, prompts, &rows, options, streams)
        .run(&mut |row, _, drawn_from| logits[row].extend_from_slice(drawn_from));
    logits
}

/// The model's parameters as host buffers, laid out for decoding.
struct DecoderWeights {
    d: usize,
    heads: usize,
    vocab: usize,
    /// The vocabulary rounded up to 16, so that the head's product runs in whole vectors.
    padded_vocab: usize,
    block_size: usize,
    token_embedding: Vec<f32>,
    /// `None` without learned positions.
    position_embedding: Option<Vec<f32>>,
    /// With RoPE, `(cos, sin)` of every position's angles, `[block_size, head_dim / 2]`.
    rope: Option<(Vec<f32>, Vec<f32>)>,
    layers: Vec<LayerWeights>,
    ln_f: Norm,
    /// The tied head `Eᵀ`, `[d, padded_vocab]`, zero in the padding columns.
    head: PackedMatrix,
}

struct LayerWeights {
    ln1: Norm,
    qkv: PackedMatrix,
    proj: PackedMatrix,
    ln2: Norm,
    fc: PackedMatrix,
    fc_bias: Vec<f32>,
    proj2: PackedMatrix,
    proj2_bias: Vec<f32>,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 parameters")
}

impl Norm {
    fn of(norm: &LayerNorm) -> Self {
        let gamma = host(norm.gamma.val());
        let beta = match &norm.beta {
            Some(beta) => host(beta.val()),
            None => vec![0.0; gamma.len()],
        };
        Self { gamma, beta }
    }

    fn apply(&self, x: &[f32], out: &mut [f32]) {
        layer_norm_rows(x, &self.gamma, &self.beta, EPSILON as f32, out);
    }
}

impl DecoderWeights {
    /// Positions a cache has room for: the block size, rounded up to whole blocks of the
    /// attention kernel.
    fn cache_capacity(&self) -> usize {
        self.block_size.next_multiple_of(POSITION_BLOCK)
    }

    /// Where a batch's row `row` has its cache of layer `layer`, in its keys and in its values
    /// (per row and layer, `d · capacity` floats).
    fn cache_at(&self, row: usize, layer: usize) -> usize {
        (row * self.layers.len() + layer) * self.d * self.cache_capacity()
    }

    fn of(model: &Gpt) -> Self {
        let [vocab, d] = model.token_embedding.dims();
        let token_embedding = host(model.token_embedding.val());
        let padded_vocab = vocab.next_multiple_of(16);
        let mut head = vec![0.0; d * padded_vocab];
        for (token, row) in token_embedding.chunks_exact(d).enumerate() {
            for (i, &value) in row.iter().enumerate() {
                head[i * padded_vocab + token] = value;
            }
        }
        let layers = model
            .blocks
            .iter()
            .map(|block| LayerWeights {
                ln1: Norm::of(&block.ln1),
                qkv: PackedMatrix::pack(&host(block.attn.qkv.val()), 3 * d),
                proj: PackedMatrix::pack(&host(block.attn.proj.val()), d),
                ln2: Norm::of(&block.ln2),
                fc: PackedMatrix::pack(&host(block.mlp.fc_weight.val()), 4 * d),
                fc_bias: host(block.mlp.fc_bias.val()),
                proj2: PackedMatrix::pack(&host(block.mlp.proj_weight.val()), d),
                proj2_bias: host(block.mlp.proj_bias.val()),
            })
            .collect();
        let heads = model.blocks.first().map_or(1, |block| block.attn.n_heads());
        let rope = model.blocks.first().is_some_and(|block| block.attn.rope());
        Self {
            d,
            heads,
            rope: rope.then(|| rope::tables(0, model.block_size(), d / heads / 2)),
            vocab,
            padded_vocab,
            block_size: model.block_size(),
            token_embedding,
            position_embedding: model.position_embedding.as_ref().map(|p| host(p.val())),
            layers,
            ln_f: Norm::of(&model.ln_f),
            head: PackedMatrix::pack(&head, padded_vocab),
        }
    }
}

/// One row: its prompt, what it has written, and its random stream.
struct Row<'p> {
    prompt: &'p [u32],
    /// The earlier row of the batch with the same prompt, which reads it for both.
    reads_prompt_of: Option<usize>,
    /// Positions in its cache: 0 before its prompt is read.
    cached: usize,
    /// New tokens it may still write: `max_new_tokens`, within the block size.
    budget: usize,
    output: Vec<u32>,
    rng: StdRng,
}

impl Row<'_> {
    /// The tokens the next step feeds, from position `cached` on: the whole prompt at first,
    /// then the token drawn last.
    fn pending(&self) -> &[u32] {
        match self.output.last() {
            None => self.prompt,
            Some(last) => std::slice::from_ref(last),
        }
    }
}

/// One token a step computes: a row's token at a position.
#[derive(Clone, Copy)]
struct Slot {
    row: usize,
    position: usize,
    token: u32,
}

/// The rows one thread decodes together, their caches, and the step's activations, all
/// allocated once.
struct Batch<'a> {
    weights: &'a DecoderWeights,
    options: SamplingOptions,
    rows: Vec<Row<'a>>,
    /// Indices into `rows` of the rows still writing.
    active: Vec<usize>,
    /// This step's tokens, a row's in order of position: its whole prompt in the first step
    /// (read in one pass, as the tensor path's prefill), then one token.
    slots: Vec<Slot>,
    /// Per row: the index of its last slot this step, if it has one.
    last_slot: Vec<Option<usize>>,
    /// Per row and layer: keys and values of `d · capacity` floats, laid out as
    /// `kernels::decode::CachedRow` reads them.
    keys: Vec<f32>,
    values: Vec<f32>,
    x: Vec<f32>,
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    scores: Vec<f32>,
}

impl<'a> Batch<'a> {
    /// The rows `indices` of `prompts`; row `i` draws from `streams.row(i)`.
    fn new(
        weights: &'a DecoderWeights,
        prompts: &'a [Vec<u32>],
        indices: &[usize],
        options: SamplingOptions,
        streams: Streams,
    ) -> Self {
        let (d, capacity) = (weights.d, weights.block_size);
        let mut first_with: HashMap<&[u32], usize> = HashMap::new();
        let rows: Vec<Row> = indices
            .iter()
            .enumerate()
            .map(|(r, &i)| {
                let prompt = &prompts[i];
                assert!(
                    !prompt.is_empty(),
                    "an empty prompt has nothing to continue"
                );
                assert!(
                    prompt.len() <= capacity,
                    "sequence of {} tokens exceeds block_size {capacity}",
                    prompt.len()
                );
                let first = *first_with.entry(prompt.as_slice()).or_insert(r);
                Row {
                    prompt,
                    reads_prompt_of: (first != r).then_some(first),
                    cached: 0,
                    budget: options.max_new_tokens.min(capacity - prompt.len()),
                    output: Vec::new(),
                    rng: streams.row(i),
                }
            })
            .collect();
        let active = (0..rows.len()).filter(|&r| rows[r].budget > 0).collect();
        // The most slots a step has: the first step's, every distinct prompt, or a later one's,
        // a token for every row (more when many rows share a short prompt).
        let slots = rows
            .iter()
            .filter(|row| row.reads_prompt_of.is_none())
            .map(|row| row.prompt.len())
            .sum::<usize>()
            .max(rows.len());
        let cache = rows.len() * weights.layers.len() * d * weights.cache_capacity();
        Self {
            weights,
            options,
            rows,
            active,
            slots: Vec::with_capacity(slots),
            last_slot: vec![None; indices.len()],
            keys: vec![0.0; cache],
            values: vec![0.0; cache],
            x: vec![0.0; slots * d],
            normed: vec![0.0; slots * d],
            qkv: vec![0.0; slots * 3 * d],
            attended: vec![0.0; slots * d],
            hidden: vec![0.0; slots * 4 * d],
            logits: vec![0.0; slots * weights.padded_vocab],
            scores: vec![0.0; weights.heads * weights.cache_capacity()],
        }
    }

    /// Steps until every row has stopped or spent its budget; `on_token(row, token, logits)`
    /// sees each new token as it is drawn, and the logits it was drawn from.
    fn run(mut self, on_token: &mut dyn FnMut(usize, u32, &[f32])) -> Vec<Vec<u32>> {
        while !self.active.is_empty() {
            self.fill_slots();
            self.forward();
            self.advance(on_token);
        }
        self.rows.into_iter().map(|row| row.output).collect()
    }

    /// Every active row's pending tokens, at the positions after its cache; in the first step
    /// only the rows that read their prompt.
    fn fill_slots(&mut self) {
        self.slots.clear();
        for &r in &self.active {
            let row = &self.rows[r];
            if row.cached == 0 && row.reads_prompt_of.is_some() {
                continue;
            }
            for (i, &token) in row.pending().iter().enumerate() {
                self.slots.push(Slot {
                    row: r,
                    position: row.cached + i,
                    token,
                });
            }
        }
    }

    /// Logits of every slot's token at its position, into `logits`. A slot's key and value
    /// enter its row's cache before its attention, so a row's prompt tokens, in order, each
    /// see the ones before them.
    fn forward(&mut self) {
        let w = self.weights;
        let (d, n) = (w.d, self.slots.len());
        let head_dim = d / w.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let capacity = w.cache_capacity();
        let layer_cache = d * capacity;
        let x = &mut self.x[..n * d];
        let normed = &mut self.normed[..n * d];
        let qkv = &mut self.qkv[..n * 3 * d];
        let attended = &mut self.attended[..n * d];
        let hidden = &mut self.hidden[..n * 4 * d];

        for (x, slot) in x.chunks_exact_mut(d).zip(&self.slots) {
            x.copy_from_slice(&w.token_embedding[slot.token as usize * d..][..d]);
            if let Some(positions) = &w.position_embedding {
                let position = &positions[slot.position * d..][..d];
                for (x, &p) in x.iter_mut().zip(position) {
                    *x += p;
                }
            }
        }
        for (l, layer) in w.layers.iter().enumerate() {
            // x + Attn(LN(x)): every slot's q, k, v in one product; each slot's key and
            // value into its row's cache, then its attention over the cache so far.
            layer.ln1.apply(x, normed);
            rows_times_matrix(normed, &layer.qkv, &[], qkv, false);
            if let Some((cos, sin)) = &w.rope {
                // Each head's query and key turned by the slot's position (crate::rope).
                let half = head_dim / 2;
                for (qkv, slot) in qkv.chunks_exact_mut(3 * d).zip(&self.slots) {
                    let (cos, sin) = (
                        &cos[slot.position * half..][..half],
                        &sin[slot.position * half..][..half],
                    );
                    for head in qkv[..2 * d].chunks_exact_mut(head_dim) {
                        rope::rotate_row(head, cos, sin);
                    }
                }
            }
            for ((qkv, out), slot) in qkv
                .chunks_exact(3 * d)
                .zip(attended.chunks_exact_mut(d))
                .zip(&self.slots)
            {
                let (q, kv) = qkv.split_at(d);
                let (k, v) = kv.split_at(d);
                let at = w.cache_at(slot.row, l);
                cache_token(
                    &mut self.keys[at..at + layer_cache],
                    &mut self.values[at..at + layer_cache],
                    head_dim,
                    capacity,
                    slot.position,
                    k,
                    v,
                );
                let cache = CachedRow {
                    keys: &self.keys[at..at + layer_cache],
                    values: &self.values[at..at + layer_cache],
                    head_dim,
                    capacity,
                    len: slot.position + 1,
                };
                attend_cached(q, cache, scale, &mut self.scores, out);
            }
            rows_times_matrix(attended, &layer.proj, &[], x, true);
            // x + MLP(LN(x)).
            layer.ln2.apply(x, normed);
            rows_times_matrix(normed, &layer.fc, &layer.fc_bias, hidden, false);
            gelu_rows(hidden);
            rows_times_matrix(hidden, &layer.proj2, &layer.proj2_bias, x, true);
        }
        w.ln_f.apply(x, normed);
        let logits = &mut self.logits[..n * w.padded_vocab];
        rows_times_matrix(normed, &w.head, &[], logits, false);
    }

    /// Row `to`'s cache takes the keys and values of its prompt from row `from`'s, which read
    /// the same prompt: in every layer and head, the key tiles and values of its positions.
    fn copy_prompt(&mut self, from: usize, to: usize) {
        let w = self.weights;
        let len = self.rows[from].prompt.len();
        let shape = (w.heads, w.d / w.heads, w.cache_capacity());
        for l in 0..w.layers.len() {
            let at = (w.cache_at(from, l), w.cache_at(to, l));
            copy_cached_positions(&mut self.keys, &mut self.values, shape, len, at);
        }
        self.rows[to].cached = len;
    }

    /// Draws each active row's next token from the logits of its last slot (a row that did
    /// not read its prompt, from the logits of the row that did). Rows that stop or spend
    /// their budget leave.
    fn advance(&mut self, on_token: &mut dyn FnMut(usize, u32, &[f32])) {
        let (vocab, padded) = (self.weights.vocab, self.weights.padded_vocab);
        let options = self.options;
        self.last_slot.fill(None);
        for (i, slot) in self.slots.iter().enumerate() {
            self.rows[slot.row].cached = slot.position + 1;
            self.last_slot[slot.row] = Some(i);
        }
        for a in 0..self.active.len() {
            let r = self.active[a];
            let slot = match (self.last_slot[r], self.rows[r].reads_prompt_of) {
                (Some(slot), _) => slot,
                (None, Some(reader)) => {
                    self.copy_prompt(reader, r);
                    self.last_slot[reader].expect("the reader's prompt was read this step")
                }
                (None, None) => unreachable!("an active row has a slot or a reader"),
            };
            let row = &mut self.rows[r];
            let logits = &self.logits[slot * padded..][..vocab];
            let token = sample_token(logits, options.temperature, options.top_k, &mut row.rng);
            row.output.push(token);
            on_token(r, token, logits);
        }
        let rows = &self.rows;
        self.active.retain(|&r| {
            let row = &rows[r];
            let stopped = options
                .stop_token
                .is_some_and(|stop| row.output.last() == Some(&stop));
            !(stopped || row.output.len() >= row.budget)
        });
    }
}
