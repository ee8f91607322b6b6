//! The sweep's report card, `NAME/report.md` and `report.html` with its plot in
//! `NAME/report/`: the per-skill table across stages (mean ± sd over seeds, the best model so
//! far marked), each seed's values, which stage-to-stage changes are beyond noise, and every
//! stage's headline numbers. Built only from the seeds' run folders.

mod cells;
mod collect;
mod grid;
mod pass_at_k;
mod skills;

pub use grid::write as write_grid;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chain::layout::seed_dir;
use chain::Stage;

use crate::doc::{self, Block};
use cells::{mean_sd_cell, show};
use collect::{seed_run, SeedRun, Unit};

pub fn write(dir: &Path, seeds: &[u64]) -> Result<PathBuf> {
    let runs = load_runs(dir, seeds)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut blocks = vec![Block::Heading(1, format!("Sweep report card: `{name}`"))];
    blocks.push(Block::Paragraph(intro(dir, &runs)?));
    let (skill_blocks, plot) = skills::section(&runs)?;
    blocks.extend(skill_blocks);
    let (pass_blocks, pass_plots) = pass_at_k::section(&runs)?;
    blocks.extend(pass_blocks);
    blocks.extend(headlines_section(&runs));

    let plot_dir = dir.join(crate::PLOT_DIR);
    std::fs::create_dir_all(&plot_dir)
        .with_context(|| format!("creating {}", plot_dir.display()))?;
    for (file, svg) in plot.into_iter().chain(pass_plots) {
        data::atomic::write(&plot_dir.join(format!("{file}.svg")), svg)?;
    }
    doc::write_card(dir, &format!("Sweep report card: {name}"), &blocks)
}

/// Every seed's run in a folder of seeds (a sweep's, or a grid cell's).
fn load_runs(dir: &Path, seeds: &[u64]) -> Result<Vec<SeedRun>> {
    let mut runs = Vec::new();
    for &seed in seeds {
        let seed_path = seed_dir(dir, seed);
        anyhow::ensure!(
            seed_path.is_dir(),
            "no folder {} for seed {seed} (run the sweep first; each seed's folder is \
             `cargo xtask pipeline --run …/seed-{seed} --seed {seed}`)",
            seed_path.display()
        );
        runs.push(seed_run(seed, &seed_path)?);
    }
    Ok(runs)
}

/// A sweep folder's (or a grid's, or a cell's) `sweep.json`; `None` when it has none.
fn read_info(dir: &Path) -> Result<Option<serde_json::Value>> {
    let path = dir.join(chain::layout::SWEEP_INFO);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let info = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(Some(info))
}

/// `` config `pipeline.toml` with `--set a=1` `--set b=2` ``, from a `sweep.json`.
fn settings_phrase(info: &serde_json::Value) -> String {
    let sets: Vec<String> = strings(&info["overrides"])
        .iter()
        .map(|x| format!("`--set {x}`"))
        .collect();
    let config = info["config"].as_str().unwrap_or("?");
    if sets.is_empty() {
        format!("config `{config}`")
    } else {
        format!("config `{config}` with {}", sets.join(" "))
    }
}

/// A JSON array's strings (nothing for anything else).
fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn intro(dir: &Path, runs: &[SeedRun]) -> Result<String> {
    let info = read_info(dir)?;
    let in_grid = info.as_ref().is_some_and(|v| v.get("cell").is_some());
    let settings = info.as_ref().map_or_else(
        || "settings in each seed's run.json".into(),
        settings_phrase,
    );
    let links: Vec<String> = runs
        .iter()
        .map(|r| {
            let folder = r.dir.file_name().unwrap_or_default().to_string_lossy();
            format!("[seed {}]({folder}/report.md)", r.seed)
        })
        .collect();
    let seeds: Vec<String> = runs.iter().map(|r| r.seed.to_string()).collect();
    let seed_list = seeds.join(",");
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let rebuild = if in_grid {
        "This is one cell of a grid: the grid's `sweep … --report-only` rebuilds it with the \
         grid's report ([../report.md](../report.md))."
            .to_string()
    } else {
        format!("Rebuild with `cargo xtask sweep --run {name} --seeds {seed_list} --report-only`.")
    };
    Ok(format!(
        "{} seeds ({}), {settings}. Each seed is an ordinary run: every stage's `seed` offset by \
         the seed number (model init, data order, sampling), the held-out problems the same \
         for all. Cells are mean ± sample sd over seeds, in %; each seed's own report card: {}. \
         {rebuild}",
        runs.len(),
        seeds.join(", "),
        links.join(", "),
    ))
}

fn headlines_section(runs: &[SeedRun]) -> Vec<Block> {
    // (stage, name) in first-seen order → each seed's value.
    let mut order: Vec<(Stage, String, Unit)> = Vec::new();
    let mut values: BTreeMap<(Stage, String), Vec<(u64, f64)>> = BTreeMap::new();
    for run in runs {
        for h in &run.headlines {
            let key = (h.stage, h.name.clone());
            if !values.contains_key(&key) {
                order.push((h.stage, h.name.clone(), h.unit));
            }
            values.entry(key).or_default().push((run.seed, h.value));
        }
    }
    order.sort_by_key(|(stage, _, _)| *stage);
    let rows = order
        .into_iter()
        .map(|(stage, name, unit)| {
            let seeds = &values[&(stage, name.clone())];
            let vals: Vec<f64> = seeds.iter().map(|v| v.1).collect();
            vec![
                stage.to_string(),
                name,
                mean_sd_cell(&vals, show(unit)),
                seeds
                    .iter()
                    .map(|(s, v)| format!("{s}: {}", show(unit)(*v)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    vec![
        Block::Heading(2, "Every stage's headline numbers".into()),
        Block::Paragraph(
            "From each seed's `manifest.json`, `eval.json` (rows other than the skills above) \
             and `metrics.jsonl` (first and last logged window)."
                .into(),
        ),
        Block::Table {
            header: ["stage", "measurement", "mean ± sd", "each seed"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rows,
        },
    ]
}
