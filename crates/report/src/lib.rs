//! The report cards, built only from the files a run's stages wrote: one run's
//! (`runs/NAME/report.md` and `.html`, `write_run`) and a sweep's, mean ± sd over seeds with
//! which changes are beyond noise (`write_sweep`). Both are built in memory and written at the
//! end, so a malformed file is an error naming it and leaves nothing half-written.

mod doc;
mod plots;
mod run_card;
mod stats;
mod sweep_card;

pub use run_card::write as write_run;
pub use sweep_card::{write as write_sweep, write_grid};

/// The plots' folder beside a report card, linked from it by relative path.
const PLOT_DIR: &str = "report";
