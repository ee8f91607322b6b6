//! Where a stage's time goes: process-wide totals of the time spent sampling, evaluating and
//! reading or writing checkpoints, so that a stage can say what its training steps took (the
//! rest of its wall time) without a profiler.
//!
//! Time inside a phase that is already being timed on the same thread counts once, to the
//! outer phase: the sampling an evaluation does is evaluation.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// What a span of time was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sampled generation outside evaluation: rollouts, on-policy pairs.
    Sampling,
    /// Measuring a model: held-out accuracy, preference metrics.
    Evaluation,
    /// Reading and writing checkpoints.
    Io,
}

const PHASES: usize = 3;

static NANOS: [AtomicU64; PHASES] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work`, adding its wall time to `phase` unless this thread is already inside one.
pub fn timed<T>(phase: Phase, work: impl FnOnce() -> T) -> T {
    if INSIDE.with(Cell::get) {
        return work();
    }
    INSIDE.with(|inside| inside.set(true));
    // Reset on unwind too, so a caught panic does not leave the flag set.
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            INSIDE.with(|inside| inside.set(false));
        }
    }
    let _leave = Leave;
    let start = Instant::now();
    let out = work();
    NANOS[phase as usize].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

/// Seconds spent in each phase since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTotals {
    pub sampling_s: f64,
    pub evaluation_s: f64,
    pub io_s: f64,
}

impl PhaseTotals {
    pub fn now() -> Self {
        let seconds = |phase: Phase| NANOS[phase as usize].load(Ordering::Relaxed) as f64 * 1e-9;
        Self {
            sampling_s: seconds(Phase::Sampling),
            evaluation_s: seconds(Phase::Evaluation),
            io_s: seconds(Phase::Io),
        }
    }

    /// The time spent in each phase between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            sampling_s: self.sampling_s - earlier.sampling_s,
            evaluation_s: self.evaluation_s - earlier.evaluation_s,
            io_s: self.io_s - earlier.io_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_time_counts_once_to_the_outer_phase() {
        // Evaluation, which no other test of this crate times: a 50 ms span inside another
        // counts 50 ms (and some), not 100.
        let before = PhaseTotals::now();
        timed(Phase::Evaluation, || {
            timed(Phase::Evaluation, || {
                std::thread::sleep(std::time::Duration::from_millis(50))
            })
        });
        let spent = PhaseTotals::now().since(before).evaluation_s;
        assert!((0.05..0.1).contains(&spent), "{spent} s");
    }
}
