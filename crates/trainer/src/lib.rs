//! What every stage shares: the frame around its lesson (`frame`: clock, folder, the main
//! run and its twins, `eval.json`, checkpoint and manifest), the one training-loop driver (`driver`: resume, cadence,
//! metrics rows, snapshots, each step's randomness from (seed, step)), the supervised step
//! SFT and CoT-SFT both run (`supervised`), AdamW with PyTorch's conventions, global-norm
//! gradient clipping, the LR schedule, the optimizer step with its NaN guard, the metrics
//! sink, the progress bar and the stage manifest, and the one reader of a finished stage folder (`FinishedStage`), beside
//! its one writer (`outputs::save_stage`). A stage writes only its step body.

pub mod clip;
pub mod context;
pub mod driver;
pub mod files;
mod finished;
pub mod flat_adamw;
pub mod frame;
pub mod manifest;
pub mod metrics;
pub mod optim;
pub mod outputs;
pub mod parallel;
pub mod parent;
pub mod progress;
pub mod resume;
pub mod schedule;
pub mod step;
pub mod supervised;
pub mod tensors;

pub use context::StageContext;
pub use driver::{Cadence, Evaluator, LoopSettings, Row, Step, StepBody, TrainingLoop};
pub use finished::FinishedStage;
pub use frame::{OpenStage, Run};
pub use manifest::{Manifest, TimeSplit};
pub use metrics::MetricsSink;
pub use optim::OptimConfig;
pub use parent::Reference;
pub use progress::Progress;
pub use schedule::LrSchedule;
pub use step::{OptimizerStep, StepReport};
