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
//! # Shards
//! - **Page ranges** (a full snapshot of a table of at least [`PAGES_PER_SHARD`] pages per
//!   shard, on PostgreSQL 14 or later): shard `s` reads the live rows stored in pages
//!   `[pages·s/n, pages·(s+1)/n)` (the last to the end), a TID range scan that reads each page
//!   once, in storage order. Reading by key ranges instead costs the server a sort or an
//!   index scan that visits the heap at random (keys rarely arrive in key order): measured on
//!   1M inventory rows, 2.4 server CPU-s by key ranges and 1.5 by page ranges. The price:
//!   rows within an object are in storage order, not key order.
//! - **Key ranges** (a smaller table, an older server, and changes read by key): bounds at
//!   equal offsets of the primary key, each shard in key order.
//! - **`_seq` ranges** (changes, the usual case): in `_seq` order.
//!
//! Every shard is described by a [`ShardSpec`], which its ticket carries to other workers.
//!
//! [`Store::snapshot`]: crate::store::Store::snapshot

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::postgres::fallible_iterator::FallibleIterator;
use super::postgres::types::ToSql;
use super::postgres::Row;
use super::{
    count, describe, to_i64, unless_deletes, Conn, OffRuntime, PostgresStore, TableSql, POOL_SIZE,
};
use crate::error::{Error, Result};
use crate::store::batch::{Builders, ColumnBuilder};
use crate::store::checks::checkpoint_within;
use crate::store::{ColumnType, ShardReader, Snapshot};

/// Changes of at least this many rows are read by key ranges when they are a quarter of the
/// table or more: one pass in key order beats an index lookup per row.
const KEY_SCAN_MIN_ROWS: u64 = 50_000;

/// A full snapshot is split by pages only when each shard gets at least this many (1 MiB of
/// 8 KiB pages): a smaller table is read by key ranges, in key order.
const PAGES_PER_SHARD: i64 = 128;

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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "KeyWire", try_from = "KeyWire")]
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

/// A [`KeyValue`] in a ticket: doubles by their bits and times in microseconds, so that a
/// bound comes back exactly as it went.
#[derive(Serialize, Deserialize)]
enum KeyWire {
    Text(String),
    Int(i64),
    DoubleBits(u64),
    Bool(bool),
    Bytes(Vec<u8>),
    TimeMicros(i64),
}

impl From<KeyValue> for KeyWire {
    fn from(k: KeyValue) -> KeyWire {
        match k {
            KeyValue::Text(v) => KeyWire::Text(v),
            KeyValue::Int(v) => KeyWire::Int(v),
            KeyValue::Double(v) => KeyWire::DoubleBits(v.to_bits()),
            KeyValue::Bool(v) => KeyWire::Bool(v),
            KeyValue::Bytes(v) => KeyWire::Bytes(v),
            KeyValue::Time(v) => KeyWire::TimeMicros(v.timestamp_micros()),
        }
    }
}

impl TryFrom<KeyWire> for KeyValue {
    type Error = String;

