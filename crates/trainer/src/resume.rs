//! Resumable training: about every `every` steps a loop snapshots its model (with parameter
//! ids), optimizer state, step, metrics position and its step body's own state into
//! `resume-LABEL/` beside its outputs. A rerun of the killed stage restores the newest
//! snapshot, so at most one interval (plus one logging window) is lost.
//! The snapshot is written to a temporary folder and swapped in, so a kill mid-write leaves
//! the previous one usable. A saved stage deletes its loops' snapshots (`save_stage`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use model::{checkpoint, Gpt, GptConfig};
use serde::{Deserialize, Serialize};

use crate::{MetricsSink, OptimizerStep};

const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const STATE: &str = "state.json";
/// Part of every snapshot's key: a snapshot written by code that drew its random numbers or
/// saved its state differently is never resumed (2: the loop driver, draws from (seed, step)).
const FORMAT: &str = "snapshot format 2";

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    /// Steps completed.
    step: usize,
    /// The loop's settings: a snapshot from other settings is never resumed.
    config_hash: String,
    /// Rows of metrics.jsonl written up to this step.
    metrics_rows: usize,
    /// What the step body needs besides weights and optimizer (`StepBody::state`).
    #[serde(default)]
    body_state: serde_json::Value,
}

impl Snapshot {
    /// `state.json`'s text. Every f64 is written as the shortest text that reads back to the
    /// same bits, and read back by serde_json's exact parser (its `float_roundtrip` feature,
    /// enabled in the workspace): a resumed run must continue from the very numbers the
    /// interrupted one had (an EMA one ulp off made a resumed RLVR stage differ). JSON has no
    /// NaN or infinity (serde_json writes them as `null`): a body keeps such a value as an
    /// `Option` or as its bits.
    fn encode(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    fn decode(text: &str) -> Result<Self> {
        Ok(serde_json::from_str(text)?)
    }
}

pub struct Resume {
    dir: PathBuf,
    config_hash: String,
    every: usize,
    model: GptConfig,
    interrupt_after: Option<usize>,
}

/// Where a loop starts: step 0 with a fresh metrics file, or a restored snapshot.
pub struct Start {
    pub model: Gpt,
    pub step: usize,
    pub metrics: MetricsSink,
    /// The step body's saved state (`Null` at step 0).
    pub body_state: serde_json::Value,
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
            config_hash: format!("{config_hash} {FORMAT}"),
            every,
            model: model.clone(),
            interrupt_after: None,
        }
    }

    /// For tests of resuming: stop the loop with an error right after the first snapshot at
    /// or after step `step`, as a kill would, but at a known point.
    pub fn interrupt_after(mut self, step: Option<usize>) -> Self {
        self.interrupt_after = step;
        self
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
            let snapshot = Snapshot::decode(&text).with_context(|| {
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
                    body_state: snapshot.body_state,
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
            body_state: serde_json::Value::Null,
        })
    }

    /// Whether a snapshot is due after step `done`: a multiple of `every` was passed since the
    /// snapshot after step `last`, or the loop just ended (a stage with two loops, or a final
    /// evaluation, can still be killed after it; a rerun then resumes at the end, not at 0).
    pub fn is_due(&self, last: usize, done: usize, total: usize) -> bool {
        self.every > 0
            && (done / self.every > last / self.every || (done == total && last != total))
    }

    /// Snapshots the loop after step `done`.
    pub fn save(
        &self,
        done: usize,
        model: &Gpt,
        optimizer: &OptimizerStep,
        metrics: &MetricsSink,
        body_state: serde_json::Value,
    ) -> Result<()> {
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
            body_state,
        };
        std::fs::write(tmp.join(STATE), snapshot.encode()?)?;
        let _ = std::fs::remove_dir_all(&old);
        if self.dir.exists() {
            std::fs::rename(&self.dir, &old)?;
        }
        std::fs::rename(&tmp, &self.dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), self.dir.display()))?;
        let _ = std::fs::remove_dir_all(&old);
        if let Some(after) = self.interrupt_after.filter(|&after| done >= after) {
            anyhow::bail!(
                "interrupted after the snapshot at step {done} (asked to stop at {after})"
            );
        }
        Ok(())
    }
}

/// Deletes every loop's snapshot in a stage folder (`resume-*`, with the `.old`/`.tmp` of an
/// interrupted swap) and returns how many folders went. For a stage that is saved, or that
/// must start over (`pipeline --restart-from`): a snapshot only records the settings, not the code that
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

    /// Awkward f64s survive a snapshot bit for bit, whatever values a CPU happens to draw:
    /// among them the RLVR reward EMA that once came back one ulp off (`0.1 × 0.09375`).
    #[test]
    fn body_state_floats_round_trip_bit_for_bit() {
        let values = [
            0.1 * 0.09375,
            0.9 * (0.1 * 0.09375) + 0.1 * 0.0,
            0.1 * 3.0,
            0.009375 * 0.9,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 3.0,
            5e-324,
            f64::MAX,
            -0.0,
            -2.2250738585072014e-308,
            std::f64::consts::PI * 1e300,
        ];
        assert_eq!(0.1f64 * 0.09375, 0.009375000000000001);
        let snapshot = Snapshot {
            step: 3,
            config_hash: "h".into(),
            metrics_rows: 1,
            body_state: serde_json::json!({ "values": values, "reward_ema": values[0] }),
        };
        let back = Snapshot::decode(&snapshot.encode().unwrap()).unwrap();
        let read: Vec<f64> = back.body_state["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (written, read) in values.iter().zip(&read) {
            assert_eq!(
                written.to_bits(),
                read.to_bits(),
                "{written:e} came back as {read:e}"
            );
        }
        let ema = back.body_state["reward_ema"].as_f64().unwrap();
        assert_eq!(ema.to_bits(), 0x3f83333333333334, "{ema:e}");
    }

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
