//! The kernels of a decode step: one new token per row, against a KV cache, on plain host
//! buffers that the decoder (`model::decode`) allocates once.
//!
//! A decode step is a few rows at one position each. As tensor operations it was dozens of tiny
//! dispatches and allocations per token, which took more time than the arithmetic; here each
//! step is a handful of calls on slices:
//! - [`rows_times_matrix`]: `out = x · W + b` (or `out += …`, the residual add) for every row,
//!   W packed once per set of weights in column panels ([`PackedMatrix`]);
//! - [`layer_norm_rows`]: a layer norm per row;
//! - [`attend_cached`]: one row's attention over the keys and values of its cache;
//! - [`gelu_rows`]: the exact GELU in place.
//!
//! **A row's numbers depend on nothing but the row.** Every output element is computed by the
//! same sequence of operations whatever the vector unit, the register tile the row falls in, the
//! other rows of the batch or the thread that runs it: a product is one fused multiply-add chain
//! along k (vectors only widen the tile across columns), and a sum runs in 16 fixed lanes. So a
//! row's tokens do not depend on the batch, the thread count, or whether the CPU has AVX-512.

use crate::causal_softmax::{max, sum};
use crate::fastmath::exp_f32;
use crate::gelu::gelu_f32;
use crate::simd::{simd_kernel, SimdLevel};

/// A weight matrix W `[k, n]` laid out for [`rows_times_matrix`] on one vector unit: in column
/// panels as wide as that unit's register tile (64 columns on AVX-512, 16 on AVX2, 8 on the
/// baseline; the last panel narrower), each panel's k rows contiguous.
///
/// Row-major, each k step of a tile loads a few vectors from a new row of W, a full row of W
/// apart: a stride the prefetchers follow badly, so the decoder's products waited on W. A
/// panel is one stream read in order. The layout changes where W's numbers are read from, not
/// which numbers meet in an FMA chain.
pub struct PackedMatrix {
    data: Vec<f32>,
    k: usize,
    n: usize,
    /// Columns per panel: the register tile's width of `level`.
    panel: usize,
    level: SimdLevel,
}

impl PackedMatrix {
    /// W `[k, n]` row-major, packed for the active vector unit.
    pub fn pack(weight: &[f32], n: usize) -> Self {
        Self::pack_for(SimdLevel::active(), weight, n)
    }

    /// W packed for `level`'s register tiles (capped at what the CPU supports).
    pub fn pack_for(level: SimdLevel, weight: &[f32], n: usize) -> Self {
        assert!(n > 0 && weight.len().is_multiple_of(n), "W is not [k, {n}]");
        let level = level.min(SimdLevel::supported());
        let k = weight.len() / n;
        let panel = match level {
            SimdLevel::Avx512 => 64,
            SimdLevel::Avx2 => 16,
            SimdLevel::Baseline => 8,
        };
        let mut data = Vec::with_capacity(k * n);
        for start in (0..n).step_by(panel) {
            let width = panel.min(n - start);
            for row in weight.chunks_exact(n) {
                data.extend_from_slice(&row[start..start + width]);
            }
        }
        Self {
            data,
            k,
            n,
            panel,
            level,
        }
    }

    /// Where column `column`'s entry of row 0 is, and the step from one row to the next, in
    /// the panel that holds the column.
    fn at(&self, column: usize) -> (usize, usize) {
        let start = column / self.panel * self.panel;
        let width = self.panel.min(self.n - start);
        (start * self.k + column - start, width)
    }
}

/// `out[r] = x[r] · W + bias` for every row r of `x` (`[rows, k]`), with W `[k, n]` packed
/// and `bias` `[n]` or empty; with `accumulate`, `out[r] += x[r] · W + bias` (a residual add).
/// Runs on the vector unit W was packed for.
pub fn rows_times_matrix(
    x: &[f32],
    weight: &PackedMatrix,
    bias: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let mut product = Product::new(x, weight, bias, out, accumulate);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `pack_for` capped the level at what `supported()` found on this CPU.
        match weight.level {
            SimdLevel::Avx512 => return unsafe { x86::avx512(&mut product) },
            SimdLevel::Avx2 => return unsafe { x86::avx2(&mut product) },
            SimdLevel::Baseline => {}
        }
    }
    // SAFETY: `f32` lanes need no CPU feature.
    unsafe { product.run::<f32, f32, 4, 8>() }
}

