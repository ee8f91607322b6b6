//! The timing every benchmark shares: a training step and a forward pass of one model on a
//! random batch, and what the machine ran them on.

use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use model::{Gpt, GptConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trainer::{LrSchedule, OptimConfig, OptimizerStep};

/// Which vector units our CPU path runs: the fused kernels' and gemm's (they differ when
/// `GPT_MINI_SIMD` caps ours but the build still has gemm's AVX-512 kernels).
pub fn simd_paths() -> String {
    let cap = std::env::var(kernels::SIMD_VAR).unwrap_or_else(|_| "unset".into());
    format!(
        "fused kernels {} ({}={cap}), gemm {}",
        kernels::SimdLevel::active().name(),
        kernels::SIMD_VAR,
        kernels::gemm_level().name()
    )
}

/// Seconds per training step (forward, backward, global clip, AdamW) and per forward pass,
/// averaged over `steps` after `warmup`, on a random batch of `batch` × `config.block_size`.
pub struct Timing {
    pub train_s: f64,
    pub forward_s: f64,
    /// The first training step alone: on a GPU it pays for kernel compilation and autotune.
    pub first_step_s: f64,
}

pub fn measure(
    device: &Device,
    config: &GptConfig,
    batch: usize,
    warmup: usize,
    steps: usize,
) -> Result<Timing> {
    // At least one warmup step: the first step is timed on its own.
    let warmup = warmup.max(1);
    let mut rng = StdRng::seed_from_u64(0);
    let ad = device.clone().autodiff();
    ad.seed(0);
    let mut model = Gpt::new(config, &ad);
    let optim = OptimConfig {
        lr: 3e-4,
        betas: [0.9, 0.95],
        eps: 1e-8,
        weight_decay: 0.1,
        grad_clip: 1.0,
    };
    let mut step = OptimizerStep::new(&optim, &LrSchedule::Constant, warmup + steps);
    let ad_batch = random_batch(config, batch, &mut rng, &ad);
    let mut first_step_s = 0.0;
    let mut train_start = Instant::now();
    for i in 0..warmup + steps {
        if i == warmup {
            sync(&ad)?;
            train_start = Instant::now();
        }
        let (grads, loss) =
            trainer::parallel::cross_entropy_backward(&model, &ad, ad_batch.clone());
        model = step.apply_grads(model, grads, loss, i)?.0;
        if i == 0 {
            sync(&ad)?;
            first_step_s = train_start.elapsed().as_secs_f64();
        }
    }
    // A GPU queues work: the last step's backward and update are only done once synced.
    sync(&ad)?;
    let train_time = train_start.elapsed().as_secs_f64();

    // Forward only, off the autodiff graph.
    let frozen = model.valid();
    let plain_batch = random_batch(config, batch, &mut rng, device);
    for _ in 0..warmup {
        let _ = trainer::parallel::sharded_forward(&frozen, plain_batch.clone())
            .sum()
            .into_scalar::<f32>();
    }
    // Keep each pass's sum so that a lazy backend must run every pass, and read them once
    // at the end, as a GPU training loop would, instead of stalling the queue each pass.
    let forward_start = Instant::now();
    let sums: Vec<_> = (0..steps)
        .map(|_| trainer::parallel::sharded_forward(&frozen, plain_batch.clone()).sum())
        .collect();
    let _ = Tensor::cat(sums, 0).into_data();
    let forward_time = forward_start.elapsed().as_secs_f64();
    Ok(Timing {
        train_s: train_time / steps as f64,
        forward_s: forward_time / steps as f64,
        first_step_s,
    })
}

fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))
}

fn random_batch(
    config: &GptConfig,
    batch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> Tensor<2, Int> {
    let ids: Vec<i64> = (0..batch * config.block_size)
        .map(|_| rng.random_range(0..config.vocab_size as i64))
        .collect();
    Tensor::from_data(TensorData::new(ids, [batch, config.block_size]), device)
}

pub fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
        std::thread::available_parallelism()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into())
    })
}
