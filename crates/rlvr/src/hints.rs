//! Hint prefixes (`[rlvr.hints]`, off by default): a prompt at a hard K comes with the first
//! steps of its correct trace, and the policy writes the rest; the share of steps given falls
//! linearly to zero over `anneal_steps`. The hint is part of the prompt, so the loss never
//! trains on it; the verifier reads hint and completion together. A policy that cannot yet
//! finish a K = 8 trace alone gets groups with a signal, and by the end writes it whole
//! (QuestA, arXiv 2507.13266; POPE, arXiv 2601.18779).

use data::tasks::digit_sum::{DigitSum, Mode};
use serde::{Deserialize, Serialize};

/// `[rlvr.hints]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintConfig {
    /// Problems with at least this many digits get hints.
    pub min_k: usize,
    /// Share of a trace's K − 1 steps given at step 0, in (0, 1).
    pub fraction: f64,
    /// Steps over which the share falls to 0.
    pub anneal_steps: usize,
}

impl HintConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=10).contains(&self.min_k) {
            return Err(format!(
                "rlvr.hints.min_k must be a digit count in 2..=10, got {}",
                self.min_k
            ));
        }
        if !(self.fraction > 0.0 && self.fraction < 1.0) {
            return Err(format!(
                "rlvr.hints.fraction must be in (0, 1), got {}",
                self.fraction
            ));
        }
        if self.anneal_steps == 0 {
            return Err("rlvr.hints.anneal_steps must be > 0".to_string());
        }
        Ok(())
    }

    /// The share of steps given at training step `step`: `fraction`, falling linearly to 0
    /// at `anneal_steps`.
    pub fn share(&self, step: usize) -> f64 {
        self.fraction * (1.0 - step as f64 / self.anneal_steps as f64).max(0.0)
    }

    /// The hint for `problem` at `share`: the correct trace's first ⌊share · (K − 1)⌋ steps,
    /// as the completion would begin (`{a+b=c;…;`), or nothing below `min_k`.
    pub fn hint(&self, problem: &DigitSum, share: f64) -> String {
        let steps = problem.k() - 1;
        let given = (share * steps as f64).floor() as usize;
        if problem.k() < self.min_k || given == 0 {
            return String::new();
        }
        let trace = problem.completion(Mode::Cot);
        let inner = &trace[1..trace.find('}').expect("a CoT trace closes its braces")];
        let first: Vec<&str> = inner.split(';').take(given).collect();
        format!("{{{};", first.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use data::tasks::digit_sum::Verdict;

    fn config() -> HintConfig {
        HintConfig {
            min_k: 4,
            fraction: 0.5,
            anneal_steps: 100,
        }
    }

    #[test]
    fn a_hint_is_the_traces_first_steps_and_the_rest_completes_it() {
        let problem = DigitSum {
            digits: vec![9, 4, 0, 5, 2],
        };
        // K = 5: 4 steps, half of them given.
        let hint = config().hint(&problem, 0.5);
        assert_eq!(hint, "{9+4=13;13+0=13;");
        let full = problem.completion(Mode::Cot);
        let rest = full.strip_prefix(&hint).unwrap();
        assert_eq!(
            problem.verify(Mode::Cot, &format!("{hint}{rest}")),
            Verdict::Correct
        );
        // Below min_k, or a share under one step: no hint.
        let small = DigitSum {
            digits: vec![1, 2, 3],
        };
        assert_eq!(config().hint(&small, 0.9), "");
        assert_eq!(config().hint(&problem, 0.2), "");
    }

    #[test]
    fn the_share_falls_linearly_to_zero() {
        let c = config();
        assert_eq!(c.share(0), 0.5);
        assert_eq!(c.share(50), 0.25);
        assert_eq!(c.share(100), 0.0);
        assert_eq!(c.share(500), 0.0);
        assert!(HintConfig {
            fraction: 1.0,
            ..c.clone()
        }
        .validate()
        .is_err());
        assert!(HintConfig {
            min_k: 11,
            ..c.clone()
        }
        .validate()
        .is_err());
        assert!(c.validate().is_ok());
    }
}
