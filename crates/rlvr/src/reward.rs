//! The verifier as a reward. Strict by default: 1 for a well-formed trace whose answer is the
//! gold sum, else 0. The lesson's hack, a bare `42#` (or any answer without the trace), is
//! malformed under the strict CoT format and earns nothing.

use data::tasks::digit_sum::{DigitSum, Mode, Verdict};

/// `partial_credit` is paid for a well-formed but wrong trace (0 = the lesson's binary reward).
pub fn reward(problem: &DigitSum, completion: &str, partial_credit: f64) -> f64 {
    match problem.verify(Mode::Cot, completion) {
        Verdict::Correct => 1.0,
        Verdict::Wrong => partial_credit,
        Verdict::Malformed => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_tried() {
        let p = DigitSum {
            digits: vec![3, 4, 5],
        };
        let cases = [
            ("{3+4=7;7+5=12}12#", 1.0, 1.0),
            ("{3+4=7;7+5=13}13#", 0.0, 0.25), // well-formed, wrong: partial credit only if asked
            ("12#", 0.0, 0.0),                // right answer, no trace
            ("42#", 0.0, 0.0),                // the lesson's constant hack
            ("{3+4=7;7+5=12}12", 0.0, 0.0),   // no end symbol
            ("{3+4=7;7+5=12}42#", 0.0, 0.0),  // answer disagrees with the trace
            ("{3+4=7}12#", 0.0, 0.0),         // skipped a step
            ("{3+4=7;7+5=12}12#12#", 0.0, 0.0), // trailing junk
            ("", 0.0, 0.0),
        ];
        for (text, strict, partial) in cases {
            assert_eq!(reward(&p, text, 0.0), strict, "{text:?} strict");
            assert_eq!(reward(&p, text, 0.25), partial, "{text:?} partial");
        }
    }
}
