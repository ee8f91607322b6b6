//! `cargo xtask serve`: a local web playground where every stage of a run answers the same
//! prompt side by side, over a JSON API a script can use too (`api.rs`), with the run's report
//! card on the same page. Every checkpoint is loaded once at start and shared read-only;
//! generation runs on tokio's blocking pool, so a long request never holds up other routes.

mod api;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use chain::skills::SkillSuite;
use clap::Args;
use model::DeviceChoice;

use state::Playground;

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

/// Serves until killed. `held_out` is where the page's example problems come from: the
/// settings the run was made with (`--config`), which the caller reads.
pub fn run(args: &ServeArgs, held_out: &SkillSuite) -> Result<()> {
    let device = args.device.device().map_err(anyhow::Error::msg)?;
    let run_dir = args.runs_dir.join(&args.run);
    let playground = Arc::new(Playground::load(run_dir, device, held_out)?);
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
