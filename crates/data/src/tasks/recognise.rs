//! Which task a free-form prompt is, and what the strict verifier makes of a completion: for
//! the playground and the chat, where prompts are typed rather than drawn from a task.

use serde::Serialize;

use super::digit_sum::{DigitSum, Mode, Verdict};
use super::reverse;

/// A verifier's verdict on one completion of a recognised task prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskVerdict {
    /// `digit_sum` or `reverse`.
    pub task: &'static str,
    /// Digits in the sum (digit_sum only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// `correct`, `wrong` or `malformed`.
    pub verdict: &'static str,
    /// The format the completion was read in: `cot` or `direct` for sums, `word` for reversal.
    pub format: &'static str,
    /// The gold completion (in the CoT format for sums).
    pub expected: String,
}

/// `3+4+5=` (single digits, 2..=10 of them) or `<abcd>` (lowercase letters); anything else
/// is not a task prompt and gets no verdict.
pub fn verdict(prompt: &str, completion: &str) -> Option<TaskVerdict> {
    if let Some(problem) = parse_digit_sum(prompt) {
        return Some(digit_sum_verdict(&problem, completion));
    }
    let word = prompt.strip_prefix('<')?.strip_suffix('>')?;
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let verdict = if reverse::is_correct(prompt, completion) {
        "correct"
    } else if reverse::is_well_formed(word, completion) {
        "wrong"
    } else {
        "malformed"
    };
    Some(TaskVerdict {
        task: "reverse",
        k: None,
        verdict,
        format: "word",
        expected: reverse::completion(word),
    })
}

/// The problem a prompt such as `3+4+5=` poses.
pub fn parse_digit_sum(prompt: &str) -> Option<DigitSum> {
    let terms = prompt.strip_suffix('=')?;
    let digits: Option<Vec<u8>> = terms
        .split('+')
        .map(|t| match t.as_bytes() {
            [d] if d.is_ascii_digit() => Some(d - b'0'),
            _ => None,
        })
        .collect();
    let digits = digits?;
    (2..=10)
        .contains(&digits.len())
        .then_some(DigitSum { digits })
}

/// A completion that opens a trace is read as CoT, any other as a direct answer.
fn digit_sum_verdict(problem: &DigitSum, completion: &str) -> TaskVerdict {
    let mode = if completion.starts_with('{') {
        Mode::Cot
    } else {
        Mode::Direct
    };
    let verdict = match problem.verify(mode, completion) {
        Verdict::Correct => "correct",
        Verdict::Wrong => "wrong",
        Verdict::Malformed => "malformed",
    };
    TaskVerdict {
        task: "digit_sum",
        k: Some(problem.k()),
        verdict,
        format: mode.name(),
        expected: problem.completion(Mode::Cot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_read_in_the_completions_own_format() {
        let cot = verdict("3+4+5=", "{3+4=7;7+5=12}12#").unwrap();
        assert_eq!(
            (cot.verdict, cot.format, cot.k),
            ("correct", "cot", Some(3))
        );
        assert_eq!(verdict("3+4+5=", "12#").unwrap().verdict, "correct");
        assert_eq!(verdict("3+4+5=", "13#").unwrap().verdict, "wrong");
        assert_eq!(verdict("3+4+5=", "{3+4=7}7#").unwrap().verdict, "malformed");
    }

    #[test]
    fn reversal_and_other_prompts() {
        assert_eq!(verdict("<abcd>", "dcba#").unwrap().verdict, "correct");
        assert_eq!(verdict("<abcd>", "dcbb#").unwrap().verdict, "wrong");
        assert_eq!(verdict("<abcd>", "dcb").unwrap().verdict, "malformed");
        assert!(verdict("ROMEO:", "x").is_none());
        assert!(verdict("12+4=", "16#").is_none(), "terms are single digits");
        assert!(verdict("3=", "3#").is_none(), "K starts at 2");
    }
}
