use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use trainer::supervised::SupervisedConfig;

/// `[sft]` in `pipeline.toml` (lesson 03).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// Word list for the reverse task (train/held-out split by hash of the word).
    pub words: PathBuf,
    /// Your own `{"prompt","completion"}` JSONL to train on instead of the generated task.
    #[serde(default)]
    pub train_file: Option<PathBuf>,
    /// Extra `{"prompt","completion"}` JSONL scored by exact match after training.
    #[serde(default)]
    pub eval_file: Option<PathBuf>,
    /// Also train the twin with `mask_prompt` flipped and report both accuracies.
    pub ablation: bool,
    pub train: SupervisedConfig,
}

impl SftConfig {
    /// Makes relative paths relative to the config file's folder `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.words = data::relative_to(base, &self.words);
        self.train_file = self.train_file.as_ref().map(|p| data::relative_to(base, p));
        self.eval_file = self.eval_file.as_ref().map(|p| data::relative_to(base, p));
    }

    pub fn validate(&self) -> Result<(), String> {
        self.train.validate("sft.train")
    }
}
