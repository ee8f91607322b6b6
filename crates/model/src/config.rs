use serde::{Deserialize, Serialize};

/// Shape of the lesson-01 GPT. Defaults are the lesson's: d = 128, L = 4, h = 4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Filled in from the tokenizer; a `pipeline.toml` never sets it.
    #[serde(default)]
    pub vocab_size: usize,
    /// Longest sequence the learned position embedding covers.
    pub block_size: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
}

impl Default for GptConfig {
    fn default() -> Self {
        Self {
            vocab_size: 0,
            block_size: 64,
            d_model: 128,
            n_layers: 4,
            n_heads: 4,
        }
    }
}

impl GptConfig {
    /// Checks the shape is buildable; errors name the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("block_size", self.block_size),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("model.{key} must be > 0"));
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(format!(
                "model.d_model ({}) must be divisible by model.n_heads ({})",
                self.d_model, self.n_heads
            ));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Closed-form parameter count: embeddings (the head is tied, so counted once),
    /// per block two LayerNorms, fused QKV, output projection, and the 4x MLP with biases,
    /// then the final LayerNorm.
    pub fn num_params(&self) -> usize {
        let (v, t, d, l) = (
            self.vocab_size,
            self.block_size,
            self.d_model,
            self.n_layers,
        );
        let layer_norm = 2 * d;
        let attention = 3 * d * d + d * d;
        let mlp = (d * 4 * d + 4 * d) + (4 * d * d + d);
        v * d + t * d + l * (2 * layer_norm + attention + mlp) + layer_norm
    }
}