    fn try_from(k: KeyWire) -> std::result::Result<KeyValue, String> {
        Ok(match k {
            KeyWire::Text(v) => KeyValue::Text(v),
            KeyWire::Int(v) => KeyValue::Int(v),
            KeyWire::DoubleBits(v) => KeyValue::Double(f64::from_bits(v)),
            KeyWire::Bool(v) => KeyValue::Bool(v),
            KeyWire::Bytes(v) => KeyValue::Bytes(v),
            KeyWire::TimeMicros(v) => KeyValue::Time(
                DateTime::from_timestamp_micros(v)
                    .ok_or_else(|| format!("time {v} µs is out of range"))?,
            ),
        })
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
    if let Some(specs) = page_ranges(store, &mut first, &t, used)? {
        return Ok(Snapshot {
            seq,
            rows,
            shards: readers(store, first, &id, &t, specs.into_iter())?,
        });
    }
    let bounds = key_bounds(store, &mut first, &t, rows, used)?;
    Ok(Snapshot {
        seq,
        rows,
        shards: key_range_shards(store, first, &id, &t, bounds, used, None)?,
    })
}

/// Shards of a full snapshot split by the table's pages (see the module docs), when the
/// server scans page ranges (TID range scans, PostgreSQL 14 and later) and the table has at
/// least [`PAGES_PER_SHARD`] pages per shard; `None` otherwise (key ranges then).
fn page_ranges(
    store: &PostgresStore,
    tx: &mut ReadTx,
    t: &TableSql,
    used: usize,
) -> Result<Option<Vec<ShardSpec>>> {
    let row = tx
        .c()
        .query_one(
            "SELECT (pg_relation_size(to_regclass($1)) \
                     / current_setting('block_size')::bigint)::bigint, \
                    current_setting('server_version_num')::int",
            &[&t.data],
        )
        .map_err(store.db(format_args!("sizing table {}", t.name())))?;
    let (pages, version): (i64, i32) = (row.get(0), row.get(1));
    let used = used as i64;
    if version < 140_000 || pages < PAGES_PER_SHARD * used {
        return Ok(None);
    }
    // The last range has no end: the snapshot's rows all lie in pages that existed when it
    // was taken, but the table may have grown since it was sized.
    Ok(Some(
        (0..used)
            .map(|s| ShardSpec::Pages {
                first: pages * s / used,
                end: (s + 1 < used).then(|| pages * (s + 1) / used),
            })
            .collect(),
    ))
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
    checkpoint_within(table, after_seq, seq)?;
    // Shards read `_seq` in [start, end).
    let start = to_i64(after_seq, "a checkpoint")? + 1;
    let end = to_i64(seq, "the store's seq")? + 1;
    let in_range = seq_range_from(&t, deletes);
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
    let specs = (0..used).map(|s| ShardSpec::Seqs {
        start: starts[s],
        end: starts[s + 1],
        deletes,
    });
    Ok(Snapshot {
        seq,
        rows,
        shards: readers(store, first, &id, &t, specs)?,
    })
}

/// One reader per shard, in order, each in the snapshot: the first on the transaction that
/// exported it, the others on connections that adopt it (`id`).
fn readers(
    store: &PostgresStore,
    first: ReadTx,
    id: &str,
    t: &Arc<TableSql>,
    specs: impl Iterator<Item = ShardSpec>,
) -> Result<Vec<Box<dyn ShardReader>>> {
    let mut first = Some(first);
    let mut out: Vec<Box<dyn ShardReader>> = Vec::new();
    for spec in specs {
        let tx = match first.take() {
            Some(tx) => tx,
            None => ReadTx::adopt(store, id)?,
        };
        out.push(Box::new(PgShard::new(tx, id, t, spec)));
    }
    Ok(out)
}

/// [`Store::open_shard`](crate::store::Store::open_shard): the shard a ticket of
/// [`PgShard::ticket`] describes, on a connection that adopts its snapshot.
pub(super) fn open_shard(store: &PostgresStore, ticket: &str) -> Result<Box<dyn ShardReader>> {
    let ticket: Ticket = serde_json::from_str(ticket)
        .map_err(|e| Error::InvalidInput(format!("a shard ticket: {e}: {ticket}")))?;
    let mut tx = ReadTx::adopt(store, &ticket.snapshot)?;
    let t = store.table_sql(&mut **tx.c(), &ticket.table)?;
    Ok(Box::new(PgShard::new(
        tx,
        &ticket.snapshot,
        &t,
        ticket.spec,
    )))
}

/// `FROM <data> WHERE` the changes with `_seq` in `[$1, $2)` (tombstones too with `deletes`).
fn seq_range_from(t: &TableSql, deletes: bool) -> String {
    format!(
        "FROM {} WHERE {}\"_seq\" >= $1 AND \"_seq\" < $2",
        t.data,
        unless_deletes(deletes)
    )
}

/// What one shard reads: enough to build its query again in another process.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum ShardSpec {
    /// Keys from `lower` (inclusive; the start when `None`) to `upper` (exclusive; the end
    /// when `None`): the live rows, or with `changes` the rows of that `_seq` range.
    Keys {
        lower: Option<Vec<KeyValue>>,
        upper: Option<Vec<KeyValue>>,
        changes: Option<SeqRange>,
    },
    /// The changes with `_seq` in `[start, end)`, in `_seq` order, tombstones too with
    /// `deletes`.
    Seqs { start: i64, end: i64, deletes: bool },
    /// The live rows in heap pages `[first, end)` (to the end of the table when `end` is
    /// `None`), in the order they are stored.
    Pages { first: i64, end: Option<i64> },
}

