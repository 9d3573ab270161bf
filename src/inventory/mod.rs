//! Everything that brings rows into the store: row files (`lakeport load`) today; inventory
//! reports and bucket listings later.
//!
//! This stage parses and type-checks input against a [`TableDef`](crate::store::TableDef) and
//! yields [`Change`](crate::store::Change)s; it never writes to the store itself (the caller
//! hands the changes to [`Store::apply`](crate::store::Store::apply), which applies one file
//! as one transaction).

pub mod rows;
pub mod s3;
