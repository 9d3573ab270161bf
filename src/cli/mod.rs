//! The `cli` stage (being built).
