//! Resumable training: every `every` steps a loop snapshots its model (with parameter ids),
//! optimizer state, step and metrics position into `resume-LABEL/` beside its outputs. A
//! rerun of the killed stage restores the newest snapshot, so at most one interval is lost.
//! The snapshot is written to a temporary folder and swapped in, so a kill mid-write leaves
//! the previous one usable. A finished loop deletes its snapshot.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use model::{checkpoint, Gpt, GptConfig};
use serde::{Deserialize, Serialize};

use crate::{MetricsSink, OptimizerStep};

const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const STATE: &str = "state.json";

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    /// Steps completed.
    step: usize,
    /// The loop's settings: a snapshot from other settings is never resumed.
    config_hash: String,
    /// Rows of metrics.jsonl written up to this step.
    metrics_rows: usize,
}

pub struct Resume {
    dir: PathBuf,
    config_hash: String,
    every: usize,
    model: GptConfig,
}

/// Where a loop starts: step 0 with a fresh metrics file, or a restored snapshot.
pub struct Start {
    pub model: Gpt,
    pub step: usize,
    pub metrics: MetricsSink,
}

impl Resume {
    /// `label` tells apart the loops of one stage (the SFT run and its ablation twin).
    /// `every` = 0 disables snapshots.
    pub fn new(
        out_dir: &Path,
        label: &str,
        config_hash: &str,
        every: usize,
        model: &GptConfig,
    ) -> Self {
        Self {
            dir: out_dir.join(format!("resume-{label}")),
            config_hash: config_hash.to_string(),
            every,
            model: model.clone(),
        }
    }

    /// The snapshot folder, or the previous one if a swap was interrupted.
    fn existing(&self) -> Option<PathBuf> {
        [self.dir.clone(), self.dir.with_extension("old")]
            .into_iter()
            .find(|d| d.join(STATE).is_file())
    }

    /// Restores the newest snapshot of this loop (same settings) into `optimizer` and returns
    /// its model, step and metrics sink; otherwise returns `model` at step 0 and a fresh sink.
    pub fn start(
        &self,
        model: Gpt,
        optimizer: &mut OptimizerStep,
        metrics_path: &Path,
        device: &Device,
    ) -> Result<Start> {
        if let Some(dir) = self.existing() {
            let text = std::fs::read_to_string(dir.join(STATE))?;
            let snapshot: Snapshot = serde_json::from_str(&text).with_context(|| {
                format!("{} is not a valid snapshot", dir.join(STATE).display())
            })?;
            if snapshot.config_hash == self.config_hash {
                let restored = checkpoint::load_state(&self.model, &dir.join(MODEL), device)?;
                optimizer.load_state(&dir.join(OPTIMIZER), device)?;
                eprintln!("resuming from step {} ({})", snapshot.step, dir.display());
                return Ok(Start {
                    model: restored,
                    step: snapshot.step,
                    metrics: MetricsSink::resume(metrics_path, snapshot.metrics_rows)?,
                });
            }
            eprintln!(
                "ignoring {}: it was made with other settings",
                dir.display()
            );
        }
        Ok(Start {
            model,
            step: 0,
            metrics: MetricsSink::create(metrics_path)?,
        })
    }

    /// Snapshots after step `done` when it is due (never after the last step: the stage's
    /// own checkpoint follows).
    pub fn save_if_due(
        &self,
        done: usize,
        total: usize,
        model: &Gpt,
        optimizer: &OptimizerStep,
        metrics: &MetricsSink,
    ) -> Result<()> {
        if self.every == 0 || !done.is_multiple_of(self.every) || done == total {
            return Ok(());
        }
        let tmp = self.dir.with_extension("tmp");
        let old = self.dir.with_extension("old");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        checkpoint::save_state(model, &tmp.join(MODEL))?;
        optimizer.save_state(&tmp.join(OPTIMIZER))?;
        let snapshot = Snapshot {
            step: done,
            config_hash: self.config_hash.clone(),
            metrics_rows: metrics.rows(),
        };
        std::fs::write(tmp.join(STATE), serde_json::to_string_pretty(&snapshot)?)?;
        let _ = std::fs::remove_dir_all(&old);
        if self.dir.exists() {
            std::fs::rename(&self.dir, &old)?;
        }
        std::fs::rename(&tmp, &self.dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), self.dir.display()))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// The loop finished: its snapshot is no longer needed.
    pub fn finish(&self) {
        for dir in [
            &self.dir,
            &self.dir.with_extension("old"),
            &self.dir.with_extension("tmp"),
        ] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Deletes every loop's snapshot in a stage folder (`resume-*`, with the `.old`/`.tmp` of an
/// interrupted swap) and returns how many folders went. For a stage that must start over
/// (`pipeline --restart-from`): a snapshot only records the settings, not the code that
/// trained it, so after a code change resuming one would mix two versions in one model.
pub fn discard_snapshots(stage_dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(stage_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", stage_dir.display())),
    };
    let mut discarded = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", stage_dir.display()))?;
        let is_snapshot = entry.file_name().to_string_lossy().starts_with("resume-");
        if is_snapshot && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            discarded += 1;
        }
    }
    Ok(discarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discarding_removes_every_snapshot_folder_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for folder in ["resume-cot", "resume-direct.old", "resume-cot.tmp"] {
            std::fs::create_dir_all(dir.path().join(folder)).unwrap();
            std::fs::write(dir.path().join(folder).join(STATE), "{}").unwrap();
        }
        std::fs::write(dir.path().join("metrics.jsonl"), "").unwrap();
        std::fs::write(
            dir.path().join("resume-notes.txt"),
            "a file, not a snapshot",
        )
        .unwrap();
        assert_eq!(discard_snapshots(dir.path()).unwrap(), 3);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["metrics.jsonl", "resume-notes.txt"]);
        assert_eq!(discard_snapshots(&dir.path().join("missing")).unwrap(), 0);
    }
}
