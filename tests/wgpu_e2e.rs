//! The GPU path computes what the CPU path computes: logits and a gradient of the same tiny
//! model agree between wgpu and flex. Built only with `--features wgpu`; CI runs it on Mesa's
//! software Vulkan (lavapipe), where the first step JIT-compiles the kernels (about 40 s).
#![cfg(feature = "wgpu")]

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use model::{checkpoint, DeviceChoice, Gpt, GptConfig};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn wgpu_forward_and_backward_agree_with_flex() {
    let config = GptConfig {
        vocab_size: 11,
        block_size: 16,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let cpu = Device::flex();
    cpu.seed(7);
    checkpoint::save(&Gpt::new(&config, &cpu), &config, &path).unwrap();

    let run = |device: Device| {
        let device = device.autodiff();
        let (gpt, _) = checkpoint::load(&path, &device).unwrap();
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(vec![3i64, 1, 4, 1, 5, 9, 2, 6], [2, 4]),
            &device,
        );
        let logits = gpt.forward(tokens.clone());
        let picked = log_softmax(logits.clone().narrow(1, 0, 3), 2)
            .gather(2, tokens.narrow(1, 1, 3).unsqueeze_dim::<3>(2));
        let loss = -picked.sum() / 6.0;
        let grads = loss.backward();
        let grad = gpt.token_embedding.val().grad(&grads).unwrap();
        (values(logits), values(grad))
    };
    let (cpu_logits, cpu_grad) = run(cpu);
    let (gpu_logits, gpu_grad) = run(DeviceChoice::Wgpu.device().unwrap());
    assert!(max_abs_diff(&cpu_logits, &gpu_logits) < 1e-4);
    assert!(max_abs_diff(&cpu_grad, &gpu_grad) < 1e-4);
    assert!(cpu_grad.iter().any(|g| g.abs() > 0.0), "a real gradient");
}
