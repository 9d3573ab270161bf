//! Consistent, sharded reads of a SQLite data table:
//! [`Store::snapshot`](crate::store::Store::snapshot),
//! [`Store::changes`](crate::store::Store::changes) and their shard readers ([`SqliteShard`]),
//! pinned on one committed state as the module docs of [`sqlite`](super) tell; and the reads
//! that need no snapshot: [`Store::lag`](crate::store::Store::lag) and
//! [`Store::table_stats`](crate::store::Store::table_stats).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::record_batch::RecordBatch;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension};

use super::schema::{read_meta, read_seq_index_floor, TableSql, READ_SEQ, SEQ_INDEXED};
use super::{db, SqliteStore};
use crate::error::{Error, Result};
use crate::store::batch::{append_null, Builders, ColumnBuilder};
use crate::store::checks::checkpoint_within;
use crate::store::sql::{data_table, non_negative, quote, to_i64};
use crate::store::{Lag, ShardReader, Snapshot, TableStats};

/// Attempts to pin a snapshot's readers without holding off writers.
pub(super) const OPTIMISTIC_PINS: usize = 3;
/// Changes of at least this many rows are read by key ranges when they are a quarter of the
/// table or more: one pass over the table in key order beats a `_seq`-index lookup per row.
pub(super) const KEY_SCAN_MIN_ROWS: u64 = 50_000;
/// Lags below a `_seq` index floor a store keeps at most (one per table, checkpoint and
/// `deletes`), see [`lag`].
const BELOW_FLOOR_LAGS: usize = 256;

/// Lags computed below a table's `_seq` index floor, with the store's `seq` and count of
/// purged tombstones they were computed at: each took a pass over the table, and stays right
/// until the store changes.
pub(super) type BelowFloorLags = Mutex<HashMap<(String, i64, bool), ((i64, i64), Lag)>>;

const READ_PURGED: &str =
    r#"SELECT "value" FROM "_lakeport_meta" WHERE "key" = 'tombstones_purged'"#;

impl SqliteStore {
    /// Pins all `readers` on one committed state and returns its `seq`. First optimistically
    /// (readers that agree on `seq` see the same rows, and a long write transaction does not
    /// block the snapshot); when commits keep slipping in between, by holding off writers with
    /// `BEGIN IMMEDIATE` on another connection while the readers pin.
    fn pin_snapshot(&self, readers: &[Connection]) -> Result<u64> {
        for _ in 0..self.optimistic_pins {
            if let Some(seq) = pin_readers(readers)? {
                return Ok(seq);
            }
        }
        let writer = self.connect()?;
        writer
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(db("snapshot: holding off writers"))?;
        let pinned = pin_readers(readers);
        let released = writer.execute_batch("ROLLBACK");
        let seq = pinned?.ok_or_else(|| {
            Error::store("snapshot: shard readers saw different states while writers were held off")
        })?;
        released.map_err(db("snapshot: releasing the write lock"))?;
        Ok(seq)
    }
}

/// [`Store::table_stats`](crate::store::Store::table_stats).
pub(super) fn table_stats(store: &SqliteStore) -> Result<Vec<TableStats>> {
    let conn = store.lock();
    let names: Vec<String> = conn
        .prepare(r#"SELECT "name" FROM "_lakeport_tables" ORDER BY "name""#)
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(db("listing tables"))?;
    let mut out = Vec::with_capacity(names.len());
    for table in names {
        let sql = format!(
            "SELECT coalesce(sum(\"_deleted\" = 0), 0), coalesce(sum(\"_deleted\" <> 0), 0), \
             coalesce(max(\"_seq\"), 0) FROM {}",
            data_table(&table)
        );
        let (rows, tombstones, max_seq): (i64, i64, i64) = conn
            .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db(format_args!("counting rows of table {table}")))?;
        out.push(TableStats {
            rows: non_negative(rows, "a row count")?,
            tombstones: non_negative(tombstones, "a tombstone count")?,
            max_seq: non_negative(max_seq, "a _seq")?,
            table,
        });
    }
    Ok(out)
}

