//! What the sweep's report reads from each seed's run folder: the skills of every stage's
//! checkpoint (`skills.json`) and the stages' headline numbers (`manifest.json`,
//! `eval.json`, `metrics.jsonl`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use eval::{read_eval, task};
use serde_json::Value;
use trainer::{files, Manifest};

use chain::skills::{Skills, SKILLS};
use chain::{keys, Stage};

/// How a headline number is printed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// A fraction, printed as a percentage.
    Percent,
    /// Printed with this many decimals.
    Plain(usize),
    Seconds,
}

/// One number a stage reports.
#[derive(Debug, Clone)]
pub struct Headline {
    pub stage: Stage,
    pub name: String,
    pub value: f64,
    pub unit: Unit,
}

/// One seed's finished stages.
pub struct SeedRun {
    pub seed: u64,
    pub dir: PathBuf,
    pub skills: BTreeMap<Stage, Skills>,
    pub headlines: Vec<Headline>,
}

/// Metrics logged during training that a stage's lesson is about: `(key, first window too)`.
fn metric_keys(stage: Stage) -> &'static [(&'static str, bool)] {
    match stage {
        Stage::Pretrain => &[(keys::VAL_LOSS, true)],
        Stage::Sft | Stage::CotSft => &[],
        Stage::Dpo => &[
            (keys::MARGINS, false),
            (keys::ACCURACIES, false),
            (keys::LOGPS_CHOSEN, false),
        ],
        Stage::Rlvr => &[
            (keys::REWARD, true),
            (keys::DEAD_GROUPS, true),
            (keys::KL, false),
        ],
    }
}

pub fn seed_run(seed: u64, dir: &Path) -> Result<SeedRun> {
    let mut out = SeedRun {
        seed,
        dir: dir.to_path_buf(),
        skills: BTreeMap::new(),
        headlines: Vec::new(),
    };
    for stage in Stage::ALL {
        let stage_dir = stage.dir(dir);
        let manifest_path = stage_dir.join(files::MANIFEST);
        if !manifest_path.exists() {
            continue;
        }
        let manifest = Manifest::load(&manifest_path)?;
        let mut push = |name: String, value: f64, unit: Unit| {
            out.headlines.push(Headline {
                stage,
                name,
                value,
                unit,
            })
        };
        push("wall time".into(), manifest.wall_time_s, Unit::Seconds);
        let eval_path = stage_dir.join(files::EVAL);
        if eval_path.exists() {
            for row in read_eval(&eval_path)? {
                // The final checkpoint's CoT sums are the skills table's, measured there.
                let is_skill = row.task == task::DIGIT_SUM
                    && row.mode == data::tasks::digit_sum::Mode::Cot.name();
                if is_skill {
                    continue;
                }
                let k = row.k.map(|k| format!(" K={k}")).unwrap_or_default();
                let name = format!("{} [{}]{k}", row.task, row.mode);
                if let Some(margin) = row.margin {
                    push(format!("{name} margin"), margin, Unit::Plain(3));
                }
                push(name, row.accuracy, Unit::Percent);
            }
        }
        let metrics_path = stage_dir.join(files::METRICS);
        if metrics_path.exists() {
            let rows = trainer::metrics::read_rows(&metrics_path)?;
            for &(key, with_first) in metric_keys(stage) {
                let values: Vec<f64> = rows
                    .iter()
                    .filter_map(|r| r.get(key).and_then(Value::as_f64))
                    .collect();
                if let (Some(first), Some(last)) = (values.first(), values.last()) {
                    if with_first {
                        push(format!("{key} (first)"), *first, Unit::Plain(3));
                    }
                    push(format!("{key} (last)"), *last, Unit::Plain(3));
                }
            }
        }
        let skills_path = stage_dir.join(SKILLS);
        if skills_path.exists() {
            out.skills.insert(stage, Skills::load(&skills_path)?);
        }
    }
    Ok(out)
}
