//! GRPO's group-relative advantage: each rollout's reward against its group's.

use serde::{Deserialize, Serialize};

/// `rlvr.scale_rewards`, TRL's name: whether a group's advantages are divided by its rewards'
/// standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// (r − mean) / std per group: the lesson's and TRL's default.
    #[default]
    Group,
    /// r − mean, unscaled (Dr. GRPO, Liu et al. 2025: the division weights easy and hard
    /// questions unequally).
    None,
}

impl ScaleRewards {
    pub fn is_group(&self) -> bool {
        *self == ScaleRewards::Group
    }
}

/// Below this standard deviation a group is "dead": every rollout earned the same reward, so
/// the advantages carry no signal and the group is skipped.
pub const DEAD_STD: f64 = 1e-8;

/// A = (r − mean) / (std + 1e-6), with PyTorch's default (unbiased, n − 1) std as the lesson's
/// `rewards.std()`. `None` for a dead group.
pub fn group_advantages(rewards: &[f64]) -> Option<Vec<f64>> {
    scaled_group_advantages(rewards, ScaleRewards::Group)
}

/// [`group_advantages`], or r − mean with `ScaleRewards::None`. A dead group is dead either way.
/// (TRL adds 1e-4 to the std rather than the lesson's 1e-6: for a live group of 0/1 rewards,
/// whose std is at least 0.35, the two differ by under 0.03%.)
pub fn scaled_group_advantages(rewards: &[f64], scale: ScaleRewards) -> Option<Vec<f64>> {
    let n = rewards.len();
    if n < 2 {
        return None;
    }
    let mean = rewards.iter().sum::<f64>() / n as f64;
    let var = rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    if std < DEAD_STD {
        return None;
    }
    let divisor = match scale {
        ScaleRewards::Group => std + 1e-6,
        ScaleRewards::None => 1.0,
    };
    Some(rewards.iter().map(|r| (r - mean) / divisor).collect())
}

/// Standard deviation of one group's rewards (same convention), for `reward_std`.
pub fn group_std(rewards: &[f64]) -> f64 {
    let n = rewards.len();
    if n < 2 {
        return 0.0;
    }
    let mean = rewards.iter().sum::<f64>() / n as f64;
    (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_success_in_four() {
        // mean 0.25, unbiased std = sqrt(0.75 / 3) = 0.5.
        let a = group_advantages(&[1.0, 0.0, 0.0, 0.0]).unwrap();
        let expected = [0.75 / 0.500001, -0.25 / 0.500001];
        assert!((a[0] - expected[0]).abs() < 1e-9);
        assert!(a[1..].iter().all(|&x| (x - expected[1]).abs() < 1e-9));
        assert!(a.iter().sum::<f64>().abs() < 1e-9, "advantages sum to zero");
    }

    #[test]
    fn unscaled_advantages_are_the_reward_minus_the_group_mean() {
        let a = scaled_group_advantages(&[1.0, 0.0, 0.0, 0.0], ScaleRewards::None).unwrap();
        assert_eq!(a, [0.75, -0.25, -0.25, -0.25]);
        assert_eq!(scaled_group_advantages(&[1.0; 4], ScaleRewards::None), None);
    }

    #[test]
    fn equal_rewards_make_a_dead_group() {
        assert_eq!(group_advantages(&[0.0; 4]), None);
        assert_eq!(group_advantages(&[1.0; 4]), None);
        assert_eq!(group_advantages(&[0.5, 0.5, 0.5, 0.5]), None);
        assert!(group_advantages(&[0.5, 0.5, 0.5, 0.5 + 1e-6]).is_some());
        assert_eq!(group_std(&[1.0; 4]), 0.0);
    }
}