/// [`Store::snapshot`](crate::store::Store::snapshot).
pub(super) fn snapshot(store: &SqliteStore, table: &str, shards: usize) -> Result<Snapshot> {
    let shards = shards.max(1);
    let readers = (0..shards)
        .map(|_| store.connect())
        .collect::<Result<Vec<_>>>()?;
    let t = store.table_sql(&readers[0], table)?;
    let at = |what: &str| db(format!("snapshot of table {table}: {what}"));
    let seq = store.pin_snapshot(&readers)?;

    let first = &readers[0];
    let count: i64 = first
        .query_row(
            &format!("SELECT count(*) FROM {} WHERE \"_deleted\" = 0", t.data),
            [],
            |r| r.get(0),
        )
        .map_err(at("counting rows"))?;
    let rows = non_negative(count, "a row count")?;
    let used = usize::try_from(rows).unwrap_or(usize::MAX).min(shards);
    let bounds = shard_bounds(first, &t, rows, used).map_err(at("finding shard bounds"))?;
    Ok(Snapshot {
        seq,
        rows,
        rows_estimated: false,
        shards: key_range_shards(readers, &t, &bounds, used, None)?,
    })
}

/// [`Store::changes`](crate::store::Store::changes).
pub(super) fn changes(
    store: &SqliteStore,
    table: &str,
    after_seq: u64,
    shards: usize,
    deletes: bool,
) -> Result<Snapshot> {
    let shards = shards.max(1);
    let readers = (0..shards)
        .map(|_| store.connect())
        .collect::<Result<Vec<_>>>()?;
    let t = store.table_sql(&readers[0], table)?;
    let at = |what: &str| {
        db(format!(
            "changes of table {table} after _seq {after_seq}: {what}"
        ))
    };
    let seq = store.pin_snapshot(&readers)?;
    checkpoint_within(table, after_seq, seq)?;
    // Shard s reads `_seq` in [starts[s], starts[s + 1]).
    let first = to_i64(after_seq, "a checkpoint")? + 1;
    let end = to_i64(seq, "the store's seq")? + 1;
    // Above the table's `_seq` index floor every change is in the index, and is counted and
    // read through it. At or below the floor only a pass over the table finds them all: that
    // one pass also counts the table's live rows, and the changes are read by key ranges.
    let below_floor = first <= seq_index_floor(&readers[0], &t)?;
    let live_in_range = format!(
        "FROM {} WHERE {}{}\"_seq\" >= ?1 AND \"_seq\" < ?2",
        t.data,
        indexed_only(&t),
        unless_deletes(deletes)
    );
    let (count, live): (i64, Option<i64>) = if below_floor {
        readers[0]
            .query_row(
                &format!(
                    "SELECT coalesce(sum({}+\"_seq\" >= ?1 AND +\"_seq\" < ?2), 0), \
                     coalesce(sum(\"_deleted\" = 0), 0) FROM {}",
                    unless_deletes(deletes),
                    t.data
                ),
                [first, end],
                |r| Ok((r.get(0)?, Some(r.get(1)?))),
            )
            .map_err(at("counting rows"))?
    } else {
        let count = readers[0]
            .query_row(
                &format!("SELECT count(*) {live_in_range}"),
                [first, end],
                |r| r.get(0),
            )
            .map_err(at("counting rows"))?;
        (count, None)
    };
    let rows = non_negative(count, "a row count")?;
    let used = usize::try_from(rows).unwrap_or(usize::MAX).min(shards);
    if rows > 0 && (below_floor || rows >= store.key_scan_min_rows.max(1)) {
        // Counted up to the first row past four times the changes: enough to tell whether
        // they are a quarter of the table, without reading all of a large one.
        let live = match live {
            Some(live) => live,
            None => readers[0]
                .query_row(
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM {} WHERE \"_deleted\" = 0 LIMIT ?1)",
                        t.data
                    ),
                    [i64::try_from(rows.saturating_mul(4).saturating_add(1)).unwrap_or(-1)],
                    |r| r.get(0),
                )
                .map_err(at("counting the table's rows"))?,
        };
        let live = non_negative(live, "a row count")?;
        // Key ranges split the live rows: at least one shard, at most one per live row.
        let used = if below_floor {
            used.min(usize::try_from(live).unwrap_or(usize::MAX)).max(1)
        } else {
            used
        };
        if below_floor || (rows.saturating_mul(4) >= live && live >= used as u64) {
            // A large share of the table: one pass in key order, split by key ranges.
            let bounds =
                shard_bounds(&readers[0], &t, live, used).map_err(at("finding shard bounds"))?;
            let range = SeqRange {
                first,
                end,
                deletes,
            };
            return Ok(Snapshot {
                seq,
                rows,
                rows_estimated: false,
                shards: key_range_shards(readers, &t, &bounds, used, Some(range))?,
            });
        }
    }
    let mut starts = vec![first];
    {
        let mut nth = readers[0]
            .prepare(&format!(
                "SELECT \"_seq\" {live_in_range} ORDER BY \"_seq\" LIMIT 1 OFFSET ?3"
            ))
            .map_err(at("finding shard bounds"))?;
        for s in 1..used {
            let offset = (u128::from(rows) * s as u128 / used as u128) as i64;
            let bound: i64 = nth
                .query_row([first, end, offset], |r| r.get(0))
                .map_err(at("finding shard bounds"))?;
            starts.push(bound);
        }
    }
    starts.push(end);
    let sql = format!(
        "SELECT {}{} {live_in_range} ORDER BY \"_seq\"",
        t.select_list,
        if deletes { ", \"_deleted\"" } else { "" }
    );
    let out = readers
        .into_iter()
        .take(used)
        .enumerate()
        .map(|(s, conn)| {
            Box::new(SqliteShard {
                sql: sql.clone(),
                conn,
                t: Arc::clone(&t),
                params: vec![
                    SqlValue::Integer(starts[s]),
                    SqlValue::Integer(starts[s + 1]),
                ],
                deletes,
            }) as Box<dyn ShardReader>
        })
        .collect();
    Ok(Snapshot {
        seq,
        rows,
        rows_estimated: false,
        shards: out,
    })
}

