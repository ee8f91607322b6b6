//! pass@k on held-out digit sums: each problem sampled `samples` times at a temperature,
//! every completion read by the strict verifier, and pass@k for k = 1, 2, 4, … up to
//! `samples` by the unbiased estimator of Chen et al. 2021 (arXiv 2107.03374, the Codex
//! paper): the chance that at least one of k completions drawn without replacement from the
//! n sampled is correct, averaged over problems. pass@1 is the mean sampled accuracy; pass@k
//! at large k shows what the policy can sample at all, which is what RL can sharpen.

use std::collections::BTreeMap;

use anyhow::Result;
use burn::tensor::Device;
use data::tasks::digit_sum::{held_out_problems, Mode, Verdict};
use data::TextTokenizer;
use model::generate::Streams;
use model::phase::{self, Phase};
use model::Gpt;
use serde::{Deserialize, Serialize};

use crate::sampled_completions;

/// 1 − C(n − c, k) / C(n, k): the chance that k of `n` samples, `c` of them correct, drawn
/// without replacement, hold at least one correct one. Computed as
/// 1 − Π_{i = n−c+1..n} (1 − k / i), which never forms a binomial coefficient.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(c <= n && (1..=n).contains(&k), "pass@{k} of {c}/{n}");
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

/// The budgets reported: 1, 2, 4, … below `samples`, and `samples` itself.
pub fn budgets(samples: usize) -> Vec<usize> {
    let mut out: Vec<usize> = std::iter::successors(Some(1usize), |b| Some(b * 2))
        .take_while(|&b| b < samples)
        .collect();
    out.push(samples);
    out
}

/// `[pass_at_k]` in `pipeline.toml`: pass@k on the held-out sums, measured with the skills of
/// every checkpoint from CoT-SFT on (the problems are the skill suite's, `eval.seed`). Off while
/// `ks` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassAtKSettings {
    /// Digit counts measured; empty = not measured.
    pub ks: Vec<usize>,
    /// Held-out problems per K.
    pub per_k: usize,
    /// Completions sampled per problem: pass@1, 2, 4, … up to this.
    pub samples: usize,
    pub temperature: f32,
    /// The sampling streams.
    pub seed: u64,
}

impl Default for PassAtKSettings {
    fn default() -> Self {
        Self {
            ks: Vec::new(),
            per_k: 100,
            samples: 16,
            temperature: 1.0,
            seed: 0,
        }
    }
}

impl PassAtKSettings {
    pub fn is_on(&self) -> bool {
        !self.ks.is_empty()
    }

    pub fn validate(&self) -> Result<(), String> {
        if !self.is_on() {
            return Ok(());
        }
        data::tasks::digit_sum::check_ks("pass_at_k.ks", &self.ks)?;
        if self.per_k == 0 || self.samples == 0 {
            return Err("pass_at_k.per_k and pass_at_k.samples must be >= 1".into());
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "pass_at_k.temperature must be > 0 (0 is greedy: every sample the same), got {}",
                self.temperature
            ));
        }
        Ok(())
    }

    /// The measurement on the held-out problems drawn with `problem_seed`.
    pub fn config(&self, problem_seed: u64) -> PassAtKConfig {
        PassAtKConfig {
            ks: self.ks.clone(),
            per_k: self.per_k,
            problem_seed,
            samples: self.samples,
            temperature: self.temperature,
            sample_seed: self.seed,
        }
    }
}

/// What a pass@k measurement samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassAtKConfig {
    /// Digit counts measured.
    pub ks: Vec<usize>,
    /// Held-out problems per K (the same problems as the greedy suite with the same seed).
    pub per_k: usize,
    /// Which held-out problems.
    pub problem_seed: u64,
    /// Completions sampled per problem (n).
    pub samples: usize,
    pub temperature: f32,
    /// The sampling streams: problem i's sample j draws from (seed, K, i·samples + j).
    pub sample_seed: u64,
}

/// One K's pass@k, with each problem's count of correct samples (so any other budget can be
/// computed from the file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassAtK {
    /// Number of digits.
    pub k: usize,
    /// The verifier's format (`cot` or `direct`).
    pub mode: String,
    pub samples: usize,
    pub temperature: f32,
    /// pass@budget for each of [`budgets`], keyed by budget.
    pub pass_at: BTreeMap<usize, f64>,
    /// Correct samples out of `samples`, per problem.
    pub correct: Vec<usize>,
}

impl PassAtK {
    /// From each problem's count of correct samples.
    pub fn from_counts(k: usize, mode: Mode, config: &PassAtKConfig, correct: Vec<usize>) -> Self {
        let n = config.samples;
        let pass_at = budgets(n)
            .into_iter()
            .map(|b| {
                let sum: f64 = correct.iter().map(|&c| pass_at_k(n, c, b)).sum();
                (b, sum / correct.len().max(1) as f64)
            })
            .collect();
        Self {
            k,
            mode: mode.name().to_string(),
            samples: n,
            temperature: config.temperature,
            pass_at,
            correct,
        }
    }
}

