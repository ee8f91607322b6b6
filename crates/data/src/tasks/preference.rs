//! Lesson 05's preference data, in TRL's shapes: pairs `{"prompt","chosen","rejected"}` and
//! unpaired labels `{"prompt","completion","label"}` (KTO).
//!
//! The generated pairs are the lesson's toy: chosen is the correct CoT trace, rejected the
//! same trace with one step's result corrupted and the error carried to the answer, with the
//! same character length, so length cannot explain a preference.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::digit_sum::{DigitSum, Mode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// One unpaired judgement: `label` true for a desirable completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabeledCompletion {
    pub prompt: String,
    pub completion: String,
    pub label: bool,
}

/// The correct trace of `problem` with one step corrupted by a small offset that carries
/// through every later total and the answer. Every total keeps its digit count, so the
/// string keeps its length. `None` only when no step and offset keep the length (never
/// for K ≥ 2 digit sums in practice, but the caller decides).
pub fn corrupted_trace(problem: &DigitSum, rng: &mut StdRng) -> Option<String> {
    let digits = &problem.digits;
    let totals: Vec<i64> = digits
        .iter()
        .scan(0i64, |t, &d| {
            *t += d as i64;
            Some(*t)
        })
        .collect();
    let mut steps: Vec<usize> = (1..digits.len()).collect();
    steps.shuffle(rng);
    let mut offsets: Vec<i64> = vec![-3, -2, -1, 1, 2, 3];
    for step in steps {
        offsets.shuffle(rng);
        for &delta in &offsets {
            let keeps_length = totals[step..].iter().all(|&t| {
                let wrong = t + delta;
                wrong >= 0 && wrong.to_string().len() == t.to_string().len()
            });
            if keeps_length {
                return Some(render_trace(digits, &totals, step, delta));
            }
        }
    }
    None
}

/// `{a+b=c;…}N#` where totals from step `from` on are shifted by `delta`.
fn render_trace(digits: &[u8], totals: &[i64], from: usize, delta: i64) -> String {
    let shifted = |i: usize| totals[i] + if i >= from { delta } else { 0 };
    let steps: Vec<String> = (1..digits.len())
        .map(|i| format!("{}+{}={}", shifted(i - 1), digits[i], shifted(i)))
        .collect();
    format!("{{{}}}{}#", steps.join(";"), shifted(digits.len() - 1))
}

/// One same-length pair per problem (problems with no length-keeping corruption are skipped).
pub fn corrupted_pairs(problems: &[DigitSum], seed: u64) -> Vec<PreferencePair> {
    let mut rng = StdRng::seed_from_u64(seed);
    problems
        .iter()
        .filter_map(|p| {
            Some(PreferencePair {
                prompt: p.prompt(),
                chosen: p.completion(Mode::Cot),
                rejected: corrupted_trace(p, &mut rng)?,
            })
        })
        .collect()
}

/// Unpaired labels from pairs, as KTO consumes them: each pair gives a desirable and an
/// undesirable completion, shuffled so no batch sees them side by side by construction.
pub fn unpair(pairs: &[PreferencePair], seed: u64) -> Vec<LabeledCompletion> {
    let mut rows: Vec<LabeledCompletion> = pairs
        .iter()
        .flat_map(|p| {
            [(p.chosen.clone(), true), (p.rejected.clone(), false)].map(|(completion, label)| {
                LabeledCompletion {
                    prompt: p.prompt.clone(),
                    completion,
                    label,
                }
            })
        })
        .collect();
    rows.shuffle(&mut StdRng::seed_from_u64(seed));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::digit_sum::{train_problems, Verdict};

    #[test]
    fn rejected_is_wrong_well_formed_and_same_length() {
        let problems = train_problems(&[2, 3, 4, 5, 6], 500, 0);
        let pairs = corrupted_pairs(&problems, 1);
        assert_eq!(pairs.len(), problems.len(), "every problem gets a pair");
        for (problem, pair) in problems.iter().zip(&pairs) {
            assert_eq!(pair.chosen.len(), pair.rejected.len(), "{pair:?}");
            assert_eq!(problem.verify(Mode::Cot, &pair.chosen), Verdict::Correct);
            // The corruption is an arithmetic slip carried through: well-formed, wrong answer.
            assert_eq!(
                problem.verify(Mode::Cot, &pair.rejected),
                Verdict::Wrong,
                "{pair:?}"
            );
        }
    }

    #[test]
    fn corruption_example() {
        let p = DigitSum {
            digits: vec![3, 4, 5],
        };
        let mut rng = StdRng::seed_from_u64(0);
        let bad = corrupted_trace(&p, &mut rng).unwrap();
        assert_ne!(bad, "{3+4=7;7+5=12}12#");
        assert_eq!(bad.len(), "{3+4=7;7+5=12}12#".len());
    }

    #[test]
    fn unpair_keeps_every_completion_once() {
        let pairs = corrupted_pairs(&train_problems(&[3], 10, 0), 0);
        let rows = unpair(&pairs, 0);
        assert_eq!(rows.len(), 20);
        assert_eq!(rows.iter().filter(|r| r.label).count(), 10);
    }
}
