//! Synthetic policies for benchmarks (work in progress in this commit).
