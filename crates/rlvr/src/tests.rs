//! GRPO's loss on a tiny random model: KL is 0 while policy = reference, and one step on a
//! group with one success raises that rollout's log-prob and moves the policy off the reference.

use burn::tensor::Device;
use data::batch::{PaddedBatch, TokenizedExample};
use model::{checkpoint, Gpt, GptConfig};
use trainer::tensors::padded_batch;
use trainer::{LrSchedule, OptimConfig, OptimizerStep};

use crate::advantage::group_advantages;
use crate::rollout::Rollout;
use crate::train::grpo_loss;

fn shape() -> GptConfig {
    GptConfig {
        vocab_size: 13,
        block_size: 16,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
    }
}

fn rollout(completion: &[u32]) -> Rollout {
    Rollout {
        prompt_index: 0,
        prompt: vec![1, 2, 3],
        completion: completion.to_vec(),
        text: String::new(),
        clipped: false,
    }
}

fn logp(model: &Gpt, r: &Rollout, device: &Device) -> f32 {
    let example = TokenizedExample {
        prompt: r.prompt.clone(),
        completion: r.completion.clone(),
    };
    let batch = PaddedBatch::new(&[&example], 0, true);
    let (tokens, mask) = padded_batch(&batch, device);
    logprob::gather_logprobs(model.forward(tokens.clone()), tokens, mask).into_scalar::<f32>()
}

#[test]
fn kl_starts_at_zero_and_a_step_favours_the_rewarded_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Device::flex();
    plain.seed(11);
    let path = dir.path().join("parent.safetensors");
    checkpoint::save(&Gpt::new(&shape(), &plain), &shape(), &path).unwrap();
    let device = plain.clone().autodiff();
    let policy = checkpoint::load(&path, &device).unwrap().0;
    let reference = checkpoint::load(&path, &plain).unwrap().0;

    let group = [
        rollout(&[4, 5, 12]),
        rollout(&[6, 7, 12]),
        rollout(&[8, 9, 10, 12]),
        rollout(&[11, 12]),
    ];
    let advantages = group_advantages(&[1.0, 0.0, 0.0, 0.0]).unwrap();
    let live: Vec<(&Rollout, f64)> = group.iter().zip(advantages).collect();
    let (loss, kl) = grpo_loss(&policy, &reference, &live, 4, 0.05, 0, &plain, &device);
    assert!(kl.abs() < 1e-6, "KL with policy = reference: {kl}");

    let before = logp(&reference, &group[0], &plain);
    let optim = OptimConfig {
        weight_decay: 0.0,
        ..OptimConfig::with_lr(1e-2)
    };
    let mut step = OptimizerStep::new(&optim, &LrSchedule::Constant, 1);
    let (policy, _) = step.apply(policy, loss, 0).unwrap();
    use burn::module::Module;
    let after = logp(&policy.valid(), &group[0], &plain);
    assert!(after > before, "log π(rewarded) {before} → {after}");
    let (_, kl_after) = grpo_loss(&policy, &reference, &live, 4, 0.05, 0, &plain, &device);
    assert!(kl_after > 0.0, "KL after a step: {kl_after}");
}
