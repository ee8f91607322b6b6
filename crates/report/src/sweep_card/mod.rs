//! The sweep's report card, `NAME/report.md` and `report.html` with its plot in
//! `NAME/report/`: the per-skill table across stages (mean ± sd over seeds, the best model so
//! far marked), each seed's values, which stage-to-stage changes are beyond noise, and every
//! stage's headline numbers. Built only from the seeds' run folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use eval::EvalRow;

mod collect;

use crate::doc::{self, Block};
use crate::plots;
use crate::stats::{change, mean_sd};
use chain::layout::seed_dir;
use chain::skills::Skills;
use chain::Stage;
use collect::{seed_run, SeedRun, Unit};

/// One row of the skills table: its label and how to find it in a stage's skills.
struct Skill {
    label: String,
    /// Digit count, `None` for reverse words.
    k: Option<usize>,
}

impl Skill {
    fn row<'a>(&self, skills: &'a Skills) -> Option<&'a EvalRow> {
        match self.k {
            None => skills.reverse(),
            Some(k) => skills.digit_sum(k),
        }
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

fn mean_sd_cell(values: &[f64], show: impl Fn(f64) -> String) -> String {
    match values.len() {
        0 => "—".into(),
        1 => show(values[0]),
        _ => {
            let (m, s) = mean_sd(values);
            format!("{} ± {}", show(m), show(s))
        }
    }
}

