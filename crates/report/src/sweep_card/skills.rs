//! The sweep's skills: every stage's checkpoint on every skill, over seeds. Four views of one
//! grid (skill × stage × seed, from each stage's `skills.json`): the table of means with the
//! best model so far, the per-K plot, stage over stage with the noise test, and each seed.

use anyhow::Result;
use chain::skills::Skills;
use chain::Stage;
use eval::EvalRow;

use super::cells::{change_cell, mean_sd_cell, pct};
use super::collect::SeedRun;
use crate::doc::Block;
use crate::plots;
use crate::stats::mean_sd;

/// A plot to write beside the report: `(file stem, SVG)`.
pub(super) type Plot = Option<(String, String)>;

/// The section's blocks, and its plot when any stage has measured its skills.
pub(super) fn section(runs: &[SeedRun]) -> Result<(Vec<Block>, Plot)> {
    let Some(grid) = SkillGrid::new(runs) else {
        let none = "No stage has measured its skills yet (`skills.json`).";
        return Ok((vec![Block::Paragraph(none.into())], None));
    };
    let (image, plot) = grid.per_k_plot()?;
    let blocks = vec![
        Block::Heading(2, "Skills after every stage".into()),
        Block::Paragraph(
            "Every stage's final checkpoint on the same held-out sets: reverse words (SFT's \
             task, exact match) and digit sums per K in the CoT format (the task of CoT-SFT, \
             DPO and RLVR; strict verifier), greedy decoding, from each stage's `skills.json`. \
             **Bold**: the best stage for that skill. The last row is each stage's mean over \
             the skills, and ★ marks the best model so far by it."
                .into(),
        ),
        grid.means_table(),
        image,
        Block::Heading(2, "Stage over stage: beyond noise?".into()),
        Block::Paragraph(
            "Each cell is the mean over seeds of (stage − its parent), in points, paired by \
             seed. ▲/▼: beyond noise, the 95% t-interval of the paired differences excludes 0 \
             (their spread floored at the binomial error of one held-out set, so a one-problem \
             wobble that all seeds share is not a signal); ~: within noise; with one seed \
             nothing can be said."
                .into(),
        ),
        grid.stage_over_stage(),
        Block::Heading(2, "Each seed's skills".into()),
        grid.each_seed(),
    ];
    Ok((blocks, Some(plot)))
}

/// One row of the skills table: its label and how to find it in a stage's skills.
pub(super) struct Skill {
    pub(super) label: String,
    /// Digit count, `None` for reverse words.
    k: Option<usize>,
}

impl Skill {
    /// Reverse words, then sums at every K any of `runs` measured.
    pub(super) fn all_in<'a>(runs: impl IntoIterator<Item = &'a SeedRun>) -> Vec<Skill> {
        let mut ks: Vec<usize> = runs
            .into_iter()
            .flat_map(|r| r.skills.values())
            .flat_map(|s| s.rows.iter().filter_map(|row| row.k))
            .collect();
        ks.sort_unstable();
        ks.dedup();
        let reverse = Skill {
            label: "reverse words".into(),
            k: None,
        };
        let sums = ks.into_iter().map(|k| Skill {
            label: format!("sums K={k}"),
            k: Some(k),
        });
        std::iter::once(reverse).chain(sums).collect()
    }

    /// One seed's accuracy on this skill after `stage`, with the number of problems.
    pub(super) fn value(&self, stage: Stage, run: &SeedRun) -> Option<(f64, usize)> {
        let row = self.row(run.skills.get(&stage)?)?;
        Some((row.accuracy, row.n))
    }

    fn row<'a>(&self, skills: &'a Skills) -> Option<&'a EvalRow> {
        match self.k {
            None => skills.reverse(),
            Some(k) => skills.digit_sum(k),
        }
    }
}

/// Every seed's runs, the stages any of them measured (in chain order) and the skills: reverse
/// words, then sums at every K any of them measured.
struct SkillGrid<'a> {
    runs: &'a [SeedRun],
    stages: Vec<Stage>,
    skills: Vec<Skill>,
}

impl<'a> SkillGrid<'a> {
    /// `None` when no stage of any seed has a `skills.json`.
    fn new(runs: &'a [SeedRun]) -> Option<Self> {
        let stages: Vec<Stage> = Stage::ALL
            .into_iter()
            .filter(|s| runs.iter().any(|r| r.skills.contains_key(s)))
            .collect();
        if stages.is_empty() {
            return None;
        }
        let skills = Skill::all_in(runs);
        Some(Self {
            runs,
            stages,
            skills,
        })
    }

    /// One seed's accuracy on `skill` after `stage`, with the number of problems.
    fn value(&self, skill: &Skill, stage: Stage, run: &SeedRun) -> Option<(f64, usize)> {
        skill.value(stage, run)
    }

