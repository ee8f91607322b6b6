//! One run's report card, `runs/NAME/report.md` and
//! `report.html` with SVG plots in `runs/NAME/report/`. Built only from the files the stages
//! wrote (`manifest.json`, `metrics*.jsonl`, `eval.json`), so any finished run can be
//! reported again, and every number in it traces back to a file.
//!
//! One module per section: the chain table, one per stage, the per-K table across stages.
//! A stage that has not run (no manifest) is left out; a file that is there but malformed (a
//! manifest, a metrics line, `eval.json`, `run.json`) is an error naming it, and then nothing
//! is written: the report is built in memory and its files are written only at the end.

mod cot_sft;
mod dpo;
mod overview;
mod per_k;
mod pretrain;
mod rlvr;
mod sft;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use eval::{read_eval, EvalRow};
use serde_json::{Map, Value};
use trainer::{files, Manifest};

use crate::doc::{self, Block};
use crate::plots::{self, Series};
use chain::layout::RUN_INFO;
use chain::{keys, Stage};

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
    let md_path = run_dir.join("report.md");
    data::atomic::write(&md_path, doc::markdown(&report.blocks))?;
    data::atomic::write(
        &run_dir.join("report.html"),
        doc::html(&format!("Report card: {name}"), &report.blocks),
    )?;
    Ok(md_path)
}

struct Report {
    run_dir: PathBuf,
    blocks: Vec<Block>,
    /// `(name, SVG)` of each plot, written to `report/NAME.svg` at the end.
    plots: Vec<(String, String)>,
}

/// The files of one finished stage (one with a manifest).
struct StageFiles {
    dir: PathBuf,
    manifest: Manifest,
}

type Row = Map<String, Value>;

impl StageFiles {
    /// The rows of one of the stage's metrics files; none when the file is absent (a twin
    /// that was not trained), an error naming the file and line when one is malformed.
    fn metrics(&self, file: &str) -> Result<Vec<Row>> {
        let path = self.dir.join(file);
        if !path.exists() {
            return Ok(Vec::new());
        }
        trainer::metrics::read_rows(&path)
    }

    /// `eval.json`'s rows; none when the stage wrote none.
    fn eval(&self) -> Result<Vec<EvalRow>> {
        let path = self.dir.join(files::EVAL);
        if !path.exists() {
            return Ok(Vec::new());
        }
        read_eval(&path)
    }
}

fn number(row: &Row, key: &str) -> Option<f64> {
    row.get(key).and_then(Value::as_f64)
}

/// `(step, value)` of every row that has `key`, value scaled by `scale`.
fn series(rows: &[Row], key: &str, scale: f64) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((number(r, keys::STEP)?, number(r, key)? * scale)))
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn first_last(points: &[(f64, f64)], digits: usize) -> String {
    match (points.first(), points.last()) {
        (Some(a), Some(b)) => format!(
            "{:.d$} (step {}) → **{:.d$}** (step {})",
            a.1,
            a.0,
            b.1,
            b.0,
            d = digits
        ),
        _ => "not logged".to_string(),
    }
}

/// `eval/accuracy_kK` columns of a metrics file as one curve per K, in percent.
fn accuracy_curves(rows: &[Row]) -> Vec<Series> {
    let prefix = keys::PER_K_ACCURACY_PREFIX;
    let mut keys: Vec<String> = rows
        .iter()
        .flat_map(|r| r.keys().filter(|k| k.starts_with(prefix)).cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys.iter()
        .filter_map(|key| {
            let k = key.strip_prefix(prefix)?;
            Some((format!("K={k}"), series(rows, key, 100.0)))
        })
        .collect()
}

impl Report {
    /// The stage's files when it finished; `None` when it has no manifest (not run).
    fn stage(&self, stage: Stage) -> Result<Option<StageFiles>> {
        let dir = stage.dir(&self.run_dir);
        let path = dir.join(files::MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        let manifest = Manifest::load(&path)?;
        Ok(Some(StageFiles { dir, manifest }))
    }

    fn heading(&mut self, text: &str) {
        self.blocks.push(Block::Heading(2, text.to_string()));
    }

    fn para(&mut self, text: String) {
        self.blocks.push(Block::Paragraph(text));
    }

    fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        });
    }

    /// Draws a line chart as `report/NAME.svg` and links it, when there is data.
    fn line_plot(
        &mut self,
        name: &str,
        title: &str,
        y_label: &str,
        series: Vec<Series>,
    ) -> Result<()> {
        let series: Vec<Series> = series.into_iter().filter(|(_, s)| !s.is_empty()).collect();
        if series.is_empty() {
            return Ok(());
        }
        let svg = plots::lines(name, title, y_label, &series)?;
        self.plot(name, title, svg);
        Ok(())
    }

    /// Keeps a plot for writing and links it.
    fn plot(&mut self, name: &str, title: &str, svg: String) {
        self.plots.push((name.to_string(), svg));
        self.blocks.push(Block::Image {
            path: format!("{}/{name}.svg", crate::PLOT_DIR),
            alt: title.to_string(),
        });
    }

    /// Which preset and config made the run, from `run.json`.
    fn preset(&mut self) -> Result<()> {
        let path = self.run_dir.join(RUN_INFO);
        let info = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str::<Value>(&text)
                    .with_context(|| format!("{} is not valid JSON", path.display()))?,
            )
        } else {
            None
        };
        let text = match info {
            Some(v) => format!(
                "Preset: **{}** (config `{}`{}). Every number below is read from this run's \
                 `manifest.json`, `metrics*.jsonl` and `eval.json` files; rebuild with \
                 `cargo xtask report --run {}`.",
                v["preset"].as_str().unwrap_or("?"),
                v["config"].as_str().unwrap_or("?"),
                v["overrides"]
                    .as_array()
                    .filter(|o| !o.is_empty())
                    .map(|o| {
                        let items: Vec<String> = o
                            .iter()
                            .filter_map(|x| x.as_str())
                            .map(|x| format!("--set {x}"))
                            .collect();
                        format!(", `{}`", items.join(" "))
                    })
                    .unwrap_or_default(),
                self.run_dir
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
            ),
            None => "Preset: unknown (no run.json). Every number below is read from this run's \
                     files."
                .to_string(),
        };
        self.para(text);
        Ok(())
    }
}
