//! The vocabulary every stage shares: table declarations and column types ([`schema`]:
//! `schemas/<table>.yaml`, the built-in inventory table), the names of the system columns a
//! store adds to every table, and the description of an object a run delivered. The store
//! keeps rows of these tables, `convert` maps their types to the lake's, the sink writes and
//! describes objects; none of them owns the words.

pub mod schema;

use serde::{Deserialize, Serialize};

pub use schema::{ColumnDef, ColumnType, TableDef};

/// Name of the change-sequence column every snapshot batch carries (Int64).
pub const SEQ_COLUMN: &str = "_seq";
/// Name of the write-time column every snapshot batch carries (Timestamp(ms, UTC)).
pub const WRITE_TIME_COLUMN: &str = "_write_time";
/// Name of the Boolean column that batches of
/// [`Store::changes`](crate::store::Store::changes) with deletes carry last: true for a delete
/// (a tombstone: its key, `_seq` and `_write_time`, every other column NULL).
pub const DELETED_COLUMN: &str = "_deleted";

/// One object a run wrote, as recorded in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredObject {
    /// Path relative to the task's destination, e.g. `dt=2024-01-01/daily_0_7.parquet`.
    pub path: String,
    /// The rendered partition prefix it sits under, e.g. `dt=2024-01-01` (may be empty).
    pub partition: String,
    /// Rows in the object.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// MD5 of the object's bytes (lowercase hex), computed as it was uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// The lowest and highest `_seq` of its rows, when the lake schema carries `_seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_range: Option<(u64, u64)>,
}
