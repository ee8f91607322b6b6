//! Lesson 04: chain-of-thought SFT on K-digit sums. Same loss and loop as SFT (the shared
//! `trainer::supervised` step); a direct-answer twin trained from the same parent with the
//! same budget gives the lesson's table, measured: held-out accuracy per K, direct vs CoT.

use std::path::Path;

use anyhow::Result;
use data::batch::{tokenize_all, TokenizedExample};
use data::jsonl::load_or_generate;
use data::split::Split;
use data::tasks::digit_sum::{train_problems, DigitSum, Mode};
use data::tasks::reverse;
use data::tasks::Example;
use data::DataPath;
use eval::{evaluate_reverse, DigitSumSuite, SuiteConfig};
use model::Gpt;
use serde::{Deserialize, Serialize};
use trainer::outputs::config_hash;
use trainer::supervised::{SupervisedConfig, SupervisedRun};
use trainer::{Manifest, StageContext};

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
    pub train_file: Option<DataPath>,
    /// Train the direct-answer twin (same parent, problems, steps) for the per-K table.
    pub direct_twin: bool,
    /// Word list: the reverse-word skill's replay examples (train split) and its check
    /// after this stage (held-out split).
    pub words: DataPath,
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
        self.words.resolve(base);
        if let Some(path) = &mut self.train_file {
            path.resolve(base);
        }
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

/// The problems written in `mode`, tokenized, with the replayed reverse words. The CoT set is
/// the user's `train_file` when given; the direct one is saved as `train.direct.jsonl`.
fn training_set(
    ctx: &StageContext,
    config: &CotSftConfig,
    problems: &[DigitSum],
    replayed: &[Example],
    mode: Mode,
) -> Result<Vec<TokenizedExample>> {
    let examples = match mode {
        Mode::Cot => load_or_generate(config.train_file.as_deref(), &ctx.out_dir, || {
            problems.iter().map(|p| p.example(Mode::Cot)).collect()
        })?,
        Mode::Direct => {
            let direct: Vec<_> = problems.iter().map(|p| p.example(Mode::Direct)).collect();
            data::jsonl::write(&ctx.out_dir.join(DIRECT_TRAIN), &direct)?;
            direct
        }
    };
    let with_replay = [examples, replayed.to_vec()].concat();
    tokenize_all(&with_replay, &ctx.tokenizer, ctx.model.block_size)
}

pub fn run(ctx: &StageContext, config: &CotSftConfig) -> Result<Manifest> {
    let mut stage = ctx.open()?;

    // Data: one problem set, written both ways, each with the same replayed reverse words.
    let words = reverse::read_words(&config.words)?;
    let replayed = replay_examples(&words, config.n_train, config.replay, config.train.seed);
    let problems = train_problems(&config.ks, config.n_train, config.train.seed);
    let device = ctx.device.clone().autodiff();
    let held_out = reverse::held_out_words(&words);

    // CoT: this stage's checkpoint. Then the direct twin: same parent, same problems, same
    // budget, answers without the trace.
    let modes = std::iter::once(Mode::Cot).chain(config.direct_twin.then_some(Mode::Direct));
    let model = stage.main_and_twins(modes.map(|m| (m.name(), m)), |run, mode| {
        let examples = training_set(ctx, config, &problems, &replayed, mode)?;
        let suite = DigitSumSuite::new(mode, &config.eval, &ctx.tokenizer, &ctx.device);
        let supervised = SupervisedRun {
            examples: &examples,
            config: &config.train,
            settings_hash: &config_hash(&(config, mode)),
        };
        let model = supervised.train(ctx, run, &device, &mut |model: &Gpt| suite.metrics(model))?;
        let mut rows = suite.rows(&model)?;
        if mode == Mode::Cot {
            rows.push(evaluate_reverse(
                &model,
                &ctx.tokenizer,
                &held_out,
                REVERSE_AFTER,
                &ctx.device,
            )?);
        }
        Ok((model, rows))
    })?;
    stage.close(&model, config.train.steps, config)
}
