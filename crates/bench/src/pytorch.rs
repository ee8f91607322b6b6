//! `cargo xtask bench --vs-pytorch`: our training step and forward pass next to PyTorch's best
//! variant (eager or compiled, hand-written attention or SDPA, default or fused AdamW) on the
//! same machine, in the same run, with the same thread count. A benchmark, not a test.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use model::{DeviceChoice, GptConfig};
use serde_json::Value;

use crate::measure::{measure, rayon_threads};

const VENV: &str = "target/pytorch-venv";

struct Case {
    name: &'static str,
    config: GptConfig,
    batch: usize,
}

fn cases() -> [Case; 2] {
    let config = |d_model, n_layers, n_heads, block_size| GptConfig {
        vocab_size: 65,
        block_size,
        d_model,
        n_layers,
        n_heads,
        ..GptConfig::default()
    };
    [
        Case {
            name: "lesson d128 L4 h4 T64 B32",
            config: config(128, 4, 4, 64),
            batch: 32,
        },
        Case {
            name: "larger d256 L6 h8 T256 B16",
            config: config(256, 6, 8, 256),
            batch: 16,
        },
    ]
}

/// The virtual environment's Python, created with torch on first use.
pub(crate) fn venv_python() -> Result<PathBuf> {
    let python = Path::new(VENV).join("bin/python");
    if python.is_file() {
        return Ok(python);
    }
    eprintln!(
        "creating {VENV} and installing torch and transformers from PyPI (a few GB; once)..."
    );
    let ok = Command::new("python3")
        .args(["-m", "venv", VENV])
        .status()
        .context("running python3 -m venv")?
        .success()
        && Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "torch",
                "transformers",
                "numpy",
                "safetensors",
                "tokenizers",
            ])
            .status()
            .context("running pip")?
            .success();
    if !ok {
        bail!("could not install torch into {VENV}");
    }
    Ok(python)
}

/// The variables that hold PyTorch (ATen's kernels, MKL, oneDNN) to AVX2 when ours run at
/// AVX2 on the CPU, so that both sides use one instruction set; none otherwise.
fn pytorch_isa_cap(choice: DeviceChoice) -> Vec<(&'static str, &'static str)> {
    let ours_avx2 =
        kernels::SimdLevel::active().max(kernels::gemm_level()) == kernels::SimdLevel::Avx2;
    held_to_avx2(choice == DeviceChoice::Flex && ours_avx2)
}

/// The variables that hold PyTorch to AVX2 when `ours_avx2`; none otherwise.
pub(crate) fn held_to_avx2(ours_avx2: bool) -> Vec<(&'static str, &'static str)> {
    if ours_avx2 {
        vec![
            ("ATEN_CPU_CAPABILITY", "avx2"),
            ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
            ("ONEDNN_MAX_CPU_ISA", "AVX2"),
        ]
    } else {
        Vec::new()
    }
}

