//! Stage `rlvr`: not implemented yet. `cargo xtask stage rlvr` says so and exits non-zero.
