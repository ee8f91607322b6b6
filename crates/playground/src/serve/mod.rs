//! `cargo xtask serve`: a local web playground where every stage of a run answers the same
//! prompt side by side, over a JSON API a script can use too (`api.rs`), with the run's report
//! card on the same page. Every checkpoint is loaded once at start and shared read-only;
//! generation runs on tokio's blocking pool, so a long request never holds up other routes.

mod api;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::Args;
use data::tasks::{digit_sum, reverse};
use model::DeviceChoice;
use trainer::files;

use crate::inference::LoadedStage;
use chain::skills::SkillSuite;
use chain::Stage;

#[derive(Args)]
pub struct ServeArgs {
    /// The run whose stages answer: RUNS_DIR/NAME/STAGE.
    #[arg(long, default_value = "default")]
    run: String,
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// The settings the run was made with: its held-out problems come from them.
    #[arg(long, default_value = "pipeline.toml")]
    pub config: PathBuf,
    /// Address to listen on; only this machine can reach the default.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0 = any free port; the address is printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    #[arg(long, default_value = "flex")]
    device: DeviceChoice,
}

/// What every request reads: the run's loaded stages and its held-out problems.
pub struct Playground {
    run_dir: PathBuf,
    /// The stages of the chain whose checkpoint exists, in chain order.
    stages: Vec<(Stage, LoadedStage)>,
    /// Those without one: asking for them is a 404 naming the missing file.
    missing: Vec<Stage>,
    problems: serde_json::Value,
    device: Device,
}

impl Playground {
    pub fn load(args: &ServeArgs, held_out: &SkillSuite) -> Result<Self> {
        let device = args.device.device().map_err(anyhow::Error::msg)?;
        let run_dir = args.runs_dir.join(&args.run);
        if !run_dir.is_dir() {
            bail!("run folder {} does not exist", run_dir.display());
        }
        let mut stages = Vec::new();
        let mut missing = Vec::new();
        for stage in Stage::ALL {
            let dir = stage.dir(&run_dir);
            if dir.join(files::CHECKPOINT).is_file() {
                let loaded = LoadedStage::load(&dir, &device)
                    .with_context(|| format!("loading stage {stage}"))?;
                stages.push((stage, loaded));
            } else {
                missing.push(stage);
            }
        }
        let Some((_, first)) = stages.first() else {
            bail!(
                "run folder {} has no stage checkpoint yet (run `cargo xtask pipeline --run {}`)",
                run_dir.display(),
                args.run
            );
        };
        let tokenizer_hash = first.tokenizer.hash();
        if let Some((stage, _)) = stages
            .iter()
            .find(|(_, s)| s.tokenizer.hash() != tokenizer_hash)
        {
            bail!(
                "{}: {stage} has another tokenizer than the run's first stage",
                run_dir.display()
            );
        }
        let problems = held_out_problems(held_out)?;
        Ok(Self {
            run_dir,
            stages,
            missing,
            problems,
            device,
        })
    }
}

/// A few held-out problems of each task for the page's picker: sums at every evaluated K and
/// one K beyond (never demonstrated), and reversal words the SFT stage never trained on.
fn held_out_problems(held_out: &SkillSuite) -> Result<serde_json::Value> {
    let mut ks = held_out.suite.ks.clone();
    ks.push(ks.iter().max().map_or(7, |k| (k + 1).min(9)));
    ks.dedup();
    let sums: Vec<serde_json::Value> = ks
        .iter()
        .flat_map(|&k| digit_sum::held_out_problems(k, 6, held_out.suite.seed))
        .map(|p| serde_json::json!({ "task": "digit_sum", "k": p.k(), "prompt": p.prompt() }))
        .collect();
    let words = reverse::read_words(held_out.words)?;
    let words: Vec<serde_json::Value> = reverse::held_out_words(&words)
        .iter()
        .take(8)
        .map(|w| serde_json::json!({ "task": "reverse", "prompt": reverse::prompt(w) }))
        .collect();
    Ok(serde_json::Value::Array([sums, words].concat()))
}

/// Serves until killed. `held_out` is where the page's example problems come from: the
/// settings the run was made with (`--config`), which the caller reads.
pub fn run(args: &ServeArgs, held_out: &SkillSuite) -> Result<()> {
    let playground = Arc::new(Playground::load(args, held_out)?);
    let names: Vec<&str> = playground.stages.iter().map(|(s, _)| s.name()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    runtime.block_on(async move {
        let address = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        let bound = listener.local_addr()?;
        // Tests read this line to find an ephemeral port.
        eprintln!(
            "serving {} ({}) at http://{bound}/",
            playground.run_dir.display(),
            names.join(", ")
        );
        axum::serve(listener, api::router(playground))
            .await
            .context("serving")
    })
}
