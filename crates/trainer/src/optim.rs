use burn::optim::{AdamWConfig, ModuleOptimizer};
use serde::{Deserialize, Serialize};

/// AdamW settings. Where a lesson is silent the values are PyTorch's defaults
/// (betas 0.9/0.999, eps 1e-8, weight decay 0.01), not Burn's (eps 1e-5, wd 1e-4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    #[serde(default = "default_betas")]
    pub betas: [f32; 2],
    #[serde(default = "default_eps")]
    pub eps: f32,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f32,
    /// Clip the global gradient norm to this value; 0 disables clipping.
    #[serde(default)]
    pub grad_clip: f32,
}

fn default_betas() -> [f32; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f32 {
    1e-8
}
fn default_weight_decay() -> f32 {
    0.01
}

impl OptimConfig {
    /// PyTorch's AdamW defaults at learning rate `lr`, no clipping.
    pub fn with_lr(lr: f64) -> Self {
        Self {
            lr,
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: default_weight_decay(),
            grad_clip: 0.0,
        }
    }

    /// Range checks; `section` names the config table in errors (`pretrain.lr must be > 0`).
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("{section}.lr must be > 0, got {}", self.lr));
        }
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return Err(format!("{section}.betas[{i}] must be in [0, 1), got {b}"));
            }
        }
        if self.eps <= 0.0 {
            return Err(format!("{section}.eps must be > 0, got {}", self.eps));
        }
        if self.weight_decay < 0.0 {
            return Err(format!(
                "{section}.weight_decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if self.grad_clip < 0.0 {
            return Err(format!(
                "{section}.grad_clip must be >= 0, got {}",
                self.grad_clip
            ));
        }
        Ok(())
    }

    /// Burn's AdamW is decoupled like PyTorch's (`θ ← θ(1 − lr·wd) − lr·m̂/(√v̂ + ε)`) and
    /// decays every parameter, as `torch.optim.AdamW(model.parameters())` does.
    /// Clipping is not Burn's (per tensor): see `clip`.
    pub fn init(&self) -> ModuleOptimizer {
        AdamWConfig::new()
            .with_beta_1(self.betas[0])
            .with_beta_2(self.betas[1])
            .with_epsilon(self.eps)
            .with_weight_decay(self.weight_decay)
            .init()
    }
}
