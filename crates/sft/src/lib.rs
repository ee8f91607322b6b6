//! Lesson 03: supervised fine-tuning on word reversal with a prompt-masked loss, and the
//! lesson's ablation: the same run without the mask, from the same parent, same seed and
//! steps, with both held-out accuracies side by side.

mod config;

use anyhow::Result;
use data::batch::tokenize_all;
use data::jsonl::load_or_generate;
use data::split::Split;
use data::tasks::reverse;
use eval::{evaluate_exact_match, evaluate_reverse, EvalRow};
use model::Gpt;
use trainer::outputs::config_hash;
use trainer::supervised::{SupervisedConfig, SupervisedRun};
use trainer::{Manifest, StageContext};

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

pub fn run(ctx: &StageContext, config: &SftConfig) -> Result<Manifest> {
    let mut stage = ctx.open()?;

    // Data: the user's JSONL, or the reverse-word task on the train split of the word list.
    let words = reverse::read_words(&config.words)?;
    let train = load_or_generate(config.train_file.as_deref(), &ctx.out_dir, || {
        reverse::examples(&words, Split::Train, config.train.seed)
    })?;
    let tokenized = tokenize_all(&train, &ctx.tokenizer, ctx.model.block_size)?;
    let held_out = reverse::held_out_words(&words);

    // The run itself, from the parent's final weights, and the ablation: identical but for the mask.
    let device = ctx.device.clone().autodiff();
    let mask = config.train.mask_prompt;
    let masks = std::iter::once(mask).chain(config.ablation.then_some(!mask));
    let model = stage.main_and_twins(masks.map(|m| (mask_label(m), m)), |run, mask_prompt| {
        let train_config = SupervisedConfig {
            mask_prompt,
            ..config.train.clone()
        };
        let mut held_out_accuracy = |model: &Gpt| {
            let row = evaluate_reverse(model, &ctx.tokenizer, &held_out, &run.name, &ctx.device)?;
            Ok(vec![(EVAL_ACCURACY.to_string(), row.accuracy)])
        };
        let model = SupervisedRun {
            examples: &tokenized,
            config: &train_config,
            settings_hash: &config_hash(&(config, mask_prompt)),
        }
        .train(ctx, run, &device, &mut held_out_accuracy)?;
        let rows = evaluate(ctx, config, &model, &held_out, &run.name)?;
        Ok((model, rows))
    })?;
    stage.close(&model, config.train.steps, config)
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
