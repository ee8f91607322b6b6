//! The chain as files: its stages in order (`Stage`), where a run keeps them (`layout`), and
//! what a finished stage folder holds (`FinishedStage`), read in one place for every command
//! that reads one: skills, evaluation, sampling, the playground, the report and the export.

pub mod export;
pub mod layout;
pub mod skills;
mod stage;

pub use stage::{keys, Stage};
pub use trainer::FinishedStage;
