//! The lessons' tasks: generators (deterministic from a seed) and their verifiers.

pub mod digit_sum;
pub mod preference;
pub mod recognise;
pub mod reverse;

use serde::{Deserialize, Serialize};

/// One supervised example in TRL's prompt-completion shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub prompt: String,
    pub completion: String,
}
