//! The loop pieces every stage shares: AdamW with PyTorch's conventions, global-norm
//! gradient clipping, the LR schedule, the optimizer step with its NaN guard, the metrics
//! sink, the progress bar and the stage manifest. Each stage writes its own loop from these,
//! so the loop stays readable top to bottom in the stage crate.

pub mod clip;
pub mod context;
pub mod files;
pub mod flat_adamw;
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

pub use context::StageContext;
pub use manifest::Manifest;
pub use metrics::MetricsSink;
pub use optim::OptimConfig;
pub use progress::Progress;
pub use schedule::LrSchedule;
pub use step::{OptimizerStep, StepReport};
