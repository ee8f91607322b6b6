//! The frame every stage runs its lesson in, written once. [`StageContext::open`] starts the
//! stage's clock and makes its folder; [`OpenStage::main_and_twins`] trains the stage's run and
//! the twins trained beside it for the lesson's comparison; [`OpenStage::close`] writes
//! `eval.json`, the checkpoint, the tokenizer and the manifest.

use anyhow::{Context, Result};
use eval::{report_rows, EvalRow};
use model::Gpt;
use serde::Serialize;

use crate::driver::{LoopSettings, TrainingLoop};
use crate::outputs::{config_hash, save_stage, StageClock};
use crate::{files, Manifest, StageContext};

/// A stage between opening and closing: its context, its clock and its `eval.json` rows.
pub struct OpenStage<'a> {
    pub ctx: &'a StageContext,
    clock: StageClock,
    rows: Vec<EvalRow>,
}

/// One training run of a stage: the main one, whose model becomes the stage's checkpoint and
/// whose metrics go to `metrics.jsonl`, or a twin trained beside it from the same parent for
/// the lesson's comparison, with its metrics in `metrics.{name}.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// What tells it apart (`masked`, `direct`, a loss type): its snapshots' and metrics' name.
    pub name: String,
    pub is_main: bool,
}

impl Run {
    /// Its metrics file in the stage folder.
    pub fn metrics_file(&self) -> String {
        if self.is_main {
            files::METRICS.to_string()
        } else {
            format!("metrics.{}.jsonl", self.name)
        }
    }

    /// Its training loop: snapshots under its name, its metrics file, and the progress label
    /// `stage` for the main run or `stage:name` for a twin.
    pub fn training_loop<'a>(
        &self,
        ctx: &StageContext,
        settings_hash: &str,
        settings: &'a impl LoopSettings,
    ) -> TrainingLoop<'a> {
        let label = if self.is_main {
            ctx.stage.clone()
        } else {
            format!("{}:{}", ctx.stage, self.name)
        };
        ctx.training_loop(&self.name, settings_hash, settings)
            .with_label(&label)
            .with_metrics_file(&self.metrics_file())
    }
}

impl StageContext {
    /// Opens this stage: starts its clock and makes its folder.
    pub fn open(&self) -> Result<OpenStage<'_>> {
        let clock = StageClock::start();
        std::fs::create_dir_all(&self.out_dir)
            .with_context(|| format!("creating {}", self.out_dir.display()))?;
        Ok(OpenStage {
            ctx: self,
            clock,
            rows: Vec::new(),
        })
    }
}

impl OpenStage<'_> {
    /// Adds measurements to the stage's `eval.json`.
    pub fn record(&mut self, rows: impl IntoIterator<Item = EvalRow>) {
        self.rows.extend(rows);
    }

    /// Trains each of `runs` (`(name, variant)`, the main run first, then its twins) with
    /// `train`, which returns the trained model and its measurements, in order; returns the
    /// main run's model.
    pub fn main_and_twins<'n, V>(
        &mut self,
        runs: impl IntoIterator<Item = (&'n str, V)>,
        mut train: impl FnMut(&Run, V) -> Result<(Gpt, Vec<EvalRow>)>,
    ) -> Result<Gpt> {
        let mut main = None;
        for (index, (name, variant)) in runs.into_iter().enumerate() {
            let run = Run {
                name: name.to_string(),
                is_main: index == 0,
            };
            let (model, rows) = train(&run, variant)?;
            self.record(rows);
            if run.is_main {
                main = Some(model);
            }
        }
        main.context("a stage trains at least its main run")
    }

    /// Closes the stage: prints and writes its `eval.json` (when it measured anything), then
    /// saves `model` after `steps` steps under `config`'s hash, with the stage's wall time.
    pub fn close(self, model: &Gpt, steps: usize, config: &impl Serialize) -> Result<Manifest> {
        let ctx = self.ctx;
        if !self.rows.is_empty() {
            report_rows(&ctx.stage, &ctx.out_dir.join(files::EVAL), &self.rows)?;
        }
        save_stage(ctx, model, steps, &config_hash(config), self.clock)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use data::tokenizer::{TokenizerConfig, TASK_ALPHABET};
    use data::TextTokenizer;
    use eval::EvalRow;
    use model::{checkpoint, Gpt};

    use super::Run;
    use crate::{files, StageContext};

    #[test]
    fn a_stage_keeps_its_main_run_and_records_every_runs_rows_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let tokenizer =
            TextTokenizer::train(&TokenizerConfig::default(), &[TASK_ALPHABET]).unwrap();
        let shape = test_support::tiny(tokenizer.vocab_size());
        let ctx = StageContext {
            stage: "sft".into(),
            out_dir: dir.path().join("run/sft"),
            device: Device::flex(),
            device_name: "flex".into(),
            tokenizer,
            model: shape.clone(),
            parent_dir: None,
            quiet: true,
            checkpoint_every: 0,
            interrupt_after: None,
        };
        let mut stage = ctx.open().unwrap();
        assert!(ctx.out_dir.is_dir(), "open makes the stage folder");
        let mut seen = Vec::new();
        let mut models = Vec::new();
        let runs = [("masked", 1), ("unmasked", 2)];
        let main = stage
            .main_and_twins(runs, |run, value| {
                seen.push((run.clone(), run.metrics_file(), value));
                let model = Gpt::new(&shape, &ctx.device);
                models.push(model.clone());
                Ok((model, vec![EvalRow::preference(&run.name, 1, value, 0.0)]))
            })
            .unwrap();
        let run = |name: &str, is_main| Run {
            name: name.into(),
            is_main,
        };
        assert_eq!(
            seen,
            [
                (run("masked", true), files::METRICS.to_string(), 1),
                (
                    run("unmasked", false),
                    "metrics.unmasked.jsonl".to_string(),
                    2
                ),
            ]
        );
        stage.close(&main, 7, &"settings").unwrap();

        let weights = |model: &Gpt| {
            let path = dir.path().join("weights.safetensors");
            checkpoint::save(model, &shape, &path).unwrap();
            crate::outputs::checkpoint_hash(&path).unwrap()
        };
        let manifest = crate::Manifest::load(&ctx.out_dir.join(files::MANIFEST)).unwrap();
        assert_eq!(manifest.step, 7);
        assert_eq!(manifest.checkpoint_hash, weights(&models[0]));
        assert_ne!(manifest.checkpoint_hash, weights(&models[1]));
        let rows = eval::read_eval(&ctx.out_dir.join(files::EVAL)).unwrap();
        let modes: Vec<&str> = rows.iter().map(|r| r.mode.as_str()).collect();
        assert_eq!(modes, ["masked", "unmasked"]);
    }
}