/// [`Store::lag`](crate::store::Store::lag).
pub(super) fn lag(store: &SqliteStore, table: &str, after_seq: u64, deletes: bool) -> Result<Lag> {
    let conn = store.connect()?;
    let t = store.table_sql(&conn, table)?;
    let at = |what: &str| db(format!("lag of table {table}: {what}"));
    let after = to_i64(after_seq, "a checkpoint")?;
    let tx = conn
        .unchecked_transaction()
        .map_err(at("starting a read"))?;
    let floor = seq_index_floor(&tx, &t)?;
    // Every row above the floor is in the `_seq` index, and the floor is a `_seq` the table
    // held when it was set (the last change of a write left out of the index).
    let newest: Option<i64> = tx
        .query_row(
            &format!(
                "SELECT max(\"_seq\") FROM {} WHERE {}1",
                t.data,
                indexed_only(&t)
            ),
            [],
            |r| r.get(0),
        )
        .map_err(at("reading the newest _seq"))?;
    let newest = non_negative(newest.unwrap_or(0).max(floor), "a _seq")?;
    if after >= floor {
        let behind = format!(
            "FROM {} WHERE {}{}\"_seq\" > ?1",
            t.data,
            indexed_only(&t),
            unless_deletes(deletes)
        );
        let rows = tx
            .query_row(&format!("SELECT count(*) {behind}"), [after], |r| r.get(0))
            .map_err(at("counting rows behind"))?;
        let oldest = tx
            .query_row(
                &format!("SELECT \"_write_time\" {behind} ORDER BY \"_seq\" LIMIT 1"),
                [after],
                |r| r.get(0),
            )
            .optional()
            .map_err(at("reading the oldest change"))?;
        return lag_of(newest, rows, oldest);
    }
    // Below the floor: one pass over the table, done once per state of the store (a status
    // page or metrics asking again get the same answer without another pass). `seq` moves
    // with every change, the purge counter with every purge.
    let state = (
        read_meta(&tx, READ_SEQ, "seq")?,
        read_meta(&tx, READ_PURGED, "the purged tombstones")?,
    );
    let cache_key = (table.to_string(), after, deletes);
    let mut cache = store
        .below_floor_lags
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&(at_state, lag)) = cache.get(&cache_key) {
        if at_state == state {
            return Ok(lag);
        }
    }
    // With min(), SQLite takes the bare column from the row holding the minimum.
    let (rows, oldest) = tx
        .query_row(
            &format!(
                "SELECT count(*), min(+\"_seq\"), \"_write_time\" FROM {} WHERE {}+\"_seq\" > ?1",
                t.data,
                unless_deletes(deletes)
            ),
            [after],
            |r| Ok((r.get(0)?, r.get(2)?)),
        )
        .map_err(at("counting rows behind"))?;
    let lag = lag_of(newest, rows, oldest)?;
    if cache.len() >= BELOW_FLOOR_LAGS {
        cache.clear();
    }
    cache.insert(cache_key, (state, lag));
    Ok(lag)
}

