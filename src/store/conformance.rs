//! Store conformance suite (being built).
