//! "Pretrain": validation loss from first to last evaluation, and the loss curves.

use anyhow::Result;
use trainer::files;

use super::card::{first_last, series, Report, StageFiles};
use chain::keys;

pub(super) fn section(report: &mut Report, stage: &StageFiles) -> Result<()> {
    report.heading("Pretrain");
    let rows = stage.metrics(files::METRICS)?;
    let val = series(&rows, keys::VAL_LOSS, 1.0);
    let train = series(&rows, keys::LOSS, 1.0);
    report.para(format!(
        "Validation loss {}; last train loss {:.3}.",
        first_last(&val, 3),
        train.last().map_or(f64::NAN, |p| p.1)
    ));
    report.line_plot(
        "pretrain_loss",
        "Pretrain: cross-entropy",
        "loss",
        vec![("train".into(), train), ("validation".into(), val)],
    )
}
