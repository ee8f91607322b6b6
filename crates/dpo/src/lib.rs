//! Lesson 05: direct preference optimisation. Policy and frozen reference both start from the
//! parent (CoT-SFT by default); the loss compares their log-ratios on chosen and rejected
//! responses. Variants (IPO, hinge, robust, SimPO, ORPO, KTO) share the loop.

pub mod config;
pub mod evaluate;
pub mod logps;
pub mod loss;
pub mod on_policy;
pub mod reference;
pub mod simulator;
pub mod step;
pub mod train;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use data::jsonl;
use data::split::Split;
use data::tasks::digit_sum::{held_out_problems, train_problems, Mode};
use data::tasks::preference::{
    corrupted_pairs, reverse_pairs, unpair, LabeledCompletion, PreferencePair,
};
use data::tasks::reverse;
use data::tokenizer::PAD;
use eval::{report_rows, DigitSumSuite};
use model::Gpt;
use trainer::outputs::{config_hash, save_stage};
use trainer::parent::load_parent;
use trainer::{files, Manifest, StageContext};

pub use config::{DpoConfig, LossConfig, LossType, PairSource};
use evaluate::preference_accuracy;
use logps::{tokenize_labeled, tokenize_pairs, TokenizedPair};
use reference::ReferenceLogps;
use train::{PreferenceStep, Reference};

/// `mode` of the held-out preference row scored with DPO's implicit reward against the parent,
/// written for losses whose own reward has no reference (SimPO, ORPO): the lesson's margin.
pub const HELD_OUT_VS_PARENT: &str = "held_out_vs_parent";

/// The metrics of a compared loss variant (`compare`); the main loss's go to `metrics.jsonl`.
pub fn variant_metrics(loss_type: LossType) -> String {
    format!("metrics.{}.jsonl", loss_type.name())
}

pub fn run(ctx: &StageContext, config: &DpoConfig) -> Result<Manifest> {
    let started = Instant::now();
    std::fs::create_dir_all(&ctx.out_dir)
        .with_context(|| format!("creating {}", ctx.out_dir.display()))?;
    let pad = ctx.tokenizer.symbol_id(PAD)?;
    let device = ctx.device.clone().autodiff();

    let mut loss_types = vec![config.loss.loss_type];
    loss_types.extend(
        config
            .compare
            .iter()
            .filter(|&&t| t != config.loss.loss_type),
    );
    // The frozen parent, on the plain device (no autodiff, so no gradient can reach it): the
    // reference of every loss that has one, and for every loss the yardstick of the lesson's
    // margin (DPO's implicit reward, β·log-ratio against the parent).
    let parent = load_parent(ctx, &ctx.device)?;
    let reference = loss_types
        .iter()
        .any(|t| t.needs_reference())
        .then_some(&parent);

    let pairs = training_pairs(ctx, config, &parent)?;
    let tokenized = tokenize_pairs(&pairs, &ctx.tokenizer, ctx.model.block_size)?;
    let held_out = held_out_pairs(ctx, config)?;
    let train_sample: Vec<TokenizedPair> =
        tokenized.iter().take(config.eval_pairs).cloned().collect();

    // The parent's log-probs of the evaluation pairs, once for every loss variant.
    let reference_logps = |set: &[TokenizedPair]| {
        let set: Vec<&TokenizedPair> = set.iter().collect();
        ReferenceLogps::compute(&parent, &set, pad, &ctx.device)
    };
    let evaluation_sets = [
        ("train", &train_sample, reference_logps(&train_sample)),
        ("held_out", &held_out, reference_logps(&held_out)),
    ];

    let mut rows = Vec::new();
    let mut final_model = None;
    for (i, &loss_type) in loss_types.iter().enumerate() {
        let is_main = i == 0;
        let loss = LossConfig {
            loss_type,
            ..config.loss.clone()
        };
        let suffix = if is_main {
            String::new()
        } else {
            format!(":{}", loss_type.name())
        };
        let (kto_pairs, kto_labels);
        let (train_pairs, labels) = if loss_type == LossType::Kto {
            let rows = match &config.kto_file {
                Some(path) => jsonl::read::<LabeledCompletion>(path)?,
                None => unpair(&pairs, config.seed),
            };
            (kto_pairs, kto_labels) =
                tokenize_labeled(&rows, &ctx.tokenizer, ctx.model.block_size)?;
            check_both_labels(&kto_labels)?;
            (&kto_pairs[..], Some(&kto_labels[..]))
        } else {
            (&tokenized[..], None)
        };
        let metrics_file = if is_main {
            files::METRICS.to_string()
        } else {
            variant_metrics(loss_type)
        };
        let label = if is_main {
            ctx.stage.clone()
        } else {
            format!("{}:{}", ctx.stage, loss_type.name())
        };
        let reference_handle = reference.map(|model| Reference {
            model,
            device: &ctx.device,
        });
        let mut body = PreferenceStep::new(
            train_pairs,
            labels,
            &loss,
            config.batch_size,
            config.precompute_ref_log_probs,
            pad,
            &device,
            reference_handle,
        )?;
        let training = ctx
            .training_loop(loss_type.name(), &config_hash(&(config, loss_type)), config)
            .with_label(&label)
            .with_metrics_file(&metrics_file);
        let suite = DigitSumSuite::new(Mode::Cot, &config.eval, &ctx.tokenizer, &ctx.device);
        let mut per_k_accuracy = |model: &Gpt| suite.metrics(model);
        let policy = load_parent(ctx, &device)?;
        let model = training
            .run(policy, &device, &mut body, &mut per_k_accuracy)?
            .valid();

        for (split, set, reference_logps) in &evaluation_sets {
            rows.push(preference_accuracy(
                &model,
                Some(reference_logps),
                set,
                &loss,
                pad,
                &ctx.device,
                &format!("{split}{suffix}"),
            ));
        }
        if !loss_type.needs_reference() {
            let (_, held_out, reference_logps) = &evaluation_sets[1];
            let lesson_margin = LossConfig {
                loss_type: LossType::Sigmoid,
                ..loss.clone()
            };
            rows.push(preference_accuracy(
                &model,
                Some(reference_logps),
                held_out,
                &lesson_margin,
                pad,
                &ctx.device,
                &format!("{HELD_OUT_VS_PARENT}{suffix}"),
            ));
        }
        for mut row in suite.rows(&model)? {
            row.mode.push_str(&suffix);
            rows.push(row);
        }
        if is_main {
            final_model = Some(model);
        }
    }
    let model = final_model.expect("the main loss always runs");

    report_rows(&ctx.stage, &ctx.out_dir.join(files::EVAL), &rows)?;
    save_stage(ctx, &model, config.steps, &config_hash(config), started)
}

