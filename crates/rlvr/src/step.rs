//! The GRPO step, top to bottom: draw prompts and sample a group of rollouts per prompt from
//! the current policy, reward them with the verifier, turn each group's rewards into
//! advantages (dead groups are skipped, or redrawn with dynamic sampling: `groups`), then one
//! gradient step on −(1/K) Σ A·log πθ(y|x) + β·KL(πθ‖πref) over the response tokens (`loss`;
//! TRL's forms, and `num_iterations` steps on the clipped ratio, are options).

use std::time::Duration;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::Device;
use data::tasks::digit_sum::DigitSum;
use data::tokenizer::PAD;
use data::TextTokenizer;
use model::generate::Streams;
use model::Gpt;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use trainer::{Reference, Row, Step, StepBody};

use crate::advantage::scaled_group_advantages;
use crate::config::RlvrConfig;
use crate::curriculum::Pool;
use crate::groups::{mean_reward, redraw_dead, Group};
use crate::loss::GrpoLoss;
use crate::metrics::{RewardEma, Window};
use crate::reward::reward;
use crate::rollout::{rollouts, RolloutOptions};

/// How a completion is scored: the verifier (with the configured partial credit) in
/// training; tests can put in their own.
pub type RewardFn<'a> = dyn Fn(&DigitSum, &str) -> f64 + 'a;

/// What the policy practises on: the prompt pool (which a curriculum grows), the tokenizer
/// that writes the prompts, and the reward of a completion.
pub struct Task<'a> {
    pub pool: Pool,
    pub tokenizer: &'a TextTokenizer,
    pub reward: &'a RewardFn<'a>,
}

/// One GRPO step over a fixed prompt set.
pub struct GrpoStep<'a> {
    task: Task<'a>,
    config: &'a RlvrConfig,
    loss: GrpoLoss<'a>,
    /// The running mean of the reward (carried across a resume by `state`/`restore`).
    reward_ema: RewardEma,
    window: Window,
    /// The share of a trace given as a hint this step (0 without hints).
    hint_share: f64,
}

impl<'a> GrpoStep<'a> {
    /// `reference` is the frozen parent on the plain device, which also samples the
    /// rollouts; the policy trains on the autodiff `device`.
    pub fn new(
        task: Task<'a>,
        config: &'a RlvrConfig,
        reference: Reference<'a>,
        device: &'a Device,
    ) -> Result<Self> {
        let loss = GrpoLoss {
            reference,
            beta: config.beta,
            loss_type: config.loss_type,
            clip_range: config.clip_range(),
            pad_id: task.tokenizer.symbol_id(PAD)?,
            device,
        };
        Ok(Self {
            task,
            config,
            loss,
            reward_ema: RewardEma::default(),
            window: Window::default(),
            hint_share: 0.0,
        })
    }

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

    /// `prompts` prompts drawn at random; per prompt, a group of rollouts from `policy`, their
    /// rewards, and the group's advantages. With hints, a prompt carries the first `hint_share`
    /// of its trace's steps, and the verifier reads hint and completion together.
    fn groups(
        &self,
        policy: &Gpt,
        prompts: usize,
        hint_share: f64,
        rng: &mut StdRng,
    ) -> Result<Vec<Group>> {
        let Task {
            ref pool,
            tokenizer,
            reward,
        } = self.task;
        let problems = pool.problems();
        let picked: Vec<&DigitSum> = (0..prompts)
            .map(|_| &problems[rng.random_range(0..problems.len())])
            .collect();
        let hints: Vec<String> = picked
            .iter()
            .map(|p| match &self.config.hints {
                Some(hints) => hints.hint(p, hint_share),
                None => String::new(),
            })
            .collect();
        let prompts: Vec<String> = picked
            .iter()
            .zip(&hints)
            .map(|(p, hint)| p.prompt() + hint)
            .collect();
        let options = RolloutOptions {
            group_size: self.config.group_size,
            temperature: self.config.temperature,
            top_k: self.config.top_k,
        };
        let plain = self.loss.reference.device;
        // The step's generator is drawn from (seed, step): each row of this draw gets its
        // own stream from it, so the samples do not depend on how the rows are decoded.
        let streams = Streams::new(rng.random());
        let sampled = rollouts(policy, tokenizer, &prompts, options, streams, plain)?;
        let groups = sampled.chunks(options.group_size).map(|rollouts| {
            let rewards: Vec<f64> = rollouts
                .iter()
                .map(|r| {
                    let (problem, hint) = (picked[r.prompt_index], &hints[r.prompt_index]);
                    reward(problem, &format!("{hint}{}", r.text))
                })
                .collect();
            Group {
                advantages: scaled_group_advantages(&rewards, self.config.scale_rewards),
                rollouts: rollouts.to_vec(),
                rewards,
            }
        });
        Ok(groups.collect())
    }
}

