//! What the two SQL backends do the same way: SQL text (quoted names, the name of a table's
//! data table, its column definitions, each backend bringing its own types), the integers
//! they store (signed) as lakeport's counters and `_seq` (unsigned), and the clock of writes.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::model::{ColumnType, TableDef};

/// Now, in ms since the epoch (UTC).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A stored integer that must not be negative (`_seq`, counters).
pub(crate) fn non_negative(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::store(format!("{what} is negative ({v})")))
}

/// A counter or `_seq` as the stores keep it (signed 64 bits).
pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidInput(format!("{what} {v} is too large")))
}

/// `"name"` with embedded quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The data table of a declared table, quoted: `"data_<table>"`.
pub(crate) fn data_table(table: &str) -> String {
    quote(&format!("data_{table}"))
}

/// The column definitions of `def`'s data table, comma-separated: the declared columns typed
/// by `sql_type` (key columns `NOT NULL`; for each `(i, expression)` of `generated`, column i
/// `GENERATED ALWAYS AS (expression) VIRTUAL`), then `tail` (lakeport's own columns) as given;
/// and the quoted primary key list.
pub(crate) fn data_columns(
    def: &TableDef,
    sql_type: fn(ColumnType) -> &'static str,
    generated: &[(usize, String)],
    tail: &[&str],
) -> (String, String) {
    let columns: Vec<String> = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let not_null = if def.is_key(&c.name) { " NOT NULL" } else { "" };
            let computed = generated
                .iter()
                .find(|(at, _)| *at == i)
                .map(|(_, expression)| format!(" GENERATED ALWAYS AS ({expression}) VIRTUAL"))
                .unwrap_or_default();
            format!("{} {}{not_null}{computed}", quote(&c.name), sql_type(c.ty))
        })
        .chain(tail.iter().map(|t| t.to_string()))
        .collect();
    (columns.join(", "), key_list(def))
}

/// `def`'s primary key columns, quoted and comma-separated, in key order.
pub(crate) fn key_list(def: &TableDef) -> String {
    def.primary_key
        .iter()
        .map(|k| quote(k))
        .collect::<Vec<_>>()
        .join(", ")
}
