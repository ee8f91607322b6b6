//! Stage `dpo`: not implemented yet. `cargo xtask stage dpo` says so and exits non-zero.
