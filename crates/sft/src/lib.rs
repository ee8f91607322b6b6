//! Lesson 03: supervised fine-tuning on word reversal with a prompt-masked loss, and the
//! lesson's ablation: the same run without the mask, from the same parent, same seed and
//! steps, with both held-out accuracies side by side.

mod config;

use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use data::batch::tokenize_all;
use data::jsonl::load_or_generate;
use data::split::Split;
use data::tasks::reverse;
use eval::{evaluate_exact_match, evaluate_reverse, report_rows, EvalRow};
use model::Gpt;
use trainer::outputs::{config_hash, save_stage};
use trainer::parent::load_parent;
use trainer::supervised::{SupervisedConfig, SupervisedRun};
use trainer::{files, Manifest, StageContext};

pub use config::SftConfig;

/// `mode` of the `eval.json` rows (and label of the metrics file) of the run with the prompt
/// mask, and of the one without.
pub const MASKED: &str = "masked";
pub const UNMASKED: &str = "unmasked";
/// Metrics of the ablation, beside the main run's `metrics.jsonl`: the variant with the mask
/// flipped (`metrics.unmasked.jsonl` with the default `mask_prompt = true`).
pub const MASKED_METRICS: &str = "metrics.masked.jsonl";
pub const UNMASKED_METRICS: &str = "metrics.unmasked.jsonl";
/// Held-out reverse-word accuracy during training, in both metrics files.
pub const EVAL_ACCURACY: &str = "eval/accuracy";

/// What a loop is called in metrics files, snapshots and `eval.json`'s `mode`.
pub fn mask_label(mask_prompt: bool) -> &'static str {
    if mask_prompt {
        MASKED
    } else {
        UNMASKED
    }
}

fn ablation_metrics(mask_prompt: bool) -> &'static str {
    if mask_prompt {
        MASKED_METRICS
    } else {
        UNMASKED_METRICS
    }
}

pub fn run(ctx: &StageContext, config: &SftConfig) -> Result<Manifest> {
    let started = Instant::now();
    std::fs::create_dir_all(&ctx.out_dir)
        .with_context(|| format!("creating {}", ctx.out_dir.display()))?;

    // Data: the user's JSONL, or the reverse-word task on the train split of the word list.
    let words = reverse::read_words(&config.words)?;
    let train = load_or_generate(config.train_file.as_deref(), &ctx.out_dir, || {
        reverse::examples(&words, Split::Train, config.train.seed)
    })?;
    let tokenized = tokenize_all(&train, &ctx.tokenizer, ctx.model.block_size)?;
    let held_out = reverse::held_out_words(&words);

    // The run itself, from the parent's final weights, and the ablation: identical but for the mask.
    let device = ctx.device.clone().autodiff();
    let mut rows = Vec::new();
    let mut final_model = None;
    let variants = std::iter::once(config.train.mask_prompt)
        .chain(config.ablation.then_some(!config.train.mask_prompt));
    for mask_prompt in variants {
        let label = mask_label(mask_prompt);
        let is_main = mask_prompt == config.train.mask_prompt;
        let train_config = SupervisedConfig {
            mask_prompt,
            ..config.train.clone()
        };
        let metrics_file = if is_main {
            files::METRICS
        } else {
            ablation_metrics(mask_prompt)
        };
        let run = SupervisedRun {
            snapshot_name: label,
            label: if is_main { &ctx.stage } else { label },
            examples: &tokenized,
            config: &train_config,
            metrics_file,
            settings_hash: &config_hash(&(config, mask_prompt)),
        };
        let mut held_out_accuracy = |model: &Gpt| {
            let row = evaluate_reverse(model, &ctx.tokenizer, &held_out, label, &ctx.device)?;
            Ok(vec![(EVAL_ACCURACY.to_string(), row.accuracy)])
        };
        let model = run
            .train(
                ctx,
                load_parent(ctx, &device)?,
                &device,
                &mut held_out_accuracy,
            )?
            .valid();
        rows.extend(evaluate(ctx, config, &model, &held_out, label)?);
        if is_main {
            final_model = Some(model);
        }
    }
    let model = final_model.expect("the main run always runs");

    report_rows(&ctx.stage, &ctx.out_dir.join(files::EVAL), &rows)?;
    let settings = config_hash(config);
    save_stage(ctx, &model, config.train.steps, &settings, started)
}

fn evaluate(
    ctx: &StageContext,
    config: &SftConfig,
    model: &Gpt,
    held_out: &[String],
    label: &str,
) -> Result<Vec<EvalRow>> {
    let mut rows = vec![evaluate_reverse(
        model,
        &ctx.tokenizer,
        held_out,
        label,
        &ctx.device,
    )?];
    if let Some(path) = &config.eval_file {
        let examples = data::jsonl::read(path)?;
        rows.push(evaluate_exact_match(
            model,
            &ctx.tokenizer,
            &examples,
            label,
            &ctx.device,
        )?);
    }
    Ok(rows)
}
