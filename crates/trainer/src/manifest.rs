use std::path::Path;

use anyhow::{anyhow, Context, Result};
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
    /// Where the wall time went; absent in manifests written before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeSplit>,
}

/// A stage's wall time by what it was spent on (`model::phase`): sampling (rollouts,
/// on-policy pairs), evaluation, checkpoint I/O, and the rest, the training steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeSplit {
    pub training_s: f64,
    pub sampling_s: f64,
    pub evaluation_s: f64,
    pub io_s: f64,
}

impl TimeSplit {
    /// `training 40 s, sampling 110 s, evaluation 5 s, I/O 0.2 s`.
    pub fn describe(&self) -> String {
        format!(
            "training steps {:.0} s, sampling {:.0} s, evaluation {:.0} s, I/O {:.1} s",
            self.training_s, self.sampling_s, self.evaluation_s, self.io_s
        )
    }
}

impl Manifest {
    /// Written atomically: a reader sees the old manifest or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<()> {
        data::atomic::write(path, serde_json::to_string_pretty(self)?)
    }

    /// Reads and checks a manifest. A hand-edited or truncated one is an error naming the
    /// file and the field, never a manifest with a short hash that panics a reader later.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid manifest", path.display()))?;
        manifest
            .validate()
            .map_err(|e| anyhow!("{} is not a valid manifest: {e}", path.display()))?;
        Ok(manifest)
    }

    /// What `save` always writes: SHA-256 hex digests, a stage name, a valid model shape.
    pub fn validate(&self) -> Result<(), String> {
        if self.stage.trim().is_empty() {
            return Err("stage is empty".into());
        }
        let hashes = [
            ("config_hash", Some(&self.config_hash)),
            ("tokenizer_hash", Some(&self.tokenizer_hash)),
            ("checkpoint_hash", Some(&self.checkpoint_hash)),
            (
                "parent_checkpoint_hash",
                self.parent_checkpoint_hash.as_ref(),
            ),
        ];
        for (key, hash) in hashes {
            if let Some(hash) = hash {
                if !is_sha256_hex(hash) {
                    return Err(format!(
                        "{key} must be a SHA-256 (64 hex digits), got {hash:?}"
                    ));
                }
            }
        }
        if self.model.vocab_size == 0 {
            return Err("model.vocab_size must be > 0".into());
        }
        self.model.validate()?;
        if !(self.wall_time_s.is_finite() && self.wall_time_s >= 0.0) {
            return Err(format!(
                "wall_time_s must be a duration >= 0, got {}",
                self.wall_time_s
            ));
        }
        Ok(())
    }
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid manifest of a tiny pretrain stage whose checkpoint hashes to `checkpoint_hash`.
    pub(crate) fn manifest_with(checkpoint_hash: &str) -> Manifest {
        Manifest {
            stage: "pretrain".into(),
            step: 1,
            config_hash: "c".repeat(64),
            tokenizer_hash: "7".repeat(64),
            checkpoint_hash: checkpoint_hash.into(),
            parent_checkpoint_hash: None,
            parent_dir: None,
            model: test_support::tiny(11),
            device: "flex".into(),
            wall_time_s: 1.0,
            time: None,
        }
    }

    fn manifest() -> Manifest {
        manifest_with(&"a".repeat(64))
    }

    #[test]
    fn a_saved_manifest_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        manifest().save(&path).unwrap();
        assert_eq!(Manifest::load(&path).unwrap(), manifest());
    }

    #[test]
    fn a_malformed_manifest_is_one_line_naming_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        type Edit = fn(&mut Manifest);
        let edits: [(&str, Edit); 4] = [
            ("checkpoint_hash", |m| m.checkpoint_hash = "abc".into()),
            ("parent_checkpoint_hash", |m| {
                m.parent_checkpoint_hash = Some("é".repeat(32))
            }),
            ("model.n_heads", |m| m.model.n_heads = 0),
            ("wall_time_s", |m| m.wall_time_s = -1.0),
        ];
        for (field, edit) in edits {
            let mut bad = manifest();
            edit(&mut bad);
            bad.save(&path).unwrap();
            let err = format!("{:#}", Manifest::load(&path).unwrap_err());
            assert!(
                err.contains("manifest.json is not a valid manifest"),
                "{err}"
            );
            assert!(err.contains(field), "{field}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        std::fs::write(&path, "{\"stage\": \"pretrain\"").unwrap();
        let err = format!("{:#}", Manifest::load(&path).unwrap_err());
        assert!(
            err.contains("manifest.json is not a valid manifest"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
