//! `cargo xtask bench --rollout --vs-transformers`: our sampling next to `transformers`'
//! `generate` (`GPT2LMHeadModel`, KV cache) on the same exported checkpoint, in the same run:
//! the same batch, prompts, new tokens and thread count, sampled at temperature 1 and greedy.
//! Ours is timed before and after the peer, and both times are printed. A benchmark, not a
//! test.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use kernels::SimdLevel;
use model::{checkpoint, Gpt, GptConfig};
use serde_json::Value;

use crate::pytorch::{held_to_avx2, venv_python};
use crate::rollout::{options, prompts, tokens_per_s, Sampler, PROMPT_TOKENS};

const DIR: &str = "target/bench-transformers";

pub fn run(
    config: &GptConfig,
    rows: usize,
    repeats: usize,
    torch_python: Option<&Path>,
) -> Result<()> {
    let device = Device::flex();
    device.seed(0);
    let dir = Path::new(DIR);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {DIR}"))?;
    // One checkpoint: ours reads it back, transformers reads its export.
    let checkpoint_path = dir.join("model.safetensors");
    checkpoint::save(&Gpt::new(config, &device), config, &checkpoint_path)?;
    chain::export::export_model(&checkpoint_path, config, None, &dir.join("hf"))?;
    let (model, _) = checkpoint::load(&checkpoint_path, &device)?;
    let prompts = prompts(config, rows);
    let prompts_path = dir.join("prompts.json");
    std::fs::write(&prompts_path, serde_json::to_string(&prompts)?)?;
    let python = match torch_python {
        Some(python) => python.to_path_buf(),
        None => venv_python()?,
    };
    ensure_transformers(&python)?;

    let threads = rayon::current_num_threads();
    let new_tokens = config.block_size - PROMPT_TOKENS;
    println!(
        "{rows} rows, {PROMPT_TOKENS}-token prompts → {new_tokens} new tokens, d {} L {} h {} V {}, \
         the same checkpoint ({}), {threads} threads each",
        config.d_model,
        config.n_layers,
        config.n_heads,
        config.vocab_size,
        checkpoint_path.display()
    );
    let ours = |temperature| {
        let options = options(config, temperature);
        tokens_per_s(
            &model,
            &prompts,
            options,
            Sampler::Decoder,
            repeats,
            &device,
        )
    };
    let before = [ours(1.0), ours(0.0)];
    let theirs = transformers(&python, &prompts_path, new_tokens, threads, repeats)?;
    let after = [ours(1.0), ours(0.0)];

    println!(
        "ours: the decoder at {} | transformers {} / torch {} at {}",
        SimdLevel::active().name(),
        theirs["transformers"].as_str().unwrap_or("?"),
        theirs["torch"].as_str().unwrap_or("?"),
        theirs["vector_unit"].as_str().unwrap_or("?"),
    );
    println!(
        "{:<10} {:>22} {:>20} {:>14}",
        "", "ours tokens/s", "transformers", "ratio"
    );
    for (i, (name, key)) in [
        ("sampled", "sampled_tokens_per_s"),
        ("greedy", "greedy_tokens_per_s"),
    ]
    .into_iter()
    .enumerate()
    {
        let peer = theirs[key]
            .as_f64()
            .context("the peer's JSON lacks tokens/s")?;
        let (low, high) = (before[i].min(after[i]), before[i].max(after[i]));
        println!(
            "{name:<10} {:>22} {peer:>20.0} {:>14}",
            format!("{low:.0}-{high:.0}"),
            format!("{:.1}-{:.1}×", low / peer, high / peer)
        );
    }
    Ok(())
}

/// Installs transformers into a venv made before the bench needed it.
fn ensure_transformers(python: &Path) -> Result<()> {
    let has = |python: &Path| {
        Command::new(python)
            .args(["-c", "import transformers"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if has(python) {
        return Ok(());
    }
    eprintln!("installing transformers into {} ...", python.display());
    let ok = Command::new(python)
        .args(["-m", "pip", "install", "--quiet", "transformers"])
        .status()
        .context("running pip")?
        .success();
    if !ok || !has(python) {
        bail!("could not install transformers for {}", python.display());
    }
    Ok(())
}

fn transformers(
    python: &Path,
    prompts: &Path,
    new_tokens: usize,
    threads: usize,
    repeats: usize,
) -> Result<Value> {
    let out = Command::new(python)
        .arg("bench/transformers_generate.py")
        .args(["--hf", &format!("{DIR}/hf")])
        .arg("--prompts")
        .arg(prompts)
        .args(["--new-tokens", &new_tokens.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--repeats", &repeats.to_string()])
        // Both sides on one instruction set when ours is held to AVX2.
        .envs(held_to_avx2(SimdLevel::active() == SimdLevel::Avx2))
        // OpenMP threads that spin make PyTorch collapse when anything else runs.
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .context("running bench/transformers_generate.py")?;
    if !out.status.success() {
        bail!(
            "bench/transformers_generate.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("reading the peer's result {line:?}"))
}
