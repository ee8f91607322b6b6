//! Every checkpoint of the chain measured on every skill the chain teaches: held-out reverse
//! words (SFT's task) and held-out digit sums per K in the CoT format (the task of CoT-SFT,
//! DPO and RLVR), into the stage folder's `skills.json`. The same problems for every stage,
//! so the report's per-skill table reads straight across the chain and shows what each stage
//! kept and what it lost, pretrain and SFT included. With `[pass_at_k]` on, the checkpoints
//! from CoT-SFT on are also sampled for pass@k at its K (`eval::pass_at_k`).

use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Device;
use data::tasks::digit_sum::Mode;
use data::tasks::reverse;
use eval::pass_at_k::{evaluate_pass_at_k, format_pass_at_k, PassAtK, PassAtKSettings};
use eval::{evaluate_digit_sum, evaluate_reverse, format_row, EvalRow, SuiteConfig};
use serde::{Deserialize, Serialize};

use crate::{FinishedStage, Stage};

/// The file in each stage folder.
pub const SKILLS: &str = "skills.json";
/// `mode` of the reverse-word row.
pub const REVERSE_MODE: &str = "greedy";

/// `skills.json`: the rows, and what they were measured on, so a retrained checkpoint or a
/// changed suite is measured again rather than read stale.
#[derive(Debug, Serialize, Deserialize)]
pub struct Skills {
    pub checkpoint_hash: String,
    pub suite: SuiteConfig,
    pub rows: Vec<EvalRow>,
    /// The pass@k settings measured with, from CoT-SFT on when `[pass_at_k]` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_settings: Option<PassAtKSettings>,
    /// Sampled pass@k per K in the CoT format.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_at_k: Vec<PassAtK>,
}

impl Skills {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid {SKILLS}", path.display()))
    }

    /// Held-out reverse-word accuracy.
    pub fn reverse(&self) -> Option<&EvalRow> {
        self.rows.iter().find(|r| r.task == eval::task::REVERSE)
    }

    /// Held-out CoT digit-sum accuracy at `k`.
    pub fn digit_sum(&self, k: usize) -> Option<&EvalRow> {
        self.rows
            .iter()
            .find(|r| r.task == eval::task::DIGIT_SUM && r.k == Some(k))
    }

    /// Sampled pass@k at `k` digits.
    pub fn pass_at(&self, k: usize) -> Option<&PassAtK> {
        self.pass_at_k.iter().find(|p| p.k == k)
    }
}

/// What the skills are measured on: the held-out digit-sum suite and the word list whose
/// held-out split gives the reversal problems.
pub struct SkillSuite<'a> {
    pub suite: &'a SuiteConfig,
    pub words: &'a Path,
    /// Sampled pass@k, for the stages that write traces (CoT-SFT on).
    pub pass_at_k: &'a PassAtKSettings,
}

/// Measures a finished stage's checkpoint unless its `skills.json` already holds this
/// checkpoint on this suite.
pub fn ensure(stage: Stage, dir: &Path, on: &SkillSuite, device: &Device) -> Result<()> {
    let finished = FinishedStage::open(dir)?;
    let manifest = finished.manifest()?;
    let path = dir.join(SKILLS);
    let pass_settings =
        (stage >= Stage::CotSft && on.pass_at_k.is_on()).then(|| on.pass_at_k.clone());
    if path.exists() {
        let saved = Skills::load(&path)?;
        if saved.checkpoint_hash == manifest.checkpoint_hash
            && saved.suite == *on.suite
            && saved.pass_settings == pass_settings
        {
            return Ok(());
        }
    }
    let model = finished.model(device)?;
    let tokenizer = &finished.tokenizer;
    let held_out = reverse::held_out_words(&reverse::read_words(on.words)?);
    let mut rows = vec![evaluate_reverse(
        &model,
        tokenizer,
        &held_out,
        REVERSE_MODE,
        device,
    )?];
    let suite = on.suite;
    rows.extend(evaluate_digit_sum(
        &model,
        tokenizer,
        Mode::Cot,
        &suite.ks,
        suite.per_k,
        suite.seed,
        device,
    )?);
    for row in &rows {
        eprintln!("{stage} skills: {}", format_row(row));
    }
    let pass_at_k = match &pass_settings {
        Some(settings) => {
            let config = settings.config(suite.seed);
            evaluate_pass_at_k(&model, tokenizer, Mode::Cot, &config, device)?
        }
        None => Vec::new(),
    };
    for row in &pass_at_k {
        eprintln!("{stage} skills: {}", format_pass_at_k(row));
    }
    let skills = Skills {
        checkpoint_hash: manifest.checkpoint_hash,
        suite: suite.clone(),
        rows,
        pass_settings,
        pass_at_k,
    };
    data::atomic::write(&path, serde_json::to_string_pretty(&skills)?)
}
