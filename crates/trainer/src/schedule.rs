use serde::{Deserialize, Serialize};

/// Learning-rate schedule. The lessons use a constant rate; warmup + cosine is the modern
/// recipe they name, available as an option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    #[default]
    Constant,
    /// Linear warmup from 0 over `warmup_steps`, then cosine decay to `min_lr_ratio · lr`.
    WarmupCosine {
        warmup_steps: usize,
        #[serde(default)]
        min_lr_ratio: f64,
    },
}

impl LrSchedule {
    /// Learning rate for `step` (0-based) of `total_steps`.
    pub fn lr(&self, base_lr: f64, step: usize, total_steps: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base_lr,
            LrSchedule::WarmupCosine {
                warmup_steps,
                min_lr_ratio,
            } => {
                if step < warmup_steps {
                    return base_lr * (step + 1) as f64 / warmup_steps as f64;
                }
                let decay_steps = total_steps.saturating_sub(warmup_steps).max(1);
                let progress = ((step - warmup_steps) as f64 / decay_steps as f64).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = LrSchedule::WarmupCosine {
            warmup_steps: 10,
            min_lr_ratio: 0.1,
        };
        assert!((s.lr(1.0, 0, 110) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 9, 110) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 110) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 60, 110) - 0.55).abs() < 1e-12);
        assert!((s.lr(1.0, 110, 110) - 0.1).abs() < 1e-12);
        assert_eq!(LrSchedule::Constant.lr(3e-4, 500, 1000), 3e-4);
    }
}
