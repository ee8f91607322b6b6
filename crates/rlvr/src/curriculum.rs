//! A curriculum over K (`[rlvr.curriculum]`, off by default): the Ks of `frontier` join the
//! prompt pool one at a time, each once the policy solves the newest K in the pool, greedily,
//! on `advance_at` of a fixed set of that K's training problems (checked every `check_every`
//! steps). RL sharpens what the policy can already sample (Yue et al. 2025), so the pool is
//! moved to the edge of what it can do, K → K + 1 (Lee et al. 2025, arXiv 2502.01612; Zhang,
//! Neubig, Yue 2025, arXiv 2512.07783). The Ks already in the pool stay, so that what was
//! learned is kept.

use anyhow::Result;
use burn::tensor::Device;
use data::tasks::digit_sum::{train_problems, DigitSum, Mode, Verdict};
use data::TextTokenizer;
use eval::greedy_completions;
use model::Gpt;
use serde::{Deserialize, Serialize};

/// `[rlvr.curriculum]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumConfig {
    /// Ks added to the pool, in order, past `rlvr.ks`.
    pub frontier: Vec<usize>,
    /// Greedy accuracy on the newest K's check problems at which the next K joins.
    pub advance_at: f64,
    /// Steps between checks.
    pub check_every: usize,
    /// Training-split problems of the newest K each check decodes (the same ones every time).
    pub check_problems: usize,
}

impl CurriculumConfig {
    pub fn validate(&self, ks: &[usize]) -> Result<(), String> {
        data::tasks::digit_sum::check_ks("rlvr.curriculum.frontier", &self.frontier)?;
        if let Some(k) = self.frontier.iter().find(|k| ks.contains(k)) {
            return Err(format!(
                "rlvr.curriculum.frontier: K = {k} is in rlvr.ks already"
            ));
        }
        if !(self.advance_at > 0.0 && self.advance_at <= 1.0) {
            return Err(format!(
                "rlvr.curriculum.advance_at must be in (0, 1], got {}",
                self.advance_at
            ));
        }
        if self.check_every == 0 || self.check_problems == 0 {
            return Err("rlvr.curriculum.check_every and check_problems must be > 0".to_string());
        }
        Ok(())
    }
}

/// The prompt pool: `rlvr.ks`'s problems, then each K the curriculum has added.
pub struct Pool {
    problems: Vec<DigitSum>,
    /// Ks the curriculum has added so far.
    level: usize,
    /// Problems an added K brings: as many as the newest K of `rlvr.ks` has in the pool, so
    /// each new frontier weighs what the last one did.
    per_k: usize,
    newest: usize,
    seed: u64,
    /// The last check's greedy accuracy, for the log.
    pub last_check: Option<f64>,
}

impl Pool {
    pub fn new(ks: &[usize], n_prompts: usize, seed: u64) -> Self {
        let problems = train_problems(ks, n_prompts, seed);
        let newest = *ks.iter().max().expect("rlvr.ks is not empty");
        let per_k = problems.iter().filter(|p| p.digits.len() == newest).count();
        Self {
            problems,
            level: 0,
            per_k: per_k.max(1),
            newest,
            seed,
            last_check: None,
        }
    }

    pub fn problems(&self) -> &[DigitSum] {
        &self.problems
    }

    /// How many of the frontier's Ks have joined.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The largest K in the pool.
    pub fn newest_k(&self) -> usize {
        self.newest
    }

    /// Adds the next K of `frontier`, if any is left.
    pub fn advance(&mut self, frontier: &[usize]) {
        let Some(&k) = frontier.get(self.level) else {
            return;
        };
        let seed = self.seed ^ (k as u64).wrapping_mul(0xA24B_AED4_963E_E407);
        self.problems.extend(train_problems(&[k], self.per_k, seed));
        self.newest = self.newest.max(k);
        self.level += 1;
    }

    /// Greedy accuracy of `model` on the newest K's check problems; adds the next K when it
    /// reaches `advance_at`. Returns whether the pool grew.
    pub fn check(
        &mut self,
        config: &CurriculumConfig,
        model: &Gpt,
        tokenizer: &TextTokenizer,
        device: &Device,
    ) -> Result<bool> {
        if self.level >= config.frontier.len() {
            return Ok(false);
        }
        let seed = self.seed ^ 0x5EED_C0DE ^ self.newest as u64;
        let problems = train_problems(&[self.newest], config.check_problems, seed);
        let prompts: Vec<String> = problems.iter().map(DigitSum::prompt).collect();
        let completions = greedy_completions(model, tokenizer, &prompts, device)?;
        let solved = problems
            .iter()
            .zip(&completions)
            .filter(|(p, c)| p.verify(Mode::Cot, c) == Verdict::Correct)
            .count();
        let accuracy = solved as f64 / problems.len() as f64;
        self.last_check = Some(accuracy);
        let advance = accuracy >= config.advance_at;
        if advance {
            self.advance(&config.frontier);
        }
        Ok(advance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_k_weighs_what_the_newest_did_and_the_pool_keeps_the_rest() {
        let mut pool = Pool::new(&[2, 3, 3], 300, 1);
        let count = |pool: &Pool, k: usize| {
            pool.problems()
                .iter()
                .filter(|p| p.digits.len() == k)
                .count()
        };
        let (twos, threes) = (count(&pool, 2), count(&pool, 3));
        assert_eq!(pool.newest_k(), 3);
        pool.advance(&[5, 6]);
        assert_eq!((pool.level(), pool.newest_k()), (1, 5));
        assert_eq!(count(&pool, 5), threes);
        assert_eq!((count(&pool, 2), count(&pool, 3)), (twos, threes));
        pool.advance(&[5, 6]);
        pool.advance(&[5, 6]); // nothing left to add
        assert_eq!(
            (pool.level(), pool.newest_k(), count(&pool, 6)),
            (2, 6, threes)
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let config = CurriculumConfig {
            frontier: vec![7, 8],
            advance_at: 0.5,
            check_every: 50,
            check_problems: 32,
        };
        assert!(config
            .validate(&[2, 3, 7])
            .unwrap_err()
            .contains("K = 7 is in rlvr.ks"));
        let bad = CurriculumConfig {
            advance_at: 0.0,
            ..config.clone()
        };
        assert!(bad.validate(&[2]).unwrap_err().contains("advance_at"));
        let bad = CurriculumConfig {
            frontier: vec![11],
            ..config.clone()
        };
        assert!(bad
            .validate(&[2])
            .unwrap_err()
            .contains("rlvr.curriculum.frontier"));
        assert!(config.validate(&[2, 6]).is_ok());
    }
}