/// A vector of f32 lanes: what a register tile is made of. Every operation is the lane-wise
/// f32 one (`fma` rounds once, as `f32::mul_add`), so the lane count changes nothing but speed.
trait Lanes: Copy {
    const N: usize;
    /// # Safety
    /// For every method: the CPU has the vector unit; pointers are valid for `N` floats.
    unsafe fn zero() -> Self;
    unsafe fn splat(value: f32) -> Self;
    unsafe fn load(from: *const f32) -> Self;
    unsafe fn store(self, to: *mut f32);
    /// `a · b + c`, rounded once.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
}

impl Lanes for f32 {
    const N: usize = 1;
    unsafe fn zero() -> Self {
        0.0
    }
    unsafe fn splat(value: f32) -> Self {
        value
    }
    unsafe fn load(from: *const f32) -> Self {
        unsafe { *from }
    }
    unsafe fn store(self, to: *mut f32) {
        unsafe { *to = self }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        a.mul_add(b, c)
    }
    unsafe fn add(a: Self, b: Self) -> Self {
        a + b
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{attend, CachedRow, Lanes, Product};

    /// 6 rows × 64 columns: 24 accumulators of the 32 registers, 4 for W, 1 broadcast.
    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn avx512(product: &mut Product) {
        unsafe { product.run::<__m512, __m256, 6, 4>() }
    }

    /// 6 rows × 16 columns: 12 accumulators of the 16 registers, 2 for W, 1 broadcast.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(product: &mut Product) {
        unsafe { product.run::<__m256, __m256, 6, 2>() }
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn attend_avx512(
        q: &[f32],
        cache: CachedRow<'_>,
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        unsafe { attend::<__m512>(q, cache, scale, scores, out) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn attend_avx2(
        q: &[f32],
        cache: CachedRow<'_>,
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        unsafe { attend::<__m256>(q, cache, scale, scores, out) }
    }

    impl Lanes for __m512 {
        const N: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> Self {
            unsafe { _mm512_set1_ps(value) }
        }
        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            unsafe { _mm512_loadu_ps(from) }
        }
        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            unsafe { _mm512_storeu_ps(to, self) }
        }
        #[inline(always)]
        unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            unsafe { _mm512_add_ps(a, b) }
        }
    }

    impl Lanes for __m256 {
        const N: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> Self {
            unsafe { _mm256_set1_ps(value) }
        }
        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            unsafe { _mm256_loadu_ps(from) }
        }
        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            unsafe { _mm256_storeu_ps(to, self) }
        }
        #[inline(always)]
        unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            unsafe { _mm256_add_ps(a, b) }
        }
    }
}

/// Asks for the cache line at `at` to be brought into L2: a hint, which never faults.
#[inline(always)]
fn prefetch_l2(at: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        _mm_prefetch::<_MM_HINT_T1>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// One `x · W` product, walked in column panels and row tiles held in registers.
struct Product<'a> {
    x: &'a [f32],
    weight: &'a PackedMatrix,
    bias: &'a [f32],
    out: &'a mut [f32],
    rows: usize,
    k: usize,
    n: usize,
    accumulate: bool,
}

impl<'a> Product<'a> {
    fn new(
        x: &'a [f32],
        weight: &'a PackedMatrix,
        bias: &'a [f32],
        out: &'a mut [f32],
        accumulate: bool,
    ) -> Self {
        let (k, n) = (weight.k, weight.n);
        assert!(k > 0 && x.len().is_multiple_of(k), "x is not [rows, {k}]");
        let rows = x.len() / k;
        assert_eq!(out.len(), rows * n, "out is not [{rows}, {n}]");
        assert!(bias.is_empty() || bias.len() == n, "bias is not [{n}]");
        Self {
            x,
            weight,
            bias,
            out,
            rows,
            k,
            n,
            accumulate,
        }
    }

