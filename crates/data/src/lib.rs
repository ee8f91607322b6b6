//! Everything the stages read: the tokenizer, the pretraining corpus and its split,
//! the lessons' task generators and verifiers, JSONL I/O and padded batches.

pub mod atomic;
pub mod batch;
pub mod corpus;
pub mod hash;
pub mod jsonl;
pub mod split;
pub mod tasks;
pub mod tokenizer;

pub use tokenizer::{TextTokenizer, TokenizerConfig, TokenizerKind};
