//! Consistent, sharded reads of a PostgreSQL data table: [`Store::snapshot`] and
//! [`Store::changes`](crate::store::Store::changes).
//!
//! A pooled connection opens a REPEATABLE READ, READ ONLY transaction, reads the store's
//! `seq` and exports its snapshot in one statement (the first shard keeps it open); every
//! shard's connection adopts it (`SET TRANSACTION SNAPSHOT`) before any query. Because `_seq`
//! is allocated at commit in commit order (module docs of [`postgres`](super)), the rows this
//! snapshot sees are exactly those with `_seq <= seq`. A shard keeps its transaction open
//! until it is dropped, so it can read again (a retried shard sees the same rows); dropping
//! it closes its connection, which rolls the transaction back.
//!
//! Each shard reads on a connection of its own outside the pool ([`DirectConn`]), which joins
//! the snapshot and is driven one batch at a time. Rows stream from the server into Arrow
//! builders as they arrive, a network buffer at a time, never the whole shard; values are
//! decoded from the server's binary format straight into the builders, their types checked
//! once per query (a column changed behind the store's back is an error that names it). A
//! query without parameters (page ranges, a table read as one key range) is read as the
//! tuples of `COPY (query) TO STDOUT (FORMAT binary)` ([`copy`](super::copy)), the others as
//! query results; the values are the same bytes either way.
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

use futures::StreamExt;

use super::copy::{CopyTuples, Fields, Next, AFTER_TRAILER};
use super::direct::DirectConn;
use super::postgres::types::{FromSql, ToSql, Type as PgType};
use super::postgres::{Column as PgColumn, Row};
use super::{
    count, describe, to_i64, unless_deletes, Conn, DbFailure, OffRuntime, PostgresStore, TableSql,
    POOL_SIZE,
};
use crate::error::{Error, Result};
use crate::model::{ColumnType, DELETED_COLUMN, SEQ_COLUMN, WRITE_TIME_COLUMN};
use crate::store::batch::{Builders, ColumnBuilder};
use crate::store::checks::checkpoint_within;
use crate::store::{ShardReader, Snapshot};

/// Changes of at least this many rows are read by key ranges when they are a quarter of the
/// table or more: one pass in key order beats an index lookup per row.
const KEY_SCAN_MIN_ROWS: u64 = 50_000;

/// A full snapshot is split by pages only when each shard gets at least this many (1 MiB of
/// 8 KiB pages): a smaller table is read by key ranges, in key order.
const PAGES_PER_SHARD: i64 = 128;

/// Shards one snapshot reads at most: each holds a connection of its own while it lives (as
/// many as half the pool, so that two snapshots' shards and the pool fit twice the pool's
/// connections on the server).
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
        let e = |e: super::postgres::Error| describe(&e);
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
    if let Some(specs) = page_ranges(store, &mut first, &t, shards.clamp(1, MAX_SHARDS))? {
        // Not counted: the count would scan the whole table before the first row is read.
        return Ok(Snapshot {
            seq,
            rows: estimated_live_rows(store, &mut first, &t)?,
            rows_estimated: true,
            shards: readers(store, first, &id, &t, specs.into_iter())?,
        });
    }
    let rows = live_rows(store, &mut first, &t)?;
    let used = shards_for(rows, shards);
    let bounds = key_bounds(store, &mut first, &t, rows, used)?;
    Ok(Snapshot {
        seq,
        rows,
        rows_estimated: false,
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
                rows_estimated: false,
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
        rows_estimated: false,
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
        out.push(Box::new(PgShard::new(store, first.take(), id, t, spec)?));
    }
    Ok(out)
}

