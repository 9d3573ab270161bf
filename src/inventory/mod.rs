//! Everything that brings rows into the store: row files (`lakeport load`), inventory reports
//! (S3 today) and direct bucket listings.
//!
//! This stage parses and type-checks input against a [`TableDef`](crate::store::TableDef) and
//! yields [`Change`](crate::store::Change)s. Row files go to
//! [`Store::apply`](crate::store::Store::apply) (one file, one transaction); reports and
//! listings are snapshots of a scope and go to
//! [`Store::apply_snapshot`](crate::store::Store::apply_snapshot) through [`import`], their
//! rows read ahead on a thread of their own ([`read_ahead`]).

pub mod bucket;
pub mod import;
pub mod read_ahead;
pub mod rows;
pub mod s3;