    /// Column panels of C vectors `V` (then single vectors `V`, then vectors `H`, then single
    /// columns), each over every row tile, so that a panel of W stays in cache while the rows
    /// pass over it. C vectors `V` are the packing's panel, so no tile straddles two panels.
    ///
    /// # Safety
    /// The CPU has the vector units of `V` and `H`.
    #[inline(always)]
    unsafe fn run<V: Lanes, H: Lanes, const R: usize, const C: usize>(&mut self) {
        debug_assert_eq!(C * V::N, self.weight.panel);
        unsafe {
            let (mut column, end) = (0, self.n);
            while column + C * V::N <= end {
                self.panel::<V, R, C>(column);
                column += C * V::N;
            }
            while column + V::N <= end {
                self.panel::<V, R, 1>(column);
                column += V::N;
            }
            while column + H::N <= end {
                self.panel::<H, R, 1>(column);
                column += H::N;
            }
            while column < end {
                self.panel::<f32, R, 1>(column);
                column += 1;
            }
        }
    }

    /// # Safety
    /// As [`run`](Self::run), and `column + C · V::N <= n`.
    #[inline(always)]
    unsafe fn panel<V: Lanes, const R: usize, const C: usize>(&mut self, column: usize) {
        unsafe {
            // The second row tile (or the only one) asks for the next panel of W while it
            // computes from this one, which the first tile has brought into cache: a panel
            // is read from memory once, in a burst the prefetchers cannot run ahead of.
            let next = self.next_panel(column);
            let prefetch_at = if self.rows > R { R } else { 0 };
            let prefetch = |row: usize| if row == prefetch_at { next } else { None };
            let mut row = 0;
            while row + R <= self.rows {
                self.tile::<V, R, C>(row, column, prefetch(row));
                row += R;
            }
            // The last rows in tiles of 4, 2 and 1 (an R = 8 tile would otherwise leave up to
            // 7 rows to single-row tiles).
            if R > 4 && row + 4 <= self.rows {
                self.tile::<V, 4, C>(row, column, prefetch(row));
                row += 4;
            }
            if R > 2 && row + 2 <= self.rows {
                self.tile::<V, 2, C>(row, column, prefetch(row));
                row += 2;
            }
            while row < self.rows {
                self.tile::<V, 1, C>(row, column, prefetch(row));
                row += 1;
            }
        }
    }

    /// The packed floats of the panel after the one holding `column`, as `(start, per k
    /// step)`, if there is one and `column` starts its panel.
    fn next_panel(&self, column: usize) -> Option<(*const f32, usize)> {
        let (at, width) = self.weight.at(column);
        let end = at - (column % self.weight.panel) + width * self.k;
        let rest = self.weight.data.len() - end;
        (column.is_multiple_of(self.weight.panel) && rest > 0).then(|| {
            (
                self.weight.data[end..].as_ptr(),
                rest.min(width * self.k) / self.k,
            )
        })
    }

