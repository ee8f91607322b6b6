//! `pipeline.toml`: every stage's settings. Unknown keys and out-of-range values are errors
//! that name the key (and, for TOML errors, the line).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use chain::skills::SkillSuite;
use cot_sft::CotSftConfig;
use data::TokenizerConfig;
use dpo::DpoConfig;
use eval::pass_at_k::PassAtKSettings;
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
    /// Sampled pass@k on the same problems, with every checkpoint's skills from CoT-SFT on.
    #[serde(default)]
    pub pass_at_k: PassAtKSettings,
}

/// A preset: a TOML overlay of the keys it changes, merged over the loaded config.
pub struct Preset {
    pub name: &'static str,
    /// Where it lives in the repository, for messages.
    pub file: &'static str,
    pub text: &'static str,
}

/// `--quick`: every budget cut (`pipeline.quick.toml`, compiled in).
pub const QUICK: Preset = Preset {
    name: "quick",
    file: "pipeline.quick.toml",
    text: include_str!("../../pipeline.quick.toml"),
};

impl PipelineConfig {
    /// Reads `path`, merges `preset` over it, applies `--set KEY=VALUE` overrides
    /// (`dpo.loss.rpo_alpha=0`) last, and checks the result.
    pub fn load(path: &Path, preset: Option<&Preset>, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut config: PipelineConfig = if preset.is_none() && overrides.is_empty() {
            toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?
        } else {
            let mut table: toml::Table =
                toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
            let mut layers = Vec::new();
            if let Some(preset) = preset {
                let overlay: toml::Table = toml::from_str(preset.text)
                    .map_err(|e| toml_error(Path::new(preset.file), preset.text, &e))?;
                merge(&mut table, overlay);
                layers.push(preset.file.to_string());
            }
            for item in overrides {
                apply_override(&mut table, item)?;
                layers.push(format!("--set {item}"));
            }
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    anyhow!(
                        "{} with {}: {}",
                        path.display(),
                        layers.join(" "),
                        e.message().trim().replace('\n', " ")
                    )
                })?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        config.pretrain.resolve_paths(base);
        config.sft.resolve_paths(base);
        config.cot_sft.resolve_paths(base);
        config.dpo.resolve_paths(base);
        // An emptied list switches its optional table off (`--set 'rlvr.curriculum.frontier=[]'`),
        // so the lesson's settings stay one --set away and hash as if the table were absent.
        config.dpo.frontier.take_if(|f| f.ks.is_empty());
        config.rlvr.curriculum.take_if(|c| c.frontier.is_empty());
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

    /// The problems every checkpoint's skills are measured on: the held-out digit-sum suite
    /// and SFT's word list.
    pub fn skill_suite(&self) -> SkillSuite<'_> {
        SkillSuite {
            suite: &self.eval,
            words: &self.sft.words,
            pass_at_k: &self.pass_at_k,
        }
    }

    /// `--set` items that offset every `seed` key by `offset` (model init, data order,
    /// sampling), except the held-out suite's and pass@k's: every seed of a sweep is measured
    /// on the same problems with the same sampling streams. Found by walking the settings, so a stage's new seed key is offset too.
    pub fn seed_overrides(&self, offset: u64) -> Vec<String> {
        fn walk(
            value: &serde_json::Value,
            path: &mut Vec<String>,
            offset: u64,
            out: &mut Vec<String>,
        ) {
            let Some(table) = value.as_object() else {
                return;
            };
            for (key, value) in table {
                // Measurements: every seed is measured on the same problems and samples.
                if key == "eval" || key == "pass_at_k" {
                    continue;
                }
                path.push(key.clone());
                match value.as_u64() {
                    Some(seed) if key == "seed" => {
                        out.push(format!("{}={}", path.join("."), seed + offset))
                    }
                    _ => walk(value, path, offset, out),
                }
                path.pop();
            }
        }
        let mut out = Vec::new();
        let value = serde_json::to_value(self).expect("the settings serialize");
        walk(&value, &mut Vec::new(), offset, &mut out);
        out
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
        self.pass_at_k.validate()?;
        self.pretrain.validate(self.model.block_size)?;
        self.sft.validate()?;
        self.cot_sft.validate()?;
        self.dpo.validate()?;
        self.rlvr.validate()
    }
}

