//! "RLVR: reward, dead groups, KL": first and last window of each, and the curves.

use anyhow::Result;
use trainer::files;

use super::card::{accuracy_curves, first_last, series, Report, StageFiles};
use chain::keys;

pub(super) fn section(report: &mut Report, stage: &StageFiles) -> Result<()> {
    report.heading("RLVR: reward, dead groups, KL");
    let rows = stage.metrics(files::METRICS)?;
    let reward = series(&rows, keys::REWARD, 1.0);
    let dead = series(&rows, keys::DEAD_GROUPS, 1.0);
    let kl = series(&rows, keys::KL, 1.0);
    report.para(format!(
        "Mean reward {}; dead-group rate (`{}`) {}; KL {}.",
        first_last(&reward, 3),
        keys::DEAD_GROUPS,
        first_last(&dead, 3),
        first_last(&kl, 4)
    ));
    report.line_plot(
        "rlvr_reward",
        "RLVR: mean reward and dead-group rate",
        "fraction",
        vec![
            (keys::REWARD.into(), reward),
            ("reward EMA".into(), series(&rows, keys::REWARD_EMA, 1.0)),
            (keys::DEAD_GROUPS.into(), dead),
        ],
    )?;
    report.line_plot(
        "rlvr_accuracy",
        "RLVR: held-out task accuracy per K during training",
        "accuracy (%)",
        accuracy_curves(&rows),
    )
}
