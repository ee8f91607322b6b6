//! Lesson 06: reinforcement learning from verifiable rewards with GRPO. Policy and frozen
//! reference start from the parent (DPO by default); rewards come from the strict digit-sum
//! verifier; groups of rollouts per prompt replace a value network.

pub mod advantage;
pub mod config;
pub mod reward;
pub mod rollout;
pub mod simulator;
pub mod train;

use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use data::tasks::digit_sum::{train_problems, Mode};
use data::tokenizer::PAD;
use eval::{report_rows, DigitSumSuite};
use model::Gpt;
use trainer::outputs::{config_hash, save_stage};
use trainer::parent::load_parent;
use trainer::{files, Manifest, StageContext};

pub use config::RlvrConfig;
use train::GrpoStep;

/// `mode` of the `eval.json` rows that score the parent (the frozen reference) before
/// training, on the same problems as the trained policy's `cot` rows.
pub const PARENT_MODE: &str = "parent";

pub fn run(ctx: &StageContext, config: &RlvrConfig) -> Result<Manifest> {
    let started = Instant::now();
    std::fs::create_dir_all(&ctx.out_dir)
        .with_context(|| format!("creating {}", ctx.out_dir.display()))?;
    let pad = ctx.tokenizer.symbol_id(PAD)?;
    let device = ctx.device.clone().autodiff();
    let problems = train_problems(&config.ks, config.n_prompts, config.seed);

    let suite = DigitSumSuite::new(Mode::Cot, &config.eval, &ctx.tokenizer, &ctx.device);
    let mut per_k_accuracy = |model: &Gpt| suite.metrics(model);

    // The reference on the plain device: no autodiff, so nothing can ever update it.
    let reference = load_parent(ctx, &ctx.device)?;
    let verifier = GrpoStep::verifier(config);
    let mut body = GrpoStep {
        problems: &problems,
        tokenizer: &ctx.tokenizer,
        config,
        reward: &verifier,
        pad_id: pad,
        reference: &reference,
        plain: &ctx.device,
        device: &device,
        reward_ema: None,
        window: Default::default(),
    };
    let model = ctx
        .training_loop("rlvr", &config_hash(config), config)
        .run(
            load_parent(ctx, &device)?,
            &device,
            &mut body,
            &mut per_k_accuracy,
        )?
        .valid();

    let mut rows = suite.rows(&reference)?;
    for row in &mut rows {
        row.mode = PARENT_MODE.into();
    }
    rows.extend(suite.rows(&model)?);
    report_rows(&ctx.stage, &ctx.out_dir.join(files::EVAL), &rows)?;
    save_stage(ctx, &model, config.steps, &config_hash(config), started)
}

#[cfg(test)]
mod tests;
