//! The one training loop every stage runs. A stage supplies only its step body (the part
//! that is its lesson); the driver owns everything around it:
//!
//! - the optimizer, and resuming a killed run from its last snapshot;
//! - each step's random stream, derived from (seed, step), so a resumed run draws exactly
//!   what the uninterrupted one would have, whatever each step consumed;
//! - the cadence: a metrics row every `log_every` steps and at the last step; an evaluation
//!   every `eval_every` steps and at the last step (once), added to that row;
//! - the progress bar, and a snapshot at the first row at or after each multiple of
//!   `checkpoint_every` steps and at the end (at a row, so the window the body accumulates is
//!   empty when it is saved); `save_stage` removes the stage's snapshots once it is saved.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use model::Gpt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::resume::Resume;
use crate::{LrSchedule, OptimConfig, OptimizerStep, Progress, StepReport};

/// Measures a model mid-training: `(metric name, value)` pairs for the metrics row.
pub type Evaluator<'a> = dyn FnMut(&Gpt) -> Result<Vec<(String, f64)>> + 'a;

/// A stage's training step and the metrics it logs.
pub trait StepBody {
    /// One step: draw the batch from `step.rng`, compute the loss, update through `step`.
    fn step(&mut self, model: Gpt, step: &mut Step) -> Result<Gpt>;

    /// The metrics of the steps since the last row (TRL's names) and the progress message;
    /// the body's window then starts over. `elapsed` is the window's wall time.
    fn row(&mut self, elapsed: Duration) -> Row;

    /// State that must survive a resume besides weights and optimizer (e.g. a running mean).
    fn state(&self) -> Value {
        Value::Null
    }

    fn restore(&mut self, _state: &Value) -> Result<()> {
        Ok(())
    }
}

/// One row of `metrics.jsonl` (without `step`, which the driver adds) and the progress text.
pub struct Row {
    pub fields: Vec<(String, Value)>,
    pub message: String,
}

impl Row {
    pub fn new(message: String) -> Self {
        Self {
            fields: Vec::new(),
            message,
        }
    }

    pub fn push(&mut self, name: &str, value: impl Into<Value>) {
        self.fields.push((name.to_string(), value.into()));
    }
}

/// What a step body gets: its index, its own random stream and the optimizer.
pub struct Step<'a> {
    pub index: usize,
    pub rng: StdRng,
    optimizer: &'a mut OptimizerStep,
}

impl Step<'_> {
    /// Backward pass of `loss` and one optimizer update (see [`OptimizerStep::apply`]).
    pub fn update(&mut self, model: Gpt, loss: Tensor<1>) -> Result<(Gpt, StepReport)> {
        self.optimizer.apply(model, loss, self.index)
    }

    /// One optimizer update from gradients computed elsewhere (the data-parallel shards).
    pub fn update_with_grads(
        &mut self,
        model: Gpt,
        grads: GradientsParams,
        loss: Tensor<1>,
    ) -> Result<(Gpt, StepReport)> {
        self.optimizer.apply_grads(model, grads, loss, self.index)
    }
}