/// [`Store::open_shard`](crate::store::Store::open_shard): the shard a ticket of
/// [`PgShard::ticket`] describes, on a connection that adopts its snapshot.
pub(super) fn open_shard(store: &PostgresStore, ticket: &str) -> Result<Box<dyn ShardReader>> {
    let ticket: Ticket = serde_json::from_str(ticket)
        .map_err(|e| Error::InvalidInput(format!("a shard ticket: {e}: {ticket}")))?;
    let t = store.table_sql(&mut *store.conn()?, &ticket.table)?;
    Ok(Box::new(PgShard::new(
        store,
        None,
        &ticket.snapshot,
        &t,
        ticket.spec,
    )?))
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

/// The planner's estimate of the live rows of `t` (from the statistics `ANALYZE` and
/// autovacuum keep, scaled to the table's current size): no scan.
fn estimated_live_rows(store: &PostgresStore, tx: &mut ReadTx, t: &TableSql) -> Result<u64> {
    let what = format_args!("estimating the rows of table {}", t.name());
    let row = tx
        .c()
        .query_one(
            &format!(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE NOT \"_deleted\"",
                t.data
            ),
            &[],
        )
        .map_err(store.db(what))?;
    // A `json` column, sent as its text.
    let plan = row.try_get::<_, Raw<'_>>(0).map_err(store.db(what))?.0;
    let plan = String::from_utf8_lossy(plan.unwrap_or_default());
    plan_rows(&plan).ok_or_else(|| {
        Error::store(format!(
            "estimating the rows of table {}: no row estimate in the plan {plan}",
            t.name()
        ))
    })
}

/// The `Plan Rows` of the top node of an `EXPLAIN (FORMAT JSON)` output.
fn plan_rows(plan: &str) -> Option<u64> {
    let plan: serde_json::Value = serde_json::from_str(plan).ok()?;
    let rows = plan.get(0)?.get("Plan")?.get("Plan Rows")?;
    rows.as_u64()
        .or_else(|| rows.as_f64().map(|r| r.max(0.0).round() as u64))
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
                Error::store(format!(
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
                    Error::store(format!("reading a shard bound of table {}: {e}", t.name()))
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

/// One shard of a PostgreSQL snapshot: a connection of its own in a transaction that sees the
/// snapshot, and its query.
struct PgShard {
    /// The transaction that exported the snapshot (the first shard's): other shards and
    /// workers can join the snapshot only while it is open.
    _exporter: Option<ReadTx>,
    conn: DirectConn,
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
    /// Connects and joins the snapshot `snapshot` (exported by `exporter`, when this is the
    /// first shard).
    fn new(
        store: &PostgresStore,
        exporter: Option<ReadTx>,
        snapshot: &str,
        t: &Arc<TableSql>,
        spec: ShardSpec,
    ) -> Result<PgShard> {
        let mut conn = DirectConn::connect(store)?;
        // The id comes from the server (hex and dashes); quoted as a literal all the same.
        let join = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
            snapshot.replace('\'', "''")
        );
        let client = conn.client();
        let joined = store.db("joining a snapshot");
        conn.block_on("joining a snapshot", async move {
            client.batch_execute(&join).await.map_err(joined)
        })?;
        let (sql, params) = spec.query(t);
        Ok(PgShard {
            _exporter: exporter,
            conn,
            t: Arc::clone(t),
            snapshot: snapshot.to_string(),
            deletes: spec.deletes(),
            spec,
            sql,
            params,
        })
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
        let (t, sql, params, deletes) = (&*self.t, &self.sql, &self.params, self.deletes);
        let conn = &mut self.conn;
        let what = format!("reading table {}", t.name());
        let at = |e: super::postgres::Error| Error::store_caused(what.clone(), DbFailure::new(&e));
        let batch_rows = batch_rows.max(1);
        let client = conn.client();
        let mut source = conn.block_on(&what, async {
            let statement = client.prepare(sql).await.map_err(at)?;
            check_columns(t, statement.columns(), deletes)?;
            if params.is_empty() {
                let fields = statement.columns().len();
                let copy = format!("COPY ({sql}) TO STDOUT (FORMAT binary)");
                let stream = client.copy_out(copy.as_str()).await.map_err(at)?;
                return Ok(Source::Copy(Box::pin(stream), CopyTuples::new(fields)));
            }
            let rows = client
                .query_raw(&statement, params.iter().map(Param::as_sql))
                .await
                .map_err(at)?;
            Ok(Source::Rows(Box::pin(rows)))
        })?;
        let mut b = Builders::new(&t.def, batch_rows, deletes);
        let mut total = 0u64;
        loop {
            // One batch per entry into the connection's runtime.
            let more = conn.block_on(&what, source.fill(&mut b, t, batch_rows, &at))?;
            total += b.len as u64;
            if b.len > 0 {
                on_batch(b.finish(&t.schema, &t.schema_with_deleted)?)?;
            }
            if !more {
                return Ok(total);
            }
        }
    }
}

/// Where a shard's rows come from: the result rows of its query or, for a query without
/// parameters, the tuples of a binary `COPY` of it (no per-row description to build and
/// look up: measured on 1M inventory rows, about 5% of lakeport's CPU time).
enum Source {
    Rows(std::pin::Pin<Box<tokio_postgres::RowStream>>),
    Copy(
        std::pin::Pin<Box<tokio_postgres::CopyOutStream>>,
        CopyTuples,
    ),
}

impl Source {
    /// Appends rows to `b` until it holds `batch_rows` (true) or the rows end (false).
    async fn fill(
        &mut self,
        b: &mut Builders,
        t: &TableSql,
        batch_rows: usize,
        at: &impl Fn(super::postgres::Error) -> Error,
    ) -> Result<bool> {
        match self {
            Source::Rows(rows) => {
                while let Some(row) = rows.next().await {
                    append_row(b, t, &row.map_err(at)?)?;
                    if b.len == batch_rows {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Source::Copy(stream, tuples) => {
                let malformed =
                    |e: String| Error::store(format!("reading table {}: expected {e}", t.name()));
                loop {
                    match tuples.next_tuple().map_err(malformed)? {
                        Next::Tuple(fields) => {
                            append_row(b, t, fields)?;
                            if b.len == batch_rows {
                                return Ok(true);
                            }
                        }
                        Next::NeedMore => match stream.next().await {
                            Some(data) => tuples.push(data.map_err(at)?),
                            None => {
                                return Err(malformed(
                                    "the binary COPY data's trailer, the data ended before it"
                                        .to_string(),
                                ))
                            }
                        },
                        // The stream ends once the server has said the COPY is done, which
                        // leaves the connection ready for the next query.
                        Next::End => {
                            return match stream.next().await {
                                None => Ok(false),
                                Some(Err(e)) => Err(at(e)),
                                Some(Ok(_)) => Err(malformed(AFTER_TRAILER.to_string())),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A column's value as the server sends it (binary format), `None` for NULL: decoded by
/// [`append_row`] into the column's builder without a conversion of its own per type.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _: &PgType,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(
        _: &PgType,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &PgType) -> bool {
        true
    }
}

/// Whether the server sends a column of type `pg` in the binary format [`append_row`] reads
/// for `ty`.
fn sends_as(ty: ColumnType, pg: &PgType) -> bool {
    match ty {
        ColumnType::String => {
            [PgType::TEXT, PgType::VARCHAR, PgType::BPCHAR, PgType::NAME].contains(pg)
        }
        ColumnType::Int64 => *pg == PgType::INT8,
        ColumnType::Double => *pg == PgType::FLOAT8,
        ColumnType::Bool => *pg == PgType::BOOL,
        ColumnType::Binary => *pg == PgType::BYTEA,
        ColumnType::TimestampMs => *pg == PgType::TIMESTAMPTZ,
    }
}

/// The columns a shard's query returns after the declared ones, in order, with the store
/// type each is read as (`_deleted` only when the shard reads deletes).
const SYSTEM_COLUMNS: [(&str, ColumnType); 3] = [
    (SEQ_COLUMN, ColumnType::Int64),
    (WRITE_TIME_COLUMN, ColumnType::TimestampMs),
    (DELETED_COLUMN, ColumnType::Bool),
];

/// Checks once per query that the server sends every column in the type its builder reads:
/// the declared columns, `_seq`, `_write_time` and, with `deletes`, `_deleted`.
fn check_columns(t: &TableSql, columns: &[PgColumn], deletes: bool) -> Result<()> {
    let system = &SYSTEM_COLUMNS[..if deletes { 3 } else { 2 }];
    let expected: Vec<(&str, ColumnType)> = t
        .def
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty))
        .chain(system.iter().copied())
        .collect();
    if columns.len() != expected.len() {
        return Err(Error::store(format!(
            "reading table {}: expected {} columns, the server sends {}",
            t.name(),
            expected.len(),
            columns.len()
        )));
    }
    for ((name, ty), column) in expected.into_iter().zip(columns) {
        if !sends_as(ty, column.type_()) {
            return Err(Error::store(format!(
                "table {}: column {name}: expected {ty}, the server has {}",
                t.name(),
                column.type_()
            )));
        }
    }
    Ok(())
}

/// PostgreSQL's epoch (2000-01-01 UTC) in microseconds since the Unix epoch.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A BIGINT (or the bits of a DOUBLE PRECISION) in binary format: 8 bytes, big-endian.
fn be_i64(raw: &[u8]) -> std::result::Result<i64, String> {
    raw.try_into()
        .map(i64::from_be_bytes)
        .map_err(|_| format!("8 bytes, the server sent {}", raw.len()))
}

/// Milliseconds since the Unix epoch of a TIMESTAMPTZ in binary format (microseconds since
/// 2000-01-01 UTC), rounded down as `DateTime::timestamp_millis` rounds. `infinity` and
/// `-infinity` have no instant and are errors.
fn timestamp_ms(raw: &[u8]) -> std::result::Result<i64, String> {
    let micros = be_i64(raw)?;
    if micros == i64::MAX || micros == i64::MIN {
        return Err("a finite timestamp, the server sent infinity".to_string());
    }
    micros
        .checked_add(POSTGRES_EPOCH_MICROS)
        .map(|unix| unix.div_euclid(1000))
        .ok_or_else(|| format!("a timestamp in range, the server sent {micros} µs"))
}

/// A BOOLEAN in binary format: one byte.
fn boolean(raw: &[u8]) -> std::result::Result<bool, String> {
    match raw {
        [b] => Ok(*b != 0),
        _ => Err(format!("1 byte, the server sent {}", raw.len())),
    }
}

/// The values of one row in the server's binary format, read in column order: a query's
/// result row, or a tuple of a binary `COPY`.
trait RowValues<'r> {
    /// Column `i`'s value (`None` for NULL).
    fn value(&mut self, i: usize) -> std::result::Result<Option<&'r [u8]>, String>;
}

impl<'r> RowValues<'r> for &'r Row {
    fn value(&mut self, i: usize) -> std::result::Result<Option<&'r [u8]>, String> {
        self.try_get::<_, Raw<'r>>(i)
            .map(|r| r.0)
            .map_err(|e| describe(&e))
    }
}

impl<'r> RowValues<'r> for Fields<'r> {
    fn value(&mut self, i: usize) -> std::result::Result<Option<&'r [u8]>, String> {
        Fields::value(self, i)
    }
}

/// Appends one row (the columns, `_seq`, `_write_time`, then `_deleted` when the builders
/// have it) to `b`, decoding each value from the server's binary format (types checked once
/// per query by [`check_columns`]).
fn append_row<'r>(b: &mut Builders, t: &TableSql, mut row: impl RowValues<'r>) -> Result<()> {
    let n = t.def.columns.len();
    let bad = |i: usize, e: String| {
        let (name, ty) = match t.def.columns.get(i) {
            Some(c) => (c.name.as_str(), c.ty.to_string()),
            None => (
                SYSTEM_COLUMNS[(i - n).min(2)].0,
                "a system column".to_string(),
            ),
        };
        Error::store(format!(
            "table {}: column {name}: expected {ty}: {e}",
            t.name()
        ))
    };
    for (i, col) in b.columns.iter_mut().enumerate() {
        let value = row.value(i).map_err(|e| bad(i, e))?;
        match col {
            // Checked to be UTF-8 when the batch is finished (see `store::batch`).
            ColumnBuilder::String(b) => b.append_option(value),
            ColumnBuilder::Int64(b) => {
                b.append_option(value.map(be_i64).transpose().map_err(|e| bad(i, e))?)
            }
            ColumnBuilder::Double(b) => b.append_option(
                value
                    .map(|v| be_i64(v).map(|bits| f64::from_bits(bits as u64)))
                    .transpose()
                    .map_err(|e| bad(i, e))?,
            ),
            ColumnBuilder::Bool(b) => {
                b.append_option(value.map(boolean).transpose().map_err(|e| bad(i, e))?)
            }
            ColumnBuilder::Binary(b) => b.append_option(value),
            ColumnBuilder::Timestamp(b) => {
                b.append_option(value.map(timestamp_ms).transpose().map_err(|e| bad(i, e))?)
            }
        }
    }
    let mut required = |i: usize| -> Result<&[u8]> {
        row.value(i)
            .map_err(|e| bad(i, e))?
            .ok_or_else(|| bad(i, "a value, the server sent NULL".to_string()))
    };
    b.seq
        .append_value(be_i64(required(n)?).map_err(|e| bad(n, e))?);
    b.write_time
        .append_value(timestamp_ms(required(n + 1)?).map_err(|e| bad(n + 1, e))?);
    if let Some(deleted) = &mut b.deleted {
        deleted.append_value(boolean(required(n + 2)?).map_err(|e| bad(n + 2, e))?);
    }
    b.len += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary TIMESTAMPTZ of `micros` since 2000-01-01 UTC.
    fn wire(micros: i64) -> [u8; 8] {
        micros.to_be_bytes()
    }

    /// Timestamps decode to the milliseconds chrono gives the same instant (rounded down,
    /// before 2000 and before 1970 too).
    #[test]
    fn timestamps_decode_as_chrono_does() {
        let samples = [
            0,
            1,
            999,
            1_000,
            -1,
            -999,
            -1_000,
            -1_001,
            -POSTGRES_EPOCH_MICROS,
            -POSTGRES_EPOCH_MICROS - 1,
            -POSTGRES_EPOCH_MICROS - 1_500,
            753_800_000_123_456,
            -3_000_000_000_000_001,
            9_000_000_000_000_000,
        ];
        for micros in samples {
            let instant = DateTime::from_timestamp_micros(micros + POSTGRES_EPOCH_MICROS).unwrap();
            assert_eq!(
                timestamp_ms(&wire(micros)),
                Ok(instant.timestamp_millis()),
                "{micros} µs"
            );
        }
    }

    #[test]
    fn malformed_values_are_errors_that_say_what_was_expected() {
        assert!(timestamp_ms(&wire(i64::MAX))
            .unwrap_err()
            .contains("infinity"));
        assert!(timestamp_ms(&wire(i64::MIN))
            .unwrap_err()
            .contains("infinity"));
        assert_eq!(be_i64(&[0; 4]).unwrap_err(), "8 bytes, the server sent 4");
        assert_eq!(be_i64(&(-42i64).to_be_bytes()), Ok(-42));
        assert_eq!(boolean(&[1]), Ok(true));
        assert_eq!(boolean(&[0]), Ok(false));
        assert_eq!(boolean(&[]).unwrap_err(), "1 byte, the server sent 0");
    }

    #[test]
    fn row_estimates_are_read_from_plans() {
        let plan = r#"[{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 998877, "Plan Width": 4}}]"#;
        assert_eq!(plan_rows(plan), Some(998_877));
        assert_eq!(plan_rows(r#"[{"Plan": {"Plan Rows": 12.6}}]"#), Some(13));
        assert_eq!(plan_rows(r#"[{"Plan": {}}]"#), None);
        assert_eq!(plan_rows("not json"), None);
    }

    /// Every store type is read in the binary format of the column type the store creates
    /// for it (and strings from the other text types too); nothing else is accepted.
    #[test]
    fn columns_are_read_only_in_the_types_the_store_creates() {
        let created = [
            (ColumnType::String, PgType::TEXT),
            (ColumnType::Int64, PgType::INT8),
            (ColumnType::Double, PgType::FLOAT8),
            (ColumnType::Bool, PgType::BOOL),
            (ColumnType::Binary, PgType::BYTEA),
            (ColumnType::TimestampMs, PgType::TIMESTAMPTZ),
        ];
        for (ty, pg) in &created {
            for (_, other) in &created {
                assert_eq!(sends_as(*ty, other), pg == other, "{ty} as {other}");
            }
        }
        assert!(sends_as(ColumnType::String, &PgType::VARCHAR));
        assert!(!sends_as(ColumnType::Int64, &PgType::INT4));
        assert!(!sends_as(ColumnType::TimestampMs, &PgType::TIMESTAMP));
    }
}
