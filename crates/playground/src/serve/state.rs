//! What every request reads: the run's loaded stages and its held-out problems, loaded once at
//! start and shared read-only.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use chain::skills::SkillSuite;
use chain::Stage;
use data::tasks::{digit_sum, reverse};
use trainer::files;

use crate::inference::LoadedStage;

/// What every request reads: the run's loaded stages and its held-out problems.
pub struct Playground {
    pub(super) run_dir: PathBuf,
    /// The stages of the chain whose checkpoint exists, in chain order.
    pub(super) stages: Vec<(Stage, LoadedStage)>,
    /// Those without one: asking for them is a 404 naming the missing file.
    pub(super) missing: Vec<Stage>,
    pub(super) problems: serde_json::Value,
    pub(super) device: Device,
}

impl Playground {
    /// Loads every stage checkpoint of `run_dir` (RUNS_DIR/NAME) on `device`.
    pub fn load(run_dir: PathBuf, device: Device, held_out: &SkillSuite) -> Result<Self> {
        if !run_dir.is_dir() {
            bail!("run folder {} does not exist", run_dir.display());
        }
        let mut stages = Vec::new();
        let mut missing = Vec::new();
        for stage in Stage::ALL {
            let dir = stage.dir(&run_dir);
            if dir.join(files::CHECKPOINT).is_file() {
                let loaded = LoadedStage::load(&dir, &device)
                    .with_context(|| format!("loading stage {stage}"))?;
                stages.push((stage, loaded));
            } else {
                missing.push(stage);
            }
        }
        let Some((_, first)) = stages.first() else {
            bail!(
                "run folder {} has no stage checkpoint yet (run `cargo xtask pipeline --run {}`)",
                run_dir.display(),
                run_dir.file_name().unwrap_or_default().to_string_lossy()
            );
        };
        let tokenizer_hash = first.tokenizer.hash();
        if let Some((stage, _)) = stages
            .iter()
            .find(|(_, s)| s.tokenizer.hash() != tokenizer_hash)
        {
            bail!(
                "{}: {stage} has another tokenizer than the run's first stage",
                run_dir.display()
            );
        }
        let problems = held_out_problems(held_out)?;
        Ok(Self {
            run_dir,
            stages,
            missing,
            problems,
            device,
        })
    }
}

/// A few held-out problems of each task for the page's picker: sums at every evaluated K and
/// one K beyond (never demonstrated), and reversal words the SFT stage never trained on.
fn held_out_problems(held_out: &SkillSuite) -> Result<serde_json::Value> {
    let mut ks = held_out.suite.ks.clone();
    ks.push(ks.iter().max().map_or(7, |k| (k + 1).min(9)));
    ks.dedup();
    let sums: Vec<serde_json::Value> = ks
        .iter()
        .flat_map(|&k| digit_sum::held_out_problems(k, 6, held_out.suite.seed))
        .map(|p| serde_json::json!({ "task": "digit_sum", "k": p.k(), "prompt": p.prompt() }))
        .collect();
    let words = reverse::read_words(held_out.words)?;
    let words: Vec<serde_json::Value> = reverse::held_out_words(&words)
        .iter()
        .take(8)
        .map(|w| serde_json::json!({ "task": "reverse", "prompt": reverse::prompt(w) }))
        .collect();
    Ok(serde_json::Value::Array([sums, words].concat()))
}
