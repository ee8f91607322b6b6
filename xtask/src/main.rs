//! `cargo xtask …`: the only place that knows the order of the stages.

mod adopt;
mod config;
mod displacement;
mod evaluate;
mod lock;
mod pipeline;
mod run;
mod sim;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use chain::Stage;
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

use config::PipelineConfig;
use lock::RunLock;
use pipeline::{pipeline, run_stage};
use run::RunArgs;

/// Tensor buffers are freed and reallocated every step; mimalloc keeps them mapped where
/// glibc malloc returns them to the kernel and page-faults them back in (docs/perf.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never hand freed memory back to the kernel. By default mimalloc purges it after 10 ms, and
/// the next step's tensors fault it in and zero it again: 20% of a larger model's step went to
/// zeroing pages (docs/perf.md). A training run's memory is the same every step anyway.
fn keep_freed_memory() {
    // SAFETY: sets one integer option; called first thing in main, before other threads exist.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "gpt_mini post-training workbench: pretrain → SFT → CoT-SFT → DPO → RLVR"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage in order, each starting from the previous one's checkpoint. Stages
    /// already finished with the same settings and parent are skipped.
    Pipeline {
        #[command(flatten)]
        args: RunArgs,
        /// Offset every stage's `seed` (model init, data order, sampling; not `eval.seed`,
        /// so every seed is measured on the same held-out problems). 0 = the config as is.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Redo this stage and every stage after it from step 0, even if up to date (their
        /// resume snapshots are discarded).
        #[arg(long, value_name = "STAGE")]
        restart_from: Option<Stage>,
    },
    /// Run one stage.
    Stage {
        /// The stage to run.
        name: Stage,
        /// Start from this stage folder instead of this run's default parent
        /// (e.g. runs/A/sft for cot-sft).
        #[arg(long)]
        from: Option<PathBuf>,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Run the pipeline once per seed into RUNS_DIR/NAME/seed-S, then write the sweep's report
    /// card (mean ± sd over seeds) at RUNS_DIR/NAME/report.md and report.html.
    Sweep(sweep::SweepArgs),
    /// Evaluate a stage folder's checkpoint on the task suite; writes eval.suite.json there.
    Eval(evaluate::EvalArgs),
    /// Write a stage's checkpoint as a Hugging Face `transformers` model folder (GPT-2 layout:
    /// config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
    /// generation_config.json).
    Export(ExportArgs),
    /// Write a checkpoint's logits for one prompt as JSON (for bench/parity.py).
    Logits(playground::logits::LogitsArgs),
    /// Continue a prompt with a trained checkpoint.
    Sample(playground::sample::SampleArgs),
    /// A local web playground: every stage of a run answers one prompt side by side (with the
    /// verifier's verdict and per-token log-probs), over a JSON API under /api.
    Serve(playground::serve::ServeArgs),
    /// A terminal REPL over one checkpoint: the continuation streams token by token.
    Chat(playground::chat::ChatArgs),
    /// Where along the trace a DPO checkpoint moved the likelihood against its parent: per-token
    /// log πθ − log π_ref on held-out corrupted pairs, before, at and after the first token the
    /// rejected trace changes (into FROM/displacement.json).
    Displacement(displacement::DisplacementArgs),
    /// Training and forward-only tokens/s of the lesson model on the chosen device.
    Bench(bench::BenchArgs),
    /// Write runs/NAME/report.md and report.html (tables and plots) from a run's files. A
    /// malformed file (manifest, metrics line, eval.json) is an error naming it, and then
    /// nothing is written.
    Report(ReportArgs),
    /// The lessons' simulators in the terminal.
    #[command(subcommand)]
    Sim(sim::Sim),
}

#[derive(Args)]
struct ExportArgs {
    /// A stage folder, e.g. runs/default/rlvr.
    #[arg(long)]
    from: PathBuf,
    /// The model folder to write (created; its five files are replaced).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ReportArgs {
    #[arg(long, default_value = "default")]
    run: String,
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
}

fn main() -> ExitCode {
    keep_freed_memory();
    match dispatch(parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line. A bad value (a mistyped stage name, say) is clap's error on one line,
/// with the valid values: `error: invalid value 'x' for '<NAME>' [possible values: …]`.
fn parse() -> Cli {
    Cli::try_parse().unwrap_or_else(|err| {
        if !matches!(
            err.kind(),
            ErrorKind::InvalidValue | ErrorKind::ValueValidation
        ) {
            err.exit();
        }
        let text = err.render().to_string();
        let line: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
            .collect();
        eprintln!("{}", line.join(" "));
        std::process::exit(err.exit_code())
    })
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Pipeline {
            args,
            seed,
            restart_from,
        } => pipeline(&args.open(seed)?, restart_from),
        Command::Stage { name, from, args } => {
            let run = args.open(0)?;
            run_stage(&run, name, from)?;
            run.ensure_skills(name)
        }
        Command::Sweep(args) => sweep::run(&args),
        Command::Eval(args) => evaluate::run(&args),
        Command::Export(args) => export(&args),
        Command::Sample(args) => playground::sample::run(&args),
        Command::Serve(args) => {
            // The page's example problems: the run's held-out suite and word list.
            let config = PipelineConfig::load(&args.config, None, &[])?;
            playground::serve::run(&args, &config.skill_suite())
        }
        Command::Chat(args) => playground::chat::run(&args),
        Command::Logits(args) => playground::logits::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Displacement(args) => displacement::run(&args),
        Command::Sim(sim) => sim::run(&sim),
        Command::Report(args) => write_report(&args),
    }
}

fn export(args: &ExportArgs) -> Result<()> {
    let written = chain::export::export(&args.from, &args.out)?;
    eprintln!(
        "exported {} → {} ({})",
        args.from.display(),
        args.out.display(),
        written.join(", ")
    );
    Ok(())
}

/// `xtask report`: writes into the run folder, so it takes the run's lock like the commands
/// that train (a pipeline writes the same report files when it ends).
fn write_report(args: &ReportArgs) -> Result<()> {
    let run_dir = args.runs_dir.join(&args.run);
    anyhow::ensure!(
        run_dir.is_dir(),
        "no run folder {} (run `cargo xtask pipeline` first)",
        run_dir.display()
    );
    let _lock = RunLock::acquire(&run_dir)?;
    let path = report::write_run(&run_dir)?;
    eprintln!("report: {}", path.display());
    Ok(())
}
