//! Consistent, sharded reads of a PostgreSQL data table: [`Store::snapshot`] and
//! [`Store::changes`](crate::store::Store::changes).
//!
//! The first connection opens a REPEATABLE READ, READ ONLY transaction, reads the store's
//! `seq` and exports its snapshot in one statement; every other shard's connection adopts it
//! (`SET TRANSACTION SNAPSHOT`) before any query. Because `_seq` is allocated at commit in
//! commit order (module docs of [`postgres`](super)), the rows this snapshot sees are exactly
//! those with `_seq <= seq`. A shard keeps its transaction open until it is dropped, so it can
//! read again (a retried shard sees the same rows); dropping it rolls back.
//!
//! Rows stream from the server into Arrow builders: `query_raw` hands over rows as they
//! arrive, a network buffer at a time, never the whole shard.
//!
//! [`Store::snapshot`]: crate::store::Store::snapshot

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::postgres::fallible_iterator::FallibleIterator;
use super::postgres::types::ToSql;
use super::postgres::Row;
use super::{
    count, describe, to_i64, unless_deletes, Conn, OffRuntime, PostgresStore, TableSql, POOL_SIZE,
};
use crate::error::{Error, Result};
use crate::store::batch::{Builders, ColumnBuilder};
use crate::store::{ColumnType, ShardReader, Snapshot};

/// Changes of at least this many rows are read by key ranges when they are a quarter of the
/// table or more: one pass in key order beats an index lookup per row.
const KEY_SCAN_MIN_ROWS: u64 = 50_000;

/// Shards one snapshot reads at most: each holds a pooled connection while it lives, and two
/// snapshots must fit in the pool at once.
const MAX_SHARDS: usize = (POOL_SIZE / 2) as usize;

/// A connection inside a read transaction that is rolled back when dropped, so that the
/// connection goes back to the pool clean (off the async runtime's threads: [`OffRuntime`]).
struct ReadTx {
    /// Always `Some` until dropped.
    conn: Option<Conn>,
}

/// What dropping a [`ReadTx`] does, wherever it happens.
struct RollBack(Conn);

impl Drop for RollBack {
    fn drop(&mut self) {
        if let Err(e) = self.0.batch_execute("ROLLBACK") {
            tracing::debug!(error = %describe(&e), "ending a snapshot's read transaction");
        }
    }
}

impl ReadTx {
    /// Starts the transaction that takes the snapshot and exports it: returns it, the store's
    /// `seq` it sees, and the exported snapshot's id.
    fn first(store: &PostgresStore) -> Result<(ReadTx, u64, String)> {
        let mut conn = store.conn()?;
        conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .map_err(store.db("starting a snapshot"))?;
        let mut tx = ReadTx { conn: Some(conn) };
        let row = tx
            .c()
            .query_one(
                r#"SELECT "seq", pg_export_snapshot() FROM "_lakeport_meta" WHERE "id" = 1"#,
                &[],
            )
            .map_err(store.db("taking a snapshot"))?;
        let seq = count(&row, 0, "the store's seq")?;
        Ok((tx, seq, row.get(1)))
    }

    /// A connection that sees the exported snapshot `id`.
    fn adopt(store: &PostgresStore, id: &str) -> Result<ReadTx> {
        let mut conn = store.conn()?;
        conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .map_err(store.db("starting a snapshot shard"))?;
        let mut tx = ReadTx { conn: Some(conn) };
        // The id comes from the server (hex and dashes); quoted as a literal all the same.
        tx.c()
            .batch_execute(&format!(
                "SET TRANSACTION SNAPSHOT '{}'",
                id.replace('\'', "''")
            ))
            .map_err(store.db("joining a snapshot"))?;
        Ok(tx)
    }
}

impl ReadTx {
    fn c(&mut self) -> &mut Conn {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("a ReadTx's connection is taken only when it is dropped"),
        }
    }
}

impl Drop for ReadTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            OffRuntime::drop_now(RollBack(conn));
        }
    }
}

/// A value of a key column, as a shard bound.
#[derive(Debug, Clone)]
enum KeyValue {
    Text(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    Time(DateTime<Utc>),
}

impl KeyValue {
    fn read(row: &Row, i: usize, ty: ColumnType) -> std::result::Result<Self, String> {
        let e = |e: super::postgres::Error| e.to_string();
        Ok(match ty {
            ColumnType::String => KeyValue::Text(row.try_get(i).map_err(e)?),
            ColumnType::Int64 => KeyValue::Int(row.try_get(i).map_err(e)?),
            ColumnType::Double => KeyValue::Double(row.try_get(i).map_err(e)?),
            ColumnType::Bool => KeyValue::Bool(row.try_get(i).map_err(e)?),
            ColumnType::Binary => KeyValue::Bytes(row.try_get(i).map_err(e)?),
            ColumnType::TimestampMs => KeyValue::Time(row.try_get(i).map_err(e)?),
        })
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            KeyValue::Text(v) => v,
            KeyValue::Int(v) => v,
            KeyValue::Double(v) => v,
            KeyValue::Bool(v) => v,
            KeyValue::Bytes(v) => v,
            KeyValue::Time(v) => v,
        }
    }
}

