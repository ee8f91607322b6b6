//! The supervised step SFT and CoT-SFT share: sample a batch of prompt/completion examples,
//! pad, prompt-masked cross-entropy (sharded across cores), one update.

use std::time::Duration;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::Device;
use data::batch::{PaddedBatch, TokenizedExample};
use model::Gpt;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::driver::{LossWindow, Row, Step, StepBody};
use crate::frame::Run;
use crate::parent::load_parent;
use crate::{parallel, tensors, Evaluator, LrSchedule, OptimConfig, StageContext};

/// Settings of one supervised run (`[sft.train]`, `[cot-sft.train]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisedConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Loss on completion tokens only (the `-100` convention). `false` is the ablation.
    pub mask_prompt: bool,
    pub log_every: usize,
    /// Held-out evaluation every this many steps and at the last (logged as `eval/*` in
    /// metrics.jsonl); 0 = only after training.
    #[serde(default)]
    pub eval_every: usize,
    pub optimizer: OptimConfig,
    #[serde(default)]
    pub schedule: LrSchedule,
}

crate::loop_settings!(SupervisedConfig);

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

/// The step: `batch_size` examples drawn uniformly with replacement.
pub struct SupervisedStep<'a> {
    pub examples: &'a [TokenizedExample],
    pub pad_id: u32,
    pub batch_size: usize,
    pub mask_prompt: bool,
    pub device: &'a Device,
    pub window: LossWindow,
}

impl StepBody for SupervisedStep<'_> {
    fn step(&mut self, model: Gpt, step: &mut Step) -> Result<Gpt> {
        let picked: Vec<&TokenizedExample> = (0..self.batch_size)
            .map(|_| &self.examples[step.rng.random_range(0..self.examples.len())])
            .collect();
        let batch = PaddedBatch::new(&picked, self.pad_id, self.mask_prompt);
        let (tokens, mask) = tensors::padded_batch(&batch, self.device);
        let (grads, loss) =
            parallel::masked_cross_entropy_backward(&model, self.device, tokens, mask)?;
        let (model, report) = step.update_with_grads(model, grads, loss)?;
        self.window.add(report, batch.rows * batch.width);
        Ok(model)
    }

    fn row(&mut self, elapsed: Duration) -> Row {
        self.window.row(elapsed)
    }
}

/// One supervised run of a stage: what it trains on, with which settings.
pub struct SupervisedRun<'a> {
    pub examples: &'a [TokenizedExample],
    pub config: &'a SupervisedConfig,
    /// Hash of everything that decides this run's result, for its resume snapshots.
    pub settings_hash: &'a str,
}

impl SupervisedRun<'_> {
    /// Trains `run` from the parent's final weights on the autodiff `device`; `evaluate` adds
    /// its numbers to the rows. Returns the trained model off the autodiff graph.
    pub fn train(
        &self,
        ctx: &StageContext,
        run: &Run,
        device: &Device,
        evaluate: &mut Evaluator,
    ) -> Result<Gpt> {
        let mut body = SupervisedStep {
            examples: self.examples,
            pad_id: ctx.tokenizer.symbol_id(data::tokenizer::PAD)?,
            batch_size: self.config.batch_size,
            mask_prompt: self.config.mask_prompt,
            device,
            window: LossWindow::default(),
        };
        let parent = load_parent(ctx, device)?;
        let training = run.training_loop(ctx, self.settings_hash, self.config);
        Ok(training.run(parent, device, &mut body, evaluate)?.valid())
    }
}
