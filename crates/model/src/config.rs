use serde::{Deserialize, Serialize};

/// Shape of the lesson-01 GPT. Defaults are the lesson's: d = 128, L = 4, h = 4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Filled in from the tokenizer; a `pipeline.toml` never sets it.
    #[serde(default)]
    pub vocab_size: usize,
    /// Longest sequence the model reads (and the learned position embedding covers).
    pub block_size: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// How the model knows where a token is. Left out of the file when it is the lesson's
    /// learned embedding, so the checkpoints (and their hashes) of such models are as before.
    #[serde(default, skip_serializing_if = "Position::is_learned")]
    pub position: Position,
}

/// `model.position`: how the model knows where a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// The lesson's: a learned vector per position up to `block_size`, added to the token's.
    #[default]
    Learned,
    /// No position signal at all (NoPE, Kazemnejad et al. 2023, arXiv 2305.19466): causal
    /// attention alone tells a token how much came before it. Nothing is tied to a position,
    /// which is what lets some small models run past the lengths they were trained on.
    #[serde(rename = "none")]
    Absent,
    /// Rotary embeddings (RoPE, `crate::rope`): each head's queries and keys turned by their
    /// position, so attention sees distances rather than places. No parameters; lesson 01
    /// names it as the drop-in for length extrapolation.
    Rope,
}

impl Position {
    pub fn is_learned(&self) -> bool {
        *self == Position::Learned
    }
}

impl Default for GptConfig {
    fn default() -> Self {
        Self {
            vocab_size: 0,
            block_size: 64,
            d_model: 128,
            n_layers: 4,
            n_heads: 4,
            position: Position::Learned,
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
        if self.position == Position::Rope && !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "model.position = \"rope\" turns pairs of coordinates: the head size \
                 d_model / n_heads = {} must be even",
                self.head_dim()
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
        let positions = match self.position {
            Position::Learned => t * d,
            Position::Absent | Position::Rope => 0,
        };
        v * d + positions + l * (2 * layer_norm + attention + mlp) + layer_norm
    }
}
