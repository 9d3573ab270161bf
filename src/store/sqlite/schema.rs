//! The SQLite store's tables (their layout is in the module docs of [`sqlite`](super)): the
//! `CREATE` statements of lakeport's own tables, reads of the `_lakeport_meta` counters and of
//! stored JSON (table definitions among it), each data table's layout (`CREATE TABLE`, its
//! `_seq` index and the upgrade of an old one) and the SQL it is read and written with
//! ([`TableSql`]), and the declaration of a table
//! ([`Store::ensure_table`](crate::store::Store::ensure_table)).

use std::fmt::Write as _;

use arrow::datatypes::SchemaRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{db, listing, SqliteStore};
use crate::error::{Error, Result};
use crate::model::schema::DerivedFolder;
use crate::model::{ColumnType, TableDef};
use crate::store::checks::{check_def, check_key, check_row, differences};
use crate::store::sql::{data_columns, data_table, key_list, quote};
use crate::store::Value;

pub(super) const CREATE_META: &str = r#"
CREATE TABLE IF NOT EXISTS "_lakeport_meta" ("key" TEXT PRIMARY KEY, "value" INTEGER);
INSERT OR IGNORE INTO "_lakeport_meta" ("key", "value") VALUES ('seq', 0), ('last_write_time', 0);
CREATE TABLE IF NOT EXISTS "_lakeport_tables" ("name" TEXT PRIMARY KEY, "definition" TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS "_lakeport_runs" (
    "run_id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "task" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "started_ms" INTEGER NOT NULL,
    "record" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS "_lakeport_runs_by_task" ON "_lakeport_runs" ("task", "run_id");
CREATE TABLE IF NOT EXISTS "_lakeport_tasks" ("task" TEXT PRIMARY KEY, "state" TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS "_lakeport_live" (
    "task" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "partition" TEXT NOT NULL,
    "object" TEXT NOT NULL,
    PRIMARY KEY ("task", "path")
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS "_lakeport_live_by_partition" ON "_lakeport_live" ("task", "partition");
CREATE TABLE IF NOT EXISTS "_lakeport_workers" (
    "worker_id" TEXT PRIMARY KEY,
    "heartbeat_ms" INTEGER NOT NULL,
    "record" TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS "_lakeport_store" (
    "one" INTEGER PRIMARY KEY CHECK ("one" = 1),
    "id" TEXT NOT NULL,
    "created_ms" INTEGER NOT NULL
);
"#;

pub(super) const READ_SEQ: &str = r#"SELECT "value" FROM "_lakeport_meta" WHERE "key" = 'seq'"#;

/// A stored integer that must not be negative (`_seq`, counters); 0 when `sql` finds no row
/// or NULL.
pub(super) fn read_meta(conn: &Connection, sql: &str, what: &str) -> Result<i64> {
    let v: Option<Option<i64>> = conn
        .prepare_cached(sql)
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(db(format_args!("reading {what}")))?;
    Ok(v.flatten().unwrap_or(0))
}

pub(super) fn stored_def(conn: &Connection, name: &str) -> Result<Option<TableDef>> {
    read_json(
        conn,
        r#"SELECT "definition" FROM "_lakeport_tables" WHERE "name" = ?1"#,
        name,
        &format!("definition of table {name}"),
    )
}

/// The JSON value stored in the one row `sql` selects for `key` (None when there is no row);
/// `what` names it in errors.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    key: &str,
    what: &str,
) -> Result<Option<T>> {
    let json: Option<String> = conn
        .query_row(sql, [key], |r| r.get(0))
        .optional()
        .map_err(db(format_args!("reading the {what}")))?;
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| Error::store_caused(format!("the stored {what} is not valid"), e))
    })
    .transpose()
}

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "TEXT",
        ColumnType::Int64 | ColumnType::Bool | ColumnType::TimestampMs => "INTEGER",
        ColumnType::Double => "REAL",
        ColumnType::Binary => "BLOB",
    }
}

