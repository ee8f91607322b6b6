//! `bench --products`: where a training step's time goes, product by product, against the
//! core's own arithmetic ceiling. A benchmark, not a test.
//!
//! Each core trains its own shard of the batch (`trainer::parallel`), so the matrix products
//! of one shard's step (forward and backward, in the layouts the model makes) are timed here
//! on one thread, and their sum is set against the measured step: what the products take,
//! how close they come to one core's FMA peak, and what is left for everything else.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use model::GptConfig;

use crate::measure::{measure, simd_paths};

/// One kind of product in a step: its shape, its operands' layouts and how often it runs.
struct Product {
    name: &'static str,
    count: usize,
    backward: bool,
    /// Batch axes: `[1, 1]` for a linear layer, `[b, h]` for attention's per-head products.
    batch: [usize; 2],
    m: usize,
    k: usize,
    n: usize,
    lhs: Layout,
    rhs: Layout,
}

impl Product {
    /// Multiply-adds of one product (all its batch matrices).
    fn macs(&self) -> usize {
        self.batch[0] * self.batch[1] * self.m * self.k * self.n
    }

    fn operands(&self, device: &Device) -> (Tensor<4>, Tensor<4>) {
        (
            self.lhs.make(self.batch, self.m, self.k, 1, device),
            self.rhs.make(self.batch, self.k, self.n, 2, device),
        )
    }
}

/// How an operand lies in memory, as the model or its backward pass hands it to the product.
#[derive(Clone, Copy)]
enum Layout {
    /// Row-major `[rows, cols]`.
    RowMajor,
    /// A transposed view of a stored `[cols, rows]` (`Wᵀ`, `Xᵀ`, `kᵀ`).
    Transposed,
    /// A `[rows, cols]` column block of a row-major `[rows, 3·cols]` (one of Q, K, V's weights).
    ColumnBlock,
    /// Heads as the model splits them: `[b, rows, h, cols]` viewed as `[b, h, rows, cols]`.
    Heads,
    /// The transpose of `Heads` (`kᵀ`, `vᵀ`, `qᵀ`).
    HeadsTransposed,
}

impl Layout {
    fn make(
        self,
        [b, h]: [usize; 2],
        rows: usize,
        cols: usize,
        seed: usize,
        device: &Device,
    ) -> Tensor<4> {
        match self {
            Layout::RowMajor => filled([b, h, rows, cols], seed, device),
            Layout::Transposed => filled([b, h, cols, rows], seed, device).swap_dims(2, 3),
            Layout::ColumnBlock => {
                filled([b, h, rows, 3 * cols], seed, device).narrow(3, cols, cols)
            }
            Layout::Heads => filled([b, rows, h, cols], seed, device).swap_dims(1, 2),
            Layout::HeadsTransposed => filled([b, cols, h, rows], seed, device)
                .swap_dims(1, 2)
                .swap_dims(2, 3),
        }
    }
}

pub fn run(device: &Device, config: &GptConfig, batch: usize, steps: usize) -> Result<()> {
    let shards = model::device::shard_count(device);
    let rows_batch = (batch / shards).max(1);
    let products = step_products(config, rows_batch);
    let level = kernels::SimdLevel::active().max(kernels::gemm_level());
    let peak = kernels::peak::fma_peak_gflops(level);

    println!(
        "products of one shard's training step: B {rows_batch} (of {batch}, {shards} shards) T {} \
         d {} L {} h {} V {}",
        config.block_size, config.d_model, config.n_layers, config.n_heads, config.vocab_size
    );
    println!("SIMD: {}", simd_paths());
    // Whether the threads' cores have FMA units of their own: a VM's two vCPUs may be two
    // hardware threads of one core, which then share them.
    let together: Vec<f64> = rayon::broadcast(|_| kernels::peak::fma_peak_gflops(level));
    println!(
        "one core's FMA peak at {}: {peak:.1} GFLOP/s alone, {} with all {} threads at once \
         (registers only, measured now)",
        level.name(),
        together
            .iter()
            .map(|g| format!("{g:.1}"))
            .collect::<Vec<_>>()
            .join(" + "),
        together.len()
    );
    println!(
        "{:<24} {:>5} {:>10} {:>9} {:>9} {:>12}",
        "product", "count", "µs each", "GFLOP/s", "of peak", "ms per step"
    );

    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let (mut forward_s, mut backward_s) = (0.0, 0.0);
    let (mut forward_macs, mut total_macs) = (0usize, 0usize);
    for product in &products {
        let (lhs, rhs) = product.operands(device);
        let seconds = one_thread.install(|| time_product(lhs, rhs, steps));
        let gflops = 2.0 * product.macs() as f64 / seconds / 1e9;
        let per_step = seconds * product.count as f64;
        let macs = product.macs() * product.count;
        if product.backward {
            backward_s += per_step;
        } else {
            forward_s += per_step;
            forward_macs += macs;
        }
        total_macs += macs;
        println!(
            "{:<24} {:>5} {:>10.1} {:>9.1} {:>8.0}% {:>12.2}",
            product.name,
            product.count,
            1e6 * seconds,
            gflops,
            100.0 * gflops / peak,
            1e3 * per_step
        );
    }
    let products_s = forward_s + backward_s;
    let rate = 2.0 * total_macs as f64 / products_s / 1e9;
    println!(
        "all products: {:.1} ms a shard's step on one core (forward {:.1}, backward {:.1}), \
         {rate:.1} GFLOP/s, {:.0}% of peak",
        1e3 * products_s,
        1e3 * forward_s,
        1e3 * backward_s,
        100.0 * rate / peak
    );

    let timing = measure(device, config, batch, 3, steps)?;
    println!(
        "measured on {shards} threads: train step {:.1} ms, of which the products {:.0}% and \
         everything else {:.1} ms; forward pass {:.1} ms, of which the products {:.0}%",
        1e3 * timing.train_s,
        100.0 * products_s / timing.train_s,
        1e3 * (timing.train_s - products_s),
        1e3 * timing.forward_s,
        100.0 * forward_s / timing.forward_s
    );
    // Each shard does one shard's products on its own core, so the pair's share of its peak
    // is one shard's arithmetic against one core's.
    let share_of_peak =
        |macs: usize, seconds: f64| 100.0 * 2.0 * macs as f64 / seconds / 1e9 / peak;
    println!(
        "the whole step runs at {:.0}% of {shards} cores' peak; forward at {:.0}%",
        share_of_peak(total_macs, timing.train_s),
        share_of_peak(forward_macs, timing.forward_s)
    );
    Ok(())
}