impl ShardSpec {
    /// The shard's `SELECT` and its parameters.
    fn query(&self, t: &TableSql) -> (String, Vec<Param>) {
        match self {
            ShardSpec::Keys {
                lower,
                upper,
                changes,
            } => {
                let sql = range_sql(t, lower.is_some(), upper.is_some(), *changes);
                let mut params: Vec<Param> = lower
                    .iter()
                    .chain(upper)
                    .flatten()
                    .cloned()
                    .map(Param::Key)
                    .collect();
                if let Some(c) = changes {
                    params.extend([Param::Seq(c.start), Param::Seq(c.end)]);
                }
                (sql, params)
            }
            ShardSpec::Seqs {
                start,
                end,
                deletes,
            } => {
                let sql = format!(
                    "SELECT {}{} {} ORDER BY \"_seq\"",
                    t.select_list,
                    if *deletes { ", \"_deleted\"" } else { "" },
                    seq_range_from(t, *deletes)
                );
                (sql, vec![Param::Seq(*start), Param::Seq(*end)])
            }
            ShardSpec::Pages { first, end } => {
                // Page numbers are integers of this process: no quoting needed.
                let mut sql = format!(
                    "SELECT {} FROM {} WHERE NOT \"_deleted\" AND ctid >= '({first},0)'::tid",
                    t.select_list, t.data
                );
                if let Some(end) = end {
                    sql.push_str(&format!(" AND ctid < '({end},0)'::tid"));
                }
                (sql, Vec::new())
            }
        }
    }

    /// Whether its rows end with `_deleted`.
    fn deletes(&self) -> bool {
        match self {
            ShardSpec::Keys { changes, .. } => changes.is_some_and(|c| c.deletes),
            ShardSpec::Seqs { deletes, .. } => *deletes,
            ShardSpec::Pages { .. } => false,
        }
    }
}

/// A shard as another process opens it: the exported snapshot, the table and the shard.
#[derive(Serialize, Deserialize)]
struct Ticket {
    snapshot: String,
    table: String,
    spec: ShardSpec,
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
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
    let specs = (0..used).map(|s| ShardSpec::Keys {
        lower: s.checked_sub(1).map(|p| bounds[p].clone()),
        upper: bounds.get(s).cloned(),
        changes,
    });
    readers(store, first, id, t, specs)
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
    /// The exported snapshot's id.
    snapshot: String,
    spec: ShardSpec,
    sql: String,
    params: Vec<Param>,
    /// Whether rows end with `_deleted` (read into a last `_deleted` column).
    deletes: bool,
}

impl PgShard {
    fn new(tx: ReadTx, snapshot: &str, t: &Arc<TableSql>, spec: ShardSpec) -> PgShard {
        let (sql, params) = spec.query(t);
        PgShard {
            tx,
            t: Arc::clone(t),
            snapshot: snapshot.to_string(),
            deletes: spec.deletes(),
            spec,
            sql,
            params,
        }
    }
}

impl ShardReader for PgShard {
    fn ticket(&self) -> Option<String> {
        let ticket = Ticket {
            snapshot: self.snapshot.clone(),
            table: self.t.name().to_string(),
            spec: self.spec.clone(),
        };
        serde_json::to_string(&ticket).ok()
    }

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
