//! Names of the files every stage folder holds.

pub const CHECKPOINT: &str = "model.safetensors";
pub const MANIFEST: &str = "manifest.json";
pub const METRICS: &str = "metrics.jsonl";
pub const TOKENIZER: &str = "tokenizer.json";
pub const EVAL: &str = "eval.json";