/// Every PyTorch variant's JSON line for one case.
fn pytorch(
    python: &Path,
    case: &Case,
    threads: &str,
    torch_device: &str,
    steps: usize,
    warmup: usize,
    isa_cap: &[(&str, &str)],
) -> Result<Vec<Value>> {
    let c = &case.config;
    let out = Command::new(python)
        .arg("bench/pytorch_reference.py")
        .arg("train")
        .args(["--vocab", &c.vocab_size.to_string()])
        .args(["--d", &c.d_model.to_string()])
        .args(["--layers", &c.n_layers.to_string()])
        .args(["--heads", &c.n_heads.to_string()])
        .args(["--seq", &c.block_size.to_string()])
        .args(["--batch", &case.batch.to_string()])
        .args([
            "--steps",
            &steps.to_string(),
            "--warmup",
            &warmup.to_string(),
        ])
        .args(["--threads", threads])
        .args(["--device", torch_device])
        .envs(isa_cap.iter().map(|&(k, v)| (k, v)))
        // OpenMP threads that spin make PyTorch collapse when anything else runs.
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .context("running bench/pytorch_reference.py")?;
    if !out.status.success() {
        bail!(
            "bench/pytorch_reference.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The variant with the highest value of `key`, as (tokens/s, name).
fn best(rows: &[Value], key: &str) -> Option<(f64, String)> {
    rows.iter()
        .filter_map(|r| Some((r[key].as_f64()?, r["variant"].as_str()?.to_string())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

pub fn run(
    device: &Device,
    choice: DeviceChoice,
    torch_python: Option<&Path>,
    steps: usize,
    warmup: usize,
) -> Result<()> {
    let python = match torch_python {
        Some(python) => python.to_path_buf(),
        None => venv_python()?,
    };
    // Our wgpu runs on the GPU, so PyTorch's peer there is CUDA.
    let torch_device = match choice {
        DeviceChoice::Flex => "cpu",
        DeviceChoice::Wgpu => "cuda",
    };
    println!("ours on {choice}, PyTorch on {torch_device}");
    let isa_cap = pytorch_isa_cap(choice);
    if choice == DeviceChoice::Flex {
        println!("ours: SIMD {}", crate::measure::simd_paths());
        if kernels::SimdLevel::active() != kernels::gemm_level() {
            println!(
                "  warning: the fused kernels and gemm run different vector units, so this is \
                 not one instruction set; for AVX2 throughout build with --no-default-features"
            );
        }
        if !isa_cap.is_empty() {
            let vars: Vec<String> = isa_cap.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("PyTorch held to AVX2 as well: {}", vars.join(" "));
        }
    }
    let threads = rayon_threads();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "threads {threads} each | load average before: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:<28} {:<8} {:>12} {:>12} {:>7}  PyTorch's best variant",
        "config", "pass", "ours tok/s", "torch tok/s", "ratio"
    );
    for case in cases() {
        let ours = measure(device, &case.config, case.batch, warmup, steps)?;
        let rows = pytorch(
            &python,
            &case,
            &threads,
            torch_device,
            steps,
            warmup,
            &isa_cap,
        )?;
        if let Some(capability) = rows.iter().find_map(|r| r["cpu_capability"].as_str()) {
            println!("{:<28} PyTorch CPU capability: {capability}", case.name);
        }
        println!(
            "{:<28} first training step: ours {:.2} s, PyTorch ({}) {} s",
            case.name,
            ours.first_step_s,
            rows.first()
                .and_then(|r| r["device"].as_str())
                .unwrap_or("?"),
            rows.iter()
                .filter_map(|r| Some(format!(
                    "{}={:.2}",
                    r["variant"].as_str()?,
                    r["first_step_s"].as_f64()?
                )))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for row in rows.iter().filter(|r| r.get("error").is_some()) {
            eprintln!("  (PyTorch {} failed: {})", row["variant"], row["error"]);
        }
        for row in rows.iter().filter(|r| r.get("error").is_none()) {
            println!(
                "{:<28}   PyTorch {:<26} train {:>9.0}  forward {:>9.0} tok/s",
                "",
                row["variant"].as_str().unwrap_or("?"),
                row["train_tokens_per_s"].as_f64().unwrap_or(f64::NAN),
                row["forward_tokens_per_s"].as_f64().unwrap_or(f64::NAN),
            );
        }
        let tokens = (case.batch * case.config.block_size) as f64;
        for (pass, ours_s, key) in [
            ("train", ours.train_s, "train_tokens_per_s"),
            ("forward", ours.forward_s, "forward_tokens_per_s"),
        ] {
            let ours_tps = tokens / ours_s;
            match best(&rows, key) {
                Some((torch_tps, variant)) => println!(
                    "{:<28} {:<8} {:>12.0} {:>12.0} {:>6.2}×  {variant}",
                    case.name,
                    pass,
                    ours_tps,
                    torch_tps,
                    ours_tps / torch_tps
                ),
                None => println!(
                    "{:<28} {:<8} {:>12.0} {:>12}",
                    case.name, pass, ours_tps, "—"
                ),
            }
        }
    }
    Ok(())
}
