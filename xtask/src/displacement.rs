//! `xtask displacement`: where along the trace a DPO checkpoint moved the likelihood against
//! its parent (`dpo::displacement`), on corrupted pairs of held-out problems.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use data::tasks::digit_sum::held_out_problems;
use data::tasks::preference::corrupted_pairs;
use data::tokenizer::PAD;
use dpo::displacement::{measure, Displacement};
use dpo::logps::tokenize_pairs;
use model::DeviceChoice;
use trainer::FinishedStage;

#[derive(Args)]
pub struct DisplacementArgs {
    /// The DPO stage folder, e.g. runs/default/dpo.
    #[arg(long)]
    from: PathBuf,
    /// The reference [default: the parent folder FROM's manifest names].
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Digit counts of the held-out problems the pairs are built on.
    #[arg(long, value_delimiter = ',', default_value = "2,3,4,5,6")]
    ks: Vec<usize>,
    /// Problems per K.
    #[arg(long, default_value_t = 100)]
    per_k: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "flex")]
    device: DeviceChoice,
    /// Where to write the JSON [default: FROM/displacement.json].
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &DisplacementArgs) -> Result<()> {
    data::tasks::digit_sum::check_ks("--ks", &args.ks).map_err(anyhow::Error::msg)?;
    let device = args.device.device().map_err(anyhow::Error::msg)?;
    let policy_stage = FinishedStage::open(&args.from)?;
    let reference_dir = match &args.reference {
        Some(dir) => dir.clone(),
        None => policy_stage
            .manifest()?
            .parent_dir
            .map(PathBuf::from)
            .with_context(|| {
                format!(
                    "{}: its manifest names no parent; give --reference",
                    args.from.display()
                )
            })?,
    };
    let reference_stage = FinishedStage::open(&reference_dir)?;
    let tokenizer = &policy_stage.tokenizer;
    let problems: Vec<_> = args
        .ks
        .iter()
        .flat_map(|&k| held_out_problems(k, args.per_k, args.seed))
        .collect();
    let pairs = tokenize_pairs(
        &corrupted_pairs(&problems, args.seed),
        tokenizer,
        policy_stage.config.block_size,
    )?;
    let shown = measure(
        &policy_stage.model(&device)?,
        &reference_stage.model(&device)?,
        &pairs,
        tokenizer.symbol_id(PAD)?,
        &device,
    );
    print(&shown, &reference_dir);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.from.join("displacement.json"));
    crate::evaluate::make_out_folder(&out)?;
    data::atomic::write(&out, serde_json::to_string_pretty(&shown)?)?;
    println!("written to {}", out.display());
    Ok(())
}

fn print(shown: &Displacement, reference: &std::path::Path) {
    println!(
        "{} held-out pairs, against {}:\n  log π(chosen)   {:8.3} (reference {:8.3})\n  log π(rejected) {:8.3} (reference {:8.3})",
        shown.pairs,
        reference.display(),
        shown.policy_chosen,
        shown.reference_chosen,
        shown.policy_rejected,
        shown.reference_rejected
    );
    let cell = |x: Option<f64>| x.map_or("—".to_string(), |x| format!("{x:+.3}"));
    println!("mean per-token log πθ − log π_ref, by where the token sits against the first token the rejected trace changes:");
    println!("  {:>8} {:>9} {:>9}", "region", "chosen", "rejected");
    for region in &shown.regions {
        println!(
            "  {:>8} {:>9} {:>9}",
            region.name,
            cell(region.chosen),
            cell(region.rejected)
        );
    }
    println!("  {:>8} {:>9} {:>9}", "offset", "chosen", "rejected");
    for offset in &shown.by_offset {
        println!(
            "  {:>8} {:>9} {:>9}",
            offset.offset,
            cell(offset.chosen),
            cell(offset.rejected)
        );
    }
}
