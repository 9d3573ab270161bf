//! The `catalog` stage (being built).
