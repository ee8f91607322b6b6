//! The sweep's pass@k: each stage's sampled pass@k per K (from `skills.json`, CoT-SFT on,
//! when `[pass_at_k]` is on), mean ± sd over seeds, with one plot per K of the means.

use std::collections::BTreeSet;

use anyhow::Result;
use chain::Stage;

use super::cells::{mean_sd_cell, pct};
use super::collect::SeedRun;
use crate::doc::Block;
use crate::plots;
use crate::stats::mean_sd;

/// Plots to write beside the report: `(file stem, SVG)`.
type Plots = Vec<(String, String)>;

/// The section's blocks and its plots; nothing when no seed measured pass@k.
pub(super) fn section(runs: &[SeedRun]) -> Result<(Vec<Block>, Plots)> {
    let measured = |stage: Stage, k: usize, budget: usize| -> Vec<f64> {
        runs.iter()
            .filter_map(|r| {
                r.skills
                    .get(&stage)?
                    .pass_at(k)?
                    .pass_at
                    .get(&budget)
                    .copied()
            })
            .collect()
    };
    let Some(first) = runs
        .iter()
        .flat_map(|r| r.skills.values())
        .find_map(|s| s.pass_at_k.first())
    else {
        return Ok((vec![], vec![]));
    };
    let budgets = eval::pass_at_k::budgets(first.samples);
    let ks: BTreeSet<usize> = runs
        .iter()
        .flat_map(|r| r.skills.values())
        .flat_map(|s| s.pass_at_k.iter().map(|p| p.k))
        .collect();
    let stages: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|&s| {
            runs.iter()
                .any(|r| r.skills.get(&s).is_some_and(|x| !x.pass_at_k.is_empty()))
        })
        .collect();
    let mut rows = Vec::new();
    let mut plots_out = Vec::new();
    let mut blocks = vec![
        Block::Heading(2, "pass@k after every stage".into()),
        Block::Paragraph(format!(
            "Each held-out CoT problem sampled n = {} times at temperature {}; pass@k by the \
             unbiased estimator of Chen et al. 2021, averaged over problems, then mean ± sd \
             over seeds, in %. RL that only sharpens raises pass@1 toward its parent's pass@k \
             and leaves pass@k at large k where it was; a parent at 0 there gives it nothing \
             to sharpen.",
            first.samples, first.temperature
        )),
    ];
    for &k in &ks {
        let mut series = Vec::new();
        for &stage in &stages {
            let mut row = vec![format!("K={k}"), stage.to_string()];
            row.extend(
                budgets
                    .iter()
                    .map(|&b| mean_sd_cell(&measured(stage, k, b), pct)),
            );
            rows.push(row);
            let points: Vec<(f64, f64)> = budgets
                .iter()
                .filter_map(|&b| {
                    let m = mean_sd(&measured(stage, k, b)).0;
                    m.is_finite().then(|| ((b as f64).log2(), 100.0 * m))
                })
                .collect();
            series.push((stage.to_string(), points));
        }
        let file = format!("sweep_pass_at_k_k{k}");
        let title = format!("pass@k at K = {k} after every stage, mean over seeds");
        let svg = plots::lines_over(&file, &title, "log2 k", "pass@k (%)", &series)?;
        plots_out.push((file.clone(), svg));
        blocks.push(Block::Image {
            path: format!("{}/{file}.svg", crate::PLOT_DIR),
            alt: title,
        });
    }
    let header = ["K".to_string(), "stage".to_string()]
        .into_iter()
        .chain(budgets.iter().map(|b| format!("pass@{b}")))
        .collect();
    blocks.insert(2, Block::Table { header, rows });
    Ok((blocks, plots_out))
}
