//! The `sink` stage (being built).
