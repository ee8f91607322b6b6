//! Lesson 04: chain-of-thought SFT on K-digit sums. Same loss and loop as SFT (the shared
//! `trainer::supervised` step); a direct-answer twin trained from the same parent with the
//! same budget gives the lesson's table, measured: held-out accuracy per K, direct vs CoT.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use data::batch::tokenize_all;
use data::jsonl::load_or_generate;
use data::split::Split;
use data::tasks::digit_sum::{train_problems, Mode};
use data::tasks::reverse;
use data::tasks::Example;
use eval::{evaluate_reverse, report_rows, DigitSumSuite, SuiteConfig};
use model::Gpt;
use serde::{Deserialize, Serialize};
use trainer::outputs::{config_hash, save_stage};
use trainer::parent::load_parent;
use trainer::supervised::{SupervisedConfig, SupervisedRun};
use trainer::{files, Manifest, StageContext};

/// The direct twin's metrics and training set (the CoT run's go to `metrics.jsonl`).
pub const DIRECT_METRICS: &str = "metrics.direct.jsonl";
pub const DIRECT_TRAIN: &str = "train.direct.jsonl";
/// `eval.json`'s `mode` for the reverse-word skill measured after this stage.
pub const REVERSE_AFTER: &str = "after-cot";

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
    /// Word list: the reverse-word skill's replay examples (train split) and its check
    /// after this stage (held-out split).
    pub words: PathBuf,
    /// Share of the training set that replays SFT's reverse-word task, so this stage keeps
    /// that skill (0 = the lesson's sums only, which erases it).
    #[serde(default)]
    pub replay: f64,
    pub train: SupervisedConfig,
    /// The held-out suite (`[eval]`), copied in by the config loader.
    #[serde(skip_deserializing)]
    pub eval: SuiteConfig,
}

impl CotSftConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.n_train == 0 {
            return Err("cot-sft.n_train must be > 0".into());
        }
        data::tasks::digit_sum::check_ks("cot-sft.ks", &self.ks)?;
        if !(0.0..0.9).contains(&self.replay) {
            return Err(format!(
                "cot-sft.replay must be in [0, 0.9), got {}",
                self.replay
            ));
        }
        self.train.validate("cot-sft.train")
    }

    /// Makes relative paths relative to the config file's folder `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.words = data::relative_to(base, &self.words);
        self.train_file = self.train_file.as_ref().map(|p| data::relative_to(base, p));
    }
}

/// Reverse-word examples from SFT's train split, as many as make `replay` of a set of
/// `n_task` task examples plus them (words repeat when the split is smaller).
pub fn replay_examples(words: &[String], n_task: usize, replay: f64, seed: u64) -> Vec<Example> {
    let pool = reverse::examples(words, Split::Train, seed);
    let n = data::replay::replay_count(n_task, replay);
    if pool.is_empty() {
        return Vec::new();
    }
    pool.iter().cycle().take(n).cloned().collect()
}

pub fn run(ctx: &StageContext, config: &CotSftConfig) -> Result<Manifest> {
    let started = Instant::now();
    std::fs::create_dir_all(&ctx.out_dir)
        .with_context(|| format!("creating {}", ctx.out_dir.display()))?;

    // Data: one problem set, written both ways, each with the same replayed reverse words.
    let words = reverse::read_words(&config.words)?;
    let replayed = replay_examples(&words, config.n_train, config.replay, config.train.seed);
    let problems = train_problems(&config.ks, config.n_train, config.train.seed);
    let cot = load_or_generate(config.train_file.as_deref(), &ctx.out_dir, || {
        problems.iter().map(|p| p.example(Mode::Cot)).collect()
    })?;
    let cot = tokenize_all(
        &[cot, replayed.clone()].concat(),
        &ctx.tokenizer,
        ctx.model.block_size,
    )?;
    let device = ctx.device.clone().autodiff();
    let held_out = reverse::held_out_words(&words);

    // CoT: this stage's checkpoint. Then the direct twin: same parent, same problems, same
    // budget, answers without the trace.
    let mut rows = Vec::new();
    let mut final_model = None;
    let modes = std::iter::once(Mode::Cot).chain(config.direct_twin.then_some(Mode::Direct));
    for mode in modes {
        let direct_examples;
        let (examples, metrics_file, label) = match mode {
            Mode::Cot => (&cot, files::METRICS, ctx.stage.clone()),
            Mode::Direct => {
                let direct: Vec<_> = problems.iter().map(|p| p.example(Mode::Direct)).collect();
                data::jsonl::write(&ctx.out_dir.join(DIRECT_TRAIN), &direct)?;
                direct_examples = tokenize_all(
                    &[direct, replayed.clone()].concat(),
                    &ctx.tokenizer,
                    ctx.model.block_size,
                )?;
                (
                    &direct_examples,
                    DIRECT_METRICS,
                    format!("{}-direct", ctx.stage),
                )
            }
        };
        let run = SupervisedRun {
            snapshot_name: mode.name(),
            label: &label,
            examples,
            config: &config.train,
            metrics_file,
            settings_hash: &config_hash(&(config, mode)),
        };
        let suite = DigitSumSuite::new(mode, &config.eval, &ctx.tokenizer, &ctx.device);
        let mut per_k_accuracy = |model: &Gpt| suite.metrics(model);
        let model = run
            .train(
                ctx,
                load_parent(ctx, &device)?,
                &device,
                &mut per_k_accuracy,
            )?
            .valid();
        rows.extend(suite.rows(&model)?);
        if mode == Mode::Cot {
            rows.push(evaluate_reverse(
                &model,
                &ctx.tokenizer,
                &held_out,
                REVERSE_AFTER,
                &ctx.device,
            )?);
            final_model = Some(model);
        }
    }
    let model = final_model.expect("the CoT run always runs");

    report_rows(&ctx.stage, &ctx.out_dir.join(files::EVAL), &rows)?;
    let settings = config_hash(config);
    save_stage(ctx, &model, config.train.steps, &settings, started)
}
