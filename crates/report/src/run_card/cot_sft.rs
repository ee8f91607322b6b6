//! "CoT-SFT: direct vs chain of thought, per K": held-out accuracy of the CoT model and its
//! direct twin for each K, what became of the reverse-word skill, and the per-K bars.

use std::collections::BTreeMap;

use anyhow::Result;
use data::tasks::digit_sum::Mode;
use eval::{task, EvalRow};

use super::card::{pct, Report, StageFiles};
use crate::plots;

pub(super) fn section(report: &mut Report, stage: &StageFiles) -> Result<()> {
    report.heading("CoT-SFT: direct vs chain of thought, per K");
    let eval = stage.eval()?;
    let by_k = |mode: Mode| -> BTreeMap<usize, &EvalRow> {
        eval.iter()
            .filter(|r| r.task == task::DIGIT_SUM && r.mode == mode.name())
            .filter_map(|r| Some((r.k?, r)))
            .collect()
    };
    let (cot, direct) = (by_k(Mode::Cot), by_k(Mode::Direct));
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
    report.table(
        &["K", "direct", "CoT", "CoT − direct", "n", "CoT malformed"],
        rows,
    );
    if let Some(r) = eval.iter().find(|r| r.task == task::REVERSE) {
        report.para(format!(
            "Reverse-word accuracy after this stage (the old skill): {} ({} of {} malformed).",
            pct(r.accuracy),
            r.format_failures,
            r.n
        ));
    }
    if !categories.is_empty() {
        let (name, title) = ("cot_per_k", "CoT-SFT: held-out accuracy per K");
        let svg = plots::grouped_bars(
            name,
            title,
            &categories,
            &[("direct".into(), direct_bars), ("CoT".into(), cot_bars)],
        )?;
        report.plot(name, title, svg);
    }
    Ok(())
}