/// A [`Lag`] from what [`lag`] read.
fn lag_of(newest_seq: u64, rows: i64, oldest_write_ms: Option<i64>) -> Result<Lag> {
    Ok(Lag {
        newest_seq,
        rows_behind: non_negative(rows, "a row count")?,
        oldest_write_ms,
    })
}

/// Starts a read transaction on every reader, pinned by a real read, and returns the store's
/// `seq` they all see; `None` (and no transaction left open) when a commit changed data
/// between two of them. Every data change bumps `seq` in its own transaction, so equal `seq`
/// means every reader sees the same rows.
fn pin_readers(readers: &[Connection]) -> Result<Option<u64>> {
    let mut first = None;
    let mut agree = true;
    for conn in readers {
        conn.execute_batch("BEGIN")
            .map_err(db("snapshot: starting a read transaction"))?;
        let seq = read_meta(conn, READ_SEQ, "seq")?;
        agree &= *first.get_or_insert(seq) == seq;
    }
    if !agree {
        for conn in readers {
            conn.execute_batch("ROLLBACK")
                .map_err(db("snapshot: ending a read transaction"))?;
        }
        return Ok(None);
    }
    first
        .map(|s| non_negative(s, "the store's seq"))
        .transpose()
}

/// The condition that leaves tombstones out, unless changes are read with their deletes.
/// `"_seq_indexed" = 1 AND ` for a table with a partial `_seq` index, so that SQLite reads
/// the changes above the floor through it (a partial index serves only queries that repeat
/// its condition).
fn indexed_only(t: &TableSql) -> String {
    if t.partial_seq_index {
        format!("{} = 1 AND ", quote(SEQ_INDEXED))
    } else {
        String::new()
    }
}

/// The `_seq` index floor of `t` (0 for a table whose `_seq` index holds every row).
fn seq_index_floor(conn: &Connection, t: &TableSql) -> Result<i64> {
    if t.partial_seq_index {
        read_seq_index_floor(conn, t.name())
    } else {
        Ok(0)
    }
}

fn unless_deletes(deletes: bool) -> &'static str {
    if deletes {
        ""
    } else {
        "\"_deleted\" = 0 AND "
    }
}

/// A `_seq` range of changes read by key ranges: `[first, end)`, with tombstones if `deletes`.
#[derive(Debug, Clone, Copy)]
struct SeqRange {
    first: i64,
    end: i64,
    deletes: bool,
}

