use std::path::Path;

use data::DataPath;

use serde::{Deserialize, Serialize};

use trainer::supervised::SupervisedConfig;

/// `[sft]` in `pipeline.toml` (lesson 03).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// Word list for the reverse task (train/held-out split by hash of the word).
    pub words: DataPath,
    /// Your own `{"prompt","completion"}` JSONL to train on instead of the generated task.
    #[serde(default)]
    pub train_file: Option<DataPath>,
    /// Extra `{"prompt","completion"}` JSONL scored by exact match after training.
    #[serde(default)]
    pub eval_file: Option<DataPath>,
    /// Also train the twin with `mask_prompt` flipped and report both accuracies.
    pub ablation: bool,
    pub train: SupervisedConfig,
}

impl SftConfig {
    /// Makes relative paths relative to the config file's folder `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.words.resolve(base);
        for path in [&mut self.train_file, &mut self.eval_file]
            .into_iter()
            .flatten()
        {
            path.resolve(base);
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.train.validate("sft.train")
    }
}
