//! The grid's report card, `NAME/report.md` and `.html`: cell against cell. Stages whose
//! checkpoints are the same in every cell (those before the first stage a grid key changes)
//! are named once. For every other stage: each skill's mean ± sd per cell, and each cell minus
//! the first cell, paired by seed, with the sweep's noise test; then the stage's headline
//! numbers per cell. Each cell's own sweep report (linked) has the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use chain::Stage;

use super::cells::{change_cell, mean_sd_cell, pct, show};
use super::collect::{SeedRun, Unit};
use super::skills::Skill;
use super::{load_runs, read_info, settings_phrase, strings};
use crate::doc::{self, Block};
use crate::stats::mean_sd;

/// One cell: its name (`KEY=VALUE,…`) and its runs, one per seed.
struct CellRuns {
    name: String,
    runs: Vec<SeedRun>,
}

/// Writes the grid's report card from its cells' folders (`(name, folder)`, in the grid's
/// order; the first is the one the others are compared with).
pub fn write(dir: &Path, cells: &[(String, PathBuf)], seeds: &[u64]) -> Result<PathBuf> {
    let cells = cells
        .iter()
        .map(|(name, cell_dir)| {
            Ok(CellRuns {
                name: name.clone(),
                runs: load_runs(cell_dir, seeds)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (shared, differing): (Vec<Stage>, Vec<Stage>) = Stage::ALL
        .into_iter()
        .filter(|&s| {
            cells
                .iter()
                .any(|c| c.runs.iter().any(|r| r.skills.contains_key(&s)))
        })
        .partition(|&s| same_in_every_cell(&cells, s));

    let mut blocks = vec![Block::Heading(1, format!("Grid report card: `{name}`"))];
    blocks.push(Block::Paragraph(intro(dir, &name, &cells, seeds)?));
    if !shared.is_empty() {
        let list: Vec<String> = shared.iter().map(|s| s.to_string()).collect();
        blocks.push(Block::Paragraph(format!(
            "{}: the same checkpoints in every cell (each seed's hashes agree), so they are \
             not compared here.",
            list.join(", ")
        )));
    }
    for &stage in &differing {
        blocks.extend(stage_section(&cells, stage));
    }
    doc::write_card(dir, &format!("Grid report card: {name}"), &blocks)
}

fn intro(dir: &Path, name: &str, cells: &[CellRuns], seeds: &[u64]) -> Result<String> {
    let links: Vec<String> = cells
        .iter()
        .map(|c| format!("[`{}`]({}/report.md)", c.name, c.name))
        .collect();
    let seed_list: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let (settings, grid) = settings(dir)?;
    Ok(format!(
        "{} cells × {} seeds ({}), {settings}. Each cell is a folder of ordinary runs, one per seed, with \
         its own sweep report card: {}. Cells are mean ± sample sd over seeds, in %; \
         \"− first\" columns are each cell minus the first cell, paired by seed, in points: \
         ▲/▼ beyond noise (the 95% t-interval of the paired differences excludes 0, their \
         spread floored at the binomial error of one held-out set), ~ within noise. Rebuild \
         with `cargo xtask sweep --run {name} --seeds {}{grid} --report-only`.",
        cells.len(),
        seeds.len(),
        seed_list.join(", "),
        links.join(", "),
        seed_list.join(","),
    ))
}

/// The grid's settings from its `sweep.json`: the config and `--set` items as one phrase, and
/// the `--grid` arguments.
fn settings(dir: &Path) -> Result<(String, String)> {
    let Some(info) = read_info(dir)? else {
        return Ok((
            "settings in each cell's sweep.json".into(),
            " --grid …".into(),
        ));
    };
    let grid: Vec<String> = info["grid"]
        .as_array()
        .map(|axes| {
            axes.iter()
                .map(|a| {
                    let key = a["key"].as_str().unwrap_or("?");
                    format!(" --grid {key}={}", strings(&a["values"]).join(","))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((settings_phrase(&info), grid.join("")))
}

/// Whether every seed's checkpoint after `stage` is the same in every cell that measured it.
fn same_in_every_cell(cells: &[CellRuns], stage: Stage) -> bool {
    let mut by_seed: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for cell in cells {
        for run in &cell.runs {
            if let Some(skills) = run.skills.get(&stage) {
                by_seed
                    .entry(run.seed)
                    .or_default()
                    .insert(&skills.checkpoint_hash);
            }
        }
    }
    by_seed.values().all(|hashes| hashes.len() == 1)
}

fn stage_section(cells: &[CellRuns], stage: Stage) -> Vec<Block> {
    let skills = Skill::all_in(cells.iter().flat_map(|c| &c.runs));
    let mut header = vec!["skill".to_string()];
    header.extend(cells.iter().map(|c| c.name.clone()));
    header.extend(cells[1..].iter().map(|c| format!("{} − first", c.name)));
    let rows = skills
        .iter()
        .map(|skill| {
            let values = |cell: &CellRuns| -> Vec<f64> {
                cell.runs
                    .iter()
                    .filter_map(|r| skill.value(stage, r).map(|v| v.0))
                    .collect()
            };
            let mut row = vec![skill.label.clone()];
            row.extend(cells.iter().map(|c| mean_sd_cell(&values(c), pct)));
            row.extend(
                cells[1..]
                    .iter()
                    .map(|c| difference(skill, stage, &cells[0], c)),
            );
            row
        })
        .collect();
    vec![
        Block::Heading(2, format!("After {stage}")),
        Block::Table { header, rows },
        headlines_table(cells, stage),
    ]
}

/// `other − first` on one skill, paired by seed.
fn difference(skill: &Skill, stage: Stage, first: &CellRuns, other: &CellRuns) -> String {
    let mut diffs = Vec::new();
    let mut accuracies = Vec::new();
    let mut n = 0;
    for run in &other.runs {
        let base = first.runs.iter().find(|r| r.seed == run.seed);
        let pair = (
            base.and_then(|b| skill.value(stage, b)),
            skill.value(stage, run),
        );
        if let (Some(a), Some(b)) = pair {
            diffs.push(b.0 - a.0);
            accuracies.push((a.0 + b.0) / 2.0);
            n = n.max(b.1);
        }
    }
    change_cell(&diffs, n, mean_sd(&accuracies).0)
}

/// The stage's headline numbers (manifest, eval.json, metrics), mean ± sd per cell.
fn headlines_table(cells: &[CellRuns], stage: Stage) -> Block {
    let mut order: Vec<(String, Unit)> = Vec::new();
    for cell in cells {
        for run in &cell.runs {
            for h in run.headlines.iter().filter(|h| h.stage == stage) {
                if !order.iter().any(|(n, _)| n == &h.name) {
                    order.push((h.name.clone(), h.unit));
                }
            }
        }
    }
    let rows = order
        .into_iter()
        .map(|(name, unit)| {
            let mut row = vec![name.clone()];
            row.extend(cells.iter().map(|cell| {
                let values: Vec<f64> = cell
                    .runs
                    .iter()
                    .flat_map(|r| &r.headlines)
                    .filter(|h| h.stage == stage && h.name == name)
                    .map(|h| h.value)
                    .collect();
                mean_sd_cell(&values, show(unit))
            }));
            row
        })
        .collect();
    let mut header = vec![format!("{stage}: measurement")];
    header.extend(cells.iter().map(|c| c.name.clone()));
    Block::Table { header, rows }
}