/// The user's pairs, or generated ones with the replayed reverse-word pairs mixed in (saved
/// as `train.jsonl` to inspect or reuse).
fn training_pairs(
    ctx: &StageContext,
    config: &DpoConfig,
    parent: &Gpt,
) -> Result<Vec<PreferencePair>> {
    if let Some(path) = &config.train_file {
        return jsonl::read(path);
    }
    let problems = train_problems(&config.ks, config.n_train, config.seed);
    let pairs = match config.pairs {
        PairSource::Corrupted => corrupted_pairs(&problems, config.seed),
        PairSource::OnPolicy => {
            let found = on_policy::sample_pairs(
                parent,
                &ctx.tokenizer,
                &problems,
                config.on_policy_samples,
                config.seed,
                &ctx.device,
            )?;
            eprintln!(
                "{}: on-policy pairs from {} prompts: {} pairs, {} all correct, {} none correct",
                ctx.stage,
                found.prompts,
                found.pairs.len(),
                found.all_correct,
                found.none_correct
            );
            if found.pairs.is_empty() {
                bail!(
                    "on-policy sampling found no prompt with both a correct and an incorrect \
                     sample ({} all correct, {} none correct); raise dpo.on_policy_samples or \
                     use pairs = \"corrupted\"",
                    found.all_correct,
                    found.none_correct
                );
            }
            found.pairs
        }
    };
    let pairs = with_replay(pairs, config)?;
    jsonl::write(&ctx.out_dir.join("train.jsonl"), &pairs)?;
    Ok(pairs)
}

/// `pairs` plus reverse-word pairs from SFT's train split, `replay` of the whole. Appended:
/// batches are drawn at random, and the train-split preference accuracy (the first
/// `eval_pairs`) stays about the task.
fn with_replay(mut pairs: Vec<PreferencePair>, config: &DpoConfig) -> Result<Vec<PreferencePair>> {
    let Some(path) = config.words.as_ref().filter(|_| config.replay > 0.0) else {
        return Ok(pairs);
    };
    let train_words: Vec<String> = reverse::read_words(path)?
        .into_iter()
        .filter(|w| data::split::split_of(w) == Split::Train)
        .collect();
    let n = data::replay::replay_count(pairs.len(), config.replay);
    pairs.extend(reverse_pairs(&train_words, n, config.seed));
    Ok(pairs)
}

/// Corrupted pairs on held-out problems, spread over the configured K.
fn held_out_pairs(ctx: &StageContext, config: &DpoConfig) -> Result<Vec<TokenizedPair>> {
    let suite = &config.eval;
    let per_k = config.eval_pairs.div_ceil(suite.ks.len());
    let problems: Vec<_> = suite
        .ks
        .iter()
        .flat_map(|&k| held_out_problems(k, per_k, suite.seed))
        .collect();
    debug_assert!(problems.iter().all(|p| p.split() == Split::HeldOut));
    tokenize_pairs(
        &corrupted_pairs(&problems, suite.seed),
        &ctx.tokenizer,
        ctx.model.block_size,
    )
}

fn check_both_labels(labels: &[f32]) -> Result<()> {
    let desirable = labels.iter().filter(|&&l| l > 0.5).count();
    if desirable == 0 || desirable == labels.len() {
        bail!(
            "kto needs both desirable and undesirable examples ({desirable} of {} are desirable)",
            labels.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
