//! `cargo xtask <task>`: CI and benchmarks.
fn main() {}
