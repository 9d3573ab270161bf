//! Everything that brings rows into the store: row files (`lakeport load`), inventory reports
//! of S3, OSS and OBS ([`report`]) and direct bucket listings ([`bucket`]); [`watch`] finds new reports under a root.
//!
//! This stage parses and type-checks input against a [`TableDef`](crate::model::TableDef) and
//! yields [`Change`](crate::store::Change)s. Row files go to
//! [`Store::apply`](crate::store::Store::apply) (one file, one transaction); reports and
//! listings are snapshots of a scope and go to
//! [`Store::apply_snapshot`](crate::store::Store::apply_snapshot) through [`import`], their
//! rows read ahead on a thread of their own ([`read_ahead`]).

pub mod bucket;
pub mod import;
pub mod read_ahead;
pub mod report;
pub mod rows;
pub mod watch;
