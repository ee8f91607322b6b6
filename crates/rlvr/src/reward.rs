//! The verifier as a reward. Strict by default: 1 for a well-formed trace whose answer is the
//! gold sum, else 0. The lesson's hack, a bare `42#` (or any answer without the trace), is
//! malformed under the strict CoT format and earns nothing.

use data::tasks::digit_sum::{DigitSum, Mode, Verdict};

/// `partial_credit` is paid for a well-formed but wrong trace (0 = the lesson's binary reward).
/// `step_credit` × the share of the trace's steps written right (from the first on) is paid
/// to any completion that is not correct, when that is more (0 = off).
pub fn reward(problem: &DigitSum, completion: &str, partial_credit: f64, step_credit: f64) -> f64 {
    let base = match problem.verify(Mode::Cot, completion) {
        Verdict::Correct => return 1.0,
        Verdict::Wrong => partial_credit,
        Verdict::Malformed => 0.0,
    };
    let steps = (problem.k() - 1).max(1) as f64;
    base.max(step_credit * problem.correct_steps(completion) as f64 / steps)
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
            assert_eq!(reward(&p, text, 0.0, 0.0), strict, "{text:?} strict");
            assert_eq!(reward(&p, text, 0.25, 0.0), partial, "{text:?} partial");
        }
    }

    #[test]
    fn step_credit_pays_the_steps_walked_right_from_the_first() {
        let p = DigitSum {
            digits: vec![9, 4, 0, 5],
        };
        let cases = [
            ("{9+4=13;13+0=13;13+5=18}18#", 1.0),
            ("{9+4=13;13+5=18}18#", 0.25), // skipped the 0: first step only
            ("{9+4=13;13+0=13;13+5=19}19#", 0.5), // two steps right, a wrong sum
            ("{9+4=12;12+0=12;12+5=17}17#", 0.0), // wrong from the first step
            ("{9+4=13;13+0=13", 0.5),      // cut off
            ("18#", 0.0),
        ];
        for (text, expected) in cases {
            let got = reward(&p, text, 0.0, 0.75);
            assert!(
                (got - expected).abs() < 1e-12,
                "{text:?}: {got} != {expected}"
            );
        }
        // Partial credit and step credit: the larger.
        assert_eq!(reward(&p, "{9+4=12;12+0=12;12+5=17}17#", 0.1, 0.75), 0.1);
    }
}