/// A parameter of a shard's query.
#[derive(Debug, Clone)]
enum Param {
    Key(KeyValue),
    Seq(i64),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Key(k) => k.param(),
            Param::Seq(s) => s,
        }
    }
}

/// Opens the snapshot of `table`'s live rows (see [`Store::snapshot`](crate::store::Store::snapshot)).
pub(super) fn snapshot(store: &PostgresStore, table: &str, shards: usize) -> Result<Snapshot> {
    let (mut first, seq, id) = ReadTx::first(store)?;
    let t = store.table_sql(&mut **first.c(), table)?;
    let rows = live_rows(store, &mut first, &t)?;
    let used = shards_for(rows, shards);
    let bounds = key_bounds(store, &mut first, &t, rows, used)?;
    Ok(Snapshot {
        seq,
        rows,
        shards: key_range_shards(store, first, &id, &t, bounds, used, None)?,
    })
}

/// Opens the changes of `table` after `after_seq` (see
/// [`Store::changes`](crate::store::Store::changes)).
pub(super) fn changes(
    store: &PostgresStore,
    table: &str,
    after_seq: u64,
    shards: usize,
    deletes: bool,
) -> Result<Snapshot> {
    let (mut first, seq, id) = ReadTx::first(store)?;
    let t = store.table_sql(&mut **first.c(), table)?;
    let what = format!("changes of table {table} after _seq {after_seq}");
    if after_seq > seq {
        return Err(Error::Conflict(format!(
            "changes of table {table}: the checkpoint _seq {after_seq} is above the store's \
             newest _seq {seq}; was the store replaced by an older one?"
        )));
    }
    // Shards read `_seq` in [start, end).
    let start = to_i64(after_seq, "a checkpoint")? + 1;
    let end = to_i64(seq, "the store's seq")? + 1;
    let in_range = format!(
        "FROM {} WHERE {}\"_seq\" >= $1 AND \"_seq\" < $2",
        t.data,
        unless_deletes(deletes)
    );
    let row = first
        .c()
        .query_one(&format!("SELECT count(*) {in_range}"), &[&start, &end])
        .map_err(store.db(&what))?;
    let rows = count(&row, 0, "a row count")?;
    let used = shards_for(rows, shards);
    let range = SeqRange {
        start,
        end,
        deletes,
    };
    if rows >= KEY_SCAN_MIN_ROWS {
        let live = live_rows(store, &mut first, &t)?;
        if rows.saturating_mul(4) >= live && live >= used as u64 {
            // A large share of the table: one pass in key order, split by key ranges.
            let bounds = key_bounds(store, &mut first, &t, live, used)?;
            return Ok(Snapshot {
                seq,
                rows,
                shards: key_range_shards(store, first, &id, &t, bounds, used, Some(range))?,
            });
        }
    }
    // `_seq` ranges of about equal size: shard s starts at the (rows * s / used)-th change.
    let targets = split_points(rows, used);
    let mut starts = vec![start];
    if !targets.is_empty() {
        let found = first
            .c()
            .query(
                &format!(
                    "SELECT \"_seq\" FROM (SELECT \"_seq\", row_number() OVER (ORDER BY \"_seq\") \
                     AS \"_n\" {in_range}) x WHERE \"_n\" = ANY($3) ORDER BY \"_n\""
                ),
                &[&start, &end, &targets],
            )
            .map_err(store.db(&what))?;
        starts.extend(found.iter().map(|r| r.get::<_, i64>(0)));
    }
    starts.push(end);
    let sql = format!(
        "SELECT {}{} {in_range} ORDER BY \"_seq\"",
        t.select_list,
        if deletes { ", \"_deleted\"" } else { "" }
    );
    let queries = (0..used).map(|s| {
        let params = vec![Param::Seq(starts[s]), Param::Seq(starts[s + 1])];
        (sql.clone(), params)
    });
    Ok(Snapshot {
        seq,
        rows,
        shards: readers(store, first, &id, &t, queries, deletes)?,
    })
}