/// Samples every held-out problem of each K `config.samples` times and counts the verifier's
/// verdicts. All of one K's completions decode together.
pub fn evaluate_pass_at_k(
    model: &Gpt,
    tokenizer: &TextTokenizer,
    mode: Mode,
    config: &PassAtKConfig,
    device: &Device,
) -> Result<Vec<PassAtK>> {
    phase::timed(Phase::Evaluation, || {
        let mut rows = Vec::new();
        for &k in &config.ks {
            let problems = held_out_problems(k, config.per_k, config.problem_seed);
            let prompts: Vec<String> = problems
                .iter()
                .flat_map(|p| std::iter::repeat_n(p.prompt(), config.samples))
                .collect();
            let streams = Streams::for_step(config.sample_seed, k as u64);
            let outputs = sampled_completions(
                model,
                tokenizer,
                &prompts,
                config.temperature,
                streams,
                device,
            )?;
            let correct = problems
                .iter()
                .zip(outputs.chunks(config.samples))
                .map(|(problem, outs)| {
                    outs.iter()
                        .filter(|out| problem.verify(mode, out) == Verdict::Correct)
                        .count()
                })
                .collect();
            rows.push(PassAtK::from_counts(k, mode, config, correct));
        }
        Ok(rows)
    })
}

/// `K=3 [cot] n=16 T=1: pass@1 42.0%, pass@2 55.1%, …`
pub fn format_pass_at_k(row: &PassAtK) -> String {
    let values: Vec<String> = row
        .pass_at
        .iter()
        .map(|(b, p)| format!("pass@{b} {:.1}%", 100.0 * p))
        .collect();
    format!(
        "digit_sum K={} [{}] over {} problems, n={} at T={}: {}",
        row.k,
        row.mode,
        row.correct.len(),
        row.samples,
        row.temperature,
        values.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every k-subset of n samples with the first c correct: the fraction holding a correct one.
    fn brute_force(n: usize, c: usize, k: usize) -> f64 {
        let (mut hit, mut all) = (0u64, 0u64);
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize == k {
                all += 1;
                if mask & ((1 << c) - 1) != 0 {
                    hit += 1;
                }
            }
        }
        hit as f64 / all as f64
    }

    #[test]
    fn the_estimator_is_the_count_over_every_subset() {
        for n in 1..=10 {
            for c in 0..=n {
                for k in 1..=n {
                    let (ours, count) = (pass_at_k(n, c, k), brute_force(n, c, k));
                    assert!(
                        (ours - count).abs() < 1e-12,
                        "n={n} c={c} k={k}: {ours} {count}"
                    );
                }
            }
        }
        assert_eq!(pass_at_k(64, 0, 64), 0.0);
        assert_eq!(pass_at_k(64, 1, 64), 1.0);
        assert!((pass_at_k(64, 16, 1) - 0.25).abs() < 1e-15);
    }

    #[test]
    fn budgets_double_up_to_the_sample_count() {
        assert_eq!(budgets(1), [1]);
        assert_eq!(budgets(16), [1, 2, 4, 8, 16]);
        assert_eq!(budgets(10), [1, 2, 4, 8, 10]);
    }

    #[test]
    fn pass_at_1_is_the_mean_sampled_accuracy() {
        let config = PassAtKConfig {
            ks: vec![3],
            per_k: 3,
            problem_seed: 1,
            samples: 4,
            temperature: 1.0,
            sample_seed: 0,
        };
        let row = PassAtK::from_counts(3, Mode::Cot, &config, vec![0, 1, 4]);
        assert!((row.pass_at[&1] - 5.0 / 12.0).abs() < 1e-12);
        assert!((row.pass_at[&4] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(row.pass_at.keys().copied().collect::<Vec<_>>(), [1, 2, 4]);
    }

    #[test]
    fn sampled_counts_do_not_depend_on_the_thread_count() {
        use data::tokenizer::{TokenizerConfig, TASK_ALPHABET};
        use model::GptConfig;
        let tokenizer =
            TextTokenizer::train(&TokenizerConfig::default(), &[TASK_ALPHABET]).unwrap();
        let device = Device::flex();
        let config = GptConfig {
            block_size: 24,
            ..test_support::tiny(tokenizer.vocab_size())
        };
        let model = test_support::seeded_model(&config, 3, &device);
        let pass = PassAtKConfig {
            ks: vec![2, 3],
            per_k: 5,
            problem_seed: 1,
            samples: 6,
            temperature: 1.0,
            sample_seed: 7,
        };
        let in_pool = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                evaluate_pass_at_k(&model, &tokenizer, Mode::Cot, &pass, &device).unwrap()
            })
        };
        let one = in_pool(1);
        assert_eq!(one, in_pool(2));
        assert_eq!(one.len(), 2);
        assert!(one.iter().all(|r| r.correct.len() == 5 && r.samples == 6));
    }
}
