//! The GPU path computes what the CPU path computes: logits, gradients and optimizer steps of
//! the same tiny model agree between wgpu and flex, although wgpu trains through its own layer
//! norm, causal softmax and flat AdamW. Built only with xtask's `wgpu` feature: CI runs the
//! whole suite with `--features xtask/wgpu` on Mesa's software Vulkan (lavapipe), where the
//! first step JIT-compiles the kernels (about 40 s).
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use model::{checkpoint, DeviceChoice, GptConfig};

use test_support::{max_abs_diff, values};

/// A tiny model's checkpoint, made on flex from `seed`, for both backends to load.
fn tiny_checkpoint(seed: u64) -> (tempfile::TempDir, std::path::PathBuf, GptConfig) {
    let config = test_support::small(11);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let cpu = Device::flex();
    let model = test_support::seeded_model(&config, seed, &cpu);
    checkpoint::save(&model, &config, &path).unwrap();
    (dir, path, config)
}

#[test]
fn wgpu_forward_and_backward_agree_with_flex() {
    let (_dir, path, config) = tiny_checkpoint(7);
    let cpu = Device::flex();

    let tokens = |device: &Device| {
        Tensor::<2, Int>::from_data(
            TensorData::new(vec![3i64, 1, 4, 1, 5, 9, 2, 6], [2, 4]),
            device,
        )
    };
    // Training: on wgpu the layer norms and the causal softmax are single autodiff operations
    // with hand-written backward passes (flex uses Burn's layer norm), so check a gradient
    // behind each: the embedding (through everything), a layer norm's γ and β, the QKV weight.
    let train = |device: Device| {
        let device = device.autodiff();
        let (gpt, _) = checkpoint::load(&path, &device).unwrap();
        let tokens = tokens(&device);
        let logits = gpt.forward(tokens.clone());
        let picked = log_softmax(logits.clone().narrow(1, 0, 3), 2)
            .gather(2, tokens.narrow(1, 1, 3).unsqueeze_dim::<3>(2));
        let loss = -picked.sum() / 6.0;
        let grads = loss.backward();
        let block = &gpt.blocks[0];
        let grads = vec![
            values(gpt.token_embedding.val().grad(&grads).unwrap()),
            values(gpt.ln_f.gamma.val().grad(&grads).unwrap()),
            values(block.ln1.beta.as_ref().unwrap().val().grad(&grads).unwrap()),
            values(block.attn.qkv.val().grad(&grads).unwrap()),
            // The query block alone: its gradient comes only through the softmax's backward,
            // and it is too small next to the value block's to show an error there.
            values(
                block
                    .attn
                    .qkv
                    .val()
                    .grad(&grads)
                    .unwrap()
                    .narrow(1, 0, config.d_model),
            ),
        ];
        (values(logits), grads)
    };
    let (cpu_logits, cpu_grads) = train(cpu.clone());
    let (gpu_logits, gpu_grads) = train(DeviceChoice::Wgpu.device().unwrap());
    assert!(max_abs_diff(&cpu_logits, &gpu_logits) < 1e-4);
    for (name, (cpu, gpu)) in ["embedding", "ln_f.gamma", "ln1.beta", "qkv", "qkv, queries"]
        .iter()
        .zip(cpu_grads.iter().zip(&gpu_grads))
    {
        // Relative to the gradient's size: at this model's initial scale an absolute bound
        // would let a backward pass that is off by a percent through.
        let size = cpu.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        let diff = max_abs_diff(cpu, gpu);
        eprintln!("{name}: max |grad| {size:.3e}, max difference {diff:.3e}");
        assert!(size > 0.0, "{name}: a real gradient");
        assert!(
            diff <= 1e-4 * size,
            "{name}: gradients differ by {diff} (max |grad| {size})"
        );
    }

    // Inference: wgpu's forward-only pass runs Burn's fused attention kernel instead.
    let infer = |device: Device| {
        let (gpt, _) = checkpoint::load(&path, &device).unwrap();
        values(gpt.forward(tokens(&device)))
    };
    let diff = max_abs_diff(&infer(cpu), &infer(DeviceChoice::Wgpu.device().unwrap()));
    assert!(diff < 1e-4, "forward-only logits differ by {diff}");
}

