use indicatif::{ProgressBar, ProgressStyle};

/// The progress bar: step count, ETA and whatever the stage puts in its message
/// (loss and tokens/s at least). Hidden when stderr is not a terminal.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(stage: &str, total_steps: usize, hidden: bool) -> Self {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total_steps as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{stage:>9} [{{bar:30}}] {{pos}}/{{len}} {{elapsed_precise}}<{{eta}} {{msg}}"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        Self { bar }
    }

    pub fn update(&self, step: usize, message: String) {
        self.bar.set_position(step as u64);
        self.bar.set_message(message);
    }

    /// Prints a line above the bar (eval results and the like).
    pub fn println(&self, line: String) {
        self.bar.println(line);
    }

    pub fn finish(&self) {
        self.bar.finish();
    }
}