    /// Rows `row..row + R`, columns `column..column + C·V::N`: R × C vector accumulators, each
    /// lane one FMA chain over k in order; then the bias is added, and the sum stored or added
    /// to `out`.
    ///
    /// # Safety
    /// As [`panel`](Self::panel), and `row + R <= rows`: every pointer below then stays inside
    /// its slice (`Product::new` checked the slices' lengths).
    #[inline(always)]
    unsafe fn tile<V: Lanes, const R: usize, const C: usize>(
        &mut self,
        row: usize,
        column: usize,
        prefetch: Option<(*const f32, usize)>,
    ) {
        unsafe {
            let (k, n) = (self.k, self.n);
            let x = self.x.as_ptr().add(row * k);
            let (at, stride) = self.weight.at(column);
            let weight = self.weight.data.as_ptr().add(at);
            let mut acc = [[V::zero(); C]; R];
            for kk in 0..k {
                if let Some((next, per_k)) = prefetch {
                    for line in (0..per_k).step_by(16) {
                        prefetch_l2(next.add(kk * per_k + line));
                    }
                }
                let w_row = weight.add(kk * stride);
                let mut w = [V::zero(); C];
                for (c, w) in w.iter_mut().enumerate() {
                    *w = V::load(w_row.add(c * V::N));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let xv = V::splat(*x.add(r * k + kk));
                    for (acc, &w) in acc.iter_mut().zip(&w) {
                        *acc = V::fma(xv, w, *acc);
                    }
                }
            }
            let out = self.out.as_mut_ptr().add(row * n + column);
            for (r, acc) in acc.iter().enumerate() {
                for (c, &acc) in acc.iter().enumerate() {
                    let at = out.add(r * n + c * V::N);
                    let mut value = acc;
                    if !self.bias.is_empty() {
                        value = V::add(value, V::load(self.bias.as_ptr().add(column + c * V::N)));
                    }
                    if self.accumulate {
                        value = V::add(V::load(at), value);
                    }
                    value.store(at);
                }
            }
        }
    }
}

simd_kernel! {
    /// `out[r] = (x[r] − mean) / sqrt(var + epsilon) · gamma + beta` for every row of `x`
    /// (`[rows, d]`, d = `gamma.len()`), the biased variance, as Burn's `LayerNorm`.
    pub fn layer_norm_rows(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32, out: &mut [f32]) {
        let d = gamma.len();
        for (x, out) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mean = sum(x) / d as f32;
            for (out, &x) in out.iter_mut().zip(x) {
                *out = (x - mean) * (x - mean);
            }
            let std = (sum(out) / d as f32 + epsilon).sqrt();
            for (((out, &x), &gamma), &beta) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
                *out = (x - mean) / std * gamma + beta;
            }
        }
    }
}

/// A cache's capacity is a multiple of it, so that scores are computed in whole passes of 4
/// vectors of positions (64 positions on AVX-512).
pub const POSITION_BLOCK: usize = 64;

/// Positions per key tile: one cache line of each key dimension.
pub const KEY_TILE: usize = 16;

/// One row's cache in one layer, and how much of it is filled.
///
/// Keys are cached transposed, so that the scores are one FMA chain over the head dimension for
/// each position, vectorised across positions, and in tiles of [`KEY_TILE`] positions:
/// `[heads, capacity / KEY_TILE, head_dim, KEY_TILE]`. The first `len` positions of a head are
/// then one contiguous stream, whatever the capacity (the former layout, `[heads, head_dim,
/// capacity]`, read `len` floats of every `capacity`, a stride the prefetchers fetch whole rows
/// of). Values are `[heads, capacity, head_dim]`. `capacity` is a multiple of
/// [`POSITION_BLOCK`], so that scores can be computed in whole vectors of 16 positions (the keys
/// past `len` are read, but the scores they give are never used).
/// [`cache_token`] writes a position.
#[derive(Clone, Copy)]
pub struct CachedRow<'a> {
    pub keys: &'a [f32],
    pub values: &'a [f32],
    pub head_dim: usize,
    pub capacity: usize,
    /// Positions filled, the newest included.
    pub len: usize,
}

/// Where `position`'s key of dimension 0 sits among one head's key tiles ([`CachedRow`]);
/// dimension j's is `j · KEY_TILE` further.
#[inline(always)]
fn key_offset(head_dim: usize, position: usize) -> usize {
    position / KEY_TILE * head_dim * KEY_TILE + position % KEY_TILE
}

