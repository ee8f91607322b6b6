use std::path::PathBuf;

use anyhow::{Context, Result};
use chain::FinishedStage;
use clap::Args;
use data::tasks::digit_sum::Mode;
use data::tasks::reverse;
use eval::pass_at_k::{evaluate_pass_at_k, format_pass_at_k, PassAtKConfig};
use eval::{evaluate_digit_sum, evaluate_reverse, format_row, write_eval};
use model::DeviceChoice;
use trainer::files;

#[derive(Args)]
pub struct EvalArgs {
    /// A stage folder, e.g. runs/default/cot-sft.
    #[arg(long)]
    from: PathBuf,
    #[arg(long, default_value = "data/words4.txt")]
    words: PathBuf,
    /// Digit counts to evaluate.
    #[arg(long, value_delimiter = ',', default_value = "2,3,4,5,6")]
    ks: Vec<usize>,
    #[arg(long, default_value_t = 200)]
    per_k: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "flex")]
    device: DeviceChoice,
    /// Where to write the rows [default: FROM/eval.suite.json]. Never the stage's own
    /// eval.json, which holds what the stage measured (the report reads it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also sample every CoT problem N times and report pass@1, 2, 4, … N per K (the unbiased
    /// estimator of Chen et al. 2021), into pass_at_k.json beside --out's file (0 = not).
    #[arg(long, default_value_t = 0, value_name = "N")]
    samples: usize,
    /// The sampling temperature of --samples.
    #[arg(long, default_value_t = 1.0, requires = "samples")]
    temperature: f32,
    /// The sampling streams of --samples.
    #[arg(long, default_value_t = 0, requires = "samples")]
    sample_seed: u64,
}

/// Reverse-word accuracy and digit-sum accuracy per K in both formats, into `FROM/eval.suite.json`.
pub fn run(args: &EvalArgs) -> Result<()> {
    if args.samples > 0 && !(args.temperature > 0.0 && args.temperature.is_finite()) {
        anyhow::bail!(
            "--temperature {}: pass@k samples need a temperature > 0 (0 is greedy: every \
             sample the same)",
            args.temperature
        );
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.from.join(SUITE_EVAL));
    if out.file_name() == Some(std::ffi::OsStr::new(files::EVAL)) {
        anyhow::bail!(
            "--out {}: eval.json belongs to the stage that wrote it; choose another name",
            out.display()
        );
    }
    // The folder of --out is made before the evaluation, which can take minutes.
    make_out_folder(&out)?;
    let device = args.device.device().map_err(anyhow::Error::msg)?;
    let stage = FinishedStage::open(&args.from)?;
    let (model, tokenizer) = (stage.model(&device)?, &stage.tokenizer);
    let held_out = reverse::held_out_words(&reverse::read_words(&args.words)?);
    let mut rows = vec![evaluate_reverse(
        &model, tokenizer, &held_out, "greedy", &device,
    )?];
    for mode in [Mode::Cot, Mode::Direct] {
        rows.extend(evaluate_digit_sum(
            &model, tokenizer, mode, &args.ks, args.per_k, args.seed, &device,
        )?);
    }
    for row in &rows {
        println!("{}", format_row(row));
    }
    write_eval(&out, &rows)?;
    println!("rows written to {}", out.display());
    if args.samples > 0 {
        let config = PassAtKConfig {
            ks: args.ks.clone(),
            per_k: args.per_k,
            problem_seed: args.seed,
            samples: args.samples,
            temperature: args.temperature,
            sample_seed: args.sample_seed,
        };
        let rows = evaluate_pass_at_k(&model, tokenizer, Mode::Cot, &config, &device)?;
        for row in &rows {
            println!("{}", format_pass_at_k(row));
        }
        let path = out.with_file_name(PASS_AT_K);
        data::atomic::write(&path, serde_json::to_string_pretty(&rows)?)?;
        println!("pass@k written to {}", path.display());
    }
    Ok(())
}

/// Makes the folder `--out` names, so that a command fails before its work, not after.
pub fn make_out_folder(out: &std::path::Path) -> Result<()> {
    if let Some(folder) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("--out {}: creating its folder", out.display()))?;
    }
    Ok(())
}

/// `xtask eval --samples`' file, beside its rows.
const PASS_AT_K: &str = "pass_at_k.json";

/// The default file name of `xtask eval`'s rows, beside the stage's own eval.json.
const SUITE_EVAL: &str = "eval.suite.json";