/// Median seconds of one product over `reps` runs, after a few to warm caches and allocator.
fn time_product(lhs: Tensor<4>, rhs: Tensor<4>, reps: usize) -> f64 {
    let reps = reps.max(5);
    for _ in 0..3 {
        let _ = kernels::matmul(lhs.clone(), rhs.clone());
    }
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            let out = kernels::matmul(lhs.clone(), rhs.clone());
            std::hint::black_box(&out);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn filled(dims: [usize; 4], seed: usize, device: &Device) -> Tensor<4> {
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| (((i * 37 + seed * 11) % 101) as f32 - 50.0) * 0.01)
        .collect();
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// The products of one shard's step (`b` rows of the batch), with the operand layouts the
/// model and its backward pass make.
fn step_products(config: &GptConfig, b: usize) -> Vec<Product> {
    use Layout::*;
    let (t, d, layers, h) = (
        config.block_size,
        config.d_model,
        config.n_layers,
        config.n_heads,
    );
    let (rows, hidden, vocab, head_dim) = (b * t, 4 * d, config.vocab_size, d / h);
    let linear = |name, count, backward, (m, k, n), lhs, rhs| Product {
        name,
        count,
        backward,
        batch: [1, 1],
        m,
        k,
        n,
        lhs,
        rhs,
    };
    let per_head = |name, backward, (m, k, n), lhs, rhs| Product {
        name,
        count: layers,
        backward,
        batch: [b, h],
        m,
        k,
        n,
        lhs,
        rhs,
    };
    let mut products = vec![
        linear(
            "x·W_q|k|v",
            3 * layers,
            false,
            (rows, d, d),
            RowMajor,
            ColumnBlock,
        ),
        linear("y·W_proj", layers, false, (rows, d, d), RowMajor, RowMajor),
        linear(
            "x·W_fc",
            layers,
            false,
            (rows, d, hidden),
            RowMajor,
            RowMajor,
        ),
        linear(
            "h·W_down",
            layers,
            false,
            (rows, hidden, d),
            RowMajor,
            RowMajor,
        ),
        linear("x·W_head", 1, false, (rows, d, vocab), RowMajor, RowMajor),
        per_head("q·kᵀ", false, (t, head_dim, t), Heads, HeadsTransposed),
        per_head("p·v", false, (t, t, head_dim), RowMajor, Heads),
    ];
    // Backward: dX = dY·Wᵀ and dW = Xᵀ·dY for every linear layer (`d_in → d_out`).
    for (name_dx, name_dw, count, d_in, d_out) in [
        (
            "dY·Wᵀ (q, k, v, proj)",
            "Xᵀ·dY (q, k, v, proj)",
            4 * layers,
            d,
            d,
        ),
        ("dY·Wᵀ (fc)", "Xᵀ·dY (fc)", layers, d, hidden),
        ("dY·Wᵀ (down)", "Xᵀ·dY (down)", layers, hidden, d),
        ("dY·Wᵀ (head)", "Xᵀ·dY (head)", 1, d, vocab),
    ] {
        products.push(linear(
            name_dx,
            count,
            true,
            (rows, d_out, d_in),
            RowMajor,
            Transposed,
        ));
        products.push(linear(
            name_dw,
            count,
            true,
            (d_in, rows, d_out),
            Transposed,
            RowMajor,
        ));
    }
    // Attention's backward: dq = dS·k, dkᵀ = qᵀ·dS, dp = dO·vᵀ, dv = pᵀ·dO.
    products.extend([
        per_head("dS·k", true, (t, t, head_dim), RowMajor, Heads),
        per_head("qᵀ·dS", true, (head_dim, t, t), HeadsTransposed, RowMajor),
        per_head("dO·vᵀ", true, (t, head_dim, t), RowMajor, HeadsTransposed),
        per_head("pᵀ·dO", true, (t, t, head_dim), Transposed, RowMajor),
    ]);
    products
}