/// One reader per `(sql, params)` query, in order, each in the snapshot: the first on the
/// transaction that exported it, the others on connections that adopt it (`id`).
fn readers(
    store: &PostgresStore,
    first: ReadTx,
    id: &str,
    t: &Arc<TableSql>,
    queries: impl Iterator<Item = (String, Vec<Param>)>,
    deletes: bool,
) -> Result<Vec<Box<dyn ShardReader>>> {
    let mut first = Some(first);
    let mut out: Vec<Box<dyn ShardReader>> = Vec::new();
    for (sql, params) in queries {
        let tx = match first.take() {
            Some(tx) => tx,
            None => ReadTx::adopt(store, id)?,
        };
        out.push(Box::new(PgShard {
            tx,
            t: Arc::clone(t),
            sql,
            params,
            deletes,
        }));
    }
    Ok(out)
}

/// Shards to use for `rows` rows when `asked` were asked for: at most one per row (none for
/// no rows) and [`MAX_SHARDS`].
fn shards_for(rows: u64, asked: usize) -> usize {
    let by_rows = usize::try_from(rows).unwrap_or(usize::MAX);
    asked.clamp(1, MAX_SHARDS).min(by_rows)
}

/// The live rows of `t` in the snapshot of `tx`.
fn live_rows(store: &PostgresStore, tx: &mut ReadTx, t: &TableSql) -> Result<u64> {
    let row = tx
        .c()
        .query_one(
            &format!("SELECT count(*) FROM {} WHERE NOT \"_deleted\"", t.data),
            &[],
        )
        .map_err(store.db(format_args!("counting the rows of table {}", t.name())))?;
    count(&row, 0, "a row count")
}

/// Where shards 1..`used` of `rows` rows start: 1-based row numbers `rows * s / used + 1`.
fn split_points(rows: u64, used: usize) -> Vec<i64> {
    (1..used)
        .map(|s| (u128::from(rows) * s as u128 / used as u128) as i64 + 1)
        .collect()
}

/// A `_seq` range of changes read by key ranges: `[start, end)`, with tombstones if `deletes`.
#[derive(Debug, Clone, Copy)]
struct SeqRange {
    start: i64,
    end: i64,
    deletes: bool,
}

