//! The `delivery` stage (being built).
