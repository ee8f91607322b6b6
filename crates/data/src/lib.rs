//! Everything the stages read: the tokenizer, the pretraining corpus and its split,
//! the lessons' task generators and verifiers, JSONL I/O and padded batches.

pub mod atomic;
pub mod batch;
pub mod corpus;
pub mod hash;
pub mod jsonl;
pub mod path;
pub mod replay;
pub mod split;
pub mod tasks;
pub mod tokenizer;

pub use path::DataPath;
pub use tokenizer::{TextTokenizer, TokenizerConfig, TokenizerKind};

/// `path` as written in a config file in folder `base`: relative paths are relative to it.
pub fn relative_to(base: &std::path::Path, path: &std::path::Path) -> std::path::PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
