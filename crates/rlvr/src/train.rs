//! The GRPO loop, top to bottom: draw prompts, sample a group of rollouts per prompt from
//! the current policy, reward them with the verifier, turn rewards into group advantages
//! (skipping dead groups), then one gradient step on
//! −(1/K) Σ A·log πθ(y|x) + β·KL(πθ‖πref) over the response tokens.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use data::batch::{PaddedBatch, TokenizedExample};
use data::tasks::digit_sum::DigitSum;
use data::TextTokenizer;
use model::Gpt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sft::supervised::{to_tensors, Evaluator};
use trainer::resume::Resume;
use trainer::{OptimizerStep, Progress, StepReport};

use crate::advantage::{group_advantages, group_std};
use crate::config::RlvrConfig;
use crate::reward::reward;
use crate::rollout::{rollouts, Rollout, RolloutOptions};

pub struct GrpoRun<'a> {
    pub problems: &'a [DigitSum],
    pub tokenizer: &'a TextTokenizer,
    pub config: &'a RlvrConfig,
    pub pad_id: u32,
    pub label: &'a str,
    pub metrics_path: &'a Path,
    pub quiet: bool,
    /// Snapshots for resuming this loop after a kill.
    pub resume: Resume,
}

impl GrpoRun<'_> {
    /// Trains `policy` (autodiff `device`) against the frozen `reference` (plain `device`).
    pub fn train(
        &self,
        policy: Gpt,
        reference: &Gpt,
        plain: &Device,
        device: &Device,
        evaluate: &mut Evaluator,
    ) -> Result<Gpt> {
        let config = self.config;
        let k = config.group_size;
        let mut optimizer = OptimizerStep::new(&config.optimizer, &config.schedule, config.steps);
        let start = self
            .resume
            .start(policy, &mut optimizer, self.metrics_path, device)?;
        let (mut policy, mut metrics) = (start.model, start.metrics);
        // The reward EMA carries on from the last logged row of a resumed run.
        let mut reward_ema: Option<f64> = trainer::metrics::read_rows(self.metrics_path)
            .ok()
            .and_then(|rows| rows.last()?.get("reward_ema")?.as_f64())
            .filter(|_| start.step > 0);
        let progress = Progress::new(self.label, config.steps, self.quiet);
        let mut window = Window::default();
        let mut window_start = Instant::now();

        for step in start.step..config.steps {
            // Each step's randomness (prompts and sampling) comes from its own seed, so a
            // resumed run draws exactly what the uninterrupted one would have.
            let mut rng = StdRng::seed_from_u64(
                config
                    .seed
                    .wrapping_add((step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            );
            // 1. Prompts and rollouts from the current policy (no graph while sampling).
            let picked: Vec<&DigitSum> = (0..config.prompts_per_step)
                .map(|_| &self.problems[rng.random_range(0..self.problems.len())])
                .collect();
            let prompts: Vec<String> = picked.iter().map(|p| p.prompt()).collect();
            let sampled = rollouts(
                &policy.valid(),
                self.tokenizer,
                &prompts,
                RolloutOptions {
                    group_size: k,
                    temperature: config.temperature,
                    top_k: config.top_k,
                },
                &mut rng,
                plain,
            )?;

            // 2. Verifier rewards, group advantages; dead groups are counted and skipped.
            let rewards: Vec<f64> = sampled
                .iter()
                .map(|r| reward(picked[r.prompt_index], &r.text, config.partial_credit))
                .collect();
            let mut live: Vec<(&Rollout, f64)> = Vec::new();
            for (group, group_rewards) in sampled.chunks(k).zip(rewards.chunks(k)) {
                let advantages = group_advantages(group_rewards);
                window.add_group(group, group_rewards, advantages.is_none());
                if let Some(advantages) = advantages {
                    live.extend(group.iter().zip(advantages));
                }
            }
            let mean_reward = rewards.iter().sum::<f64>() / rewards.len() as f64;
            let ema = reward_ema.map_or(mean_reward, |e| 0.9 * e + 0.1 * mean_reward);
            reward_ema = Some(ema);

            // 3. One policy-gradient step on the live groups.
            if !live.is_empty() {
                let (loss, kl) = grpo_loss(
                    &policy,
                    reference,
                    &live,
                    k,
                    config.beta,
                    self.pad_id,
                    plain,
                    device,
                );
                window.kl.push(kl);
                let (updated, step_report) = optimizer.apply(policy, loss, step)?;
                policy = updated;
                window.loss.push(step_report.loss as f64);
                window.last_report = Some(step_report);
            }

            let done = step + 1;
            let evaluate_now = config.eval_every > 0 && done % config.eval_every == 0;
            if done % config.log_every == 0 || done == config.steps || evaluate_now {
                let w = window.averages();
                let mut row: Vec<(String, serde_json::Value)> = vec![
                    ("step".into(), json!(done)),
                    ("reward".into(), json!(w.reward)),
                    ("reward_ema".into(), json!(ema)),
                    ("reward_std".into(), json!(w.reward_std)),
                    ("frac_reward_zero_std".into(), json!(w.dead_rate)),
                    ("kl".into(), json!(w.kl)),
                    ("loss".into(), json!(w.loss)),
                    ("completions/mean_length".into(), json!(w.mean_length)),
                    ("completions/clipped_ratio".into(), json!(w.clipped_ratio)),
                    // Sampled tokens per second of the whole step (rollouts, rewards, update).
                    (
                        "tokens_per_s".into(),
                        json!(
                            w.mean_length * w.rollouts as f64
                                / window_start.elapsed().as_secs_f64()
                        ),
                    ),
                    // Steps in the window that updated (a step whose groups all died does not).
                    ("updates".into(), json!(w.updates)),
                    ("lr".into(), json!(w.last_report.map(|r| r.lr))),
                    (
                        "grad_norm".into(),
                        json!(w.last_report.map(|r| r.grad_norm)),
                    ),
                ];
                if evaluate_now {
                    for (name, value) in evaluate(&policy.valid())? {
                        progress.println(format!("{} step {done}: {name} {value:.3}", self.label));
                        row.push((name, json!(value)));
                    }
                }
                metrics.log(&row)?;
                progress.update(
                    done,
                    format!(
                        "reward {:.3} (ema {ema:.3}) | dead {:.2} | kl {:.4}",
                        w.reward, w.dead_rate, w.kl
                    ),
                );
                window = Window::default();
                window_start = Instant::now();
            }
            self.resume
                .save_if_due(done, config.steps, &policy, &optimizer, &metrics)?;
        }
        progress.finish();
        self.resume.finish();
        Ok(policy)
    }
}

/// What the steps since the last metrics row saw.
#[derive(Default)]
struct Window {
    rewards: Vec<f64>,
    group_stds: Vec<f64>,
    dead_groups: usize,
    groups: usize,
    lengths: Vec<usize>,
    clipped: usize,
    kl: Vec<f64>,
    loss: Vec<f64>,
    /// The window's last update, for `lr` and the pre-clip `grad_norm`.
    last_report: Option<StepReport>,
}

struct Averages {
    reward: f64,
    reward_std: f64,
    dead_rate: f64,
    kl: f64,
    loss: f64,
    mean_length: f64,
    clipped_ratio: f64,
    rollouts: usize,
    updates: usize,
    last_report: Option<StepReport>,
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

impl Window {
    fn add_group(&mut self, group: &[Rollout], rewards: &[f64], dead: bool) {
        self.rewards.extend(rewards);
        self.group_stds.push(group_std(rewards));
        self.groups += 1;
        self.dead_groups += usize::from(dead);
        self.lengths
            .extend(group.iter().map(|r| r.completion.len()));
        self.clipped += group.iter().filter(|r| r.clipped).count();
    }

    fn averages(&self) -> Averages {
        let lengths: Vec<f64> = self.lengths.iter().map(|&l| l as f64).collect();
        Averages {
            reward: mean(&self.rewards),
            reward_std: mean(&self.group_stds),
            dead_rate: self.dead_groups as f64 / self.groups.max(1) as f64,
            kl: mean(&self.kl),
            loss: mean(&self.loss),
            mean_length: mean(&lengths),
            clipped_ratio: self.clipped as f64 / self.lengths.len().max(1) as f64,
            rollouts: self.lengths.len(),
            updates: self.loss.len(),
            last_report: self.last_report,
        }
    }
}

/// The GRPO loss on live rollouts (each with its advantage; whole groups of `group_size`)
/// and the mean per-token k3 KL, for the log:
/// −(1/K) Σ A·log πθ(y|x) averaged over groups, + β·mean k3 over the response tokens.
#[allow(clippy::too_many_arguments)]
pub fn grpo_loss(
    policy: &Gpt,
    reference: &Gpt,
    live: &[(&Rollout, f64)],
    group_size: usize,
    beta: f64,
    pad_id: u32,
    plain: &Device,
    device: &Device,
) -> (Tensor<1>, f64) {
    let examples: Vec<TokenizedExample> = live
        .iter()
        .map(|(r, _)| TokenizedExample {
            prompt: r.prompt.clone(),
            completion: r.completion.clone(),
        })
        .collect();
    let refs: Vec<&TokenizedExample> = examples.iter().collect();
    let batch = PaddedBatch::new(&refs, pad_id, true);
    let (tokens, mask) = to_tensors(&batch, device);

    let (policy_tokens, _) =
        logprob::masked_token_logprobs(policy.forward(tokens.clone()), tokens, mask.clone());
    let response = logprob::shifted_mask(mask);
    // The frozen reference runs on the plain device: no graph, no gradient.
    let (plain_tokens, plain_mask) = to_tensors(&batch, plain);
    let (reference_tokens, _) = logprob::masked_token_logprobs(
        trainer::parallel::sharded_forward(reference, plain_tokens.clone()),
        plain_tokens,
        plain_mask,
    );
    let reference_tokens = Tensor::<2>::from_data(reference_tokens.into_data(), device);

    let n_tokens = response.clone().sum();
    let kl = (logprob::k3_kl(policy_tokens.clone(), reference_tokens) * response).sum() / n_tokens;
    let advantages: Vec<f32> = live.iter().map(|(_, a)| *a as f32).collect();
    let n = advantages.len();
    let advantages = Tensor::<1>::from_data(TensorData::new(advantages, [n]), device);
    let sequence_logps = policy_tokens.sum_dim(1).squeeze_dim::<1>(1);
    // −(1/K) Σ_group Σ_i A_i log π(y_i|x), averaged over the live groups: n / K of them.
    let groups = n as f64 / group_size as f64;
    let policy_gradient = -(advantages * sequence_logps).sum() / (group_size as f64 * groups);
    let kl_value = kl.clone().into_scalar::<f32>() as f64;
    (policy_gradient + kl * beta, kl_value)
}
