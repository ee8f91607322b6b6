//! "SFT: the prompt-mask ablation": held-out reverse-word accuracy of both runs, and both
//! accuracy curves during training.

use anyhow::Result;
use eval::task;
use trainer::files;

use super::card::{pct, series, Report, StageFiles};
use chain::{keys, Stage};

pub(super) fn section(report: &mut Report, stage: &StageFiles) -> Result<()> {
    report.heading("SFT: the prompt-mask ablation");
    let rows: Vec<Vec<String>> = stage
        .eval()?
        .iter()
        .filter(|r| r.task == task::REVERSE)
        .map(|r| {
            vec![
                r.mode.clone(),
                format!("{}/{}", r.correct, r.n),
                pct(r.accuracy),
                r.format_failures.to_string(),
            ]
        })
        .collect();
    report.table(&["loss", "held-out correct", "accuracy", "malformed"], rows);
    let masked = series(&stage.metrics(files::METRICS)?, keys::EVAL_ACCURACY, 100.0);
    let unmasked = match Stage::Sft.twin_metrics() {
        Some(ablation) => series(&stage.metrics(ablation)?, keys::EVAL_ACCURACY, 100.0),
        None => Vec::new(),
    };
    report.line_plot(
        "sft_accuracy",
        "SFT: held-out reverse-word accuracy during training",
        "accuracy (%)",
        vec![
            ("prompt masked".into(), masked),
            ("unmasked".into(), unmasked),
        ],
    )
}
