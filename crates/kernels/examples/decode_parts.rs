//! Profiling aid: each decode kernel hot in cache, against the FMA peak.
use std::time::Instant;

use kernels::decode::{attend_cached, rows_times_matrix, CachedRow, PackedMatrix};

fn values(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 2654435761) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn main() {
    let peak = kernels::peak::fma_peak_gflops(kernels::SimdLevel::active());
    for rows in [16, 32] {
        for (k, n) in [(128, 384), (128, 128), (128, 512), (512, 128), (128, 80)] {
            let (x, w) = (values(rows * k), PackedMatrix::pack(&values(k * n), n));
            let mut out = vec![0.0; rows * n];
            let reps = 20000;
            let start = Instant::now();
            for _ in 0..reps {
                rows_times_matrix(&x, &w, &[], &mut out, false);
            }
            let s = start.elapsed().as_secs_f64();
            let gflops = 2.0 * (rows * k * n * reps) as f64 / s / 1e9;
            println!(
                "rows {rows} k {k} n {n}: {gflops:.0} GFLOP/s = {:.0}% of {peak:.0}",
                100.0 * gflops / peak
            );
        }
    }
    let (heads, head_dim, capacity) = (4, 32, 64);
    let q = values(heads * head_dim);
    let keys = values(heads * head_dim * capacity);
    let vals = values(heads * head_dim * capacity);
    let mut scores = vec![0.0; heads * capacity];
    let mut out = vec![0.0; heads * head_dim];
    for len in [13, 38, 64] {
        let reps = 200000;
        let start = Instant::now();
        for _ in 0..reps {
            let cache = CachedRow {
                keys: &keys,
                values: &vals,
                head_dim,
                capacity,
                len,
            };
            attend_cached(&q, cache, 0.17, &mut scores, &mut out);
        }
        let s = start.elapsed().as_secs_f64();
        let flops = 4.0 * (heads * head_dim * len) as f64;
        println!(
            "attention len {len}: {:.0} ns per row-layer, {:.0} GFLOP/s",
            s / reps as f64 * 1e9,
            flops * reps as f64 / s / 1e9
        );
    }
    // 64 row-layer caches (16 rows x 4 layers), cycled: out of L2.
    let caches = 64;
    let keys = values(caches * heads * head_dim * capacity);
    let vals = values(caches * heads * head_dim * capacity);
    let per = heads * head_dim * capacity;
    for len in [13, 38, 64] {
        let reps = 200000;
        let start = Instant::now();
        for i in 0..reps {
            let c = i % caches;
            let cache = CachedRow {
                keys: &keys[c * per..][..per],
                values: &vals[c * per..][..per],
                head_dim,
                capacity,
                len,
            };
            attend_cached(&q, cache, 0.17, &mut scores, &mut out);
        }
        let s = start.elapsed().as_secs_f64();
        println!(
            "cycled attention len {len}: {:.0} ns per row-layer",
            s / reps as f64 * 1e9
        );
    }
}
