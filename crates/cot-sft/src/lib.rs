//! Lesson 04: chain-of-thought SFT on K-digit sums. Same loss and loop as SFT (reused, not
//! copied); a direct-answer twin trained from the same parent with the same budget gives the
//! lesson's table, measured: held-out accuracy per K, direct vs CoT.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use data::tasks::digit_sum::{train_problems, Mode};
use data::tasks::reverse;
use data::tokenizer::PAD;
use eval::{evaluate_reverse, report_rows, DigitSumSuite};
use model::Gpt;
use serde::{Deserialize, Serialize};
use sft::examples::{load_or_generate, tokenize_all};
use sft::supervised::{SupervisedConfig, SupervisedRun};
use trainer::outputs::{config_hash, save_stage};
use trainer::parent::load_parent;
use trainer::{files, Manifest, StageContext};

/// The direct twin's training set and metrics, beside the CoT run's `train.jsonl` and
/// `metrics.jsonl`.
pub const DIRECT_TRAIN: &str = "train.direct.jsonl";
pub const DIRECT_METRICS: &str = "metrics.direct.jsonl";

/// `[cot-sft]` in `pipeline.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CotSftConfig {
    /// Training problems (lesson: 3000), K drawn uniformly from `ks`.
    pub n_train: usize,
    pub ks: Vec<usize>,
    /// Your own `{"prompt","completion"}` JSONL of CoT examples instead of the generated set.
    #[serde(default)]
    pub train_file: Option<PathBuf>,
    /// Train the direct-answer twin (same parent, problems, steps) for the per-K table.
    pub direct_twin: bool,
    /// Held-out problems per K in the evaluation.
    pub eval_per_k: usize,
    pub eval_seed: u64,
    /// Word list, to measure what this stage did to the reverse-word skill.
    pub words: PathBuf,
    pub train: SupervisedConfig,
}

impl CotSftConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.n_train == 0 {
            return Err("cot-sft.n_train must be > 0".into());
        }
        if self.ks.is_empty() || self.ks.iter().any(|&k| !(2..=9).contains(&k)) {
            return Err(format!(
                "cot-sft.ks must be digit counts in 2..=9, got {:?}",
                self.ks
            ));
        }
        if self.eval_per_k == 0 {
            return Err("cot-sft.eval_per_k must be > 0".into());
        }
        self.train.validate("cot-sft.train")
    }
}

pub fn run(ctx: &StageContext, config: &CotSftConfig) -> Result<Manifest> {
    let started = Instant::now();
    std::fs::create_dir_all(&ctx.out_dir)
        .with_context(|| format!("creating {}", ctx.out_dir.display()))?;

    // Data: one problem set, written both ways.
    let problems = train_problems(&config.ks, config.n_train, config.train.seed);
    let cot = load_or_generate(config.train_file.as_deref(), &ctx.out_dir, || {
        problems.iter().map(|p| p.example(Mode::Cot)).collect()
    })?;
    let cot = tokenize_all(&cot, &ctx.tokenizer, ctx.model.block_size)?;
    let pad = ctx.tokenizer.symbol_id(PAD)?;
    let device = ctx.device.clone().autodiff();
    #[allow(unused_assignments)]
    let mut direct_examples = Vec::new();

    let held_out = reverse::held_out_words(&reverse::read_words(&config.words)?);

    // CoT: this stage's checkpoint. Then the direct twin: same parent, same problems, same
    // budget, answers without the trace.
    let mut rows = Vec::new();
    let mut final_model = None;
    let modes = std::iter::once(Mode::Cot).chain(config.direct_twin.then_some(Mode::Direct));
    for mode in modes {
        let (examples, metrics_path, label) = match mode {
            Mode::Cot => (&cot, ctx.out_dir.join(files::METRICS), ctx.stage.clone()),
            Mode::Direct => {
                let direct: Vec<_> = problems.iter().map(|p| p.example(Mode::Direct)).collect();
                data::jsonl::write(&ctx.out_dir.join(DIRECT_TRAIN), &direct)?;
                direct_examples = tokenize_all(&direct, &ctx.tokenizer, ctx.model.block_size)?;
                (
                    &direct_examples,
                    ctx.out_dir.join(DIRECT_METRICS),
                    "cot-sft-direct".to_string(),
                )
            }
        };
        let run = SupervisedRun {
            examples,
            pad_id: pad,
            config: &config.train,
            label: &label,
            metrics_path: &metrics_path,
            quiet: ctx.quiet,
            resume: ctx.resume(mode.name(), &config_hash(&(config, mode))),
        };
        let suite = DigitSumSuite {
            mode,
            ks: &config.ks,
            per_k: config.eval_per_k,
            seed: config.eval_seed,
            tokenizer: &ctx.tokenizer,
            device: &ctx.device,
        };
        let mut per_k_accuracy = |model: &Gpt| suite.metrics(model);
        let model = run
            .train(load_parent(ctx, &device)?, &device, &mut per_k_accuracy)?
            .valid();
        rows.extend(suite.rows(&model)?);
        if mode == Mode::Cot {
            rows.push(evaluate_reverse(
                &model,
                &ctx.tokenizer,
                &held_out,
                "after-cot",
                &ctx.device,
            )?);
            final_model = Some(model);
        }
    }
    let model = final_model.expect("the CoT run always runs");

    report_rows(&ctx.stage, &ctx.out_dir.join(files::EVAL), &rows)?;
    save_stage(
        ctx,
        &model,
        config.train.steps,
        &config_hash(config),
        started,
    )
}