/// Training steps on wgpu take the GPU optimizer (one flat AdamW, parameters as views of its
/// vector); on flex, Burn's per-tensor AdamW. After three clipped, decayed steps the two
/// models must still compute the same logits.
#[test]
fn training_steps_on_wgpu_match_flex() {
    use trainer::{LrSchedule, OptimConfig, OptimizerStep};

    let (_dir, path, _) = tiny_checkpoint(11);
    let cpu = Device::flex();
    // ε large enough that a gradient at rounding-noise level (the two backends sum in other
    // orders, and wgpu's embedding backward adds atomically) cannot become a full ±lr step:
    // with ε = 1e-8 Adam turns a 1e-9 difference into one.
    let optim = OptimConfig {
        lr: 1e-2,
        betas: [0.9, 0.95],
        eps: 1e-3,
        weight_decay: 0.1,
        grad_clip: 0.5,
    };

    let train = |device: Device| {
        let plain = device.clone();
        let device = device.autodiff();
        let (mut gpt, _) = checkpoint::load(&path, &device).unwrap();
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(vec![3i64, 1, 4, 1, 5, 9, 2, 6], [2, 4]),
            &device,
        );
        let mut step = OptimizerStep::new(&optim, &LrSchedule::Constant, 3);
        let mut norms = Vec::new();
        for i in 0..3 {
            let logits = gpt.forward(tokens.clone());
            let picked = log_softmax(logits.narrow(1, 0, 3), 2)
                .gather(2, tokens.clone().narrow(1, 1, 3).unsqueeze_dim::<3>(2));
            let loss = -picked.sum() / 6.0;
            let (updated, report) = step.apply(gpt, loss, i).unwrap();
            gpt = updated;
            norms.push(report.grad_norm);
        }
        let tokens = Tensor::<2, Int>::from_data(tokens.into_data(), &plain);
        (values(gpt.valid().forward(tokens)), norms)
    };
    let (cpu_logits, cpu_norms) = train(cpu);
    let (gpu_logits, gpu_norms) = train(DeviceChoice::Wgpu.device().unwrap());
    assert!(
        cpu_norms[0] > optim.grad_clip,
        "the clip is exercised: {cpu_norms:?}"
    );
    for (a, b) in cpu_norms.iter().zip(&gpu_norms) {
        assert!((a - b).abs() <= 1e-4 * a, "{cpu_norms:?} vs {gpu_norms:?}");
    }
    let diff = max_abs_diff(&cpu_logits, &gpu_logits);
    eprintln!("logits after three steps differ by {diff:.3e}");
    assert!(diff < 1e-4, "logits after three steps differ by {diff}");
}

/// A regression guard for the GPU path's launch count: a training step plus a forward pass
/// launched 881 kernels before the fused layer norm, causal softmax and flat AdamW, and 401
/// after (`docs/perf.md`, changes 12-17). Counted like `bench/count_launches.sh`: CubeCL's
/// kernel log, the difference between two warm runs of the bench. The bound leaves room for
/// another Mesa's binding limits, not for a path falling back to Burn's per-tensor optimizer
/// (about 140 more) or its unfused backward (about 170 more).
#[test]
fn a_training_step_launches_few_kernels() {
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("kernels.log");
    std::fs::write(
        scratch.path().join("cubecl.toml"),
        format!(
            "[profiling.logger]\nlevel = \"minimal\"\nfile = {:?}\n",
            log.display().to_string()
        ),
    )
    .unwrap();
    let launches = |steps: usize| {
        let _ = std::fs::remove_file(&log);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(scratch.path())
            .args(["bench", "--device", "wgpu", "--warmup", "1", "--batch", "4"])
            .args(["--steps", &steps.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&log).unwrap().lines().count()
    };
    launches(2); // fills the autotune cache, whose runs are logged too
    let per_step_and_pass = (launches(4) - launches(2)) / 2;
    eprintln!("{per_step_and_pass} launches per training step + forward pass");
    assert!(
        per_step_and_pass <= 480,
        "{per_step_and_pass} launches per training step + forward pass (401 when written)"
    );
}
