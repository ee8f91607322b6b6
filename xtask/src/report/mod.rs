//! `cargo xtask report --run NAME`: the run's report card, `runs/NAME/report.md` and
//! `report.html` with SVG plots in `runs/NAME/report/`. Built only from the files the stages
//! wrote (`manifest.json`, `metrics*.jsonl`, `eval.json`), so any finished run can be
//! reported again, and every number in it traces back to a file.

mod doc;
mod plots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use eval::{read_eval, EvalRow};
use serde_json::{Map, Value};
use trainer::{files, Manifest};

use crate::config::STAGES;
use doc::Block;
use plots::Series;

#[derive(Args)]
pub struct ReportArgs {
    #[arg(long, default_value = "default")]
    run: String,
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let path = write(&args.runs_dir.join(&args.run))?;
    eprintln!("report: {}", path.display());
    Ok(())
}

/// Writes the report of the run in `run_dir`; returns the Markdown file's path.
pub fn write(run_dir: &Path) -> Result<PathBuf> {
    anyhow::ensure!(
        run_dir.is_dir(),
        "no run folder {} (run `cargo xtask pipeline` first)",
        run_dir.display()
    );
    let plot_dir = run_dir.join("report");
    std::fs::create_dir_all(&plot_dir)
        .with_context(|| format!("creating {}", plot_dir.display()))?;
    let report = Report {
        run_dir: run_dir.to_path_buf(),
        plot_dir,
        blocks: Vec::new(),
    };
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut report = report;
    report
        .blocks
        .push(Block::Heading(1, format!("Report card: run `{name}`")));
    report.preset();
    report.chain()?;
    report.pretrain()?;
    report.sft()?;
    report.cot()?;
    report.dpo()?;
    report.rlvr()?;
    report.per_k_by_stage()?;

    let md_path = run_dir.join("report.md");
    write_atomic(&md_path, &doc::markdown(&report.blocks))?;
    write_atomic(
        &run_dir.join("report.html"),
        &doc::html(&format!("Report card: {name}"), &report.blocks),
    )?;
    Ok(md_path)
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

struct Report {
    run_dir: PathBuf,
    plot_dir: PathBuf,
    blocks: Vec<Block>,
}

/// One stage's files, when the stage finished.
struct Stage {
    dir: PathBuf,
    manifest: Manifest,
}

impl Stage {
    fn metrics(&self, file: &str) -> Vec<Map<String, Value>> {
        trainer::metrics::read_rows(&self.dir.join(file)).unwrap_or_default()
    }

    fn eval(&self) -> Vec<EvalRow> {
        read_eval(&self.dir.join(files::EVAL)).unwrap_or_default()
    }
}

fn number(row: &Map<String, Value>, key: &str) -> Option<f64> {
    row.get(key).and_then(Value::as_f64)
}

/// `(step, value)` of every row that has `key`, value scaled by `scale`.
fn series(rows: &[Map<String, Value>], key: &str, scale: f64) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((number(r, "step")?, number(r, key)? * scale)))
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

impl Report {
    fn stage(&self, name: &str) -> Option<Stage> {
        let dir = self.run_dir.join(name);
        let manifest = Manifest::load(&dir.join(files::MANIFEST)).ok()?;
        Some(Stage { dir, manifest })
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

    /// Draws a line chart into `report/NAME.svg` and links it, when there is data.
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
        plots::lines(
            &self.plot_dir.join(format!("{name}.svg")),
            title,
            y_label,
            &series,
        )?;
        self.image(name, title);
        Ok(())
    }

    fn image(&mut self, name: &str, title: &str) {
        self.blocks.push(Block::Image {
            path: format!("report/{name}.svg"),
            alt: title.to_string(),
        });
    }

