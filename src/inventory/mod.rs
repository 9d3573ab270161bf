//! The `inventory` stage (being built).
