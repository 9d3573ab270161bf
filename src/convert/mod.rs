//! The `convert` stage (being built).