/// One table's layout and SQL texts, built once per table.
#[derive(Debug)]
pub(super) struct TableSql {
    pub(super) def: TableDef,
    pub(super) schema: SchemaRef,
    /// `schema` with a last, non-null Boolean [`DELETED_COLUMN`].
    pub(super) schema_with_deleted: SchemaRef,
    /// Column indexes of the key, in key order.
    pub(super) key_idx: Vec<usize>,
    /// Column indexes of the other columns the table stores (all but the key and a computed
    /// derived column, see [`create_table_sql`]), in table order: the ones written, and
    /// compared with a stored row.
    pub(super) other_idx: Vec<usize>,
    /// Whether column i is part of the key.
    pub(super) is_key: Vec<bool>,
    /// The column derived from the key ([`TableDef::derived_folder`]), checked in every row.
    pub(super) derived: Option<DerivedFolder>,
    /// The column whose text is bound packed into [`PACKED_ETAG`] ([`packed_etag`]), when the
    /// table's layout has it.
    pub(super) packed: Option<usize>,
    /// The table has [`SEQ_INDEXED`] and its `_seq` index holds only the rows it marks (see
    /// [`seq_index_sql`]); false for a table of an older store not yet declared again, whose
    /// `_seq` index holds every row.
    pub(super) partial_seq_index: bool,
    /// `SELECT _deleted, <others> WHERE <key> = ?1..` (key bound in key order).
    pub(super) lookup: String,
    /// `INSERT` binding column i at `?i+1` (a computed column's length is written),
    /// `_seq` at `?n+1`, `_write_time` at `?n+2`, [`SEQ_INDEXED`] at `?n+3` (when
    /// `partial_seq_index`).
    pub(super) insert: String,
    /// `UPDATE` (also revives a tombstone) with the same numbering as `insert`.
    pub(super) update: String,
    /// Tombstone `UPDATE`: `_seq` `?1`, `_write_time` `?2`, key at `?3..` in key order, then
    /// [`SEQ_INDEXED`] (when `partial_seq_index`).
    pub(super) tombstone: String,
    /// `"data_<table>"`.
    pub(super) data: String,
    /// `"k1", "k2"`.
    pub(super) key_list: String,
    /// Every column, then `_seq`, `_write_time`.
    pub(super) select_list: String,
}

