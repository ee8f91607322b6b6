//! `pipeline.toml`: every stage's settings. Unknown keys and out-of-range values are errors
//! that name the key (and, for TOML errors, the line).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use cot_sft::CotSftConfig;
use data::TokenizerConfig;
use dpo::DpoConfig;
use eval::SuiteConfig;
use model::GptConfig;
use pretrain::PretrainConfig;
use rlvr::RlvrConfig;
use serde::{Deserialize, Serialize};
use sft::SftConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Steps between training-state snapshots, so a killed stage resumes (0 = never).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    pub model: GptConfig,
    #[serde(default)]
    pub tokenizer: TokenizerConfig,
    pub pretrain: PretrainConfig,
    pub sft: SftConfig,
    #[serde(rename = "cot-sft")]
    pub cot_sft: CotSftConfig,
    pub dpo: DpoConfig,
    pub rlvr: RlvrConfig,
    /// The held-out digit-sum suite of CoT-SFT, DPO and RLVR.
    #[serde(default)]
    pub eval: SuiteConfig,
}

impl PipelineConfig {
    /// Reads `path`, applies `--set KEY=VALUE` overrides (`dpo.loss.rpo_alpha=0`), checks it.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut config: PipelineConfig = if overrides.is_empty() {
            toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?
        } else {
            let mut table: toml::Table =
                toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
            for item in overrides {
                apply_override(&mut table, item)?;
            }
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    anyhow!(
                        "{} with --set {}: {}",
                        path.display(),
                        overrides.join(" --set "),
                        e.message().trim().replace('\n', " ")
                    )
                })?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        config.pretrain.resolve_paths(base);
        config.sft.resolve_paths(base);
        config.cot_sft.resolve_paths(base);
        config.dpo.resolve_paths(base);
        // One held-out suite for every stage that measures digit sums, so their tables
        // compare; a copy in each stage's settings puts it in that stage's config hash.
        config.cot_sft.eval = config.eval.clone();
        config.dpo.eval = config.eval.clone();
        config.rlvr.eval = config.eval.clone();
        config
            .validate()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.model.vocab_size != 0 {
            return Err(
                "model.vocab_size is set by the tokenizer; remove it from the config".into(),
            );
        }
        self.model.validate()?;
        if self.tokenizer.vocab_size < 64 {
            return Err(format!(
                "tokenizer.vocab_size must be >= 64, got {}",
                self.tokenizer.vocab_size
            ));
        }
        self.eval.validate()?;
        self.pretrain.validate(self.model.block_size)?;
        self.sft.validate()?;
        self.cot_sft.validate()?;
        self.dpo.validate()?;
        self.rlvr.validate()
    }
}

/// `--quick`: the same five stages and model with every budget cut, so a newcomer sees the
/// whole chain and its report in a few minutes on 2 cores. The numbers it produces are a
/// first look, not the lessons' results; the report says which preset made it.
impl PipelineConfig {
    pub fn quick(mut self) -> Self {
        let p = &mut self.pretrain;
        p.steps = 150;
        p.log_every = 25;
        p.eval_every = 75;
        p.eval_batches = 4;
        let s = &mut self.sft.train;
        s.steps = 120;
        s.log_every = 20;
        s.eval_every = 40;
        let c = &mut self.cot_sft;
        // CoT needs a few hundred steps to start writing well-formed traces; no direct twin.
        c.n_train = 1000;
        c.direct_twin = false;
        c.train.steps = 450;
        c.train.batch_size = 32;
        c.train.log_every = 25;
        c.train.eval_every = 0;
        let d = &mut self.dpo;
        d.n_train = 400;
        d.steps = 60;
        d.log_every = 10;
        d.eval_every = 0;
        d.eval_pairs = 100;
        d.compare.clear();
        let r = &mut self.rlvr;
        r.steps = 40;
        r.prompts_per_step = 4;
        r.log_every = 5;
        r.eval_every = 0;
        for suite in [
            &mut self.cot_sft.eval,
            &mut self.dpo.eval,
            &mut self.rlvr.eval,
            &mut self.eval,
        ] {
            suite.per_k = 40;
        }
        self
    }
}

/// `a.b.c=VALUE`: VALUE is read as TOML (`0`, `true`, `[2, 3]`, `"x"`), or as a bare string.
fn apply_override(table: &mut toml::Table, item: &str) -> Result<()> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {item}: expected KEY=VALUE, e.g. dpo.loss.beta=0.5"))?;
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut parts: Vec<&str> = key.trim().split('.').collect();
    let last = parts
        .pop()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| anyhow!("--set {item}: empty key"))?;
    let mut node = table;
    for part in parts {
        node = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| anyhow!("--set {item}: `{part}` is not a table"))?;
    }
    node.insert(last.to_string(), value);
    Ok(())
}

/// TOML's error as one line: `FILE:LINE:COLUMN: message`.
fn toml_error(path: &Path, text: &str, error: &toml::de::Error) -> anyhow::Error {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            anyhow!("{}:{line}:{column}: {message}", path.display())
        }
        None => anyhow!("{}: {message}", path.display()),
    }
}

fn default_checkpoint_every() -> usize {
    250
}

/// The stages of the chain, in order, each with the stage it starts from.
pub const STAGES: [(&str, Option<&str>); 5] = [
    ("pretrain", None),
    ("sft", Some("pretrain")),
    ("cot-sft", Some("sft")),
    ("dpo", Some("cot-sft")),
    ("rlvr", Some("dpo")),
];

/// Stages that can run today; the others are named in `STAGES` but refuse to pretend.
pub const IMPLEMENTED: [&str; 5] = ["pretrain", "sft", "cot-sft", "dpo", "rlvr"];

pub fn check_stage_name(name: &str) -> Result<()> {
    if !STAGES.iter().any(|(s, _)| *s == name) {
        let names: Vec<&str> = STAGES.iter().map(|(s, _)| *s).collect();
        bail!("unknown stage `{name}` (stages: {})", names.join(", "));
    }
    if !IMPLEMENTED.contains(&name) {
        bail!(
            "stage `{name}` is not implemented yet (implemented: {})",
            IMPLEMENTED.join(", ")
        );
    }
    Ok(())
}

/// The stage a stage starts from by default.
pub fn parent_of(stage: &str) -> Option<&'static str> {
    STAGES
        .iter()
        .find(|(s, _)| *s == stage)
        .and_then(|(_, p)| *p)
}
