//! One supervised example in TRL's prompt-completion shape, what every task generates.

use serde::{Deserialize, Serialize};

/// One supervised example in TRL's prompt-completion shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub prompt: String,
    pub completion: String,
}
