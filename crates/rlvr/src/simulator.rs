//! The lesson's group simulator: one prompt, a policy that solves it with probability p,
//! K rollouts per step, group advantages, and a policy-gradient step on p's logit. Shows why
//! groups die: when p is near 0 or 1 all K rewards agree and the step carries no signal.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::advantage::group_advantages;

#[derive(Debug, Clone, PartialEq)]
pub struct GroupStep {
    pub step: usize,
    /// Success probability before this step's update.
    pub p: f64,
    pub rewards: Vec<f64>,
    /// `None` for a dead group (skipped).
    pub advantages: Option<Vec<f64>>,
    /// Dead groups so far / steps so far.
    pub dead_rate: f64,
}

/// `steps` steps of K rollouts from a policy σ(θ) with σ(θ₀) = `p0`. The update is the
/// GRPO gradient on θ: (1/K) Σ Aᵢ ∂log π(yᵢ)/∂θ, which is (1 − p) for a success and −p for a
/// failure.
pub fn simulate(k: usize, p0: f64, lr: f64, steps: usize, seed: u64) -> Vec<GroupStep> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut theta = (p0 / (1.0 - p0)).ln();
    let mut dead = 0;
    (1..=steps)
        .map(|step| {
            let p = 1.0 / (1.0 + (-theta).exp());
            let rewards: Vec<f64> = (0..k)
                .map(|_| if rng.random::<f64>() < p { 1.0 } else { 0.0 })
                .collect();
            let advantages = group_advantages(&rewards);
            match &advantages {
                Some(a) => {
                    let grad: f64 = a
                        .iter()
                        .zip(&rewards)
                        .map(|(a, r)| a * if *r > 0.5 { 1.0 - p } else { -p })
                        .sum::<f64>()
                        / k as f64;
                    theta += lr * grad;
                }
                None => dead += 1,
            }
            GroupStep {
                step,
                p,
                rewards,
                advantages,
                dead_rate: dead as f64 / step as f64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_raises_p_and_a_sure_policy_only_makes_dead_groups() {
        let run = simulate(4, 0.3, 1.0, 200, 0);
        assert!(run.last().unwrap().p > 0.9, "{:?}", run.last());
        let hopeless = simulate(4, 1e-9, 1.0, 50, 0);
        assert!(hopeless.iter().all(|s| s.advantages.is_none()));
        assert_eq!(hopeless.last().unwrap().dead_rate, 1.0);
    }
}