/// One reader per key range: shard `s` reads keys from `bounds[s - 1]` (the start for the
/// first) up to `bounds[s]` (the end for the last), live rows or, with `changes`, the rows
/// of that `_seq` range. `bounds` must hold `used - 1` keys.
fn key_range_shards(
    readers: Vec<Connection>,
    t: &Arc<TableSql>,
    bounds: &[Vec<SqlValue>],
    used: usize,
    changes: Option<SeqRange>,
) -> Result<Vec<Box<dyn ShardReader>>> {
    if used > 0 && bounds.len() + 1 != used {
        return Err(Error::store(format!(
            "reading table {}: found {} shard bounds for {used} shards",
            t.name(),
            bounds.len()
        )));
    }
    Ok(readers
        .into_iter()
        .take(used)
        .enumerate()
        .map(|(s, conn)| {
            let lower = s.checked_sub(1).map(|p| bounds[p].clone());
            let upper = bounds.get(s).cloned();
            let sql = t.range_sql(lower.is_some(), upper.is_some(), changes.map(|c| c.deletes));
            let mut params: Vec<SqlValue> = lower.into_iter().chain(upper).flatten().collect();
            if let Some(c) = changes {
                params.extend([SqlValue::Integer(c.first), SqlValue::Integer(c.end)]);
            }
            Box::new(SqliteShard {
                sql,
                conn,
                t: Arc::clone(t),
                params,
                deletes: changes.is_some_and(|c| c.deletes),
            }) as Box<dyn ShardReader>
        })
        .collect())
}

/// The first key of shards 1..`used`: the keys at offsets `rows * i / used` in key order.
fn shard_bounds(
    conn: &Connection,
    t: &TableSql,
    rows: u64,
    used: usize,
) -> rusqlite::Result<Vec<Vec<SqlValue>>> {
    let targets: Vec<u64> = (1..used as u64)
        .map(|i| ((u128::from(rows) * u128::from(i)) / used as u128) as u64)
        .collect();
    let mut bounds = Vec::with_capacity(targets.len());
    let Some(&last) = targets.last() else {
        return Ok(bounds);
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {k} FROM {} WHERE \"_deleted\" = 0 ORDER BY {k}",
        t.data,
        k = t.key_list
    ))?;
    let mut it = stmt.query([])?;
    let mut offset = 0u64;
    let mut next = targets.iter().peekable();
    while let Some(row) = it.next()? {
        if next.peek() == Some(&&offset) {
            next.next();
            let key = (0..t.key_idx.len())
                .map(|j| row.get::<_, SqlValue>(j))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            bounds.push(key);
        }
        if offset >= last {
            break;
        }
        offset += 1;
    }
    Ok(bounds)
}

/// One shard of a SQLite snapshot: its own connection, in a read transaction since the
/// snapshot was taken (closed when the reader is dropped).
struct SqliteShard {
    conn: Connection,
    t: Arc<TableSql>,
    sql: String,
    /// Parameters of `sql`, in order.
    params: Vec<SqlValue>,
    /// Whether rows end with `_deleted` (read into a last `_deleted` column).
    deletes: bool,
}

impl ShardReader for SqliteShard {
    fn read(
        &mut self,
        batch_rows: usize,
        on_batch: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let t = &*self.t;
        let at = |what: &'static str| {
            move |e: rusqlite::Error| {
                Error::store_caused(format!("reading table {}: {what}", t.name()), e)
            }
        };
        let batch_rows = batch_rows.max(1);
        let mut stmt = self.conn.prepare(&self.sql).map_err(at("preparing"))?;
        for (p, v) in self.params.iter().enumerate() {
            stmt.raw_bind_parameter(p + 1, v)
                .map_err(at("binding a shard bound"))?;
        }
        let mut rows = stmt.raw_query();
        let mut b = Builders::new(&t.def, batch_rows, self.deletes);
        let mut total = 0u64;
        while let Some(row) = rows.next().map_err(at("stepping"))? {
            append_row(&mut b, t, row)?;
            total += 1;
            if b.len == batch_rows {
                on_batch(b.finish(&t.schema, &t.schema_with_deleted)?)?;
            }
        }
        if b.len > 0 {
            on_batch(b.finish(&t.schema, &t.schema_with_deleted)?)?;
        }
        Ok(total)
    }
}