/// Writes one position's keys and values (`[heads · head_dim]` each) into a row's cache of one
/// layer, laid out as [`CachedRow`] reads them.
pub fn cache_token(
    keys: &mut [f32],
    values: &mut [f32],
    head_dim: usize,
    capacity: usize,
    position: usize,
    k: &[f32],
    v: &[f32],
) {
    assert!(capacity.is_multiple_of(POSITION_BLOCK) && position < capacity);
    assert!(k.len() == v.len() && k.len().is_multiple_of(head_dim));
    let head_cache = head_dim * capacity;
    let tile = key_offset(head_dim, position);
    for (head, (k, v)) in k
        .chunks_exact(head_dim)
        .zip(v.chunks_exact(head_dim))
        .enumerate()
    {
        let keys = &mut keys[head * head_cache..][..head_cache];
        for (j, &k) in k.iter().enumerate() {
            keys[tile + j * KEY_TILE] = k;
        }
        values[head * head_cache + position * head_dim..][..head_dim].copy_from_slice(v);
    }
}

/// Copies the first `len` positions of one layer's cache, laid out as [`CachedRow`] reads
/// them, from the caches at `from` to those at `to` in the same buffers (`[heads · head_dim ·
/// capacity]` floats each): a row that shares another's prompt takes its keys and values.
/// Whole key tiles are copied; the positions past `len` in the last one are written before
/// they are read.
pub fn copy_cached_positions(
    keys: &mut [f32],
    values: &mut [f32],
    (heads, head_dim, capacity): (usize, usize, usize),
    len: usize,
    (from, to): (usize, usize),
) {
    assert!(capacity.is_multiple_of(POSITION_BLOCK) && len <= capacity);
    let head_cache = head_dim * capacity;
    let key_floats = len.next_multiple_of(KEY_TILE) * head_dim;
    for head in 0..heads {
        let (from, to) = (from + head * head_cache, to + head * head_cache);
        keys.copy_within(from..from + key_floats, to);
        values.copy_within(from..from + len * head_dim, to);
    }
}

/// One row's causal attention at its newest position: for each head, the scores of `q` against
/// the first `len` cached keys, softmax(scale · scores), and the weighted sum of the cached
/// values, into `out` (`[heads · head_dim]`, like `q`). `scores` holds `heads · capacity`
/// floats.
pub fn attend_cached(
    q: &[f32],
    cache: CachedRow<'_>,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    attend_cached_at(SimdLevel::active(), q, cache, scale, scores, out)
}

/// [`attend_cached`] on the vectors of `level` (capped at what the CPU supports), for the tests
/// that hold the levels to the same bits.
pub fn attend_cached_at(
    level: SimdLevel,
    q: &[f32],
    cache: CachedRow<'_>,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let (capacity, len) = (cache.capacity, cache.len);
    assert!(capacity.is_multiple_of(POSITION_BLOCK) && 0 < len && len <= capacity);
    assert!(q.len().is_multiple_of(cache.head_dim) && out.len() == q.len());
    let room = q.len() * capacity;
    let heads = q.len() / cache.head_dim;
    assert!(cache.keys.len() >= room && cache.values.len() >= room);
    assert!(scores.len() >= heads * capacity);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the level is capped at what `supported()` found on this CPU.
        match level.min(SimdLevel::supported()) {
            SimdLevel::Avx512 => {
                return unsafe { x86::attend_avx512(q, cache, scale, scores, out) }
            }
            SimdLevel::Avx2 => return unsafe { x86::attend_avx2(q, cache, scale, scores, out) },
            SimdLevel::Baseline => {}
        }
    }
    let _ = level;
    // SAFETY: `f32` lanes need no CPU feature.
    unsafe { attend::<f32>(q, cache, scale, scores, out) }
}