    /// Every seed's accuracy on `skill` after `stage` (seeds that measured it).
    fn per_seed(&self, skill: &Skill, stage: Stage) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|r| self.value(skill, stage, r).map(|v| v.0))
            .collect()
    }

    fn header(&self, first: &str) -> Vec<String> {
        std::iter::once(first.to_string())
            .chain(self.stages.iter().map(|s| s.to_string()))
            .collect()
    }

    /// Mean ± sd per skill and stage, the best stage per skill in bold, and a last row with
    /// each stage's mean over the skills, ★ on the best model so far.
    fn means_table(&self) -> Block {
        let mut rows: Vec<Vec<String>> = self.skills.iter().map(|s| self.means_row(s)).collect();
        rows.push(self.overall_row());
        Block::Table {
            header: self.header("skill"),
            rows,
        }
    }

    fn means_row(&self, skill: &Skill) -> Vec<String> {
        let means: Vec<f64> = self
            .stages
            .iter()
            .map(|&s| mean_sd(&self.per_seed(skill, s)).0)
            .collect();
        let best = means
            .iter()
            .cloned()
            .filter(|m| m.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        let mut row = vec![skill.label.clone()];
        for (i, &stage) in self.stages.iter().enumerate() {
            let cell = mean_sd_cell(&self.per_seed(skill, stage), pct);
            row.push(if means[i] == best && cell != "—" {
                format!("**{cell}**")
            } else {
                cell
            });
        }
        row
    }

    /// The mean over skills, per seed then over seeds; a seed counts only where it measured
    /// every skill.
    fn overall_row(&self) -> Vec<String> {
        let mut best_so_far: Option<(usize, f64)> = None;
        let mut row = vec!["all skills (mean)".to_string()];
        for (i, &stage) in self.stages.iter().enumerate() {
            let values: Vec<f64> = self
                .runs
                .iter()
                .filter_map(|r| {
                    let vals: Vec<f64> = self
                        .skills
                        .iter()
                        .filter_map(|s| self.value(s, stage, r).map(|v| v.0))
                        .collect();
                    (vals.len() == self.skills.len()).then(|| mean_sd(&vals).0)
                })
                .collect();
            let m = mean_sd(&values).0;
            if m.is_finite() && best_so_far.is_none_or(|(_, b)| m >= b) {
                best_so_far = Some((i, m));
            }
            let star = if best_so_far.is_some_and(|(b, _)| b == i) {
                " ★"
            } else {
                ""
            };
            row.push(format!("{}{star}", mean_sd_cell(&values, pct)));
        }
        row
    }

    /// (stage − its parent) per skill, paired by seed, marked by the noise test.
    fn stage_over_stage(&self) -> Block {
        let pairs: Vec<(Stage, Stage)> = self
            .stages
            .iter()
            .filter_map(|&s| Some((s.parent()?, s)))
            .filter(|(p, _)| self.stages.contains(p))
            .collect();
        let rows = self
            .skills
            .iter()
            .map(|skill| {
                let cells = pairs.iter().map(|&(p, c)| self.change_cell(skill, p, c));
                std::iter::once(skill.label.clone()).chain(cells).collect()
            })
            .collect();
        let header = std::iter::once("skill".to_string())
            .chain(pairs.iter().map(|(p, c)| format!("{c} − {p}")))
            .collect();
        Block::Table { header, rows }
    }

    fn change_cell(&self, skill: &Skill, parent: Stage, child: Stage) -> String {
        let mut diffs = Vec::new();
        let mut n = 0;
        let mut acc = Vec::new();
        for run in self.runs {
            let both = (
                self.value(skill, parent, run),
                self.value(skill, child, run),
            );
            if let (Some(p), Some(c)) = both {
                diffs.push(c.0 - p.0);
                n = n.max(c.1);
                acc.push((c.0 + p.0) / 2.0);
            }
        }
        change_cell(&diffs, n, mean_sd(&acc).0)
    }

    /// Every seed's value per skill and stage.
    fn each_seed(&self) -> Block {
        let mut rows = Vec::new();
        for skill in &self.skills {
            for run in self.runs {
                let mut row = vec![format!("{}, seed {}", skill.label, run.seed)];
                row.extend(
                    self.stages
                        .iter()
                        .map(|&s| self.value(skill, s, run).map_or("—".into(), |v| pct(v.0))),
                );
                rows.push(row);
            }
        }
        Block::Table {
            header: self.header("skill, seed"),
            rows,
        }
    }

    /// Mean accuracy per K, one line per stage: the image block and the plot to write.
    fn per_k_plot(&self) -> Result<(Block, (String, String))> {
        let series: Vec<plots::Series> = self
            .stages
            .iter()
            .map(|&stage| {
                let points = self
                    .skills
                    .iter()
                    .filter_map(|s| {
                        let m = mean_sd(&self.per_seed(s, stage)).0;
                        Some((s.k? as f64, 100.0 * m)).filter(|p| p.1.is_finite())
                    })
                    .collect();
                (stage.to_string(), points)
            })
            .collect();
        let file = "sweep_per_k";
        let title = "Held-out digit sums (CoT) per K after every stage, mean over seeds";
        let svg = plots::lines_over(file, title, "K (digits)", "accuracy (%)", &series)?;
        let image = Block::Image {
            path: format!("{}/{file}.svg", crate::PLOT_DIR),
            alt: title.into(),
        };
        Ok((image, (file.to_string(), svg)))
    }
}
