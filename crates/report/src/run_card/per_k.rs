//! "Task accuracy per K after every stage": held-out CoT accuracy per K, one column per
//! stage that measured it (and RLVR's score of its parent when that parent's own column is
//! not beside it).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use data::tasks::digit_sum::Mode;
use eval::{task, EvalRow};

use super::card::{pct, Report};
use chain::Stage;

fn per_k(eval: &[EvalRow], mode: &str) -> BTreeMap<usize, f64> {
    eval.iter()
        .filter(|r| r.task == task::DIGIT_SUM && r.mode == mode)
        .filter_map(|r| Some((r.k?, r.accuracy)))
        .collect()
}

/// "Skills after every stage": each stage's checkpoint on reverse words and CoT sums per K,
/// from its `skills.json` (pretrain and SFT included).
fn skills_table(report: &mut Report) -> Result<()> {
    let mut columns = Vec::new();
    for stage in Stage::ALL {
        let path = stage.dir(&report.run_dir).join(chain::skills::SKILLS);
        if path.exists() {
            columns.push((stage, chain::skills::Skills::load(&path)?));
        }
    }
    if columns.is_empty() {
        return Ok(());
    }
    report.heading("Skills after every stage");
    report.para(
        "Each stage's final checkpoint on the same held-out sets (`skills.json`): reverse words \
         (exact match) and digit sums per K in the CoT format (strict verifier), greedy."
            .into(),
    );
    let ks: BTreeSet<usize> = columns
        .iter()
        .flat_map(|(_, s)| s.rows.iter().filter_map(|r| r.k))
        .collect();
    let cell = |row: Option<&EvalRow>| row.map_or("—".into(), |r| pct(r.accuracy));
    let mut rows = vec![std::iter::once("reverse words".to_string())
        .chain(columns.iter().map(|(_, s)| cell(s.reverse())))
        .collect::<Vec<_>>()];
    for &k in &ks {
        rows.push(
            std::iter::once(format!("sums K={k}"))
                .chain(columns.iter().map(|(_, s)| cell(s.digit_sum(k))))
                .collect(),
        );
    }
    let header: Vec<String> = std::iter::once("skill".to_string())
        .chain(columns.iter().map(|(stage, _)| stage.to_string()))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    report.table(&header, rows);
    Ok(())
}

/// "pass@k after every stage": sampled pass@k per K from the skills of each checkpoint that
/// measured it (CoT-SFT on, with `[pass_at_k]` on), a table and one plot per K.
fn pass_at_k_section(report: &mut Report) -> Result<()> {
    let mut columns = Vec::new();
    for stage in Stage::ALL {
        let path = stage.dir(&report.run_dir).join(chain::skills::SKILLS);
        if path.exists() {
            let skills = chain::skills::Skills::load(&path)?;
            if !skills.pass_at_k.is_empty() {
                columns.push((stage, skills));
            }
        }
    }
    let Some((_, first)) = columns.first() else {
        return Ok(());
    };
    let n = first.pass_at_k[0].samples;
    let temperature = first.pass_at_k[0].temperature;
    report.heading("pass@k after every stage");
    report.para(format!(
        "Each held-out CoT problem sampled n = {n} times at temperature {temperature}; pass@k is \
         the chance that k of the n samples hold a correct trace (the unbiased estimator of \
         Chen et al. 2021), averaged over problems (`skills.json`). pass@1 is the sampled \
         accuracy; pass@k at large k is what the policy can sample at all, which RL can sharpen \
         into pass@1 and cannot exceed by sharpening alone."
    ));
    let ks: BTreeSet<usize> = columns
        .iter()
        .flat_map(|(_, s)| s.pass_at_k.iter().map(|p| p.k))
        .collect();
    let budgets = eval::pass_at_k::budgets(n);
    let mut rows = Vec::new();
    for &k in &ks {
        for (stage, skills) in &columns {
            let Some(pass) = skills.pass_at(k) else {
                continue;
            };
            rows.push(
                [format!("K={k}"), stage.to_string()]
                    .into_iter()
                    .chain(
                        budgets
                            .iter()
                            .map(|b| pass.pass_at.get(b).map_or("—".into(), |p| pct(*p))),
                    )
                    .collect(),
            );
        }
    }
    let header: Vec<String> = ["K".to_string(), "stage".to_string()]
        .into_iter()
        .chain(budgets.iter().map(|b| format!("pass@{b}")))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    report.table(&header, rows);
    for &k in &ks {
        let series = columns
            .iter()
            .filter_map(|(stage, skills)| {
                let pass = skills.pass_at(k)?;
                let points = pass
                    .pass_at
                    .iter()
                    .map(|(&b, &p)| ((b as f64).log2(), 100.0 * p))
                    .collect();
                Some((stage.to_string(), points))
            })
            .collect::<Vec<_>>();
        let name = format!("pass_at_k_k{k}");
        let title = format!("pass@k at K = {k} after every stage");
        let svg = crate::plots::lines_over(&name, &title, "log2 k", "pass@k (%)", &series)?;
        report.plot(&name, &title, svg);
    }
    Ok(())
}

pub(super) fn section(report: &mut Report) -> Result<()> {
    skills_table(report)?;
    pass_at_k_section(report)?;
    let mut columns: Vec<(String, BTreeMap<usize, f64>)> = Vec::new();
    let mut last_stage = None;
    for stage in Stage::ALL {
        let Some(files) = report.stage(stage)? else {
            continue;
        };
        let eval = files.eval()?;
        if stage == Stage::Rlvr {
            // RLVR also scored its parent on the same problems, before training.
            let parent = per_k(&eval, rlvr::PARENT_MODE);
            if !parent.is_empty() && last_stage != stage.parent() {
                columns.push((format!("{stage} parent"), parent));
            }
        }
        let cot = per_k(&eval, Mode::Cot.name());
        if !cot.is_empty() {
            columns.push((stage.to_string(), cot));
            last_stage = Some(stage);
        }
    }
    if columns.is_empty() {
        return Ok(());
    }
    report.heading("Task accuracy per K after every stage");
    report.para("Held-out digit sums, CoT format, greedy decoding, strict verifier.".into());
    let ks: BTreeSet<usize> = columns
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
    report.table(&header, rows);
    Ok(())
}