pub fn write(dir: &Path, seeds: &[u64]) -> Result<PathBuf> {
    let mut runs = Vec::new();
    for &seed in seeds {
        let seed_path = seed_dir(dir, seed);
        anyhow::ensure!(
            seed_path.is_dir(),
            "no folder {} for seed {seed} (run the sweep, or `cargo xtask pipeline --run \
             NAME/seed-{seed} --seed {seed}`, first)",
            seed_path.display()
        );
        runs.push(seed_run(seed, &seed_path)?);
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut blocks = vec![Block::Heading(1, format!("Sweep report card: `{name}`"))];
    blocks.push(Block::Paragraph(intro(dir, &runs)?));
    let (skill_blocks, plot) = skills_section(&runs)?;
    blocks.extend(skill_blocks);
    blocks.extend(headlines_section(&runs));

    let plot_dir = dir.join(crate::PLOT_DIR);
    std::fs::create_dir_all(&plot_dir)
        .with_context(|| format!("creating {}", plot_dir.display()))?;
    if let Some((file, svg)) = plot {
        data::atomic::write(&plot_dir.join(format!("{file}.svg")), svg)?;
    }
    let md = dir.join("report.md");
    data::atomic::write(&md, doc::markdown(&blocks))?;
    data::atomic::write(
        &dir.join("report.html"),
        doc::html(&format!("Sweep report card: {name}"), &blocks),
    )?;
    Ok(md)
}

fn intro(dir: &Path, runs: &[SeedRun]) -> Result<String> {
    let info_path = dir.join(chain::layout::SWEEP_INFO);
    let settings = if info_path.exists() {
        let text = std::fs::read_to_string(&info_path)
            .with_context(|| format!("reading {}", info_path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", info_path.display()))?;
        let sets: Vec<String> = v["overrides"]
            .as_array()
            .map(|o| {
                o.iter()
                    .filter_map(|x| x.as_str())
                    .map(|x| format!("`--set {x}`"))
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "config `{}`{}",
            v["config"].as_str().unwrap_or("?"),
            if sets.is_empty() {
                String::new()
            } else {
                format!(" with {}", sets.join(" "))
            }
        )
    } else {
        "settings in each seed's run.json".into()
    };
    let links: Vec<String> = runs
        .iter()
        .map(|r| {
            let folder = r.dir.file_name().unwrap_or_default().to_string_lossy();
            format!("[seed {}]({folder}/report.md)", r.seed)
        })
        .collect();
    Ok(format!(
        "{} seeds ({}), {settings}. Each seed is an ordinary run: every stage's `seed` offset by \
         the seed number (model init, data order, sampling), the held-out problems the same \
         for all. Cells are mean ± sample sd over seeds, in %; each seed's own report card: {}. \
         Rebuild with `cargo xtask sweep --run {} --seeds {} --report-only`.",
        runs.len(),
        runs.iter()
            .map(|r| r.seed.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        links.join(", "),
        dir.file_name().unwrap_or_default().to_string_lossy(),
        runs.iter()
            .map(|r| r.seed.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ))
}

type Plot = Option<(String, String)>;

fn skills_section(runs: &[SeedRun]) -> Result<(Vec<Block>, Plot)> {
    let stages: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| runs.iter().any(|r| r.skills.contains_key(s)))
        .collect();
    if stages.is_empty() {
        return Ok((
            vec![Block::Paragraph(
                "No stage has measured its skills yet (`skills.json`).".into(),
            )],
            None,
        ));
    }
    let mut ks: Vec<usize> = runs
        .iter()
        .flat_map(|r| r.skills.values())
        .flat_map(|s| s.rows.iter().filter_map(|row| row.k))
        .collect();
    ks.sort_unstable();
    ks.dedup();
    let skills: Vec<Skill> = std::iter::once(Skill {
        label: "reverse words".into(),
        k: None,
    })
    .chain(ks.iter().map(|&k| Skill {
        label: format!("sums K={k}"),
        k: Some(k),
    }))
    .collect();
    // values[skill][stage] = each seed's accuracy (seed, value, problems).
    let value = |skill: &Skill, stage: Stage, run: &SeedRun| -> Option<(f64, usize)> {
        let row = skill.row(run.skills.get(&stage)?)?;
        Some((row.accuracy, row.n))
    };
    let per_seed = |skill: &Skill, stage: Stage| -> Vec<f64> {
        runs.iter()
            .filter_map(|r| value(skill, stage, r).map(|v| v.0))
            .collect()
    };

    let mut blocks = vec![Block::Heading(2, "Skills after every stage".into())];
    blocks.push(Block::Paragraph(
        "Every stage's final checkpoint on the same held-out sets: reverse words (SFT's task, \
         exact match) and digit sums per K in the CoT format (the task of CoT-SFT, DPO and \
         RLVR; strict verifier), greedy decoding, from each stage's `skills.json`. **Bold**: \
         the best stage for that skill. The last row is each stage's mean over the skills, \
         and ★ marks the best model so far by it."
            .into(),
    ));
    let mut rows = Vec::new();
    for skill in &skills {
        let means: Vec<f64> = stages
            .iter()
            .map(|&s| mean_sd(&per_seed(skill, s)).0)
            .collect();
        let best = means
            .iter()
            .cloned()
            .filter(|m| m.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        let mut row = vec![skill.label.clone()];
        for (i, &stage) in stages.iter().enumerate() {
            let cell = mean_sd_cell(&per_seed(skill, stage), pct);
            row.push(if means[i] == best && cell != "—" {
                format!("**{cell}**")
            } else {
                cell
            });
        }
        rows.push(row);
    }
    // The mean over skills, per seed then over seeds.
    let overall: Vec<Vec<f64>> = stages
        .iter()
        .map(|&stage| {
            runs.iter()
                .filter_map(|r| {
                    let vals: Vec<f64> = skills
                        .iter()
                        .filter_map(|s| value(s, stage, r).map(|v| v.0))
                        .collect();
                    (vals.len() == skills.len()).then(|| mean_sd(&vals).0)
                })
                .collect()
        })
        .collect();
    let mut best_so_far: Option<(usize, f64)> = None;
    let mut last = vec!["all skills (mean)".to_string()];
    for (i, values) in overall.iter().enumerate() {
        let m = mean_sd(values).0;
        if m.is_finite() && best_so_far.is_none_or(|(_, b)| m >= b) {
            best_so_far = Some((i, m));
        }
        let star = if best_so_far.is_some_and(|(b, _)| b == i) {
            " ★"
        } else {
            ""
        };
        last.push(format!("{}{star}", mean_sd_cell(values, pct)));
    }
    rows.push(last);
    let header: Vec<String> = std::iter::once("skill".to_string())
        .chain(stages.iter().map(|s| s.to_string()))
        .collect();
    blocks.push(Block::Table { header, rows });

    // Stage over stage.
    blocks.push(Block::Heading(2, "Stage over stage: beyond noise?".into()));
    blocks.push(Block::Paragraph(
        "Each cell is the mean over seeds of (stage − its parent), in points, paired by seed. \
         ▲/▼: beyond noise, the 95% t-interval of the paired differences excludes 0 (their \
         spread floored at the binomial error of one held-out set, so a one-problem wobble \
         that all seeds share is not a signal); ~: within noise; with one seed nothing can \
         be said."
            .into(),
    ));
    let pairs: Vec<(Stage, Stage)> = stages
        .iter()
        .filter_map(|&s| Some((s.parent()?, s)))
        .filter(|(p, _)| stages.contains(p))
        .collect();
    let mut rows = Vec::new();
    for skill in &skills {
        let mut row = vec![skill.label.clone()];
        for &(parent, child) in &pairs {
            let mut diffs = Vec::new();
            let mut n = 0;
            let mut acc = Vec::new();
            for run in runs {
                if let (Some(p), Some(c)) = (value(skill, parent, run), value(skill, child, run)) {
                    diffs.push(c.0 - p.0);
                    n = n.max(c.1);
                    acc.push((c.0 + p.0) / 2.0);
                }
            }
            if diffs.is_empty() {
                row.push("—".into());
                continue;
            }
            let c = change(&diffs, n, mean_sd(&acc).0);
            let mark = match c.beyond_noise {
                Some(true) if c.mean > 0.0 => " ▲",
                Some(true) => " ▼",
                Some(false) => " ~",
                None => "",
            };
            row.push(format!("{:+.1}{mark}", 100.0 * c.mean));
        }
        rows.push(row);
    }
    let header: Vec<String> = std::iter::once("skill".to_string())
        .chain(pairs.iter().map(|(p, c)| format!("{c} − {p}")))
        .collect();
    blocks.push(Block::Table { header, rows });

    // Each seed.
    blocks.push(Block::Heading(2, "Each seed's skills".into()));
    let mut rows = Vec::new();
    for skill in &skills {
        for run in runs {
            let mut row = vec![format!("{}, seed {}", skill.label, run.seed)];
            row.extend(
                stages
                    .iter()
                    .map(|&s| value(skill, s, run).map_or("—".into(), |v| pct(v.0))),
            );
            rows.push(row);
        }
    }
    let header: Vec<String> = std::iter::once("skill, seed".to_string())
        .chain(stages.iter().map(|s| s.to_string()))
        .collect();
    blocks.push(Block::Table { header, rows });

    // The plot: mean accuracy per K, one line per stage.
    let series: Vec<plots::Series> = stages
        .iter()
        .map(|&stage| {
            let points = skills
                .iter()
                .filter_map(|s| {
                    let m = mean_sd(&per_seed(s, stage)).0;
                    Some((s.k? as f64, 100.0 * m)).filter(|p| p.1.is_finite())
                })
                .collect();
            (stage.to_string(), points)
        })
        .collect();
    let file = "sweep_per_k";
    let title = "Held-out digit sums (CoT) per K after every stage, mean over seeds";
    let svg = plots::lines_over(file, title, "K (digits)", "accuracy (%)", &series)?;
    blocks.insert(
        3,
        Block::Image {
            path: format!("{}/{file}.svg", crate::PLOT_DIR),
            alt: title.into(),
        },
    );
    Ok((blocks, Some((file.to_string(), svg))))
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
    let show = |unit: Unit| {
        move |x: f64| match unit {
            Unit::Percent => format!("{:.1}%", 100.0 * x),
            Unit::Plain(d) => format!("{x:.d$}"),
            Unit::Seconds => format!("{x:.0} s"),
        }
    };
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
