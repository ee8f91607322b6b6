//! `cargo xtask bench --dpo`: the cost of one DPO step three ways, on the lesson model:
//! the lesson's four passes (policy and reference × chosen and rejected), one concatenated
//! policy pass plus a reference pass, and one concatenated policy pass with the reference's
//! log-probs precomputed; the last also with its batch split into one shard per core, as
//! training runs it. A benchmark, not a test.

use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::Device;
use data::batch::TokenizedExample;
use dpo::backward::pair_loss_backward;
use dpo::logps::{four_pass_logps, pair_logps, TokenizedPair};
use dpo::loss::{pair_loss, PairInputs};
use dpo::reference::ReferenceLogps;
use dpo::{LossConfig, LossType};
use model::{Gpt, GptConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trainer::parallel::shard_count;
use trainer::{LrSchedule, OptimConfig, OptimizerStep};

/// Lesson-shaped pairs: a 12-token prompt, 40-token chosen and rejected responses.
fn pairs(n: usize, vocab: usize, rng: &mut StdRng) -> Vec<TokenizedPair> {
    let mut tokens = |len: usize| -> Vec<u32> {
        (0..len)
            .map(|_| rng.random_range(1..vocab as u32))
            .collect()
    };
    (0..n)
        .map(|_| {
            let prompt = tokens(12);
            TokenizedPair {
                chosen: TokenizedExample {
                    prompt: prompt.clone(),
                    completion: tokens(40),
                },
                rejected: TokenizedExample {
                    prompt,
                    completion: tokens(40),
                },
            }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    FourPass,
    ConcatenatedWithReference,
    CachedReference,
    CachedReferenceSharded,
}

pub fn run(
    device: &Device,
    config: &GptConfig,
    batch: usize,
    warmup: usize,
    steps: usize,
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(0);
    let data = pairs(batch * 4, config.vocab_size, &mut rng);
    let loss = LossConfig {
        loss_type: LossType::Sigmoid,
        beta: 0.1,
        label_smoothing: 0.0,
        simpo_gamma: 0.5,
        rpo_alpha: 0.0,
        dpop_lambda: 0.0,
    };
    let ad = device.clone().autodiff();
    ad.seed(0);
    let reference = Gpt::new(config, &ad).valid();
    let all: Vec<&TokenizedPair> = data.iter().collect();

    println!(
        "DPO step, {batch} pairs of 12 + 40 tokens, d {} L {} h {} V {}",
        config.d_model, config.n_layers, config.n_heads, config.vocab_size
    );
    println!("{:<40} {:>10} {:>10}", "", "ms/step", "speed-up");
    let mut baseline = None;
    for (mode, name) in [
        (Mode::FourPass, "four passes (lesson)"),
        (
            Mode::ConcatenatedWithReference,
            "concatenated + reference pass",
        ),
        (Mode::CachedReference, "concatenated + cached reference"),
        (
            Mode::CachedReferenceSharded,
            "same, one shard per core (training)",
        ),
    ] {
        ad.seed(0);
        let mut policy = Gpt::new(config, &ad);
        let mut optimizer = OptimizerStep::new(
            &OptimConfig::with_lr(5e-5),
            &LrSchedule::Constant,
            warmup + steps,
        );
        let precompute_start = Instant::now();
        let cached = matches!(mode, Mode::CachedReference | Mode::CachedReferenceSharded);
        let cache = cached.then(|| ReferenceLogps::compute(&reference, &all, 0, device));
        let precompute = precompute_start.elapsed().as_secs_f64();
        let mut elapsed = 0.0;
        for step in 0..warmup + steps {
            let start_index = (step * batch) % data.len();
            let indices: Vec<usize> = (start_index..start_index + batch)
                .map(|i| i % data.len())
                .collect();
            let picked: Vec<&TokenizedPair> = indices.iter().map(|&i| &data[i]).collect();
            let start = Instant::now();
            policy = match mode {
                Mode::FourPass | Mode::ConcatenatedWithReference => {
                    let (chosen, rejected, reference_logps) = if mode == Mode::FourPass {
                        let (c, r, rc, rr) =
                            four_pass_logps(&policy, &reference, &picked, 0, &ad, device);
                        (c, r, (rc, rr))
                    } else {
                        let (c, r) = pair_logps(&policy, &picked, 0, &ad);
                        let fresh = ReferenceLogps::compute(&reference, &picked, 0, device);
                        (c, r, fresh.select(&(0..batch).collect::<Vec<_>>(), &ad))
                    };
                    let out = pair_loss(
                        &loss,
                        PairInputs {
                            chosen,
                            rejected,
                            reference: Some(reference_logps),
                        },
                    );
                    optimizer.apply(policy, out.loss, step)?.0
                }
                // The training step itself, on one shard or one per core.
                Mode::CachedReference | Mode::CachedReferenceSharded => {
                    let shards = if mode == Mode::CachedReferenceSharded {
                        shard_count(&ad)
                    } else {
                        1
                    };
                    let reference = cache.as_ref().expect("cache").select(&indices, &ad);
                    let out = pair_loss_backward(
                        &policy,
                        &picked,
                        Some(reference),
                        &loss,
                        0,
                        &ad,
                        shards,
                    );
                    optimizer
                        .apply_grads(policy, out.grads, out.out.loss, step)?
                        .0
                }
            };
            if step >= warmup {
                elapsed += start.elapsed().as_secs_f64();
            }
        }
        let ms = 1e3 * elapsed / steps as f64;
        let base = *baseline.get_or_insert(ms);
        let note = if cached {
            format!(
                "  (+{:.0} ms once to precompute {} pairs)",
                1e3 * precompute,
                data.len()
            )
        } else {
            String::new()
        };
        println!("{name:<40} {ms:>10.1} {:>9.2}×{note}", base / ms);
    }
    Ok(())
}