/// Merges `overlay` into `table`: tables key by key, any other value replaced.
fn merge(table: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (table.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => merge(inner, value),
            (_, value) => {
                table.insert(key, value);
            }
        }
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
            let before = text.get(..span.start).unwrap_or(text);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline_toml() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml")
    }

    /// What `--quick` meant when it was Rust code (`PipelineConfig::quick`), value by value.
    fn quick_as_it_was(mut c: PipelineConfig) -> PipelineConfig {
        let p = &mut c.pretrain;
        (p.steps, p.log_every, p.eval_every, p.eval_batches) = (150, 25, 75, 4);
        let s = &mut c.sft.train;
        (s.steps, s.log_every, s.eval_every) = (120, 20, 40);
        let t = &mut c.cot_sft;
        (t.n_train, t.direct_twin) = (1000, false);
        let t = &mut c.cot_sft.train;
        (t.steps, t.batch_size, t.log_every, t.eval_every) = (450, 32, 25, 0);
        let d = &mut c.dpo;
        (d.n_train, d.steps, d.log_every, d.eval_every) = (400, 60, 10, 0);
        d.eval_pairs = 100;
        d.compare.clear();
        if let Some(f) = &mut d.frontier {
            f.prompts = 200;
        }
        let r = &mut c.rlvr;
        (r.steps, r.prompts_per_step, r.log_every, r.eval_every) = (40, 4, 5, 0);
        if let Some(k) = &mut r.curriculum {
            (k.check_every, k.check_problems) = (10, 16);
        }
        (c.pass_at_k.per_k, c.pass_at_k.samples) = (20, 8);
        for suite in [
            &mut c.eval,
            &mut c.cot_sft.eval,
            &mut c.dpo.eval,
            &mut c.rlvr.eval,
        ] {
            suite.per_k = 40;
        }
        c
    }

    fn json(config: &PipelineConfig) -> serde_json::Value {
        serde_json::to_value(config).unwrap()
    }

    #[test]
    fn the_quick_overlay_gives_the_quick_settings() {
        let plain = PipelineConfig::load(&pipeline_toml(), None, &[]).unwrap();
        let quick = PipelineConfig::load(&pipeline_toml(), Some(&QUICK), &[]).unwrap();
        assert_eq!(json(&quick), json(&quick_as_it_was(plain)));
    }

    #[test]
    fn a_seed_offset_moves_every_stage_seed_but_the_held_out_suite() {
        let plain = PipelineConfig::load(&pipeline_toml(), None, &[]).unwrap();
        let items = plain.seed_overrides(2);
        let seeded = PipelineConfig::load(&pipeline_toml(), None, &items).unwrap();
        assert_eq!(seeded.pretrain.seed, plain.pretrain.seed + 2);
        assert_eq!(seeded.sft.train.seed, plain.sft.train.seed + 2);
        assert_eq!(seeded.cot_sft.train.seed, plain.cot_sft.train.seed + 2);
        assert_eq!(seeded.dpo.seed, plain.dpo.seed + 2);
        assert_eq!(seeded.rlvr.seed, plain.rlvr.seed + 2);
        assert_eq!(seeded.eval, plain.eval);
        assert_eq!(seeded.dpo.eval, plain.dpo.eval);
        assert_eq!(items.len(), 5, "{items:?}");
    }

    #[test]
    fn an_emptied_list_switches_its_optional_table_off() {
        let plain = PipelineConfig::load(&pipeline_toml(), None, &[]).unwrap();
        assert!(plain.dpo.frontier.is_some() && plain.rlvr.curriculum.is_some());
        let set = [
            "dpo.frontier.ks=[]".to_string(),
            "rlvr.curriculum.frontier=[]".to_string(),
        ];
        let off = PipelineConfig::load(&pipeline_toml(), None, &set).unwrap();
        assert!(off.dpo.frontier.is_none() && off.rlvr.curriculum.is_none());
        // Hashed as if the tables were absent: no trace of them in the settings.
        let text = serde_json::to_string(&json(&off)).unwrap();
        assert!(!text.contains("\"frontier\""), "{text}");
        assert!(!text.contains("curriculum"), "{text}");
    }

    /// The `--set` items of the lessons' exact settings, as docs/lessons.md gives them (the
    /// block after its `lesson-settings` marker), so that page stays true.
    fn lesson_settings() -> Vec<String> {
        let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lessons.md");
        let text = std::fs::read_to_string(page).unwrap();
        let block = text
            .split("<!-- lesson-settings -->")
            .nth(1)
            .and_then(|rest| rest.split("```").nth(1))
            .expect("docs/lessons.md: a ``` block after <!-- lesson-settings -->");
        block
            .split("--set ")
            .skip(1)
            .map(|item| {
                let item = item
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('\\');
                item.trim_matches('\'').to_string()
            })
            .collect()
    }

    #[test]
    fn the_lessons_settings_are_the_set_lines_docs_give() {
        use model::Position;
        let items = lesson_settings();
        assert!(items.len() >= 10, "{items:?}");
        let c = PipelineConfig::load(&pipeline_toml(), None, &items).unwrap();
        // Lesson 01's model; the held-out suite of lessons 04-06.
        assert_eq!(
            (c.model.position, c.model.block_size),
            (Position::Learned, 64)
        );
        assert_eq!(c.eval.ks, vec![2, 3, 4, 5, 6]);
        assert!(!c.pass_at_k.is_on());
        // Sums only, no replay.
        assert_eq!((c.cot_sft.replay, c.dpo.replay), (0.0, 0.0));
        // Lesson 05: plain DPO, β 0.1, frozen reference, lr 5e-5, corrupted pairs only.
        assert_eq!(c.dpo.loss.loss_type, dpo::config::LossType::Sigmoid);
        assert_eq!((c.dpo.loss.beta, c.dpo.loss.dpop_lambda), (0.1, 0.0));
        assert_eq!((c.dpo.loss.rpo_alpha, c.dpo.optimizer.lr), (0.0, 5e-5));
        assert!(c.dpo.frontier.is_none());
        // Lesson 06: GRPO, K = 2..6, one draw, 4 rollouts, β 0.05, lr 1e-5, 800 steps.
        let r = &c.rlvr;
        assert_eq!(r.ks, vec![2, 3, 4, 5, 6]);
        assert!(r.curriculum.is_none() && r.hints.is_none());
        assert_eq!((r.resample_rounds, r.group_size, r.steps), (0, 4, 800));
        assert_eq!((r.beta, r.optimizer.lr, r.temperature), (0.05, 1e-5, 1.0));
    }

    #[test]
    fn the_default_chain_demonstrates_nothing_past_k_6() {
        let c = PipelineConfig::load(&pipeline_toml(), None, &[]).unwrap();
        assert!(c.cot_sft.ks.iter().chain(&c.dpo.ks).all(|&k| k <= 6));
        // Past K = 6 only the policy's own samples: DPO's frontier pairs and RLVR's prompts.
        assert!(c.eval.ks.contains(&10));
    }

    #[test]
    fn set_applies_after_the_preset() {
        let set = ["pretrain.steps=7".to_string()];
        let quick = PipelineConfig::load(&pipeline_toml(), Some(&QUICK), &set).unwrap();
        assert_eq!(quick.pretrain.steps, 7);
        assert_eq!(
            quick.pretrain.eval_batches, 4,
            "the rest of the preset stays"
        );
    }
}
