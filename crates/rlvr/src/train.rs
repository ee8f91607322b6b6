//! The GRPO step, top to bottom: draw prompts, sample a group of rollouts per prompt from
//! the current policy, reward them with the verifier, turn rewards into group advantages
//! (skipping dead groups), then one gradient step on
//! −(1/K) Σ A·log πθ(y|x) + β·KL(πθ‖πref) over the response tokens.

use std::time::Duration;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use data::batch::{PaddedBatch, TokenizedExample};
use data::tasks::digit_sum::DigitSum;
use data::TextTokenizer;
use model::Gpt;
use rand::Rng;
use serde_json::{json, Value};
use trainer::tensors::padded_batch;
use trainer::{Row, Step, StepBody, StepReport};

use crate::advantage::{group_advantages, group_std};
use crate::config::RlvrConfig;
use crate::reward::reward;
use crate::rollout::{rollouts, Rollout, RolloutOptions};

/// How a completion is scored: the verifier (with the configured partial credit) in
/// training; tests can put in their own.
pub type RewardFn<'a> = dyn Fn(&DigitSum, &str) -> f64 + 'a;

/// One GRPO step over a fixed prompt set. Built with a struct literal in this crate; the
/// running state starts as `reward_ema: None, window: Default::default()`.
pub struct GrpoStep<'a> {
    pub(crate) problems: &'a [DigitSum],
    pub(crate) tokenizer: &'a TextTokenizer,
    pub(crate) config: &'a RlvrConfig,
    pub(crate) reward: &'a RewardFn<'a>,
    pub(crate) pad_id: u32,
    /// The frozen reference, on the plain device (no autodiff, so nothing can update it).
    pub(crate) reference: &'a Gpt,
    pub(crate) plain: &'a Device,
    /// The autodiff device the policy trains on.
    pub(crate) device: &'a Device,
    /// The running mean of the reward (carried across a resume by `state`/`restore`).
    pub(crate) reward_ema: Option<f64>,
    pub(crate) window: Window,
}

impl GrpoStep<'_> {
    /// The verifier's reward with the configured partial credit.
    pub fn verifier(config: &RlvrConfig) -> impl Fn(&DigitSum, &str) -> f64 + '_ {
        move |problem, completion| {
            reward(
                problem,
                completion,
                config.partial_credit,
                config.step_credit,
            )
        }
    }
}

