//! The lessons' tasks: generators (deterministic from a seed) and their verifiers.

pub mod digit_sum;
mod example;
pub mod preference;
pub mod recognise;
pub mod reverse;

pub use example::Example;
