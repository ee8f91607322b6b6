//! A run folder's layout, shared by the commands that write runs (xtask) and those that read
//! them (the report, the sweep report, the playground).
//!
//! ```text
//! runs/NAME/            a run: run.json, run.lock, tokenizer.json, one folder per stage
//! runs/NAME/STAGE/      a stage: checkpoint, manifest, metrics, eval.json, skills.json
//! runs/SWEEP/seed-S/    a sweep: sweep.json, run.lock, one run per seed
//! ```

use std::path::{Path, PathBuf};

/// `run.json` in a run folder: which preset and config made the run.
pub const RUN_INFO: &str = "run.json";

/// `sweep.json` in a sweep folder: which seeds and settings made it.
pub const SWEEP_INFO: &str = "sweep.json";

/// The folder of one seed of a sweep.
pub fn seed_dir(sweep_dir: &Path, seed: u64) -> PathBuf {
    sweep_dir.join(format!("seed-{seed}"))
}
