//! SQL text the two SQL backends write the same way: quoted names, the name of a table's data
//! table, and its column definitions (each backend brings its own types).

use crate::store::{ColumnType, TableDef};

/// `"name"` with embedded quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The data table of a declared table, quoted: `"data_<table>"`.
pub(crate) fn data_table(table: &str) -> String {
    quote(&format!("data_{table}"))
}

/// The column definitions of `def`'s data table, comma-separated: the declared columns typed
/// by `sql_type` (key columns `NOT NULL`), then `tail` (lakeport's own columns) as given; and
/// the quoted primary key list.
pub(crate) fn data_columns(
    def: &TableDef,
    sql_type: fn(ColumnType) -> &'static str,
    tail: &[&str],
) -> (String, String) {
    let columns: Vec<String> = def
        .columns
        .iter()
        .map(|c| {
            let not_null = if def.is_key(&c.name) { " NOT NULL" } else { "" };
            format!("{} {}{not_null}", quote(&c.name), sql_type(c.ty))
        })
        .chain(tail.iter().map(|t| t.to_string()))
        .collect();
    let key = def
        .primary_key
        .iter()
        .map(|k| quote(k))
        .collect::<Vec<_>>()
        .join(", ");
    (columns.join(", "), key)
}