impl StepBody for GrpoStep<'_> {
    fn step(&mut self, policy: Gpt, step: &mut Step) -> Result<Gpt> {
        let config = self.config;
        let k = config.group_size;
        // 1-2. Prompts, rollouts from the current policy (no graph while sampling), verifier
        // rewards and group advantages. Dead groups are counted (on the first draw, so the
        // rate compares across settings) and skipped; with dynamic sampling their slots are
        // drawn again, up to `resample_rounds` more times.
        let mut live: Vec<(Rollout, f64)> = Vec::new();
        let mut all_rewards = Vec::new();
        let mut wanted = config.prompts_per_step;
        for round in 0..=config.resample_rounds {
            if wanted == 0 {
                break;
            }
            let picked: Vec<&DigitSum> = (0..wanted)
                .map(|_| &self.problems[step.rng.random_range(0..self.problems.len())])
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
                &mut step.rng,
                self.plain,
            )?;
            let rewards: Vec<f64> = sampled
                .iter()
                .map(|r| (self.reward)(picked[r.prompt_index], &r.text))
                .collect();
            for (group, group_rewards) in sampled.chunks(k).zip(rewards.chunks(k)) {
                let advantages = group_advantages(group_rewards);
                if round == 0 {
                    self.window
                        .add_group(group, group_rewards, advantages.is_none());
                }
                if let Some(advantages) = advantages {
                    live.extend(group.iter().cloned().zip(advantages));
                    wanted -= 1;
                }
            }
            if round == 0 {
                all_rewards = rewards;
            }
        }
        self.window.live_groups.push(live.len() / k);
        let mean_reward = all_rewards.iter().sum::<f64>() / all_rewards.len() as f64;
        self.reward_ema = Some(
            self.reward_ema
                .map_or(mean_reward, |e| 0.9 * e + 0.1 * mean_reward),
        );
        let live: Vec<(&Rollout, f64)> = live.iter().map(|(r, a)| (r, *a)).collect();

        // 3. One policy-gradient step on the live groups.
        if live.is_empty() {
            return Ok(policy);
        }
        let (loss, kl) = grpo_loss(
            &policy,
            self.reference,
            &live,
            k,
            config.beta,
            self.pad_id,
            self.plain,
            self.device,
        );
        self.window.kl.push(kl);
        let (policy, report) = step.update(policy, loss)?;
        self.window.loss.push(report.loss as f64);
        self.window.last_report = Some(report);
        Ok(policy)
    }

    fn row(&mut self, elapsed: Duration) -> Row {
        let w = std::mem::take(&mut self.window).averages();
        let ema = self.reward_ema.unwrap_or(f64::NAN);
        let mut row = Row::new(format!(
            "reward {:.3} (ema {ema:.3}) | dead {:.2} | kl {}",
            w.reward,
            w.dead_rate,
            w.kl.map_or("— (no update)".to_string(), |kl| format!("{kl:.4}"))
        ));
        row.push("reward", w.reward);
        row.push("reward_ema", json!(self.reward_ema));
        row.push("reward_std", w.reward_std);
        row.push("frac_reward_zero_std", w.dead_rate);
        row.push("live_groups", w.live_groups);
        row.push("kl", json!(w.kl));
        row.push("loss", json!(w.loss));
        row.push("completions/mean_length", w.mean_length);
        row.push("completions/clipped_ratio", w.clipped_ratio);
        // Sampled tokens per second of the whole step (rollouts, rewards, update).
        row.push(
            "tokens_per_s",
            w.mean_length * w.rollouts as f64 / elapsed.as_secs_f64(),
        );
        // Steps in the window that updated (a step whose groups all died does not).
        row.push("updates", w.updates);
        row.push("lr", json!(w.last_report.map(|r| r.lr)));
        row.push("grad_norm", json!(w.last_report.map(|r| r.grad_norm)));
        row
    }

    fn state(&self) -> Value {
        json!({ "reward_ema": self.reward_ema })
    }

    fn restore(&mut self, state: &Value) -> Result<()> {
        self.reward_ema = state["reward_ema"].as_f64();
        Ok(())
    }
}

/// What the steps since the last metrics row saw.
#[derive(Default)]
pub(crate) struct Window {
    rewards: Vec<f64>,
    group_stds: Vec<f64>,
    dead_groups: usize,
    groups: usize,
    lengths: Vec<usize>,
    clipped: usize,
    kl: Vec<f64>,
    loss: Vec<f64>,
    /// Live groups each step's update used (after dynamic sampling).
    live_groups: Vec<usize>,
    /// The window's last update, for `lr` and the pre-clip `grad_norm`.
    last_report: Option<StepReport>,
}

struct Averages {
    reward: f64,
    reward_std: f64,
    dead_rate: f64,
    live_groups: f64,
    /// `None` when no step of the window updated (every group dead): a mean of nothing.
    kl: Option<f64>,
    loss: Option<f64>,
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
            live_groups: mean(
                &self
                    .live_groups
                    .iter()
                    .map(|&g| g as f64)
                    .collect::<Vec<_>>(),
            ),
            kl: (!self.kl.is_empty()).then(|| mean(&self.kl)),
            loss: (!self.loss.is_empty()).then(|| mean(&self.loss)),
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
    let (tokens, mask) = padded_batch(&batch, device);

    let (policy_tokens, _) =
        logprob::masked_token_logprobs(policy.forward(tokens.clone()), tokens, mask.clone());
    let response = logprob::shifted_mask(mask);
    // The frozen reference runs on the plain device: no graph, no gradient.
    let (plain_tokens, plain_mask) = padded_batch(&batch, plain);
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