/// Step `step`'s random stream: a function of (seed, step) alone.
pub fn step_rng(seed: u64, step: usize) -> StdRng {
    StdRng::seed_from_u64(seed.wrapping_add((step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// What a stage config says about its loop. Stage configs name these fields alike
/// (`steps`, `log_every`, `eval_every`, `seed`, `optimizer`, `schedule`), so
/// [`loop_settings!`](crate::loop_settings) implements it for them.
pub trait LoopSettings {
    fn cadence(&self) -> Cadence;
    fn optimizer(&self) -> &OptimConfig;
    fn schedule(&self) -> &LrSchedule;
}

/// Implements [`LoopSettings`] for a config struct with the usual field names.
#[macro_export]
macro_rules! loop_settings {
    ($config:ty) => {
        impl $crate::driver::LoopSettings for $config {
            fn cadence(&self) -> $crate::driver::Cadence {
                $crate::driver::Cadence {
                    steps: self.steps,
                    log_every: self.log_every,
                    eval_every: self.eval_every,
                    seed: self.seed,
                }
            }
            fn optimizer(&self) -> &$crate::OptimConfig {
                &self.optimizer
            }
            fn schedule(&self) -> &$crate::LrSchedule {
                &self.schedule
            }
        }
    };
}

/// The cadence and budget of one loop.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    pub steps: usize,
    pub log_every: usize,
    /// 0 = no evaluation inside the loop.
    pub eval_every: usize,
    pub seed: u64,
}

impl Cadence {
    fn evaluates_at(&self, done: usize) -> bool {
        self.eval_every > 0 && (done.is_multiple_of(self.eval_every) || done == self.steps)
    }

    fn logs_at(&self, done: usize) -> bool {
        done.is_multiple_of(self.log_every) || done == self.steps || self.evaluates_at(done)
    }
}

/// One training loop of a stage: its cadence, optimizer settings, and where it writes.
/// Stages make one with [`StageContext::training_loop`](crate::StageContext::training_loop).
pub struct TrainingLoop<'a> {
    /// Progress-bar label and the prefix of the evaluation lines it prints.
    pub label: String,
    pub cadence: Cadence,
    pub optimizer: &'a OptimConfig,
    pub schedule: &'a LrSchedule,
    pub metrics_path: PathBuf,
    pub resume: Resume,
    pub quiet: bool,
}

impl TrainingLoop<'_> {
    /// Another progress-bar label than the stage's name (a stage's second loop).
    pub fn with_label(mut self, label: &str) -> Self {
        self.label = label.to_string();
        self
    }

    /// Another metrics file in the stage folder than `metrics.jsonl` (a stage's second loop).
    pub fn with_metrics_file(mut self, name: &str) -> Self {
        self.metrics_path = self.metrics_path.with_file_name(name);
        self
    }

    /// Trains `model` (on the autodiff `device`) with `body` and returns it.
    pub fn run(
        &self,
        model: Gpt,
        device: &Device,
        body: &mut dyn StepBody,
        evaluate: &mut Evaluator,
    ) -> Result<Gpt> {
        let cadence = self.cadence;
        let mut optimizer = OptimizerStep::new(self.optimizer, self.schedule, cadence.steps);
        let start = self
            .resume
            .start(model, &mut optimizer, &self.metrics_path, device)?;
        body.restore(&start.body_state)?;
        let (mut model, mut metrics) = (start.model, start.metrics);
        let mut last_snapshot = start.step;
        let progress = Progress::new(&self.label, cadence.steps, self.quiet);
        let mut window_start = Instant::now();

        for index in start.step..cadence.steps {
            let mut step = Step {
                index,
                rng: step_rng(cadence.seed, index),
                optimizer: &mut optimizer,
            };
            model = body.step(model, &mut step)?;

            let done = index + 1;
            if !cadence.logs_at(done) {
                continue;
            }
            let row = body.row(window_start.elapsed());
            let mut fields = vec![("step".to_string(), json!(done))];
            fields.extend(row.fields);
            if cadence.evaluates_at(done) {
                for (name, value) in evaluate(&model.valid())? {
                    progress.println(format!("{} step {done}: {name} {value:.4}", self.label));
                    fields.push((name, json!(value)));
                }
            }
            metrics.log(&fields)?;
            progress.update(done, row.message);
            window_start = Instant::now();
            if self.resume.is_due(last_snapshot, done, cadence.steps) {
                self.resume
                    .save(done, &model, &optimizer, &metrics, body.state())?;
                last_snapshot = done;
            }
        }
        progress.finish();
        // The snapshot stays until the stage has saved its checkpoint (`save_stage`).
        Ok(model)
    }
}

/// The window of a cross-entropy loop (pretraining, SFT): the last update's loss, learning
/// rate and gradient norm, and tokens per second over the window.
#[derive(Default)]
pub struct LossWindow {
    tokens: usize,
    last: Option<StepReport>,
}

impl LossWindow {
    pub fn add(&mut self, report: StepReport, tokens: usize) {
        self.tokens += tokens;
        self.last = Some(report);
    }

    pub fn row(&mut self, elapsed: Duration) -> Row {
        let tokens_per_s = self.tokens as f64 / elapsed.as_secs_f64();
        let last = self.last.take();
        let loss = last.map_or(f32::NAN, |r| r.loss);
        let mut row = Row::new(format!("loss {loss:.4} | {tokens_per_s:.0} tok/s"));
        row.push("loss", json!(last.map(|r| r.loss)));
        row.push("lr", json!(last.map(|r| r.lr)));
        row.push("grad_norm", json!(last.map(|r| r.grad_norm)));
        row.push("tokens_per_s", tokens_per_s);
        self.tokens = 0;
        row
    }
}

#[cfg(test)]
mod tests;
