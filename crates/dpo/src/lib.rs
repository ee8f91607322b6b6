//! Lesson 05: direct preference optimisation. Policy and frozen reference both start from the
//! parent (CoT-SFT by default); the loss compares their log-ratios on chosen and rejected
//! responses. Variants (IPO, hinge, robust, SimPO, ORPO, KTO) share the loop.

pub mod backward;
pub mod config;
pub mod displacement;
pub mod evaluate;
pub mod kto;
pub mod logps;
pub mod loss;
mod metrics;
pub mod on_policy;
pub mod pairs;
pub mod reference;
pub mod simulator;
pub mod step;

use anyhow::Result;
use burn::module::Module;
use data::tasks::digit_sum::Mode;
use data::tokenizer::PAD;
use eval::DigitSumSuite;
use model::Gpt;
use trainer::outputs::config_hash;
use trainer::parent::load_parent;
use trainer::{Manifest, Reference, StageContext};

pub use config::{DpoConfig, LossConfig, LossType, PairSource};
use evaluate::PreferenceSets;
use logps::tokenize_pairs;
use pairs::{held_out_pairs, training_pairs};
use step::{Examples, PreferenceStep, StepConfig};

/// `mode` of the held-out preference row scored with DPO's implicit reward against the parent,
/// written for losses whose own reward has no reference (SimPO, ORPO): the lesson's margin.
pub const HELD_OUT_VS_PARENT: &str = "held_out_vs_parent";

pub fn run(ctx: &StageContext, config: &DpoConfig) -> Result<Manifest> {
    let mut stage = ctx.open()?;
    let pad_id = ctx.tokenizer.symbol_id(PAD)?;
    let device = ctx.device.clone().autodiff();

    // The frozen parent, on the plain device (no autodiff, so no gradient can reach it): the
    // reference of every loss that has one, and for every loss the yardstick of the lesson's
    // margin (DPO's implicit reward, β·log-ratio against the parent).
    let frozen = load_parent(ctx, &ctx.device)?;
    let parent = Reference {
        model: &frozen,
        device: &ctx.device,
    };
    let (pairs, sampling_rows) = training_pairs(ctx, config, &frozen)?;
    let tokenized = tokenize_pairs(&pairs, &ctx.tokenizer, ctx.model.block_size)?;
    let train_sample = tokenized.iter().take(config.eval_pairs).cloned().collect();
    let sets = PreferenceSets::new(parent, train_sample, held_out_pairs(ctx, config)?, pad_id);

    // The main loss, then each compared one, from the same parent.
    let main = config.loss.loss_type;
    let compared = config.compare.iter().filter(|&&t| t != main);
    let losses = std::iter::once(main).chain(compared.copied());
    let model = stage.main_and_twins(losses.map(|t| (t.name(), t)), |run, loss_type| {
        let loss = LossConfig {
            loss_type,
            ..config.loss.clone()
        };
        let (kto_rows, kto_labels);
        let examples = if loss_type == LossType::Kto {
            (kto_rows, kto_labels) = kto::labelled_examples(ctx, config, &pairs)?;
            Examples::Labelled {
                rows: &kto_rows,
                labels: &kto_labels,
            }
        } else {
            Examples::Pairs(&tokenized)
        };
        let step_config = StepConfig {
            loss: &loss,
            batch_size: config.batch_size,
            precompute_ref_log_probs: config.precompute_ref_log_probs,
            pad_id,
        };
        let mut body = PreferenceStep::new(examples, step_config, Some(parent), &device)?;
        let suite = DigitSumSuite::new(Mode::Cot, &config.eval, &ctx.tokenizer, &ctx.device);
        let mut per_k_accuracy = |model: &Gpt| suite.metrics(model);
        let training = run.training_loop(ctx, &config_hash(&(config, loss_type)), config);
        let policy = load_parent(ctx, &device)?;
        let model = training
            .run(policy, &device, &mut body, &mut per_k_accuracy)?
            .valid();

        let suffix = if run.is_main {
            String::new()
        } else {
            format!(":{}", run.name)
        };
        let mut rows = sets.rows(&model, &loss, &suffix);
        if run.is_main {
            rows.extend(sampling_rows.iter().cloned());
        }
        for mut row in suite.rows(&model)? {
            row.mode.push_str(&suffix);
            rows.push(row);
        }
        Ok((model, rows))
    })?;
    stage.close(&model, config.steps, config)
}

#[cfg(test)]
mod tests;
