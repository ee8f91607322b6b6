//! The chain in order: every stage of a run, each from its parent's final checkpoint, then
//! the run's report card. The one place that dispatches on `Stage` to the stage crates.

use std::path::PathBuf;

use anyhow::Result;
use chain::Stage;

use crate::adopt;
use crate::run::Run;

/// Every stage in order, then the run's report card. Stages already finished with the same
/// settings and parent are skipped, and in a grid's cell, those the same seed of another cell
/// finished are copied (`crate::adopt`); every checkpoint is measured on the whole skill
/// suite.
pub fn pipeline(run: &Run, restart_from: Option<Stage>) -> Result<()> {
    let tokenizer = run.tokenizer()?;
    let siblings = adopt::siblings(&run.dir)?;
    for stage in Stage::ALL {
        let forced = restart_from.is_some_and(|r| stage >= r);
        let reusable = !forced && run.is_up_to_date(stage, &tokenizer)?;
        let copied = if forced || reusable {
            None
        } else {
            adopt::from_siblings(run, stage, &tokenizer, &siblings)?
        };
        if reusable {
            eprintln!("{stage}: up to date (same settings and parent), skipped");
        } else if let Some(source) = copied {
            eprintln!(
                "{stage}: the same stage was finished in {}, copied",
                source.display()
            );
        } else {
            if forced {
                // Redo means from step 0: a snapshot left by a killed run may come from
                // other code, which its settings hash cannot tell.
                let discarded = trainer::resume::discard_snapshots(&run.stage_dir(stage))?;
                if discarded > 0 {
                    eprintln!("{stage}: restarting, {discarded} resume snapshot(s) discarded");
                }
            }
            run_stage(run, stage, None)?;
        }
        run.ensure_skills(stage)?;
    }
    let report = report::write_run(&run.dir)?;
    eprintln!("report: {}", report.display());
    Ok(())
}

/// Runs one stage. Its parent is `from` when given, else the previous stage of this run.
pub fn run_stage(run: &Run, stage: Stage, from: Option<PathBuf>) -> Result<()> {
    let tokenizer = run.tokenizer()?;
    let parent_dir = from.or_else(|| stage.parent().map(|p| run.stage_dir(p)));
    let ctx = run.context(stage, tokenizer, parent_dir)?;
    let manifest = match stage {
        Stage::Pretrain => pretrain::run(&ctx, &run.config.pretrain)?,
        Stage::Sft => sft::run(&ctx, &run.config.sft)?,
        Stage::CotSft => cot_sft::run(&ctx, &run.config.cot_sft)?,
        Stage::Dpo => dpo::run(&ctx, &run.config.dpo)?,
        Stage::Rlvr => rlvr::run(&ctx, &run.config.rlvr)?,
    };
    eprintln!(
        "{stage}: {} steps in {:.1}s → {}",
        manifest.step,
        manifest.wall_time_s,
        ctx.out_dir.display()
    );
    if let Some(time) = manifest.time {
        eprintln!("{stage}: {}", time.describe());
    }
    Ok(())
}
