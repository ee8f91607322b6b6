//! The supervised fine-tuning loop shared by SFT and CoT-SFT: sample a batch of
//! prompt/completion examples, pad, prompt-masked cross-entropy, step.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::{Device, Int, Tensor, TensorData};
use data::batch::{PaddedBatch, TokenizedExample};
use model::Gpt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use trainer::{LrSchedule, MetricsSink, OptimConfig, OptimizerStep, Progress};

/// Settings of one supervised run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisedConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Loss on completion tokens only (the `-100` convention). `false` is the ablation.
    pub mask_prompt: bool,
    pub log_every: usize,
    pub optimizer: OptimConfig,
    #[serde(default)]
    pub schedule: LrSchedule,
}

impl SupervisedConfig {
    pub fn validate(&self, section: &str) -> Result<(), String> {
        for (key, value) in [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("log_every", self.log_every),
        ] {
            if value == 0 {
                return Err(format!("{section}.{key} must be > 0"));
            }
        }
        self.optimizer.validate(&format!("{section}.optimizer"))
    }
}

/// Trains `model` (on an autodiff device) on `examples` and returns it. Metrics rows go to
/// `metrics_path`, one every `log_every` steps.
pub fn train_supervised(
    mut model: Gpt,
    device: &Device,
    examples: &[TokenizedExample],
    pad_id: u32,
    config: &SupervisedConfig,
    label: &str,
    metrics_path: &Path,
    quiet: bool,
) -> Result<Gpt> {
    let mut optimizer = OptimizerStep::new(&config.optimizer, &config.schedule, config.steps);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut metrics = MetricsSink::create(metrics_path)?;
    let progress = Progress::new(label, config.steps, quiet);
    let mut window_start = Instant::now();
    let mut window_tokens = 0usize;

    for step in 0..config.steps {
        let picked: Vec<&TokenizedExample> = (0..config.batch_size)
            .map(|_| &examples[rng.random_range(0..examples.len())])
            .collect();
        let batch = PaddedBatch::new(&picked, pad_id, config.mask_prompt);
        let (tokens, mask) = to_tensors(&batch, device);
        let loss = logprob::masked_cross_entropy(model.forward(tokens.clone()), tokens, mask)?;
        let (updated, report) = optimizer.apply(model, loss, step)?;
        model = updated;
        window_tokens += batch.rows * batch.width;

        let done = step + 1;
        if done % config.log_every == 0 || done == config.steps {
            let tokens_per_s = window_tokens as f64 / window_start.elapsed().as_secs_f64();
            metrics.log(&[
                ("step", json!(done)),
                ("loss", json!(report.loss)),
                ("lr", json!(report.lr)),
                ("grad_norm", json!(report.grad_norm)),
                ("tokens_per_s", json!(tokens_per_s)),
            ])?;
            progress.update(
                done,
                format!("loss {:.4} | {:.0} tok/s", report.loss, tokens_per_s),
            );
            window_start = Instant::now();
            window_tokens = 0;
        }
    }
    progress.finish();
    Ok(model)
}

pub fn to_tensors(batch: &PaddedBatch, device: &Device) -> (Tensor<2, Int>, Tensor<2>) {
    let shape = [batch.rows, batch.width];
    (
        Tensor::from_data(TensorData::new(batch.tokens.clone(), shape), device),
        Tensor::from_data(TensorData::new(batch.mask.clone(), shape), device),
    )
}
