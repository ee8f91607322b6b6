//! The cells of a grid often share their first stages: a grid over `dpo.*` settings trains the
//! same pretrain, SFT and CoT-SFT in every cell. Before a run in a grid cell
//! (`NAME/CELL/seed-S`) trains a stage, it looks at the same seed in the grid's other cells:
//! a finished stage there that this run would make itself (the same settings, tokenizer,
//! model shape, device and parent checkpoint) is copied instead of trained.
//!
//! The other run is read without its lock, so it may be writing as we copy. The copy is
//! therefore made first and checked after: its manifest must match, and its weights must hash
//! to the manifest's checkpoint hash, before it is moved into place. Training is
//! deterministic, so the copy holds the files this run would have written (the sweep test
//! compares every checkpoint's hash against runs made without copying).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chain::layout::SWEEP_INFO;
use chain::Stage;
use data::TextTokenizer;
use trainer::{files, Manifest};

use crate::run::Run;

/// The same seed's run folders in the grid's other cells, when `run_dir` is
/// `NAME/CELL/seed-S` inside a grid (the grid's `sweep.json` lists its cells); else none.
pub fn siblings(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let (Some(seed), Some(cell_dir)) = (run_dir.file_name(), run_dir.parent()) else {
        return Ok(vec![]);
    };
    let (Some(cell), Some(grid_dir)) = (cell_dir.file_name(), cell_dir.parent()) else {
        return Ok(vec![]);
    };
    let info_path = grid_dir.join(SWEEP_INFO);
    if !cell_dir.join(SWEEP_INFO).is_file() || !info_path.is_file() {
        return Ok(vec![]);
    }
    let text = std::fs::read_to_string(&info_path)
        .with_context(|| format!("reading {}", info_path.display()))?;
    let info: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", info_path.display()))?;
    let cells = info["cells"].as_array().cloned().unwrap_or_default();
    Ok(cells
        .iter()
        .filter_map(|c| c.as_str())
        .filter(|&c| c != cell.to_string_lossy())
        .map(|c| grid_dir.join(c).join(seed))
        .filter(|dir| dir.is_dir())
        .collect())
}

/// Copies `stage` from the first sibling that finished it as this run would, and returns
/// that sibling's stage folder; `None` when no sibling has it.
pub fn from_siblings(
    run: &Run,
    stage: Stage,
    tokenizer: &TextTokenizer,
    siblings: &[PathBuf],
) -> Result<Option<PathBuf>> {
    let target = run.stage_dir(stage);
    let staging = target.with_file_name(format!(".{}.copying", stage.name()));
    for sibling in siblings {
        let source = stage.dir(sibling);
        if !source.join(files::MANIFEST).is_file() {
            continue;
        }
        remove_if_there(&staging)?;
        copy_files(&source, &staging)?;
        if is_the_stage(run, stage, tokenizer, &staging)? {
            remove_if_there(&target)?;
            std::fs::rename(&staging, &target)
                .with_context(|| format!("moving {} to {}", staging.display(), target.display()))?;
            return Ok(Some(source));
        }
        remove_if_there(&staging)?;
    }
    Ok(None)
}

/// The copied folder holds the stage this run would train, whole: its manifest matches and
/// its weights are the ones the manifest names.
fn is_the_stage(run: &Run, stage: Stage, tokenizer: &TextTokenizer, dir: &Path) -> Result<bool> {
    let Ok(manifest) = Manifest::load(&dir.join(files::MANIFEST)) else {
        return Ok(false);
    };
    let checkpoint = dir.join(files::CHECKPOINT);
    Ok(manifest.device == run.device.to_string()
        && run.would_make(stage, &manifest, tokenizer)?
        && checkpoint.is_file()
        && trainer::outputs::checkpoint_hash(&checkpoint)? == manifest.checkpoint_hash)
}

/// Copies the plain files of `from` into a new `to`: not resume snapshots (folders), nor an
/// atomic write's temporary file (`.NAME.PID.N.tmp`).
fn copy_files(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let entries = std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type()?.is_file() && !hidden {
            let dest = to.join(entry.file_name());
            std::fs::copy(entry.path(), &dest).with_context(|| {
                format!("copying {} to {}", entry.path().display(), dest.display())
            })?;
        }
    }
    Ok(())
}

fn remove_if_there(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}
