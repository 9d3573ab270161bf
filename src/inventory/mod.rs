//! Everything that brings rows into the store: row files (`lakeport load`) and inventory
//! reports of S3, OSS and OBS ([`report`]); bucket listings later.
//!
//! This stage parses and type-checks input against a [`TableDef`](crate::store::TableDef) and
//! yields [`Change`](crate::store::Change)s; it never writes to the store itself (the caller
//! hands the changes to [`Store::apply`](crate::store::Store::apply), which applies one file
//! as one transaction).

pub mod report;
pub mod rows;
