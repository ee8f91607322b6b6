use std::path::{Path, PathBuf};

use burn::tensor::Device;
use data::TextTokenizer;
use model::GptConfig;

use crate::driver::{LoopSettings, TrainingLoop};
use crate::resume::Resume;
use crate::Manifest;

/// What xtask hands a stage: where to write, which device, the chain's shared tokenizer and
/// model shape, and the parent checkpoint folder when the stage has one. A stage is a function
/// of (context, its config) to files in `out_dir`; it never chooses a backend itself.
pub struct StageContext {
    pub stage: String,
    pub out_dir: PathBuf,
    pub device: Device,
    pub device_name: String,
    pub tokenizer: TextTokenizer,
    pub model: GptConfig,
    pub parent_dir: Option<PathBuf>,
    /// Hides the progress bar (tests, CI logs).
    pub quiet: bool,
    /// Training-state snapshot interval in steps, for resuming a killed stage (0 = never).
    pub checkpoint_every: usize,
    /// Tests of resuming only: stop each loop after its first snapshot at or after this step.
    pub interrupt_after: Option<usize>,
}

impl StageContext {
    pub fn checkpoint_path(&self) -> PathBuf {
        self.out_dir.join(crate::files::CHECKPOINT)
    }

    /// A training loop of this stage, labelled with its name and writing `metrics.jsonl`;
    /// `name` tells its snapshots apart from the stage's other loops, `settings_hash` is
    /// everything that decides its result (a snapshot made under other settings is ignored).
    pub fn training_loop<'a>(
        &self,
        name: &str,
        settings_hash: &str,
        settings: &'a impl LoopSettings,
    ) -> TrainingLoop<'a> {
        TrainingLoop {
            label: self.stage.clone(),
            cadence: settings.cadence(),
            optimizer: settings.optimizer(),
            schedule: settings.schedule(),
            metrics_path: self.out_dir.join(crate::files::METRICS),
            resume: self.resume(name, settings_hash),
            quiet: self.quiet,
        }
    }

    /// Snapshots for resuming one training loop (`label`) of this stage. Their key folds in
    /// the parent checkpoint's hash (from its manifest) next to the loop's settings, so a
    /// snapshot made from another parent (after `--restart-from` an earlier stage, say) is
    /// never resumed.
    pub fn resume(&self, label: &str, config_hash: &str) -> Resume {
        Resume::new(
            &self.out_dir,
            label,
            &resume_key(config_hash, self.parent_dir.as_deref()),
            self.checkpoint_every,
            &self.model,
        )
        .interrupt_after(self.interrupt_after)
    }
}

/// A loop's settings plus the hash of the checkpoint it starts from. A parent without a
/// readable manifest counts as none here; loading it fails later with the reason.
fn resume_key(config_hash: &str, parent_dir: Option<&Path>) -> String {
    let parent = parent_dir
        .and_then(|dir| Manifest::load(&dir.join(crate::files::MANIFEST)).ok())
        .map_or_else(|| "none".to_string(), |m| m.checkpoint_hash);
    format!("{config_hash} parent {parent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(checkpoint_hash: &str) -> Manifest {
        crate::manifest::tests::manifest_with(checkpoint_hash)
    }

    #[test]
    fn a_snapshot_key_changes_with_the_parent_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        for (name, hash) in [("a", "a".repeat(64)), ("b", "b".repeat(64))] {
            let parent = dir.path().join(name);
            std::fs::create_dir_all(&parent).unwrap();
            manifest(&hash)
                .save(&parent.join(crate::files::MANIFEST))
                .unwrap();
        }
        let key = |name: &str| resume_key("settings", Some(&dir.path().join(name)));
        assert_eq!(key("a"), key("a"));
        assert_ne!(key("a"), key("b"));
        assert_ne!(key("a"), resume_key("settings", None));
        assert_ne!(
            key("a"),
            resume_key("other settings", Some(&dir.path().join("a")))
        );
    }
}
