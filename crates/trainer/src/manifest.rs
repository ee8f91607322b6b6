use std::path::Path;

use anyhow::{Context, Result};
use model::GptConfig;
use serde::{Deserialize, Serialize};

/// `manifest.json`, written beside each stage's checkpoint: where it came from and what
/// produced it, so a later stage can check it is chaining onto what it thinks it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: String,
    /// Optimizer steps taken.
    pub step: usize,
    /// SHA-256 of the stage's config section, as resolved (defaults filled in).
    pub config_hash: String,
    pub tokenizer_hash: String,
    /// SHA-256 of `model.safetensors` in this folder.
    pub checkpoint_hash: String,
    /// SHA-256 of the parent stage's `model.safetensors`; `None` for a stage trained from scratch.
    pub parent_checkpoint_hash: Option<String>,
    pub parent_dir: Option<String>,
    pub model: GptConfig,
    pub device: String,
    pub wall_time_s: f64,
}

impl Manifest {
    /// Written atomically: a reader sees the old manifest or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid manifest", path.display()))
    }
}
