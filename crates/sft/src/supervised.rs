//! The supervised fine-tuning loop shared by SFT and CoT-SFT: sample a batch of
//! prompt/completion examples, pad, prompt-masked cross-entropy, step.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use data::batch::{PaddedBatch, TokenizedExample};
use model::Gpt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use trainer::resume::Resume;
use trainer::{parallel, LrSchedule, OptimConfig, OptimizerStep, Progress};

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
    /// Held-out evaluation every this many steps (logged as `eval/*` in metrics.jsonl);
    /// 0 = only after training.
    #[serde(default)]
    pub eval_every: usize,
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

/// Measures a model mid-training: `(metric name, value)` pairs for the metrics row.
pub type Evaluator<'a> = dyn FnMut(&Gpt) -> Result<Vec<(String, f64)>> + 'a;

/// One supervised run: what to train on and where its metrics go.
pub struct SupervisedRun<'a> {
    pub examples: &'a [TokenizedExample],
    pub pad_id: u32,
    pub config: &'a SupervisedConfig,
    /// Progress-bar label.
    pub label: &'a str,
    pub metrics_path: &'a Path,
    pub quiet: bool,
    /// Snapshots for resuming this loop after a kill.
    pub resume: Resume,
}

impl SupervisedRun<'_> {
    /// Trains `model` (on the autodiff `device`) and returns it. A metrics row every
    /// `log_every` steps; every `eval_every` steps `evaluate` adds its numbers to the row.
    pub fn train(&self, model: Gpt, device: &Device, evaluate: &mut Evaluator) -> Result<Gpt> {
        let config = self.config;
        let mut optimizer = OptimizerStep::new(&config.optimizer, &config.schedule, config.steps);
        let mut rng = StdRng::seed_from_u64(config.seed);
        let start = self
            .resume
            .start(model, &mut optimizer, self.metrics_path, device)?;
        let (mut model, mut metrics) = (start.model, start.metrics);
        // Replay the batch sampler's draws up to the resumed step.
        for _ in 0..start.step * config.batch_size {
            let _ = rng.random_range(0..self.examples.len());
        }
        let progress = Progress::new(self.label, config.steps, self.quiet);
        let mut window_start = Instant::now();
        let mut window_tokens = 0usize;

        for step in start.step..config.steps {
            let picked: Vec<&TokenizedExample> = (0..config.batch_size)
                .map(|_| &self.examples[rng.random_range(0..self.examples.len())])
                .collect();
            let batch = PaddedBatch::new(&picked, self.pad_id, config.mask_prompt);
            let (tokens, mask) = to_tensors(&batch, device);
            let (grads, loss) =
                parallel::masked_cross_entropy_backward(&model, device, tokens, mask)?;
            let (updated, report) = optimizer.apply_grads(model, grads, loss, step)?;
            model = updated;
            window_tokens += batch.rows * batch.width;

            let done = step + 1;
            let evaluate_now = config.eval_every > 0 && done % config.eval_every == 0;
            if done % config.log_every == 0 || done == config.steps || evaluate_now {
                let tokens_per_s = window_tokens as f64 / window_start.elapsed().as_secs_f64();
                let mut row = vec![
                    ("step".to_string(), json!(done)),
                    ("loss".to_string(), json!(report.loss)),
                    ("lr".to_string(), json!(report.lr)),
                    ("grad_norm".to_string(), json!(report.grad_norm)),
                    ("tokens_per_s".to_string(), json!(tokens_per_s)),
                ];
                if evaluate_now {
                    for (name, value) in evaluate(&model.valid())? {
                        progress.println(format!("{} step {done}: {name} {value:.3}", self.label));
                        row.push((name, json!(value)));
                    }
                }
                metrics.log(&row)?;
                progress.update(
                    done,
                    format!("loss {:.4} | {:.0} tok/s", report.loss, tokens_per_s),
                );
                window_start = Instant::now();
                window_tokens = 0;
            }
            self.resume
                .save_if_due(done, config.steps, &model, &optimizer, &metrics)?;
        }
        progress.finish();
        self.resume.finish();
        Ok(model)
    }
}

pub fn to_tensors(batch: &PaddedBatch, device: &Device) -> (Tensor<2, Int>, Tensor<2>) {
    let shape = [batch.rows, batch.width];
    (
        Tensor::from_data(TensorData::new(batch.tokens.clone(), shape), device),
        Tensor::from_data(TensorData::new(batch.mask.clone(), shape), device),
    )
}
