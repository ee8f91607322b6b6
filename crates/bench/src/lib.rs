//! `cargo xtask bench`: throughput of the lesson model, a benchmark, not a test. By default
//! tokens/s for a training step (forward, backward, clip, AdamW) and for a forward pass alone;
//! `--dpo`, `--rollout`, `--products` and `--vs-pytorch` run the other benchmarks, each in its
//! module, all timed by `measure`.

mod dpo;
mod measure;
mod products;
mod pytorch;
mod rollout;
mod vs_transformers;

use anyhow::Result;
use clap::Args;
use model::{DeviceChoice, GptConfig};

use measure::{measure, rayon_threads, simd_paths};

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "flex")]
    device: DeviceChoice,
    /// Timed steps (after warmup).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 64)]
    seq_len: usize,
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    #[arg(long, default_value_t = 4)]
    n_layers: usize,
    #[arg(long, default_value_t = 4)]
    n_heads: usize,
    /// The lessons' character vocabulary size.
    #[arg(long, default_value_t = 65)]
    vocab: usize,
    /// Benchmark a DPO step instead: four passes vs concatenated vs cached reference.
    #[arg(long)]
    dpo: bool,
    /// Benchmark sampling instead (RLVR's rollouts, evaluation): tokens/s of the tensor path
    /// without and with the KV cache and of the CPU's decoder, against the arithmetic bound.
    #[arg(long)]
    rollout: bool,
    /// With --rollout: each prompt sampled this many times, as RLVR's groups and pass@k do
    /// (`--group 4`: 8 prompts × 4 rows at the default --batch 32); the decoder reads a
    /// repeated prompt once per batch.
    #[arg(
        long,
        default_value_t = 1,
        requires = "rollout",
        conflicts_with = "vs_transformers"
    )]
    group: usize,
    /// With --rollout: ours side by side with transformers' `generate` on the same exported
    /// checkpoint (bench/transformers_generate.py), sampled and greedy; uses
    /// target/pytorch-venv (or --torch-python) and installs transformers there if missing.
    #[arg(long, requires = "rollout")]
    vs_transformers: bool,
    /// Time every matrix product of one shard's training step on one thread, against the
    /// core's measured FMA peak and the measured step: where the step's time goes.
    #[arg(long)]
    products: bool,
    /// Side by side with PyTorch (bench/pytorch_reference.py, every variant) on the lesson
    /// config and a larger one; creates target/pytorch-venv with torch on first use.
    #[arg(long)]
    vs_pytorch: bool,
    /// The Python that runs the PyTorch side (one that already has torch, e.g. on a GPU
    /// machine); without it, target/pytorch-venv is created and used.
    #[arg(long)]
    torch_python: Option<std::path::PathBuf>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let device = args.device.device().map_err(anyhow::Error::msg)?;
    let config = GptConfig {
        vocab_size: args.vocab,
        block_size: args.seq_len,
        d_model: args.d_model,
        n_layers: args.n_layers,
        n_heads: args.n_heads,
        ..GptConfig::default()
    };
    if args.dpo {
        return dpo::run(&device, &config, args.batch, args.warmup, args.steps);
    }
    if args.vs_transformers {
        if args.device != DeviceChoice::Flex {
            anyhow::bail!("--vs-transformers compares CPU sampling: leave out --device");
        }
        let python = args.torch_python.as_deref();
        return vs_transformers::run(&config, args.batch, args.steps.min(5), python);
    }
    if args.rollout {
        if args.group == 0 || !args.batch.is_multiple_of(args.group) {
            anyhow::bail!(
                "--group {} must divide --batch {} (rows = prompts × group)",
                args.group,
                args.batch
            );
        }
        return rollout::run(&device, &config, args.batch, args.group, args.steps.min(5));
    }
    if args.products {
        return products::run(&device, &config, args.batch, args.steps);
    }
    if args.vs_pytorch {
        return pytorch::run(
            &device,
            args.device,
            args.torch_python.as_deref(),
            args.steps,
            args.warmup,
        );
    }
    let timing = measure(&device, &config, args.batch, args.warmup, args.steps)?;
    let tokens = (args.batch * args.seq_len) as f64;
    println!(
        "device {} | d {} L {} h {} V {} | B {} T {} | {} params | rayon threads {}",
        args.device,
        args.d_model,
        args.n_layers,
        args.n_heads,
        args.vocab,
        args.batch,
        args.seq_len,
        config.num_params(),
        rayon_threads()
    );
    if args.device == DeviceChoice::Flex {
        println!("SIMD: {}", simd_paths());
    }
    println!(
        "first training step {:.2} s (on a GPU: kernel compilation and autotune)",
        timing.first_step_s
    );
    println!("{:<14} {:>10} {:>12}", "", "ms/step", "tokens/s");
    println!(
        "{:<14} {:>10.1} {:>12.0}",
        "train step",
        1e3 * timing.train_s,
        tokens / timing.train_s
    );
    println!(
        "{:<14} {:>10.1} {:>12.0}",
        "forward only",
        1e3 * timing.forward_s,
        tokens / timing.forward_s
    );
    Ok(())
}