/// [`attend_cached`] on vectors `V`, in three passes over the heads: every head's scores, then
/// every head's softmax, then every head's weighted values. Each head's arithmetic is the same
/// as one head at a time; in passes, one head's loads do not wait behind the previous head's
/// softmax (hot, 4 heads at 38 positions: 0.98 → 0.89 µs).
///
/// # Safety
/// The CPU has the vector unit of `V`, and the slices have the lengths `attend_cached_at`
/// checked.
#[inline(always)]
unsafe fn attend<V: Lanes>(
    q: &[f32],
    cache: CachedRow<'_>,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let CachedRow {
        keys,
        values,
        head_dim,
        capacity,
        len,
    } = cache;
    let head_cache = head_dim * capacity;
    let heads = q.len() / head_dim;
    let scores = &mut scores[..heads * capacity];
    // Scores, 4 vectors of positions at a time (the last pass only as far as `len` in whole
    // vectors), each the sum of two FMA chains over the head dimension, even j and odd j, all
    // held in registers.
    for (head, (q, scores)) in q
        .chunks_exact(head_dim)
        .zip(scores.chunks_exact_mut(capacity))
        .enumerate()
    {
        let keys = &keys[head * head_cache..][..head_cache];
        let mut block = 0;
        while block < len {
            let (q, keys, scores) = (q.as_ptr(), keys.as_ptr(), scores.as_mut_ptr());
            // SAFETY: whole vectors from `block` stay inside the capacity, a multiple of 64.
            unsafe {
                match (len - block).div_ceil(V::N) {
                    1 => score_block::<V, 1>(q, head_dim, keys, block, scores),
                    2 => score_block::<V, 2>(q, head_dim, keys, block, scores),
                    3 => score_block::<V, 3>(q, head_dim, keys, block, scores),
                    _ => score_block::<V, 4>(q, head_dim, keys, block, scores),
                }
            }
            block += 4 * V::N;
        }
    }
    // The fused causal softmax's arithmetic: exp((s − max) · scale), then · 1/Σ. The
    // exponentials run over whole vectors, past `len` (those are never read).
    for scores in scores.chunks_exact_mut(capacity) {
        let max = max(&scores[..len]);
        for score in scores[..len.next_multiple_of(16)].iter_mut() {
            *score = exp_f32((*score - max) * scale);
        }
        let scores = &mut scores[..len];
        let inverse_sum = 1.0 / sum(scores);
        for score in scores.iter_mut() {
            *score *= inverse_sum;
        }
    }
    for (head, (p, out)) in scores
        .chunks_exact(capacity)
        .zip(out.chunks_exact_mut(head_dim))
        .enumerate()
    {
        let values = &values[head * head_cache..][..head_cache];
        // SAFETY: `values` holds `len` positions of `head_dim` floats.
        unsafe { weighted_values::<V>(&p[..len], values.as_ptr(), head_dim, out) };
    }
}

/// Scores of positions `block..block + B·V::N` into `scores`: q · key for each, as the sum of an
/// FMA chain over the even j and one over the odd j.
///
/// # Safety
/// `keys` holds one head's tiles of `capacity` positions ([`CachedRow`]), `scores` `capacity`
/// floats, `block + B·V::N <= capacity`, and `block` is a multiple of `V::N`, which divides
/// [`KEY_TILE`]: then each vector's lanes lie in one tile, and the last dimension's read ends
/// inside the head's keys.
#[inline(always)]
unsafe fn score_block<V: Lanes, const B: usize>(
    q: *const f32,
    head_dim: usize,
    keys: *const f32,
    block: usize,
    scores: *mut f32,
) {
    unsafe {
        debug_assert!(KEY_TILE.is_multiple_of(V::N) && block.is_multiple_of(V::N));
        let (mut even, mut odd) = ([V::zero(); B], [V::zero(); B]);
        // Vector i's positions start at `block + i·V::N`, inside one tile (V::N divides 16).
        let vector = |i: usize| keys.add(key_offset(head_dim, block + i * V::N));
        let starts: [*const f32; B] = std::array::from_fn(vector);
        for pair in 0..head_dim / 2 {
            let (j, k) = (2 * pair, 2 * pair + 1);
            let (qj, qk) = (V::splat(*q.add(j)), V::splat(*q.add(k)));
            for i in 0..B {
                even[i] = V::fma(qj, V::load(starts[i].add(j * KEY_TILE)), even[i]);
                odd[i] = V::fma(qk, V::load(starts[i].add(k * KEY_TILE)), odd[i]);
            }
        }
        if head_dim % 2 == 1 {
            let j = head_dim - 1;
            let qj = V::splat(*q.add(j));
            for (i, even) in even.iter_mut().enumerate() {
                *even = V::fma(qj, V::load(starts[i].add(j * KEY_TILE)), *even);
            }
        }
        for (i, (&even, &odd)) in even.iter().zip(&odd).enumerate() {
            V::add(even, odd).store(scores.add(block + i * V::N));
        }
    }
}