impl StepBody for GrpoStep<'_> {
    fn step(&mut self, policy: Gpt, step: &mut Step) -> Result<Gpt> {
        let sampler = policy.valid();
        // 0. The prompts: with a curriculum, every check_every steps the next K joins the pool
        // once the newest one is solved often enough; with hints, this step's share of each
        // trace is given.
        if let Some(curriculum) = &self.config.curriculum {
            if step.index > 0 && step.index.is_multiple_of(curriculum.check_every) {
                let plain = self.loss.reference.device;
                let tokenizer = self.task.tokenizer;
                self.task
                    .pool
                    .check(curriculum, &sampler, tokenizer, plain)?;
            }
        }
        let hint_share = self
            .config
            .hints
            .as_ref()
            .map_or(0.0, |h| h.share(step.index));
        self.hint_share = hint_share;

        // 1-2. Rollouts from the current policy (no graph while sampling), their rewards and
        // group advantages. The window and the reward's running mean see the first draw only,
        // so the dead-group rate compares across settings; dead groups are then skipped, or
        // redrawn with dynamic sampling (`groups`).
        let first = self.groups(
            &sampler,
            self.config.prompts_per_step,
            hint_share,
            &mut step.rng,
        )?;
        self.window.add_draw(&first);
        self.reward_ema.add(mean_reward(&first));
        let redraw = |prompts| self.groups(&sampler, prompts, hint_share, &mut step.rng);
        let live = redraw_dead(first, self.config.resample_rounds, redraw)?;
        self.window.add_live(live.len());

        // 3. A policy-gradient step on the live groups, anchored to the reference by k3 KL;
        // with TRL's num_iterations μ > 1, μ steps, each on the ratio to the sampling policy.
        if live.is_empty() {
            return Ok(policy);
        }
        let sampled_by = (self.config.num_iterations > 1).then_some(&sampler);
        let frozen = self.loss.frozen(&live, sampled_by);
        let mut policy = policy;
        for _ in 0..self.config.num_iterations {
            let (loss, stats) = self.loss.compute(&policy, &live, &frozen);
            let report;
            (policy, report) = step.update(policy, loss)?;
            self.window.add_update(stats, report);
        }
        Ok(policy)
    }

    fn row(&mut self, elapsed: Duration) -> Row {
        let mut row = std::mem::take(&mut self.window).row(self.reward_ema.value(), elapsed);
        if self.config.curriculum.is_some() {
            let pool = &self.task.pool;
            row.push("curriculum/max_k", pool.newest_k());
            row.push("curriculum/check_accuracy", json!(pool.last_check));
        }
        if self.config.hints.is_some() {
            row.push("hints/share", self.hint_share);
        }
        row
    }

    fn state(&self) -> Value {
        let pool = &self.task.pool;
        json!({
            "reward_ema": self.reward_ema.value(),
            "curriculum_level": pool.level(),
            "curriculum_check": pool.last_check,
        })
    }

    fn restore(&mut self, state: &Value) -> Result<()> {
        self.reward_ema = RewardEma::from(state["reward_ema"].as_f64());
        // The pool as it was: the same Ks added, in order (their problems are seeded).
        let level = state["curriculum_level"].as_u64().unwrap_or(0) as usize;
        if let Some(curriculum) = &self.config.curriculum {
            while self.task.pool.level() < level {
                self.task.pool.advance(&curriculum.frontier);
            }
        }
        self.task.pool.last_check = state["curriculum_check"].as_f64();
        Ok(())
    }
}
