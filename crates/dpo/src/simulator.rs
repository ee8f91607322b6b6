//! The lesson's margin simulator: one pair, policy = reference at the start, and each step one
//! gradient update of −log σ(margin) on the two log-ratios. With margin m = r̂w − r̂l =
//! β·(Δw − Δl), dL/dΔw = −β·σ(−m), so a step of size η moves Δw up and Δl down by η·β·σ(−m):
//! the margin grows fast while the pair is misranked and saturates once it is won.

/// The state after one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimStep {
    pub step: usize,
    /// Δw = log πθ(yw) − log πref(yw).
    pub chosen_logratio: f64,
    /// Δl = log πθ(yl) − log πref(yl).
    pub rejected_logratio: f64,
    /// r̂w − r̂l = β·(Δw − Δl).
    pub margin: f64,
    /// −log σ(margin).
    pub loss: f64,
}

/// `steps` updates of size `lr` at temperature `beta`, starting from step 0 (margin 0, loss ln 2).
pub fn simulate(beta: f64, lr: f64, steps: usize) -> Vec<SimStep> {
    let state = |step, dw: f64, dl: f64| {
        let margin = beta * (dw - dl);
        SimStep {
            step,
            chosen_logratio: dw,
            rejected_logratio: dl,
            margin,
            loss: softplus(-margin),
        }
    };
    let mut out = vec![state(0, 0.0, 0.0)];
    let (mut dw, mut dl) = (0.0, 0.0);
    for step in 1..=steps {
        let push = lr * beta * sigmoid(-beta * (dw - dl));
        dw += push;
        dl -= push;
        out.push(state(step, dw, dl));
    }
    out
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// log(1 + eˣ), stable for large |x|.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_ln2_grows_and_saturates() {
        let run = simulate(0.1, 50.0, 200);
        assert_eq!(run[0].margin, 0.0);
        assert!((run[0].loss - std::f64::consts::LN_2).abs() < 1e-12);
        assert!(run.windows(2).all(|w| w[1].margin > w[0].margin));
        let first_gain = run[1].margin - run[0].margin;
        let last_gain = run[200].margin - run[199].margin;
        assert!(last_gain < first_gain / 2.0, "{first_gain} vs {last_gain}");
        // First step by hand: Δw = η·β·σ(0) = 50·0.1·0.5 = 2.5, margin = 0.1·5 = 0.5.
        assert!((run[1].chosen_logratio - 2.5).abs() < 1e-12);
        assert!((run[1].margin - 0.5).abs() < 1e-12);
    }

    #[test]
    fn larger_beta_moves_the_margin_more_per_step() {
        let small = simulate(0.1, 1.0, 1)[1].margin;
        let large = simulate(0.5, 1.0, 1)[1].margin;
        assert!(large > small);
    }
}
