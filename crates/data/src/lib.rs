//! Everything the stages read: the tokenizer, the pretraining corpus and its split,
//! and (as stages arrive) task generators, verifiers and JSONL readers.

pub mod corpus;
pub mod hash;
pub mod tokenizer;

pub use tokenizer::{TextTokenizer, TokenizerConfig, TokenizerKind};
