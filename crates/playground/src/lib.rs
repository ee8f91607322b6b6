//! Talking to a finished stage: `sample` continues a prompt, `logits` writes one prompt's
//! logits for the independent checks, `chat` is a terminal REPL over one checkpoint, and
//! `serve` a web playground where every stage of a run answers side by side. `inference`
//! is their shared core: a loaded stage that encodes, continues and scores a prompt.

pub mod chat;
pub mod inference;
pub mod logits;
pub mod sample;
pub mod serve;
