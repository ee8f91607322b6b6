//! Replay: how many examples of an earlier task to mix into a stage's training set so that
//! they make a given share of the whole, as CoT-SFT and DPO do with SFT's reverse words.

/// Replayed examples that make `share` of `n_task` task examples plus them.
pub fn replay_count(n_task: usize, share: f64) -> usize {
    (n_task as f64 * share / (1.0 - share)).round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replayed_examples_make_the_share_of_the_whole() {
        assert_eq!(replay_count(900, 0.1), 100);
        assert_eq!(replay_count(2000, 0.0), 0);
        assert_eq!(replay_count(3, 0.5), 3);
    }
}
