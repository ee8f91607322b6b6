//! What GRPO logs: window averages under TRL's metric names, and the reward's running mean.

use std::time::Duration;

use serde_json::json;
use trainer::{Row, StepReport};

use crate::advantage::group_std;
use crate::groups::Group;
use crate::loss::UpdateStats;

/// The reward's running mean across steps (0.9 · old + 0.1 · the step's first draw).
#[derive(Default)]
pub(crate) struct RewardEma(Option<f64>);

impl From<Option<f64>> for RewardEma {
    fn from(value: Option<f64>) -> Self {
        Self(value)
    }
}

impl RewardEma {
    pub(crate) fn add(&mut self, mean_reward: f64) {
        self.0 = Some(self.0.map_or(mean_reward, |e| 0.9 * e + 0.1 * mean_reward));
    }

    pub(crate) fn value(&self) -> Option<f64> {
        self.0
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
    /// One per update (several per step with `num_iterations` > 1).
    updates: Vec<UpdateStats>,
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
    update: Option<UpdateStats>,
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
    /// A step's first draw of groups (dead ones included).
    pub(crate) fn add_draw(&mut self, groups: &[Group]) {
        for group in groups {
            self.rewards.extend(&group.rewards);
            self.group_stds.push(group_std(&group.rewards));
            self.groups += 1;
            self.dead_groups += usize::from(group.advantages.is_none());
            self.lengths
                .extend(group.rollouts.iter().map(|r| r.completion.len()));
            self.clipped += group.rollouts.iter().filter(|r| r.clipped).count();
        }
    }

    /// How many live groups a step had for its update.
    pub(crate) fn add_live(&mut self, groups: usize) {
        self.live_groups.push(groups);
    }

    pub(crate) fn add_update(&mut self, stats: UpdateStats, report: StepReport) {
        self.updates.push(stats);
        self.loss.push(report.loss as f64);
        self.last_report = Some(report);
    }

    /// The window's row; `elapsed` is its wall time.
    pub(crate) fn row(self, reward_ema: Option<f64>, elapsed: Duration) -> Row {
        let w = self.averages();
        let ema = reward_ema.unwrap_or(f64::NAN);
        let mut row = Row::new(format!(
            "reward {:.3} (ema {ema:.3}) | dead {:.2} | kl {}",
            w.reward,
            w.dead_rate,
            w.update
                .map_or("— (no update)".to_string(), |u| format!("{:.4}", u.kl))
        ));
        row.push("reward", w.reward);
        row.push("reward_ema", json!(reward_ema));
        row.push("reward_std", w.reward_std);
        row.push("frac_reward_zero_std", w.dead_rate);
        row.push("live_groups", w.live_groups);
        row.push("kl", json!(w.update.map(|u| u.kl)));
        row.push("entropy", json!(w.update.map(|u| u.entropy)));
        row.push("clip_ratio/low_mean", json!(w.update.map(|u| u.clip_low)));
        row.push("clip_ratio/high_mean", json!(w.update.map(|u| u.clip_high)));
        row.push(
            "clip_ratio/region_mean",
            json!(w.update.map(|u| u.clip_region)),
        );
        row.push("loss", json!(w.loss));
        row.push("completions/mean_length", w.mean_length);
        row.push("completions/clipped_ratio", w.clipped_ratio);
        // Sampled tokens per second of the whole step (rollouts, rewards, update).
        row.push(
            "tokens_per_s",
            w.mean_length * w.rollouts as f64 / elapsed.as_secs_f64(),
        );
        // Updates in the window: none from a step whose groups all died, μ from a step with
        // num_iterations = μ.
        row.push("updates", w.updates);
        row.push("lr", json!(w.last_report.map(|r| r.lr)));
        row.push("grad_norm", json!(w.last_report.map(|r| r.grad_norm)));
        row
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
            update: (!self.updates.is_empty()).then(|| {
                let of = |field: fn(&UpdateStats) -> f64| {
                    mean(&self.updates.iter().map(field).collect::<Vec<_>>())
                };
                UpdateStats {
                    kl: of(|u| u.kl),
                    entropy: of(|u| u.entropy),
                    clip_low: of(|u| u.clip_low),
                    clip_high: of(|u| u.clip_high),
                    clip_region: of(|u| u.clip_region),
                }
            }),
            loss: (!self.loss.is_empty()).then(|| mean(&self.loss)),
            mean_length: mean(&lengths),
            clipped_ratio: self.clipped as f64 / self.lengths.len().max(1) as f64,
            rollouts: self.lengths.len(),
            updates: self.loss.len(),
            last_report: self.last_report,
        }
    }
}