/// Appends one stored row (the columns, `_seq`, `_write_time`, then `_deleted` when the
/// builders have it) to `b`.
fn append_row(b: &mut Builders, t: &TableSql, row: &rusqlite::Row<'_>) -> Result<()> {
    for (i, col) in b.columns.iter_mut().enumerate() {
        let c = &t.def.columns[i];
        let v = row.get_ref(i).map_err(read_failed(t))?;
        let ok = match (col, v) {
            (col, ValueRef::Null) => {
                let nullable = !t.is_key[i];
                if nullable {
                    append_null(col);
                }
                nullable
            }
            (ColumnBuilder::String(b), ValueRef::Text(s)) => match std::str::from_utf8(s) {
                Ok(s) => {
                    b.append_value(s);
                    true
                }
                Err(_) => false,
            },
            (ColumnBuilder::Int64(b), ValueRef::Integer(v)) => {
                b.append_value(v);
                true
            }
            (ColumnBuilder::Timestamp(b), ValueRef::Integer(v)) => {
                b.append_value(v);
                true
            }
            (ColumnBuilder::Double(b), ValueRef::Real(v)) => {
                b.append_value(v);
                true
            }
            (ColumnBuilder::Bool(b), ValueRef::Integer(v @ (0 | 1))) => {
                b.append_value(v == 1);
                true
            }
            (ColumnBuilder::Binary(b), ValueRef::Blob(v)) => {
                b.append_value(v);
                true
            }
            _ => false,
        };
        if !ok {
            return Err(Error::store(format!(
                "table {}: column {} of row {}: expected {}, found {}",
                t.name(),
                c.name,
                RowKey(t, row),
                c.ty,
                StoredValue(v)
            )));
        }
    }
    let n = t.def.columns.len();
    let seq: i64 = row.get(n).map_err(read_failed(t))?;
    let write_time: i64 = row.get(n + 1).map_err(read_failed(t))?;
    b.seq.append_value(seq);
    b.write_time.append_value(write_time);
    if let Some(deleted) = &mut b.deleted {
        let flag: i64 = row.get(n + 2).map_err(read_failed(t))?;
        deleted.append_value(flag != 0);
    }
    b.len += 1;
    Ok(())
}

fn read_failed(t: &TableSql) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::store_caused(format!("reading table {}", t.name()), e)
}

/// A stored value as an error message shows it: storage class and a short rendering.
struct StoredValue<'a>(ValueRef<'a>);

impl fmt::Display for StoredValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ValueRef::Null => f.write_str("NULL"),
            ValueRef::Integer(v) => write!(f, "INTEGER {v}"),
            ValueRef::Real(v) => write!(f, "REAL {v}"),
            ValueRef::Text(s) => {
                let s = String::from_utf8_lossy(s);
                let short: String = s.chars().take(40).collect();
                let more = if short.len() < s.len() { "…" } else { "" };
                write!(f, "TEXT {short:?}{more}")
            }
            ValueRef::Blob(b) => write!(f, "BLOB ({} bytes)", b.len()),
        }
    }
}

/// The key of a snapshot row, as `(bucket="b", key="k")`.
struct RowKey<'a, 'r>(&'a TableSql, &'a rusqlite::Row<'r>);

impl fmt::Display for RowKey<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, row) = (self.0, self.1);
        f.write_str("(")?;
        for (j, &i) in t.key_idx.iter().enumerate() {
            if j > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=", t.def.columns[i].name)?;
            match row.get_ref(i) {
                Ok(ValueRef::Text(s)) => write!(f, "{:?}", String::from_utf8_lossy(s))?,
                Ok(ValueRef::Integer(v)) => write!(f, "{v}")?,
                Ok(v) => write!(f, "{}", StoredValue(v))?,
                Err(_) => f.write_str("?")?,
            }
        }
        f.write_str(")")
    }
}
