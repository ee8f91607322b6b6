use std::path::Path;

use data::DataPath;

use serde::{Deserialize, Serialize};
use trainer::{LrSchedule, OptimConfig};

/// `[pretrain]` in `pipeline.toml`. Defaults are lesson 02's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// Plain-text corpus; a relative path is relative to the config file.
    pub corpus: DataPath,
    pub steps: usize,
    pub batch_size: usize,
    /// Window length T (≤ model.block_size).
    pub seq_len: usize,
    pub seed: u64,
    /// Share of the corpus (its tail) held out for validation.
    pub val_fraction: f64,
    pub log_every: usize,
    pub eval_every: usize,
    /// Validation batches per evaluation.
    pub eval_batches: usize,
    pub optimizer: OptimConfig,
    #[serde(default)]
    pub schedule: LrSchedule,
}

trainer::loop_settings!(PretrainConfig);

impl PretrainConfig {
    /// Makes a relative `corpus` relative to the config file's folder `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.corpus.resolve(base);
    }

    pub fn validate(&self, block_size: usize) -> Result<(), String> {
        let positive = [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("log_every", self.log_every),
            ("eval_every", self.eval_every),
            ("eval_batches", self.eval_batches),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("pretrain.{key} must be > 0"));
            }
        }
        if self.seq_len < 2 || self.seq_len > block_size {
            return Err(format!(
                "pretrain.seq_len must be in 2..={block_size} (model.block_size), got {}",
                self.seq_len
            ));
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return Err(format!(
                "pretrain.val_fraction must be in (0, 1), got {}",
                self.val_fraction
            ));
        }
        self.optimizer.validate("pretrain.optimizer")
    }
}
