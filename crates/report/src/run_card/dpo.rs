//! "DPO: margin and preference accuracy": the training margin, preference accuracy and
//! chosen log-prob from first to last window, held-out preference accuracy, and the curves.

use anyhow::Result;
use eval::task;
use trainer::files;

use super::card::{accuracy_curves, first_last, pct, series, Report, StageFiles};
use chain::keys;

pub(super) fn section(report: &mut Report, stage: &StageFiles) -> Result<()> {
    report.heading("DPO: margin and preference accuracy");
    let rows = stage.metrics(files::METRICS)?;
    let margin = series(&rows, keys::MARGINS, 1.0);
    let accuracy = series(&rows, keys::ACCURACIES, 1.0);
    let chosen = series(&rows, keys::LOGPS_CHOSEN, 1.0);
    report.para(format!(
        "Training margin r̂w − r̂l {}; training preference accuracy {}; log π(chosen) {}.",
        first_last(&margin, 3),
        first_last(&accuracy, 3),
        first_last(&chosen, 2)
    ));
    let prefs: Vec<Vec<String>> = stage
        .eval()?
        .iter()
        .filter(|r| r.task == task::PREFERENCE)
        .map(|r| {
            vec![
                r.mode.clone(),
                format!("{}/{}", r.correct, r.n),
                pct(r.accuracy),
                format!("{:.3}", r.margin.unwrap_or(f64::NAN)),
            ]
        })
        .collect();
    report.table(
        &[
            "pairs (after training)",
            "ranked right",
            "preference accuracy",
            "mean margin",
        ],
        prefs,
    );
    report.line_plot(
        "dpo_margin",
        "DPO: reward margin (training window averages)",
        "r̂w − r̂l",
        vec![(keys::MARGINS.into(), margin)],
    )?;
    let mut curves = vec![(
        format!("{} ×100", keys::ACCURACIES),
        series(&rows, keys::ACCURACIES, 100.0),
    )];
    curves.extend(accuracy_curves(&rows));
    report.line_plot(
        "dpo_accuracy",
        "DPO: preference accuracy and held-out task accuracy per K",
        "%",
        curves,
    )
}