/// The first key of shards 1..`used`: the live keys at offsets `rows * s / used` in key order,
/// each one ordered read of the primary key (which includes `_deleted`, so that the read is
/// index-only once vacuum has marked the pages visible) that skips to its offset; no sort.
fn key_bounds(
    store: &PostgresStore,
    tx: &mut ReadTx,
    t: &TableSql,
    rows: u64,
    used: usize,
) -> Result<Vec<Vec<KeyValue>>> {
    let sql = format!(
        "SELECT {keys} FROM {data} WHERE NOT \"_deleted\" ORDER BY {keys} OFFSET $1 LIMIT 1",
        keys = t.key_list,
        data = t.data
    );
    let mut bounds = Vec::with_capacity(used.saturating_sub(1));
    for offset in split_points(rows, used) {
        let row = tx
            .c()
            .query_opt(&sql, &[&(offset - 1)])
            .map_err(store.db(format_args!("finding shard bounds of table {}", t.name())))?
            .ok_or_else(|| {
                Error::Store(format!(
                    "reading table {}: no row at offset {offset} for a shard bound",
                    t.name()
                ))
            })?;
        let key = t
            .key_idx
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                KeyValue::read(&row, j, t.def.columns[i].ty).map_err(|e| {
                    Error::Store(format!("reading a shard bound of table {}: {e}", t.name()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        bounds.push(key);
    }
    Ok(bounds)
}

/// One reader per key range: shard `s` reads keys from `bounds[s - 1]` (the start for the
/// first) up to `bounds[s]` (the end for the last), live rows or, with `changes`, the rows
/// of that `_seq` range.
fn key_range_shards(
    store: &PostgresStore,
    first: ReadTx,
    id: &str,
    t: &Arc<TableSql>,
    bounds: Vec<Vec<KeyValue>>,
    used: usize,
    changes: Option<SeqRange>,
) -> Result<Vec<Box<dyn ShardReader>>> {
    let queries = (0..used).map(|s| {
        let lower = s.checked_sub(1).map(|p| bounds[p].clone());
        let upper = bounds.get(s).cloned();
        let sql = range_sql(t, lower.is_some(), upper.is_some(), changes);
        let mut params: Vec<Param> = lower
            .into_iter()
            .chain(upper)
            .flatten()
            .map(Param::Key)
            .collect();
        if let Some(c) = changes {
            params.extend([Param::Seq(c.start), Param::Seq(c.end)]);
        }
        (sql, params)
    });
    let deletes = changes.is_some_and(|c| c.deletes);
    readers(store, first, id, t, queries, deletes)
}

/// `SELECT` in key order within optional key bounds: the live rows, or with `changes` the
/// rows (and tombstones when it says so, `_deleted` last) of a `_seq` range. Parameters: the
/// lower bound's key values, the upper bound's, then the range's first `_seq` and the one
/// past its end.
fn range_sql(t: &TableSql, lower: bool, upper: bool, changes: Option<SeqRange>) -> String {
    let k = t.key_idx.len();
    let mut next = 1;
    let mut params = || {
        let p = (next..next + k)
            .map(|p| format!("${p}"))
            .collect::<Vec<_>>()
            .join(", ");
        next += k;
        p
    };
    let deletes = changes.is_some_and(|c| c.deletes);
    let mut sql = format!(
        "SELECT {}{} FROM {} WHERE {}",
        t.select_list,
        if deletes { ", \"_deleted\"" } else { "" },
        t.data,
        if deletes { "true" } else { "NOT \"_deleted\"" }
    );
    if lower {
        sql.push_str(&format!(" AND ({}) >= ({})", t.key_list, params()));
    }
    if upper {
        sql.push_str(&format!(" AND ({}) < ({})", t.key_list, params()));
    }
    if changes.is_some() {
        let first = next;
        sql.push_str(&format!(
            " AND \"_seq\" >= ${first} AND \"_seq\" < ${}",
            first + 1
        ));
    }
    sql.push_str(&format!(" ORDER BY {}", t.key_list));
    sql
}

/// One shard of a PostgreSQL snapshot: a connection in the snapshot's transaction, and its
/// query.
struct PgShard {
    tx: ReadTx,
    t: Arc<TableSql>,
    sql: String,
    params: Vec<Param>,
    /// Whether rows end with `_deleted` (read into a last `_deleted` column).
    deletes: bool,
}

impl ShardReader for PgShard {
    fn read(
        &mut self,
        batch_rows: usize,
        on_batch: &mut dyn FnMut(arrow::record_batch::RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let t = &*self.t;
        let at = |e: super::postgres::Error| {
            Error::Store(format!("reading table {}: {}", t.name(), describe(&e)))
        };
        let batch_rows = batch_rows.max(1);
        let params = self.params.iter().map(Param::as_sql);
        let mut rows = self
            .tx
            .c()
            .query_raw(self.sql.as_str(), params)
            .map_err(at)?;
        let mut b = Builders::new(&t.def, batch_rows, self.deletes);
        let mut total = 0u64;
        while let Some(row) = rows.next().map_err(at)? {
            append_row(&mut b, t, &row)?;
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

/// Appends one row (the columns, `_seq`, `_write_time`, then `_deleted` when the builders
/// have it) to `b`.
fn append_row(b: &mut Builders, t: &TableSql, row: &Row) -> Result<()> {
    let bad = |i: usize, e: super::postgres::Error| {
        let c = &t.def.columns[i];
        Error::Store(format!(
            "table {}: column {}: expected {}: {e}",
            t.name(),
            c.name,
            c.ty
        ))
    };
    for (i, col) in b.columns.iter_mut().enumerate() {
        match col {
            ColumnBuilder::String(b) => {
                b.append_option(row.try_get::<_, Option<&str>>(i).map_err(|e| bad(i, e))?)
            }
            ColumnBuilder::Int64(b) => {
                b.append_option(row.try_get::<_, Option<i64>>(i).map_err(|e| bad(i, e))?)
            }
            ColumnBuilder::Double(b) => {
                b.append_option(row.try_get::<_, Option<f64>>(i).map_err(|e| bad(i, e))?)
            }
            ColumnBuilder::Bool(b) => {
                b.append_option(row.try_get::<_, Option<bool>>(i).map_err(|e| bad(i, e))?)
            }
            ColumnBuilder::Binary(b) => {
                b.append_option(row.try_get::<_, Option<&[u8]>>(i).map_err(|e| bad(i, e))?)
            }
            ColumnBuilder::Timestamp(b) => b.append_option(
                row.try_get::<_, Option<DateTime<Utc>>>(i)
                    .map_err(|e| bad(i, e))?
                    .map(|ts| ts.timestamp_millis()),
            ),
        }
    }
    let n = t.def.columns.len();
    let tail = |e: super::postgres::Error| {
        Error::Store(format!("reading table {}: {}", t.name(), describe(&e)))
    };
    let seq: i64 = row.try_get(n).map_err(tail)?;
    let write_time: DateTime<Utc> = row.try_get(n + 1).map_err(tail)?;
    b.seq.append_value(seq);
    b.write_time.append_value(write_time.timestamp_millis());
    if let Some(deleted) = &mut b.deleted {
        deleted.append_value(row.try_get::<_, bool>(n + 2).map_err(tail)?);
    }
    b.len += 1;
    Ok(())
}
