//! A run folder, `runs/NAME/`: the chain's tokenizer, then one folder per stage.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use data::corpus::read_text;
use data::tasks::digit_sum::{train_problems, Mode};
use data::tasks::reverse;
use data::tokenizer::TASK_ALPHABET;
use data::TextTokenizer;
use model::DeviceChoice;
use trainer::outputs::config_hash;
use trainer::{files, Manifest, StageContext};

use crate::config::PipelineConfig;

pub struct Run {
    pub dir: PathBuf,
    pub config: PipelineConfig,
    pub device: DeviceChoice,
    pub quiet: bool,
}

impl Run {
    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.dir.join(stage)
    }

    /// Writes `run.json` (which preset and config made this run), refusing to mix presets in
    /// one run folder: the report must be able to say which one produced it.
    pub fn record_preset(&self, preset: &str, config: &Path, overrides: &[String]) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join("run.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let saved: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            if saved["preset"] != preset {
                bail!(
                    "run {} was made with the {} preset, this command asks for {preset}: \
                     use another --run name",
                    self.dir.display(),
                    saved["preset"]
                );
            }
        }
        let info = serde_json::json!({
            "preset": preset,
            "config": config.display().to_string(),
            "overrides": overrides,
        });
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&info)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// The run's one vocabulary: loaded if this run already has it, else trained on the union
    /// of every stage's text and saved. A run never silently switches tokenizers.
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join(files::TOKENIZER);
        let settings_path = self.dir.join("tokenizer.config.json");
        let settings = serde_json::to_string(&self.config.tokenizer)?;
        if path.exists() {
            let saved = std::fs::read_to_string(&settings_path).unwrap_or_default();
            if saved != settings {
                bail!(
                    "run {} was tokenized with {saved}, the config asks for {settings}: \
                     use a new --run name (one vocabulary per chain)",
                    self.dir.display()
                );
            }
            return TextTokenizer::load(&path);
        }
        let texts = self.tokenizer_texts()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokenizer = TextTokenizer::train(&self.config.tokenizer, &refs)?;
        tokenizer.save(&path)?;
        std::fs::write(&settings_path, settings)?;
        Ok(tokenizer)
    }

    /// Every stage's text: the pretraining corpus, every reverse-word example, a sample of
    /// digit sums written both ways, and the task alphabet.
    fn tokenizer_texts(&self) -> Result<Vec<String>> {
        let mut texts = vec![
            read_text(&self.config.pretrain.corpus)?,
            TASK_ALPHABET.to_string(),
        ];
        for word in reverse::read_words(&self.config.sft.words)? {
            let e = reverse::example(&word);
            texts.push(e.prompt + &e.completion);
        }
        for problem in train_problems(&self.config.cot_sft.ks, 2000, 0) {
            texts.push(problem.prompt() + &problem.completion(Mode::Cot));
            texts.push(problem.prompt() + &problem.completion(Mode::Direct));
        }
        Ok(texts)
    }

    pub fn context(
        &self,
        stage: &str,
        tokenizer: TextTokenizer,
        parent_dir: Option<PathBuf>,
    ) -> Result<StageContext> {
        let mut model = self.config.model.clone();
        model.vocab_size = tokenizer.vocab_size();
        Ok(StageContext {
            stage: stage.to_string(),
            out_dir: self.stage_dir(stage),
            device: self.device.device().map_err(anyhow::Error::msg)?,
            device_name: self.device.to_string(),
            tokenizer,
            model,
            parent_dir,
            quiet: self.quiet,
            checkpoint_every: self.config.checkpoint_every,
            interrupt_after: interrupt_after()?,
        })
    }
}

impl Run {
    /// SHA-256 of one stage's settings, the same value the stage records in its manifest.
    pub fn stage_config_hash(&self, stage: &str) -> Option<String> {
        let c = &self.config;
        Some(match stage {
            "pretrain" => config_hash(&c.pretrain),
            "sft" => config_hash(&c.sft),
            "cot-sft" => config_hash(&c.cot_sft),
            "dpo" => config_hash(&c.dpo),
            "rlvr" => config_hash(&c.rlvr),
            _ => return None,
        })
    }

    /// A stage is up to date when its folder holds a finished stage (a manifest) made with
    /// the same settings, tokenizer and model shape, from the parent checkpoint that is there
    /// now. Rerunning the pipeline skips such stages.
    pub fn is_up_to_date(
        &self,
        stage: &str,
        parent: Option<&str>,
        tokenizer: &TextTokenizer,
    ) -> bool {
        let Ok(manifest) = Manifest::load(&self.stage_dir(stage).join(files::MANIFEST)) else {
            return false;
        };
        let mut model = self.config.model.clone();
        model.vocab_size = tokenizer.vocab_size();
        let parent_ok = match parent {
            None => manifest.parent_checkpoint_hash.is_none(),
            Some(p) => Manifest::load(&self.stage_dir(p).join(files::MANIFEST))
                .map(|pm| manifest.parent_checkpoint_hash.as_ref() == Some(&pm.checkpoint_hash))
                .unwrap_or(false),
        };
        parent_ok
            && Some(&manifest.config_hash) == self.stage_config_hash(stage).as_ref()
            && manifest.tokenizer_hash == tokenizer.hash()
            && manifest.model == model
            && self.stage_dir(stage).join(files::CHECKPOINT).is_file()
    }
}

/// The variable that tests of resuming set: each loop stops with an error right after its
/// first snapshot at or after this step, as a kill would, but at a known point.
pub const INTERRUPT_AFTER_VAR: &str = "XTASK_INTERRUPT_AFTER_STEP";

fn interrupt_after() -> Result<Option<usize>> {
    match std::env::var(INTERRUPT_AFTER_VAR) {
        Ok(value) => value
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{INTERRUPT_AFTER_VAR}={value}: expected a step number")),
        Err(_) => Ok(None),
    }
}

pub fn load_stage_tokenizer(stage_dir: &Path) -> Result<TextTokenizer> {
    TextTokenizer::load(&stage_dir.join(files::TOKENIZER))
}
