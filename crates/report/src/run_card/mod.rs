//! One run's report card, `runs/NAME/report.md` and
//! `report.html` with SVG plots in `runs/NAME/report/`. Built only from the files the stages
//! wrote (`manifest.json`, `metrics*.jsonl`, `eval.json`), so any finished run can be
//! reported again, and every number in it traces back to a file.
//!
//! One module per section: the chain table, one per stage, the per-K table across stages.
//! A stage that has not run (no manifest) is left out; a file that is there but malformed (a
//! manifest, a metrics line, `eval.json`, `run.json`) is an error naming it, and then nothing
//! is written: the report is built in memory and its files are written only at the end.

mod card;
mod cot_sft;
mod dpo;
mod overview;
mod per_k;
mod pretrain;
mod rlvr;
mod sft;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chain::Stage;

use crate::doc::{self, Block};
use card::Report;

fn ensure_run_dir(run_dir: &Path) -> Result<()> {
    anyhow::ensure!(
        run_dir.is_dir(),
        "no run folder {} (run `cargo xtask pipeline` first)",
        run_dir.display()
    );
    Ok(())
}

/// Writes the report of the run in `run_dir`; returns the Markdown file's path. The caller
/// holds the run's lock.
pub fn write(run_dir: &Path) -> Result<PathBuf> {
    ensure_run_dir(run_dir)?;
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut report = Report {
        run_dir: run_dir.to_path_buf(),
        blocks: Vec::new(),
        plots: Vec::new(),
    };
    report
        .blocks
        .push(Block::Heading(1, format!("Report card: run `{name}`")));
    report.preset()?;
    overview::section(&mut report)?;
    for stage in Stage::ALL {
        let Some(files) = report.stage(stage)? else {
            continue;
        };
        match stage {
            Stage::Pretrain => pretrain::section(&mut report, &files)?,
            Stage::Sft => sft::section(&mut report, &files)?,
            Stage::CotSft => cot_sft::section(&mut report, &files)?,
            Stage::Dpo => dpo::section(&mut report, &files)?,
            Stage::Rlvr => rlvr::section(&mut report, &files)?,
        }
    }
    per_k::section(&mut report)?;

    // Everything was read: now write.
    let plot_dir = run_dir.join(crate::PLOT_DIR);
    std::fs::create_dir_all(&plot_dir)
        .with_context(|| format!("creating {}", plot_dir.display()))?;
    for (plot, svg) in &report.plots {
        data::atomic::write(&plot_dir.join(format!("{plot}.svg")), svg)?;
    }
    doc::write_card(run_dir, &format!("Report card: {name}"), &report.blocks)
}
