//! Groups of rollouts, and dynamic sampling (DAPO): a dead group (every reward equal) carries
//! no signal, so its prompt's slot is drawn again, up to `resample_rounds` more times.

use anyhow::Result;

use crate::rollout::Rollout;

/// One prompt's rollouts, their rewards, and their advantages (`None`: a dead group).
pub struct Group {
    pub rollouts: Vec<Rollout>,
    pub rewards: Vec<f64>,
    pub advantages: Option<Vec<f64>>,
}

/// A group with a signal: its rollouts and their advantages.
pub struct LiveGroup {
    pub rollouts: Vec<Rollout>,
    pub advantages: Vec<f64>,
}

impl Group {
    pub fn live(self) -> Option<LiveGroup> {
        let rollouts = self.rollouts;
        self.advantages.map(|advantages| LiveGroup {
            rollouts,
            advantages,
        })
    }
}

/// The mean reward of every rollout of `groups`.
pub fn mean_reward(groups: &[Group]) -> f64 {
    let rewards = groups.iter().flat_map(|g| &g.rewards);
    rewards.clone().sum::<f64>() / rewards.count() as f64
}

/// The live groups of `first`, then of up to `rounds` fresh draws (`draw(n)`: groups of `n`
/// new prompts), each as many prompts as are still missing for `first`'s count.
pub fn redraw_dead(
    first: Vec<Group>,
    rounds: usize,
    mut draw: impl FnMut(usize) -> Result<Vec<Group>>,
) -> Result<Vec<LiveGroup>> {
    let wanted = first.len();
    let mut live: Vec<LiveGroup> = first.into_iter().filter_map(Group::live).collect();
    for _ in 0..rounds {
        let missing = wanted - live.len();
        if missing == 0 {
            break;
        }
        live.extend(draw(missing)?.into_iter().filter_map(Group::live));
    }
    Ok(live)
}
