//! Lesson 06: reinforcement learning from verifiable rewards with GRPO. Policy and frozen
//! reference start from the parent (DPO by default); rewards come from the strict digit-sum
//! verifier; groups of rollouts per prompt replace a value network.

pub mod advantage;
pub mod config;
pub mod curriculum;
pub mod groups;
pub mod hints;
pub mod loss;
mod metrics;
pub mod reward;
pub mod rollout;
pub mod simulator;
pub mod step;

use anyhow::Result;
use burn::module::Module;
use data::tasks::digit_sum::Mode;
use eval::DigitSumSuite;
use model::Gpt;
use trainer::outputs::config_hash;
use trainer::parent::load_parent;
use trainer::{Manifest, Reference, StageContext};

pub use config::RlvrConfig;
use curriculum::Pool;
use step::{GrpoStep, Task};

/// `mode` of the `eval.json` rows that score the parent (the frozen reference) before
/// training, on the same problems as the trained policy's `cot` rows.
pub const PARENT_MODE: &str = "parent";

pub fn run(ctx: &StageContext, config: &RlvrConfig) -> Result<Manifest> {
    let mut stage = ctx.open()?;
    let device = ctx.device.clone().autodiff();

    let suite = DigitSumSuite::new(Mode::Cot, &config.eval, &ctx.tokenizer, &ctx.device);
    let mut per_k_accuracy = |model: &Gpt| suite.metrics(model);

    // The reference on the plain device: no autodiff, so nothing can ever update it.
    let reference = load_parent(ctx, &ctx.device)?;
    let verifier = GrpoStep::verifier(config);
    let task = Task {
        pool: Pool::new(&config.ks, config.n_prompts, config.seed),
        tokenizer: &ctx.tokenizer,
        reward: &verifier,
    };
    let frozen = Reference {
        model: &reference,
        device: &ctx.device,
    };
    let mut body = GrpoStep::new(task, config, frozen, &device)?;
    let policy = load_parent(ctx, &device)?;
    let model = ctx
        .training_loop("rlvr", &config_hash(config), config)
        .run(policy, &device, &mut body, &mut per_k_accuracy)?
        .valid();

    // The parent first, then the trained policy, on the same problems.
    let parent_rows = suite.rows(&reference)?.into_iter().map(|mut row| {
        row.mode = PARENT_MODE.into();
        row
    });
    stage.record(parent_rows);
    stage.record(suite.rows(&model)?);
    stage.close(&model, config.steps, config)
}

#[cfg(test)]
mod tests;