/// `out[j] = Σₜ p[t] · values[t][j]`, the positions taken in 4 interleaved FMA chains
/// (t mod 4) joined as (c₀ + c₁) + (c₂ + c₃): 4 chains hide the FMA latency, and the order is
/// the code's, not the vector unit's. Columns go 2 vectors at a time (8 accumulators), then 1,
/// then one by one.
///
/// # Safety
/// `values` holds `p.len()` rows of `head_dim` floats, and `out` `head_dim`.
#[inline(always)]
unsafe fn weighted_values<V: Lanes>(
    p: &[f32],
    values: *const f32,
    head_dim: usize,
    out: &mut [f32],
) {
    unsafe {
        let mut column = 0;
        while column + 2 * V::N <= head_dim {
            chains::<V, 2>(p, values, head_dim, column, out);
            column += 2 * V::N;
        }
        while column + V::N <= head_dim {
            chains::<V, 1>(p, values, head_dim, column, out);
            column += V::N;
        }
        while column < head_dim {
            chains::<f32, 1>(p, values, head_dim, column, out);
            column += 1;
        }
    }
}

/// Columns `column..column + W·V::N` of [`weighted_values`].
///
/// # Safety
/// As [`weighted_values`], and `column + W·V::N <= head_dim`.
#[inline(always)]
unsafe fn chains<V: Lanes, const W: usize>(
    p: &[f32],
    values: *const f32,
    head_dim: usize,
    column: usize,
    out: &mut [f32],
) {
    unsafe {
        let mut acc = [[V::zero(); W]; 4];
        let mut add = |chain: usize, t: usize| {
            let (p, value) = (V::splat(p[t]), values.add(t * head_dim + column));
            for (w, acc) in acc[chain].iter_mut().enumerate() {
                *acc = V::fma(p, V::load(value.add(w * V::N)), *acc);
            }
        };
        let whole = p.len() / 4 * 4;
        for t in (0..whole).step_by(4) {
            for chain in 0..4 {
                add(chain, t + chain);
            }
        }
        for (chain, t) in (whole..p.len()).enumerate() {
            add(chain, t);
        }
        let out = out.as_mut_ptr().add(column);
        let [c0, c1, c2, c3] = acc;
        for w in 0..W {
            let joined = V::add(V::add(c0[w], c1[w]), V::add(c2[w], c3[w]));
            joined.store(out.add(w * V::N));
        }
    }
}

