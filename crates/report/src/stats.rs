//! Mean, standard deviation and the "beyond noise" test of a sweep's report: a paired
//! difference across seeds whose 95% t-interval excludes zero.

/// Mean and sample standard deviation (n − 1); sd is 0 for a single value.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Two-sided 95% critical value of Student's t with `df` degrees of freedom.
pub fn t95(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        1..=10 => TABLE[df - 1],
        // Cornish-Fisher expansion around the normal's 1.96; within 0.002 from df = 11.
        _ => {
            let (z, d) = (1.959964_f64, df as f64);
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// How a stage changed one accuracy, over seeds: the paired differences `child − parent`
/// (fractions), and whether they are beyond noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub mean: f64,
    /// `Some(true)` when the 95% t-interval of the mean difference excludes 0; `None` with
    /// one seed, where nothing can be said.
    pub beyond_noise: Option<bool>,
}

/// `differences` per seed, each measured on `n_problems` held-out problems at accuracies
/// near `accuracy`. The seeds' spread is floored at the binomial standard error of one
/// difference of two such accuracies (add-one smoothed, so 200/200 still has some), so that
/// seeds agreeing by chance on a one-problem change do not count as a signal.
pub fn change(differences: &[f64], n_problems: usize, accuracy: f64) -> Change {
    let (mean, sd) = mean_sd(differences);
    if differences.len() < 2 {
        return Change {
            mean,
            beyond_noise: None,
        };
    }
    let n = n_problems.max(1) as f64;
    let p = (accuracy * n + 1.0) / (n + 2.0);
    let floor = (2.0 * p * (1.0 - p) / n).sqrt();
    let se = sd.max(floor) / (differences.len() as f64).sqrt();
    Change {
        mean,
        beyond_noise: Some(mean.abs() > t95(differences.len() - 1) * se),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        let (m, s) = mean_sd(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
    }

    #[test]
    fn t_matches_its_table_at_the_seam() {
        assert!((t95(11) - 2.201).abs() < 0.003, "{}", t95(11));
        assert!((t95(30) - 2.042).abs() < 0.002, "{}", t95(30));
        assert_eq!(t95(2), 4.303);
    }

    #[test]
    fn a_consistent_large_drop_is_beyond_noise_and_a_one_problem_one_is_not() {
        let drop = change(&[-0.10, -0.12, -0.08], 200, 0.9);
        assert_eq!(drop.beyond_noise, Some(true));
        let tiny = change(&[-0.005, -0.005, -0.005], 200, 0.995);
        assert_eq!(tiny.beyond_noise, Some(false));
        let mixed = change(&[-0.10, 0.08, 0.01], 200, 0.9);
        assert_eq!(mixed.beyond_noise, Some(false));
        assert_eq!(change(&[-0.5], 200, 0.5).beyond_noise, None);
    }
}
