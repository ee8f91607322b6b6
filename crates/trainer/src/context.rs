use std::path::PathBuf;

use burn::tensor::Device;
use data::TextTokenizer;
use model::GptConfig;

/// What xtask hands a stage: where to write, which device, the chain's shared tokenizer and
/// model shape, and the parent checkpoint folder when the stage has one. A stage is a function
/// of (context, its config) to files in `out_dir`; it never chooses a backend itself.
pub struct StageContext {
    pub stage: String,
    pub out_dir: PathBuf,
    pub device: Device,
    pub device_name: String,
    pub tokenizer: TextTokenizer,
    pub model: GptConfig,
    pub parent_dir: Option<PathBuf>,
    /// Hides the progress bar (tests, CI logs).
    pub quiet: bool,
    /// Training-state snapshot interval in steps, for resuming a killed stage (0 = never).
    pub checkpoint_every: usize,
}

impl StageContext {
    pub fn checkpoint_path(&self) -> PathBuf {
        self.out_dir.join(crate::files::CHECKPOINT)
    }
}
