//! Lesson 04's task: sum K digits. Prompt `3+4+5=`; direct completion `12#`;
//! chain-of-thought completion with the running total, `{3+4=7;7+5=12}12#`.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::example::Example;
use crate::split::{split_of, Split};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The answer alone: `12#`.
    Direct,
    /// The running total, then the answer: `{3+4=7;7+5=12}12#`.
    Cot,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Cot => "cot",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DigitSum {
    pub digits: Vec<u8>,
}

/// What the verifier makes of a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Correct,
    /// Well-formed, wrong answer.
    Wrong,
    /// Not in the mode's format: the lesson's "format brittleness".
    Malformed,
}

impl DigitSum {
    pub fn k(&self) -> usize {
        self.digits.len()
    }

    pub fn answer(&self) -> u64 {
        self.digits.iter().map(|&d| d as u64).sum()
    }

    /// The split key: the digit string.
    fn key(&self) -> String {
        self.digits.iter().map(|d| char::from(b'0' + d)).collect()
    }

    pub fn split(&self) -> Split {
        split_of(&self.key())
    }

    pub fn prompt(&self) -> String {
        let terms: Vec<String> = self.digits.iter().map(u8::to_string).collect();
        format!("{}=", terms.join("+"))
    }

    pub fn completion(&self, mode: Mode) -> String {
        match mode {
            Mode::Direct => format!("{}#", self.answer()),
            Mode::Cot => {
                let mut total = self.digits[0] as u64;
                let steps: Vec<String> = self.digits[1..]
                    .iter()
                    .map(|&d| {
                        let step = format!("{total}+{d}={}", total + d as u64);
                        total += d as u64;
                        step
                    })
                    .collect();
                format!("{{{}}}{}#", steps.join(";"), total)
            }
        }
    }

    pub fn example(&self, mode: Mode) -> Example {
        Example {
            prompt: self.prompt(),
            completion: self.completion(mode),
        }
    }

    /// Strict verification of a generated completion (cut after `#`).
    ///
    /// Direct: exactly `<integer>#`. CoT: `{a+b=c;…}N#` with exactly K − 1 steps that walk the
    /// problem's digits in order (each step's left operand is the previous total, its right
    /// operand the next digit) and a final answer equal to the last step's total. A bare answer,
    /// a miscounted trace or a missing brace is `Malformed`, never `Correct`.
    pub fn verify(&self, mode: Mode, generated: &str) -> Verdict {
        let parsed = match mode {
            Mode::Direct => parse_answer(generated),
            Mode::Cot => self.parse_cot(generated),
        };
        match parsed {
            None => Verdict::Malformed,
            Some(answer) if answer == self.answer() => Verdict::Correct,
            Some(_) => Verdict::Wrong,
        }
    }

    /// How many of the trace's K − 1 steps `generated` writes right, in order from the first
    /// (each the previous total plus the next digit, summed correctly); stops at the first
    /// wrong or missing step. A process reward: it tells a trace that walks three digits
    /// from one that walks none, where the verifier calls both malformed.
    pub fn correct_steps(&self, generated: &str) -> usize {
        let Some(rest) = generated.strip_prefix('{') else {
            return 0;
        };
        let trace = rest.split_once('}').map_or(rest, |(t, _)| t);
        let mut total = self.digits[0] as u64;
        let mut count = 0;
        for (step, &digit) in trace.split(';').zip(&self.digits[1..]) {
            if *step != format!("{total}+{digit}={}", total + digit as u64) {
                break;
            }
            total += digit as u64;
            count += 1;
        }
        count
    }

    fn parse_cot(&self, generated: &str) -> Option<u64> {
        let rest = generated.strip_prefix('{')?;
        let (trace, tail) = rest.split_once('}')?;
        let answer = parse_answer(tail)?;
        let steps: Vec<&str> = trace.split(';').collect();
        if steps.len() != self.k() - 1 {
            return None;
        }
        let mut previous = self.digits[0] as u64;
        for (step, &digit) in steps.iter().zip(&self.digits[1..]) {
            let (lhs, result) = step.split_once('=')?;
            let (a, b) = lhs.split_once('+')?;
            let (a, b, result) = (parse_uint(a)?, parse_uint(b)?, parse_uint(result)?);
            if a != previous || b != digit as u64 {
                return None;
            }
            previous = result;
        }
        (answer == previous).then_some(answer)
    }
}

/// `<integer>#` and nothing else.
fn parse_answer(text: &str) -> Option<u64> {
    parse_uint(text.strip_suffix('#')?)
}

fn parse_uint(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn random_problem(k: usize, rng: &mut StdRng) -> DigitSum {
    DigitSum {
        digits: (0..k).map(|_| rng.random_range(0..10u8)).collect(),
    }
}

/// Checks a list of digit counts from the config (`key` names it in the error).
pub fn check_ks(key: &str, ks: &[usize]) -> Result<(), String> {
    if ks.is_empty() || ks.iter().any(|&k| !(2..=10).contains(&k)) {
        return Err(format!("{key} must be digit counts in 2..=10, got {ks:?}"));
    }
    Ok(())
}

/// `n` training problems, K drawn uniformly from `ks`, all from the train split.
pub fn train_problems(ks: &[usize], n: usize, seed: u64) -> Vec<DigitSum> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let k = ks[rng.random_range(0..ks.len())];
            loop {
                let p = random_problem(k, &mut rng);
                if p.split() == Split::Train {
                    break p;
                }
            }
        })
        .collect()
}

