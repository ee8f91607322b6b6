//! What every section of the run's report card writes into and reads from: the report being
//! built (`Report`), one finished stage's files (`StageFiles`) and the small formatting helpers.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chain::layout::RUN_INFO;
use chain::{keys, Stage};
use eval::{read_eval, EvalRow};
use serde_json::{Map, Value};
use trainer::{files, Manifest};

use crate::doc::Block;
use crate::plots::{self, Series};

pub(super) struct Report {
    pub(super) run_dir: PathBuf,
    pub(super) blocks: Vec<Block>,
    /// `(name, SVG)` of each plot, written to `report/NAME.svg` at the end.
    pub(super) plots: Vec<(String, String)>,
}

/// The files of one finished stage (one with a manifest).
pub(super) struct StageFiles {
    pub(super) dir: PathBuf,
    pub(super) manifest: Manifest,
}

pub(super) type Row = Map<String, Value>;

impl StageFiles {
    /// The rows of one of the stage's metrics files; none when the file is absent (a twin
    /// that was not trained), an error naming the file and line when one is malformed.
    pub(super) fn metrics(&self, file: &str) -> Result<Vec<Row>> {
        let path = self.dir.join(file);
        if !path.exists() {
            return Ok(Vec::new());
        }
        trainer::metrics::read_rows(&path)
    }

    /// `eval.json`'s rows; none when the stage wrote none.
    pub(super) fn eval(&self) -> Result<Vec<EvalRow>> {
        let path = self.dir.join(files::EVAL);
        if !path.exists() {
            return Ok(Vec::new());
        }
        read_eval(&path)
    }
}

pub(super) fn number(row: &Row, key: &str) -> Option<f64> {
    row.get(key).and_then(Value::as_f64)
}

/// `(step, value)` of every row that has `key`, value scaled by `scale`.
pub(super) fn series(rows: &[Row], key: &str, scale: f64) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((number(r, keys::STEP)?, number(r, key)? * scale)))
        .collect()
}

pub(super) fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

pub(super) fn first_last(points: &[(f64, f64)], digits: usize) -> String {
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
pub(super) fn accuracy_curves(rows: &[Row]) -> Vec<Series> {
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
    pub(super) fn stage(&self, stage: Stage) -> Result<Option<StageFiles>> {
        let dir = stage.dir(&self.run_dir);
        let path = dir.join(files::MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        let manifest = Manifest::load(&path)?;
        Ok(Some(StageFiles { dir, manifest }))
    }

    pub(super) fn heading(&mut self, text: &str) {
        self.blocks.push(Block::Heading(2, text.to_string()));
    }

    pub(super) fn para(&mut self, text: String) {
        self.blocks.push(Block::Paragraph(text));
    }

    pub(super) fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        });
    }

    /// Draws a line chart as `report/NAME.svg` and links it, when there is data.
    pub(super) fn line_plot(
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
    pub(super) fn plot(&mut self, name: &str, title: &str, svg: String) {
        self.plots.push((name.to_string(), svg));
        self.blocks.push(Block::Image {
            path: format!("{}/{name}.svg", crate::PLOT_DIR),
            alt: title.to_string(),
        });
    }

    /// Which preset and config made the run, from `run.json`.
    pub(super) fn preset(&mut self) -> Result<()> {
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