simd_kernel! {
    /// `x = GELU(x)`, the exact (erf) form, element by element.
    pub fn gelu_rows(x: &mut [f32]) {
        for x in x.iter_mut() {
            *x = gelu_f32(*x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, salt: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ salt) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Every tile shape (full tiles, the 4/2/1-row rest, the 16/8/1-column rest) gives each
    /// element exactly the f64-checked value of one FMA chain, on every vector unit, and the
    /// units agree bit for bit.
    #[test]
    fn every_level_and_tile_computes_the_same_bits() {
        for (rows, k, n) in [
            (16, 128, 384),
            (13, 64, 80),
            (7, 33, 57),
            (1, 5, 3),
            (3, 9, 150),
        ] {
            let (x, weight, bias) = (values(rows * k, 1), values(k * n, 2), values(n, 3));
            let mut want = vec![0.0f32; rows * n];
            for r in 0..rows {
                for c in 0..n {
                    let mut acc = 0.0f32;
                    for kk in 0..k {
                        acc = x[r * k + kk].mul_add(weight[kk * n + c], acc);
                    }
                    want[r * n + c] = 0.5 + (acc + bias[c]);
                }
            }
            for level in SimdLevel::ALL {
                let mut out = vec![0.5f32; rows * n];
                let packed = PackedMatrix::pack_for(level, &weight, n);
                rows_times_matrix(&x, &packed, &bias, &mut out, true);
                let same = out
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{level:?} at rows {rows} k {k} n {n}");
            }
            // The last row alone gives that row's bits from the batch (a row is its own).
            let last = rows - 1;
            let mut alone = vec![0.0f32; n];
            let packed = PackedMatrix::pack(&weight, n);
            rows_times_matrix(&x[last * k..], &packed, &[], &mut alone, false);
            let mut batch = vec![0.0f32; rows * n];
            rows_times_matrix(&x, &packed, &[], &mut batch, false);
            assert_eq!(alone, batch[last * n..]);
        }
    }

    /// The cached attention of the last position is the softmax-weighted mean of the values
    /// (checked in f64), and every vector unit gives the same bits.
    #[test]
    fn cached_attention_matches_the_definition_on_every_level() {
        // An odd head dimension too: its last key row is the scores' lone FMA.
        for head_dim in [40, 13] {
            attention_matches_the_definition(head_dim);
        }
    }

    fn attention_matches_the_definition(head_dim: usize) {
        let (heads, capacity, len) = (3, 128, 71);
        let q = values(heads * head_dim, 4);
        // Every position's keys and values written through `cache_token`; `key[h][j][t]` and
        // `val[h][t][j]` are what the definition below reads.
        let key = |h: usize, j: usize, t: usize| values(1, (h * 1000 + j * 131 + t) as u32 ^ 5)[0];
        let val = |h: usize, t: usize, j: usize| values(1, (h * 1000 + t * 131 + j) as u32 ^ 6)[0];
        let (mut keys, mut vals) = (
            vec![0.0; heads * head_dim * capacity],
            vec![0.0; heads * head_dim * capacity],
        );
        for t in 0..len {
            let k: Vec<f32> = (0..heads * head_dim)
                .map(|i| key(i / head_dim, i % head_dim, t))
                .collect();
            let v: Vec<f32> = (0..heads * head_dim)
                .map(|i| val(i / head_dim, t, i % head_dim))
                .collect();
            cache_token(&mut keys, &mut vals, head_dim, capacity, t, &k, &v);
        }
        let scale = 1.0 / (head_dim as f32).sqrt();
        let mut outs = Vec::new();
        for level in SimdLevel::ALL {
            let (mut scores, mut out) = (vec![0.0; heads * capacity], vec![0.0; heads * head_dim]);
            let cache = CachedRow {
                keys: &keys,
                values: &vals,
                head_dim,
                capacity,
                len,
            };
            attend_cached_at(level, &q, cache, scale, &mut scores, &mut out);
            outs.push(out);
        }
        assert!(outs.windows(2).all(|w| w[0] == w[1]), "levels disagree");
        for h in 0..heads {
            let score = |t: usize| -> f64 {
                (0..head_dim)
                    .map(|j| q[h * head_dim + j] as f64 * key(h, j, t) as f64)
                    .sum::<f64>()
                    * scale as f64
            };
            let weights: Vec<f64> = (0..len).map(|t| score(t).exp()).collect();
            let total: f64 = weights.iter().sum();
            for j in 0..head_dim {
                let want: f64 = (0..len)
                    .map(|t| weights[t] / total * val(h, t, j) as f64)
                    .sum();
                let got = outs[0][h * head_dim + j] as f64;
                assert!(
                    (got - want).abs() < 1e-5,
                    "head {h} dim {j}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn layer_norm_rows_normalises_each_row() {
        let (d, rows) = (48, 3);
        let x = values(rows * d, 7);
        let (gamma, beta) = (values(d, 8), values(d, 9));
        let mut out = vec![0.0; rows * d];
        layer_norm_rows(&x, &gamma, &beta, 1e-5, &mut out);
        for r in 0..rows {
            let row = &x[r * d..(r + 1) * d];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            for i in 0..d {
                let want =
                    (row[i] as f64 - mean) / (var + 1e-5).sqrt() * gamma[i] as f64 + beta[i] as f64;
                assert!((out[r * d + i] as f64 - want).abs() < 1e-5);
            }
        }
    }
}