/// Up to `n` distinct held-out problems with `k` digits (fewer when fewer exist: K = 2 has
/// about 20). Small K is enumerated, large K sampled.
pub fn held_out_problems(k: usize, n: usize, seed: u64) -> Vec<DigitSum> {
    let mut rng = StdRng::seed_from_u64(seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let total = 10usize.pow(k as u32);
    if total <= 20 * n {
        let mut all: Vec<DigitSum> = (0..total)
            .map(|i| DigitSum {
                digits: (0..k)
                    .rev()
                    .map(|p| ((i / 10usize.pow(p as u32)) % 10) as u8)
                    .collect(),
            })
            .filter(|p| p.split() == Split::HeldOut)
            .collect();
        all.shuffle(&mut rng);
        all.truncate(n);
        return all;
    }
    let mut seen = BTreeSet::new();
    while seen.len() < n {
        let p = random_problem(k, &mut rng);
        if p.split() == Split::HeldOut {
            seen.insert(p);
        }
    }
    let mut problems: Vec<DigitSum> = seen.into_iter().collect();
    problems.shuffle(&mut rng);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(digits: &[u8]) -> DigitSum {
        DigitSum {
            digits: digits.to_vec(),
        }
    }

    #[test]
    fn formats_match_the_lesson() {
        let x = p(&[3, 4, 5, 6]);
        assert_eq!(x.prompt(), "3+4+5+6=");
        assert_eq!(x.completion(Mode::Direct), "18#");
        assert_eq!(x.completion(Mode::Cot), "{3+4=7;7+5=12;12+6=18}18#");
    }

    #[test]
    fn verifier_cases() {
        let x = p(&[3, 4, 5]);
        let cases = [
            (Mode::Cot, "{3+4=7;7+5=12}12#", Verdict::Correct),
            (Mode::Cot, "{3+4=7;7+5=13}13#", Verdict::Wrong), // arithmetic slip, consistent
            (Mode::Cot, "{3+4=7;7+5=12}13#", Verdict::Malformed), // answer disagrees with trace
            (Mode::Cot, "{3+4=7}7#", Verdict::Malformed),     // miscounted steps
            (Mode::Cot, "{3+4=7;7+5=12#", Verdict::Malformed), // missing brace
            (Mode::Cot, "{3+5=8;8+4=12}12#", Verdict::Malformed), // digits out of order
            (Mode::Cot, "12#", Verdict::Malformed),           // bare answer: no trace
            (Mode::Cot, "42#", Verdict::Malformed),           // the lesson's hack
            (Mode::Direct, "12#", Verdict::Correct),
            (Mode::Direct, "13#", Verdict::Wrong),
            (Mode::Direct, "12", Verdict::Malformed),
            (Mode::Direct, "1 2#", Verdict::Malformed),
            (Mode::Direct, "#", Verdict::Malformed),
        ];
        for (mode, text, expected) in cases {
            assert_eq!(x.verify(mode, text), expected, "{mode:?} {text}");
        }
    }

    #[test]
    fn train_and_held_out_never_overlap() {
        let train: BTreeSet<DigitSum> = train_problems(&[2, 3], 2000, 0).into_iter().collect();
        for k in [2, 3] {
            let held = held_out_problems(k, 50, 0);
            assert!(!held.is_empty());
            assert!(held.iter().all(|p| p.k() == k && !train.contains(p)));
        }
        assert!(
            held_out_problems(2, 1000, 0).len() < 40,
            "K = 2 has only ~20 held-out problems"
        );
        assert_eq!(held_out_problems(5, 100, 3).len(), 100);
        assert_eq!(train_problems(&[4], 10, 9), train_problems(&[4], 10, 9));
    }

    /// The frontier past the demonstrations reaches K = 10 (issue 27): its held-out problems
    /// are drawn, their traces verify (all nines: 95 characters with the prompt, past the lesson
    /// model's 64 positions), and the config accepts it while K = 11 is refused.
    #[test]
    fn k_10_is_a_task_of_its_own() {
        let held = held_out_problems(10, 20, 1);
        assert_eq!(held.len(), 20);
        assert!(held.iter().all(|p| p.k() == 10));
        let nines = p(&[9; 10]);
        let trace = nines.completion(Mode::Cot);
        assert_eq!(nines.prompt().len() + trace.len(), 95);
        assert_eq!(nines.verify(Mode::Cot, &trace), Verdict::Correct);
        assert!(check_ks("eval.ks", &[2, 10]).is_ok());
        assert!(check_ks("eval.ks", &[11]).is_err());
    }
}
