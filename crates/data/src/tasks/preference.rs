//! Lesson 05's preference data, in TRL's shapes: pairs `{"prompt","chosen","rejected"}` and
//! unpaired labels `{"prompt","completion","label"}` (KTO).
//!
//! The generated pairs are the lesson's toy: chosen is the correct CoT trace, rejected the
//! same trace with one step's result corrupted and the error carried to the answer, with the
//! same character length, so length cannot explain a preference.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::digit_sum::{DigitSum, Mode};
use super::reverse;

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

/// Reverse-word pairs, for replaying SFT's skill during preference training: chosen is the
/// reversed word, rejected the same with two adjacent differing letters swapped (same
/// length, one slip). `n` pairs cycling over `words`; words of one repeated letter are skipped.
pub fn reverse_pairs(words: &[String], n: usize, seed: u64) -> Vec<PreferencePair> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pool: Vec<&String> = words
        .iter()
        .filter(|w| swappable(w).next().is_some())
        .collect();
    pool.shuffle(&mut rng);
    pool.iter()
        .cycle()
        .take(if pool.is_empty() { 0 } else { n })
        .map(|word| {
            let chosen = reverse::completion(word);
            let mut letters: Vec<char> = chosen.chars().collect();
            let positions: Vec<usize> = swappable(&chosen).collect();
            let at = *positions.choose(&mut rng).expect("pool words have a swap");
            letters.swap(at, at + 1);
            PreferencePair {
                prompt: reverse::prompt(word),
                chosen,
                rejected: letters.into_iter().collect(),
            }
        })
        .collect()
}

/// Positions i where letters i and i+1 differ (and neither is the end mark).
fn swappable(text: &str) -> impl Iterator<Item = usize> + '_ {
    let letters: Vec<char> = text.trim_end_matches('#').chars().collect();
    (0..letters.len().saturating_sub(1)).filter(move |&i| letters[i] != letters[i + 1])
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
    fn reverse_pairs_are_one_swap_apart() {
        let words: Vec<String> = ["able", "back", "aaaa"].map(String::from).to_vec();
        let pairs = reverse_pairs(&words, 7, 0);
        assert_eq!(pairs.len(), 7);
        for pair in &pairs {
            let word = pair.prompt.trim_matches(|c| c == '<' || c == '>');
            assert_ne!(word, "aaaa", "a word with no swap is skipped");
            assert!(reverse::is_correct(&pair.prompt, &pair.chosen));
            assert!(!reverse::is_correct(&pair.prompt, &pair.rejected));
            assert!(reverse::is_well_formed(word, &pair.rejected), "{pair:?}");
        }
        assert!(reverse_pairs(&["aaaa".to_string()], 3, 0).is_empty());
    }

    #[test]
    fn unpair_keeps_every_completion_once() {
        let pairs = corrupted_pairs(&train_problems(&[3], 10, 0), 0);
        let rows = unpair(&pairs, 0);
        assert_eq!(rows.len(), 20);
        assert_eq!(rows.iter().filter(|r| r.label).count(), 10);
    }
}