    fn preset(&mut self) {
        let info = std::fs::read_to_string(self.run_dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
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
    }

    fn chain(&mut self) -> Result<()> {
        self.heading("The chain");
        let mut rows = Vec::new();
        for (name, parent) in STAGES {
            let Some(stage) = self.stage(name) else {
                rows.push(vec![
                    name.to_string(),
                    parent.unwrap_or("—").to_string(),
                    "not run".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                ]);
                continue;
            };
            let m = &stage.manifest;
            let throughput = {
                let rows = stage.metrics(files::METRICS);
                let tokens: Vec<f64> = rows
                    .iter()
                    .filter_map(|r| number(r, "tokens_per_s"))
                    .collect();
                let pairs: Vec<f64> = rows
                    .iter()
                    .filter_map(|r| number(r, "pairs_per_s"))
                    .collect();
                if !tokens.is_empty() {
                    format!(
                        "{:.0} tokens/s",
                        tokens.iter().sum::<f64>() / tokens.len() as f64
                    )
                } else if !pairs.is_empty() {
                    format!(
                        "{:.0} pairs/s",
                        pairs.iter().sum::<f64>() / pairs.len() as f64
                    )
                } else {
                    "—".to_string()
                }
            };
            let link = match (parent, &m.parent_checkpoint_hash) {
                (Some(p), Some(hash)) => match self.stage(p) {
                    Some(ps) if &ps.manifest.checkpoint_hash == hash => {
                        "✓ parent's final checkpoint".to_string()
                    }
                    Some(_) => "✗ parent was retrained since".to_string(),
                    None => format!("from {}", m.parent_dir.clone().unwrap_or_default()),
                },
                _ => "—".to_string(),
            };
            rows.push(vec![
                name.to_string(),
                parent.unwrap_or("—").to_string(),
                m.step.to_string(),
                format!("{:.0} s", m.wall_time_s),
                throughput,
                format!("`{}`", &m.checkpoint_hash[..12]),
                link,
            ]);
        }
        self.table(
            &[
                "stage",
                "parent",
                "steps",
                "wall time",
                "throughput",
                "checkpoint",
                "init",
            ],
            rows,
        );
        Ok(())
    }

    fn pretrain(&mut self) -> Result<()> {
        let Some(stage) = self.stage("pretrain") else {
            return Ok(());
        };
        self.heading("Pretrain");
        let rows = stage.metrics(files::METRICS);
        let val = series(&rows, "val_loss", 1.0);
        let train = series(&rows, "loss", 1.0);
        self.para(format!(
            "Validation loss {}; last train loss {:.3}.",
            first_last(&val, 3),
            train.last().map_or(f64::NAN, |p| p.1)
        ));
        self.line_plot(
            "pretrain_loss",
            "Pretrain: cross-entropy",
            "loss",
            vec![("train".into(), train), ("validation".into(), val)],
        )
    }

    fn sft(&mut self) -> Result<()> {
        let Some(stage) = self.stage("sft") else {
            return Ok(());
        };
        self.heading("SFT: the prompt-mask ablation");
        let rows: Vec<Vec<String>> = stage
            .eval()
            .iter()
            .filter(|r| r.task == "reverse")
            .map(|r| {
                vec![
                    r.mode.clone(),
                    format!("{}/{}", r.correct, r.n),
                    pct(r.accuracy),
                    r.format_failures.to_string(),
                ]
            })
            .collect();
        self.table(&["loss", "held-out correct", "accuracy", "malformed"], rows);
        let masked = series(&stage.metrics(files::METRICS), "eval/accuracy", 100.0);
        let unmasked = series(
            &stage.metrics("metrics.unmasked.jsonl"),
            "eval/accuracy",
            100.0,
        );
        self.line_plot(
            "sft_accuracy",
            "SFT: held-out reverse-word accuracy during training",
            "accuracy (%)",
            vec![
                ("prompt masked".into(), masked),
                ("unmasked".into(), unmasked),
            ],
        )
    }

    fn cot(&mut self) -> Result<()> {
        let Some(stage) = self.stage("cot-sft") else {
            return Ok(());
        };
        self.heading("CoT-SFT: direct vs chain of thought, per K");
        let eval = stage.eval();
        let by_k = |mode: &str| -> BTreeMap<usize, &EvalRow> {
            eval.iter()
                .filter(|r| r.task == "digit_sum" && r.mode == mode)
                .filter_map(|r| Some((r.k?, r)))
                .collect()
        };
        let (cot, direct) = (by_k("cot"), by_k("direct"));
        let mut rows = Vec::new();
        let mut categories = Vec::new();
        let (mut direct_bars, mut cot_bars) = (Vec::new(), Vec::new());
        for (k, c) in &cot {
            let d = direct.get(k);
            rows.push(vec![
                k.to_string(),
                d.map_or("—".into(), |d| pct(d.accuracy)),
                pct(c.accuracy),
                d.map_or("—".into(), |d| {
                    format!("{:+.1}", 100.0 * (c.accuracy - d.accuracy))
                }),
                c.n.to_string(),
                c.format_failures.to_string(),
            ]);
            categories.push(format!("K={k}"));
            direct_bars.push(d.map_or(0.0, |d| 100.0 * d.accuracy));
            cot_bars.push(100.0 * c.accuracy);
        }
        self.table(
            &["K", "direct", "CoT", "CoT − direct", "n", "CoT malformed"],
            rows,
        );
        if let Some(r) = eval.iter().find(|r| r.task == "reverse") {
            self.para(format!(
                "Reverse-word accuracy after this stage (the old skill): {} ({} of {} malformed).",
                pct(r.accuracy),
                r.format_failures,
                r.n
            ));
        }
        if !categories.is_empty() {
            plots::grouped_bars(
                &self.plot_dir.join("cot_per_k.svg"),
                "CoT-SFT: held-out accuracy per K",
                &categories,
                &[("direct".into(), direct_bars), ("CoT".into(), cot_bars)],
            )?;
            self.image("cot_per_k", "CoT-SFT: held-out accuracy per K");
        }
        Ok(())
    }

    fn dpo(&mut self) -> Result<()> {
        let Some(stage) = self.stage("dpo") else {
            return Ok(());
        };
        self.heading("DPO: margin and preference accuracy");
        let rows = stage.metrics(files::METRICS);
        let margin = series(&rows, "rewards/margins", 1.0);
        let accuracy = series(&rows, "rewards/accuracies", 1.0);
        let chosen = series(&rows, "logps/chosen", 1.0);
        self.para(format!(
            "Training margin r̂w − r̂l {}; training preference accuracy {}; log π(chosen) {}.",
            first_last(&margin, 3),
            first_last(&accuracy, 3),
            first_last(&chosen, 2)
        ));
        let prefs: Vec<Vec<String>> = stage
            .eval()
            .iter()
            .filter(|r| r.task == "preference")
            .map(|r| {
                vec![
                    r.mode.clone(),
                    format!("{}/{}", r.correct, r.n),
                    pct(r.accuracy),
                    format!("{:.3}", r.margin.unwrap_or(f64::NAN)),
                ]
            })
            .collect();
        self.table(
            &[
                "pairs (after training)",
                "ranked right",
                "preference accuracy",
                "mean margin",
            ],
            prefs,
        );
        self.line_plot(
            "dpo_margin",
            "DPO: reward margin (training window averages)",
            "r̂w − r̂l",
            vec![("rewards/margins".into(), margin)],
        )?;
        let mut curves = vec![(
            "rewards/accuracies ×100".to_string(),
            series(&rows, "rewards/accuracies", 100.0),
        )];
        curves.extend(accuracy_curves(&rows));
        self.line_plot(
            "dpo_accuracy",
            "DPO: preference accuracy and held-out task accuracy per K",
            "%",
            curves,
        )
    }

    fn rlvr(&mut self) -> Result<()> {
        let Some(stage) = self.stage("rlvr") else {
            return Ok(());
        };
        self.heading("RLVR: reward, dead groups, KL");
        let rows = stage.metrics(files::METRICS);
        let reward = series(&rows, "reward", 1.0);
        let dead = series(&rows, "frac_reward_zero_std", 1.0);
        let kl = series(&rows, "kl", 1.0);
        self.para(format!(
            "Mean reward {}; dead-group rate (`frac_reward_zero_std`) {}; KL {}.",
            first_last(&reward, 3),
            first_last(&dead, 3),
            first_last(&kl, 4)
        ));
        self.line_plot(
            "rlvr_reward",
            "RLVR: mean reward and dead-group rate",
            "fraction",
            vec![
                ("reward".into(), reward),
                ("reward EMA".into(), series(&rows, "reward_ema", 1.0)),
                ("frac_reward_zero_std".into(), dead),
            ],
        )?;
        self.line_plot(
            "rlvr_accuracy",
            "RLVR: held-out task accuracy per K during training",
            "accuracy (%)",
            accuracy_curves(&rows),
        )
    }

    /// Held-out CoT accuracy per K after every stage that measured it.
    fn per_k_by_stage(&mut self) -> Result<()> {
        let mut columns: Vec<(String, BTreeMap<usize, f64>)> = Vec::new();
        for (name, _) in STAGES {
            let Some(stage) = self.stage(name) else {
                continue;
            };
            let eval = stage.eval();
            if name == "rlvr" {
                // RLVR also scored its parent on the same problems, before training.
                let parent: BTreeMap<usize, f64> = eval
                    .iter()
                    .filter(|r| r.task == "digit_sum" && r.mode == "parent")
                    .filter_map(|r| Some((r.k?, r.accuracy)))
                    .collect();
                if !parent.is_empty() && columns.last().map(|c| c.0.as_str()) != Some("dpo") {
                    columns.push(("rlvr parent".into(), parent));
                }
            }
            let cot: BTreeMap<usize, f64> = eval
                .iter()
                .filter(|r| r.task == "digit_sum" && r.mode == "cot")
                .filter_map(|r| Some((r.k?, r.accuracy)))
                .collect();
            if !cot.is_empty() {
                columns.push((name.to_string(), cot));
            }
        }
        if columns.is_empty() {
            return Ok(());
        }
        self.heading("Task accuracy per K after every stage");
        self.para("Held-out digit sums, CoT format, greedy decoding, strict verifier.".into());
        let ks: std::collections::BTreeSet<usize> = columns
            .iter()
            .flat_map(|(_, c)| c.keys().copied())
            .collect();
        let rows = ks
            .iter()
            .map(|k| {
                std::iter::once(format!("K={k}"))
                    .chain(
                        columns
                            .iter()
                            .map(|(_, c)| c.get(k).map_or("—".into(), |a| pct(*a))),
                    )
                    .collect()
            })
            .collect();
        let header: Vec<String> = std::iter::once("K".to_string())
            .chain(columns.iter().map(|(n, _)| n.clone()))
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        self.table(&header, rows);
        Ok(())
    }
}

/// `eval/accuracy_kK` columns of a metrics file as one curve per K, in percent.
fn accuracy_curves(rows: &[Map<String, Value>]) -> Vec<Series> {
    let mut keys: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.keys()
                .filter(|k| k.starts_with("eval/accuracy_k"))
                .cloned()
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.iter()
        .map(|key| {
            (
                format!("K={}", &key["eval/accuracy_k".len()..]),
                series(rows, key, 100.0),
            )
        })
        .collect()
}