impl TableSql {
    /// The SQL of table `def` as its data table is laid out (see [`Layout::of`]).
    pub(super) fn new(def: TableDef, layout: Layout) -> TableSql {
        let Layout {
            computed,
            partial_seq_index,
            packed,
        } = layout;
        let data = data_table(&def.table);
        let key_idx = def.key_indexes();
        let derived = def.derived_folder();
        let computed = derived.filter(|_| computed).map(|d| d.column);
        let packed = packed_etag(&def).filter(|_| packed);
        let other_idx: Vec<usize> = (0..def.columns.len())
            .filter(|i| !key_idx.contains(i) && computed != Some(*i))
            .collect();
        let n = def.columns.len();
        let col = |i: usize| quote(&def.columns[i].name);
        let key_eq = |first: usize, by_column: bool| {
            key_idx
                .iter()
                .enumerate()
                .map(|(j, &i)| {
                    let p = if by_column { i + 1 } else { j + first };
                    format!("{} = ?{p}", col(i))
                })
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let others = other_idx
            .iter()
            .map(|&i| col(i))
            .collect::<Vec<_>>()
            .join(", ");
        let lookup = format!(
            "SELECT \"_deleted\"{}{others} FROM {data} WHERE {}",
            if others.is_empty() { "" } else { ", " },
            key_eq(1, false)
        );
        let all = (0..n).map(col).collect::<Vec<_>>().join(", ");
        // A computed column is not written, its length is (see `create_table_sql`), and a
        // packed one's value goes to its hidden column, packed as it is bound (see
        // `packed_etag`); every parameter keeps its column's number.
        let (names, values): (Vec<String>, Vec<String>) = (0..n)
            .map(|i| {
                if computed == Some(i) {
                    (quote(FOLDER_LENGTH), format!("length(?{})", i + 1))
                } else if packed == Some(i) {
                    (quote(PACKED_ETAG), format!("?{}", i + 1))
                } else {
                    (col(i), format!("?{}", i + 1))
                }
            })
            .unzip();
        // The column that stores column i's value.
        let stored = |i: usize| {
            if packed == Some(i) {
                quote(PACKED_ETAG)
            } else {
                col(i)
            }
        };
        let (flag_name, flag_value) = if partial_seq_index {
            (format!(", {}", quote(SEQ_INDEXED)), format!(", ?{}", n + 3))
        } else {
            (String::new(), String::new())
        };
        let insert = format!(
            "INSERT INTO {data} ({}, \"_seq\", \"_write_time\", \"_deleted\"{flag_name}) VALUES ({}, ?{}, ?{}, 0{flag_value})",
            names.join(", "),
            values.join(", "),
            n + 1,
            n + 2
        );
        let mut sets: Vec<String> = other_idx
            .iter()
            .map(|&i| format!("{} = {}", stored(i), values[i]))
            .collect();
        sets.push(format!("\"_seq\" = ?{}", n + 1));
        sets.push(format!("\"_write_time\" = ?{}", n + 2));
        sets.push("\"_deleted\" = 0".into());
        if partial_seq_index {
            sets.push(format!("{} = ?{}", quote(SEQ_INDEXED), n + 3));
        }
        let update = format!(
            "UPDATE {data} SET {} WHERE {}",
            sets.join(", "),
            key_eq(0, true)
        );
        let mut nulls: Vec<String> = other_idx
            .iter()
            .map(|&i| format!("{} = NULL", stored(i)))
            .collect();
        nulls.push("\"_seq\" = ?1".into());
        nulls.push("\"_write_time\" = ?2".into());
        nulls.push("\"_deleted\" = 1".into());
        if partial_seq_index {
            nulls.push(format!("{} = ?{}", quote(SEQ_INDEXED), 3 + key_idx.len()));
        }
        let tombstone = format!(
            "UPDATE {data} SET {} WHERE {}",
            nulls.join(", "),
            key_eq(3, false)
        );
        let key_list = key_idx
            .iter()
            .map(|&i| col(i))
            .collect::<Vec<_>>()
            .join(", ");
        let select_list = format!("{all}, \"_seq\", \"_write_time\"");
        TableSql {
            schema: def.arrow_schema(),
            schema_with_deleted: def.arrow_schema_with_deleted(),
            is_key: (0..n).map(|i| key_idx.contains(&i)).collect(),
            def,
            key_idx,
            other_idx,
            derived,
            packed,
            partial_seq_index,
            lookup,
            insert,
            update,
            tombstone,
            data,
            key_list,
            select_list,
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.def.table
    }

    /// Checks an upsert's values against the declared columns.
    pub(super) fn check_row(&self, values: &[Value]) -> Result<()> {
        check_row(&self.def, &self.is_key, self.derived, values)
    }

    /// Checks a delete's key values against the declared key columns.
    pub(super) fn check_key(&self, key: &[Value]) -> Result<()> {
        check_key(&self.def, &self.key_idx, key)
    }

    /// `SELECT` in key order within optional key bounds: the live rows, or with `changes`
    /// the rows (and tombstones when `changes` says so, with `_deleted` last) whose `_seq` is
    /// in a range. Parameters: the lower bound at `?1..?k`, the upper at the next `k`, then the
    /// range's first `_seq` and the one past its end. The `_seq` test is written `+"_seq"` so
    /// that SQLite walks the primary key rather than the `_seq` index.
    pub(super) fn range_sql(&self, lower: bool, upper: bool, changes: Option<bool>) -> String {
        let k = self.key_idx.len();
        let params = |first: usize| {
            (first..first + k)
                .map(|p| format!("?{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let deletes = changes == Some(true);
        let mut sql = format!(
            "SELECT {}{} FROM {} WHERE {}",
            self.select_list,
            if deletes { ", \"_deleted\"" } else { "" },
            self.data,
            if deletes { "1" } else { "\"_deleted\" = 0" }
        );
        let mut next = 1;
        if lower {
            let _ = write!(sql, " AND ({}) >= ({})", self.key_list, params(next));
            next += k;
        }
        if upper {
            let _ = write!(sql, " AND ({}) < ({})", self.key_list, params(next));
            next += k;
        }
        if changes.is_some() {
            let _ = write!(
                sql,
                " AND +\"_seq\" >= ?{next} AND +\"_seq\" < ?{}",
                next + 1
            );
        }
        let _ = write!(sql, " ORDER BY {}", self.key_list);
        sql
    }
}

/// The hidden column that stores, in a table whose derived column is computed, how many
/// characters of the key its folder takes.
const FOLDER_LENGTH: &str = "_folder_len";

/// The data table of `def`: the declared columns, `_seq`, `_write_time`, `_deleted`,
/// `WITHOUT ROWID` on the declared key, and the `_seq` index. A table with a derived column
/// ([`TableDef::derived_folder`]: `object_inventory.prefix`) does not store it: it stores the
/// folder's length in characters (`_folder_len`, one or two bytes) and computes the column as
/// `substr(key, 1, _folder_len)`, a virtual generated column that every SQL reader of
/// SQLite 3.31 or later sees as an ordinary column (and NULL in a tombstone, as every other
/// column but the key).
fn create_table_sql(def: &TableDef) -> String {
    let computed = def.derived_folder().map(|d| {
        (
            d.column,
            format!(
                "CASE WHEN \"_deleted\" THEN NULL ELSE substr({}, 1, {}) END",
                quote(&def.columns[d.key].name),
                quote(FOLDER_LENGTH)
            ),
        )
    });
    let packed = packed_etag(def).map(|i| (i, unpack_etag()));
    let folder_length = format!("{} INTEGER", quote(FOLDER_LENGTH));
    let mut tail = vec![
        "\"_seq\" INTEGER NOT NULL",
        "\"_write_time\" INTEGER NOT NULL",
        "\"_deleted\" INTEGER NOT NULL DEFAULT 0",
    ];
    if computed.is_some() {
        tail.push(&folder_length);
    }
    let packed_column = format!("{} BLOB", quote(PACKED_ETAG));
    if packed.is_some() {
        tail.push(&packed_column);
    }
    let seq_indexed = format!("{} INTEGER", quote(SEQ_INDEXED));
    tail.push(&seq_indexed);
    let generated: Vec<(usize, String)> = computed.into_iter().chain(packed).collect();
    let (columns, key) = data_columns(def, sql_type, &generated, &tail);
    format!(
        "CREATE TABLE {} ({columns}, PRIMARY KEY ({key})) WITHOUT ROWID;\n{}",
        data_table(&def.table),
        seq_index_sql(def)
    )
}

/// How a data table is laid out, as read from the store (tables made by older releases keep
/// their layout until the first command that writes declares them again, see
/// [`ensure_table`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// The derived column is computed (tables made from 2026-12-08 on; an older one stores it
    /// until [`rebuild`] runs).
    pub(super) computed: bool,
    /// The table has [`SEQ_INDEXED`] and a partial `_seq` index (from 2026-12-08 on; an older
    /// one indexes every row until [`start_partial_seq_index`] runs).
    pub(super) partial_seq_index: bool,
    /// The packed column ([`packed_etag`]) is stored in [`PACKED_ETAG`] (tables made since
    /// ETags are packed, after 6c7720d; an older one stores the text until [`rebuild`] runs).
    pub(super) packed: bool,
}

impl Layout {
    /// The layout of the data table of `def`.
    pub(super) fn of(conn: &Connection, def: &TableDef) -> Result<Layout> {
        let derived = def
            .derived_folder()
            .map(|d| def.columns[d.column].name.clone())
            .unwrap_or_default();
        // table_xinfo's `hidden`: 2 for a virtual generated column, 3 for a stored one.
        conn.query_row(
            "SELECT coalesce(sum(name = ?2 AND hidden IN (2, 3)), 0), \
             coalesce(sum(name = ?3), 0), coalesce(sum(name = ?4), 0) \
             FROM pragma_table_xinfo(?1)",
            [
                format!("data_{}", def.table),
                derived,
                SEQ_INDEXED.to_string(),
                PACKED_ETAG.to_string(),
            ],
            |r| {
                Ok(Layout {
                    computed: r.get::<_, i64>(0)? > 0,
                    partial_seq_index: r.get::<_, i64>(1)? > 0,
                    packed: r.get::<_, i64>(2)? > 0,
                })
            },
        )
        .map_err(db(format_args!(
            "reading the layout of table {}",
            def.table
        )))
    }
}

/// Rebuilds the data table of `def`, laid out as `old_layout` (its derived column stored, or its
/// ETag not packed), in the present layout ([`create_table_sql`]), inside the caller's
/// transaction: every row is copied with its `_seq`, `_write_time` and `_deleted`, in key
/// order. A stored folder is dropped and its length taken from the key (a row loaded with
/// another value, or none, now shows the key's folder, as every row written from now on
/// does); an ETag is packed as a write packs it ([`packed_etag`]). The indexes are made again
/// (the `_seq` index empty, below a floor at the newest `_seq`: see [`seq_index_sql`]) and the
/// view recreated by the caller.
fn rebuild(tx: &Connection, def: &TableDef, old_layout: Layout) -> Result<u64> {
    let at = || {
        db(format!(
            "rebuilding table {} in the present layout",
            def.table
        ))
    };
    let data = data_table(&def.table);
    let old = quote(&format!("data_{}_before_rebuild", def.table));
    let derived = def.derived_folder();
    let packed = packed_etag(def);
    // (new column, what it is copied from) of every column the new table stores.
    let mut copied: Vec<(String, String)> = def
        .columns
        .iter()
        .enumerate()
        .filter(|&(i, _)| Some(i) != derived.map(|d| d.column) && Some(i) != packed)
        .map(|(_, c)| (quote(&c.name), quote(&c.name)))
        .chain(["\"_seq\"", "\"_write_time\"", "\"_deleted\""].map(|c| (c.into(), c.into())))
        .collect();
    if let Some(derived) = derived {
        let length = if old_layout.computed {
            quote(FOLDER_LENGTH)
        } else {
            // The stored folder, where it is the key's (what imports wrote), gives the length
            // at once; any other row takes the slower rtrim of everything after the key's
            // last '/'.
            let key = quote(&def.columns[derived.key].name);
            let stored = quote(&def.columns[derived.column].name);
            format!(
                "CASE WHEN {stored} IS NOT NULL AND substr({key}, 1, length({stored})) = {stored} \
                 AND instr(substr({key}, length({stored}) + 1), '/') = 0 THEN length({stored}) \
                 ELSE length(rtrim({key}, replace({key}, '/', ''))) END"
            )
        };
        copied.push((quote(FOLDER_LENGTH), length));
    }
    if let Some(packed) = packed {
        let value = if old_layout.packed {
            quote(PACKED_ETAG)
        } else {
            pack_etag_sql(&quote(&def.columns[packed].name))
        };
        copied.push((quote(PACKED_ETAG), value));
    }
    let (columns, values): (Vec<String>, Vec<String>) = copied.into_iter().unzip();
    let keys = key_list(def);
    tx.execute_batch(&format!(
        "ALTER TABLE {data} RENAME TO {old};\n\
         DROP INDEX IF EXISTS {seq_index};\n\
         DROP INDEX IF EXISTS {current};\n\
         {create}\n\
         INSERT INTO {data} ({columns}) SELECT {values} FROM {old} ORDER BY {keys};\n\
         DROP TABLE {old};",
        seq_index = quote(&format!("data_{}_by_seq", def.table)),
        current = quote(listing::OLD_SUMMARY_INDEX),
        create = create_table_sql(def),
        columns = columns.join(", "),
        values = values.join(", "),
    ))
    .map_err(at())?;
    let (rows, newest): (i64, i64) = tx
        .query_row(
            &format!("SELECT count(*), coalesce(max(\"_seq\"), 0) FROM {data}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(at())?;
    // No copied row is in the new, partial `_seq` index.
    raise_seq_index_floor(tx, &def.table, newest)?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// The hidden column that stores the value of a packed column ([`packed_etag`]).
const PACKED_ETAG: &str = "_etag";

/// The column a SQLite store keeps packed: the built-in `object_inventory`'s `etag` (text, not
/// in the key). An ETag of exactly 32 lowercase hex digits (the MD5 of an object uploaded in
/// one part, most of an inventory) is stored as its 16 bytes, any other value (a multipart
/// upload's `…-N`, uppercase hex) as the text it is, in the hidden column [`PACKED_ETAG`];
/// `etag` itself is a virtual generated column that turns the bytes back into the same text
/// ([`unpack_etag`]), so every reader, lakeport or any SQL client, sees the value written.
/// 16 bytes less an object.
pub(super) fn packed_etag(def: &TableDef) -> Option<usize> {
    if def.table != crate::model::schema::OBJECT_INVENTORY {
        return None;
    }
    def.column_index("etag")
        .filter(|&i| def.columns[i].ty == ColumnType::String && !def.is_key("etag"))
}

/// The 16 bytes an ETag is stored as when it is 32 lowercase hex digits ([`packed_etag`]);
/// `None` for any other text, which is stored as it is. (A hex crate would accept uppercase
/// digits too, which must stay text to read back as written.)
pub(super) fn pack_etag(text: &[u8]) -> Option<[u8; 16]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if text.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(bytes)
}

/// SQL that packs the text `value` (a column) as [`pack_etag`] does, for a rebuild.
fn pack_etag_sql(value: &str) -> String {
    format!(
        "CASE WHEN length({value}) = 32 AND NOT ({value} GLOB '*[^0-9a-f]*') \
         THEN unhex({value}) ELSE {value} END"
    )
}

/// SQL that reads [`PACKED_ETAG`] back as the text that was written (`unhex` is SQLite 3.41's;
/// `hex`, the reading side, any SQLite's).
fn unpack_etag() -> String {
    let c = quote(PACKED_ETAG);
    format!("CASE WHEN typeof({c}) = 'blob' THEN lower(hex({c})) ELSE {c} END")
}

/// The view that shows any SQL reader the current state of a declared table under its own
/// name: its live rows (no tombstones), every declared column, `_seq` and `_write_time`.
fn view_sql(def: &TableDef) -> String {
    let columns = def
        .columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE VIEW IF NOT EXISTS {} AS SELECT {columns}, \"_seq\", \"_write_time\" FROM {} \
         WHERE \"_deleted\" = 0;",
        quote(&def.table),
        data_table(&def.table)
    )
}

/// The hidden column that says whether a row is in the `_seq` index: 1 when the transaction
/// that wrote the row's `_seq` indexed it, 0 when it was a large one that did not
/// ([`Applier::stop_indexing`](super::write::Applier::stop_indexing)), NULL in the rows of a
/// table made before the column (see [`start_partial_seq_index`]). Each value takes no bytes in
/// the row but its header byte.
pub(super) const SEQ_INDEXED: &str = "_seq_indexed";

/// The `_lakeport_meta` key of a table's `_seq` index floor: every row whose `_seq` is above
/// it is in the `_seq` index; changes at or below it may be found only by reading the table
/// (see [`read_seq_index_floor`]). Absent means 0.
fn seq_index_floor_key(table: &str) -> String {
    format!("seq_index_floor:{table}")
}

/// The `_seq` index floor of `table` (0 when none was ever set).
pub(super) fn read_seq_index_floor(conn: &Connection, table: &str) -> Result<i64> {
    let v: Option<i64> = conn
        .query_row(
            r#"SELECT "value" FROM "_lakeport_meta" WHERE "key" = ?1"#,
            [seq_index_floor_key(table)],
            |r| r.get(0),
        )
        .optional()
        .map_err(db(format_args!("reading the _seq index floor of {table}")))?;
    Ok(v.unwrap_or(0))
}

/// Raises the `_seq` index floor of `table` to `seq` (never lowers it).
pub(super) fn raise_seq_index_floor(conn: &Connection, table: &str, seq: i64) -> Result<()> {
    conn.execute(
        r#"INSERT INTO "_lakeport_meta" ("key", "value") VALUES (?1, ?2)
           ON CONFLICT ("key") DO UPDATE SET "value" = max("value", excluded."value")"#,
        rusqlite::params![seq_index_floor_key(table), seq],
    )
    .map(drop)
    .map_err(db(format_args!("raising the _seq index floor of {table}")))
}

/// The `_seq` index: the rows marked [`SEQ_INDEXED`] only, on (`_seq`, `_deleted`), so that
/// counting the changes above a checkpoint (`changes`, `lag`) reads the index alone (the flag
/// is a column of the index too, at no cost in its entries, or SQLite would read each row to
/// test the condition the queries repeat). A transaction that changes a large share of a table
/// (a first import) marks nothing and raises the table's floor instead: the index then costs nothing for those rows (105 bytes an
/// object of the scale benchmark's inventory), and changes since a checkpoint below the floor
/// are read by key ranges of the table, as a large change set is anyway.
fn seq_index_sql(def: &TableDef) -> String {
    format!(
        "CREATE INDEX {} ON {} (\"_seq\", \"_deleted\", {flag}) WHERE {flag} = 1;",
        quote(&format!("data_{}_by_seq", def.table)),
        data_table(&def.table),
        flag = quote(SEQ_INDEXED)
    )
}

/// Brings a table made before 2026-12-08, whose `_seq` index holds every row, to the partial
/// index: adds [`SEQ_INDEXED`] (NULL in every row: SQLite adds a column without rewriting
/// the table), raises the floor to the table's newest `_seq`, and makes the index again
/// (empty). A task whose checkpoint is below the floor reads its next changes by key ranges.
fn start_partial_seq_index(conn: &Connection, def: &TableDef) -> Result<()> {
    let at = || {
        db(format!(
            "making the partial _seq index of table {}",
            def.table
        ))
    };
    let data = data_table(&def.table);
    let newest: i64 = conn
        .query_row(
            &format!("SELECT coalesce(max(\"_seq\"), 0) FROM {data}"),
            [],
            |r| r.get(0),
        )
        .map_err(at())?;
    conn.execute_batch(&format!(
        "ALTER TABLE {data} ADD COLUMN {} INTEGER;\nDROP INDEX IF EXISTS {};\n{}",
        quote(SEQ_INDEXED),
        quote(&format!("data_{}_by_seq", def.table)),
        seq_index_sql(def)
    ))
    .map_err(at())?;
    raise_seq_index_floor(conn, &def.table, newest)
}

/// [`Store::ensure_table`](crate::store::Store::ensure_table).
pub(super) fn ensure_table(store: &SqliteStore, def: &TableDef) -> Result<()> {
    check_def(def)?;
    let name = &def.table;
    let mut conn = store.lock();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db(format_args!("declaring table {name}")))?;
    if let Some(stored) = stored_def(&tx, name)? {
        if stored == *def {
            let layout = Layout::of(&tx, def)?;
            if (def.derived_folder().is_some() && !layout.computed)
                || (packed_etag(def).is_some() && !layout.packed)
            {
                tracing::warn!(
                    table = %name,
                    "rebuilding the table in the present layout (its derived column computed, \
                     not stored; its ETags packed): once, in one transaction"
                );
                tx.execute_batch(&format!("DROP VIEW IF EXISTS {};", quote(name)))
                    .map_err(db(format_args!("rebuilding table {name}")))?;
                let rows = rebuild(&tx, def, layout)?;
                tracing::warn!(table = %name, rows, "table rebuilt");
                store.forget_table(name);
            } else if !layout.partial_seq_index {
                start_partial_seq_index(&tx, def)?;
                tracing::info!(
                    table = %name,
                    "the _seq index now holds only the rows of small transactions; the next \
                     changes of each task are read by key ranges"
                );
                store.forget_table(name);
            }
            listing::drop_old_index(&tx, def)?;
            tx.execute_batch(&view_sql(def))
                .map_err(db(format_args!("creating the view of table {name}")))?;
            return tx
                .commit()
                .map_err(db(format_args!("declaring table {name}")));
        }
        return Err(Error::Conflict(format!(
            "table {name} exists in the store with a different definition: {}",
            differences(&stored, def).join("; ")
        )));
    }
    let json = serde_json::to_string(def)
        .map_err(|e| Error::store_caused(format!("encoding the definition of table {name}"), e))?;
    tx.execute(
        r#"INSERT INTO "_lakeport_tables" ("name", "definition") VALUES (?1, ?2)"#,
        [name, &json],
    )
    .map_err(db(format_args!("declaring table {name}")))?;
    tx.execute_batch(&create_table_sql(def))
        .map_err(db(format_args!("creating table {name}")))?;
    listing::drop_old_index(&tx, def)?;
    tx.execute_batch(&view_sql(def))
        .map_err(db(format_args!("creating the view of table {name}")))?;
    tx.commit()
        .map_err(db(format_args!("declaring table {name}")))?;
    Ok(())
}
