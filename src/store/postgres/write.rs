//! Small writes to a PostgreSQL data table ([`Store::apply`](crate::store::Store::apply) of
//! fewer than [`BULK_FROM`](bulk::BULK_FROM) changes; larger ones and snapshot imports take the
//! [`bulk`](super::bulk) path): changes go to the server in batches of up to [`BATCH_ROWS`],
//! each one statement over `unnest`ed arrays, and the transaction ends by allocating the
//! `_seq` of every row it changed (see the module docs of [`postgres`](super): sequence at
//! commit).
//!
//! An upsert batch is one `INSERT … ON CONFLICT DO UPDATE … WHERE <the row differs>`: an
//! unchanged row is not written at all. Each change has an ordinal (its place among the
//! transaction's changes); rows are written with `_seq = -ordinal`, and [`Writer::commit`]
//! locks the meta row and renumbers them in ordinal order above the store's `seq`. The lock
//! is held only for the commit's last statements, so small writers run in parallel.
//!
//! A key repeated within a batch
//! would make `ON CONFLICT` touch one row twice, so a repeat (or a switch between upserts and
//! deletes) sends the batch first: changes apply in their order. A batch's rows are inserted
//! in key order, so two writers of overlapping keys lock them in the same order (and wait
//! for each other rather than deadlock) as long as each writes its keys in ascending order.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::bulk;
use super::postgres::types::ToSql;
use super::postgres::Transaction;
use super::{array_type, count, non_negative, now_ms, PostgresStore, TableSql};
use crate::error::{Error, Result};
use crate::model::ColumnType;
use crate::store::{ApplyOutcome, Change, Value};

/// Changes sent to the server in one statement at most.
pub(crate) const BATCH_ROWS: usize = 4096;

/// Applies `changes` to `table` in one transaction (see [`Store::apply`](crate::store::Store::apply)):
/// the first [`bulk::BULK_FROM`] changes (the store's `bulk_from`) are taken and checked; when the
/// input ends before, they go through the [`Writer`], else every change goes through the
/// [`bulk`] path.
pub(super) fn apply(
    store: &PostgresStore,
    table: &str,
    changes: &mut dyn Iterator<Item = Result<Change>>,
) -> Result<ApplyOutcome> {
    let mut conn = store.conn()?;
    let t = store.table_sql(&mut *conn, table)?;
    let mut tx = conn
        .transaction()
        .map_err(store.db(format_args!("starting a write to table {table}")))?;
    // On any error `tx` is dropped, which rolls everything back.
    let mut first = Vec::new();
    let large = loop {
        if first.len() >= store.bulk_from {
            break true;
        }
        match changes.next() {
            Some(change) => first.push(checked(&t, change?)?),
            None => break false,
        }
    };
    let out = if large {
        let mut all = first
            .into_iter()
            .map(Ok)
            .chain(changes.map(|c| c.and_then(|c| checked(&t, c))));
        let staged = bulk::stage(store, &mut tx, &t, &mut all)?;
        bulk::merge(store, &mut tx, &t, &staged, None)?.0
    } else {
        let mut w = Writer::new(store, &t);
        for change in first {
            match change {
                Change::Upsert(values) => w.upsert(&mut tx, values)?,
                Change::Delete(key) => w.delete(&mut tx, key)?,
            }
        }
        w.commit(&mut tx)?
    };
    tx.commit()
        .map_err(store.db(format_args!("committing a write to table {table}")))?;
    Ok(out)
}

/// `change` checked against table `t`.
fn checked(t: &TableSql, change: Change) -> Result<Change> {
    match &change {
        Change::Upsert(values) => t.check_row(values)?,
        Change::Delete(key) => t.check_key(key)?,
    }
    Ok(change)
}

/// The values of one column of a batch, as the array parameter `unnest` takes.
enum ColumnArray {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Double(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Time(Vec<Option<DateTime<Utc>>>),
}

impl ColumnArray {
    fn new(ty: ColumnType) -> ColumnArray {
        match ty {
            ColumnType::String => ColumnArray::Text(Vec::new()),
            ColumnType::Int64 => ColumnArray::Int(Vec::new()),
            ColumnType::Double => ColumnArray::Double(Vec::new()),
            ColumnType::Bool => ColumnArray::Bool(Vec::new()),
            ColumnType::Binary => ColumnArray::Bytes(Vec::new()),
            ColumnType::TimestampMs => ColumnArray::Time(Vec::new()),
        }
    }

    /// Appends a value already checked against the column's type.
    fn push(&mut self, v: Value) -> Result<()> {
        match (self, v) {
            (ColumnArray::Text(a), Value::String(s)) => a.push(Some(s)),
            (ColumnArray::Int(a), Value::Int64(v)) => a.push(Some(v)),
            (ColumnArray::Double(a), Value::Double(v)) => a.push(Some(v)),
            (ColumnArray::Bool(a), Value::Bool(v)) => a.push(Some(v)),
            (ColumnArray::Bytes(a), Value::Binary(v)) => a.push(Some(v)),
            (ColumnArray::Time(a), Value::TimestampMs(ms)) => a.push(Some(
                DateTime::from_timestamp_millis(ms).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "timestamp {ms} ms is outside the range PostgreSQL stores"
                    ))
                })?,
            )),
            (ColumnArray::Text(a), Value::Null) => a.push(None),
            (ColumnArray::Int(a), Value::Null) => a.push(None),
            (ColumnArray::Double(a), Value::Null) => a.push(None),
            (ColumnArray::Bool(a), Value::Null) => a.push(None),
            (ColumnArray::Bytes(a), Value::Null) => a.push(None),
            (ColumnArray::Time(a), Value::Null) => a.push(None),
            (_, v) => {
                return Err(Error::store(format!(
                    "a checked value does not fit its column: {v:?}"
                )))
            }
        }
        Ok(())
    }

    fn clear(&mut self) {
        match self {
            ColumnArray::Text(a) => a.clear(),
            ColumnArray::Int(a) => a.clear(),
            ColumnArray::Double(a) => a.clear(),
            ColumnArray::Bool(a) => a.clear(),
            ColumnArray::Bytes(a) => a.clear(),
            ColumnArray::Time(a) => a.clear(),
        }
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            ColumnArray::Text(a) => a,
            ColumnArray::Int(a) => a,
            ColumnArray::Double(a) => a,
            ColumnArray::Bool(a) => a,
            ColumnArray::Bytes(a) => a,
            ColumnArray::Time(a) => a,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Upsert,
    Delete,
}

/// The batches and counters of one small write transaction to one table.
pub(super) struct Writer<'s> {
    store: &'s PostgresStore,
    t: &'s TableSql,
    kind: Kind,
    /// Upserts: every column; deletes: the key columns.
    columns: Vec<ColumnArray>,
    ords: Vec<i64>,
    /// Keys in the batch (their debug rendering: exact, and types never mix in a column).
    keys: HashSet<String>,
    next_ord: i64,
    out: ApplyOutcome,
    upsert_sql: String,
    delete_sql: String,
}

impl<'s> Writer<'s> {
    /// A writer for `t`.
    pub(super) fn new(store: &'s PostgresStore, t: &'s TableSql) -> Self {
        Writer {
            store,
            t,
            kind: Kind::Upsert,
            columns: Vec::new(),
            ords: Vec::new(),
            keys: HashSet::new(),
            next_ord: 0,
            out: ApplyOutcome::default(),
            upsert_sql: upsert_sql(t),
            delete_sql: delete_sql(t),
        }
    }

    /// Queues a checked upsert.
    pub(super) fn upsert(&mut self, tx: &mut Transaction<'_>, values: Vec<Value>) -> Result<()> {
        let key = self.key_text(self.t.key_idx.iter().map(|&i| &values[i]));
        self.start(tx, Kind::Upsert, key)?;
        for (col, v) in self.columns.iter_mut().zip(values) {
            col.push(v)?;
        }
        Ok(())
    }

    /// Queues a checked delete (key values in key order).
    pub(super) fn delete(&mut self, tx: &mut Transaction<'_>, key: Vec<Value>) -> Result<()> {
        let text = self.key_text(key.iter());
        self.start(tx, Kind::Delete, text)?;
        for (col, v) in self.columns.iter_mut().zip(key) {
            col.push(v)?;
        }
        Ok(())
    }

    fn key_text<'v>(&self, key: impl Iterator<Item = &'v Value>) -> String {
        let mut s = String::new();
        for v in key {
            use std::fmt::Write as _;
            let _ = write!(s, "{v:?}\u{0}");
        }
        s
    }

    /// Makes room in the batch for one change of `kind` with key `key`, sending the batch
    /// first when it is full, of the other kind, or holds the key already.
    fn start(&mut self, tx: &mut Transaction<'_>, kind: Kind, key: String) -> Result<()> {
        if !self.ords.is_empty()
            && (kind != self.kind || self.ords.len() >= BATCH_ROWS || self.keys.contains(&key))
        {
            self.flush(tx)?;
        }
        if self.ords.is_empty() {
            self.kind = kind;
            let def = &self.t.def;
            self.columns = match kind {
                Kind::Upsert => def.columns.iter().map(|c| ColumnArray::new(c.ty)).collect(),
                Kind::Delete => self
                    .t
                    .key_idx
                    .iter()
                    .map(|&i| ColumnArray::new(def.columns[i].ty))
                    .collect(),
            };
        }
        self.keys.insert(key);
        self.next_ord += 1;
        self.ords.push(self.next_ord);
        Ok(())
    }

    /// Sends the queued batch, its rows numbered `-ordinal`.
    fn flush(&mut self, tx: &mut Transaction<'_>) -> Result<()> {
        if self.ords.is_empty() {
            return Ok(());
        }
        let table = self.t.name();
        let write_time = time_of(now_ms())?;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            self.columns.iter().map(ColumnArray::param).collect();
        params.extend([&self.ords as &(dyn ToSql + Sync), &write_time]);
        let sent = self.ords.len() as u64;
        let (sql, what) = match self.kind {
            Kind::Upsert => (&self.upsert_sql, "writing rows"),
            Kind::Delete => (&self.delete_sql, "deleting rows"),
        };
        let row = tx
            .query_one(sql.as_str(), &params)
            .map_err(self.store.db(format_args!("{what} of table {table}")))?;
        let first = count(&row, 0, "a row count")?;
        let second = count(&row, 1, "a row count")?;
        match self.kind {
            Kind::Upsert => {
                self.out.inserted += first;
                self.out.updated += second;
            }
            Kind::Delete => self.out.deleted += first,
        }
        self.out.unchanged += sent - first - second;
        for c in &mut self.columns {
            c.clear();
        }
        self.ords.clear();
        self.keys.clear();
        Ok(())
    }

    /// Sends what is queued, then gives the transaction's rows their final `_seq`: locks the
    /// meta row and renumbers the rows in ordinal order after the store's `seq` with one
    /// write time (never below the previous transaction's); stores the new `seq`. Returns
    /// the outcome; the caller commits right after.
    pub(super) fn commit(mut self, tx: &mut Transaction<'_>) -> Result<ApplyOutcome> {
        self.flush(tx)?;
        let (store, t) = (self.store, self.t);
        let table = t.name();
        let at = || store.db(format!("allocating the _seq of a write to table {table}"));
        let written = self.out.inserted + self.out.updated + self.out.deleted;
        if written == 0 {
            let row = tx
                .query_one(super::READ_SEQ, &[])
                .map_err(store.db("reading the store's seq"))?;
            self.out.seq = count(&row, 0, "the store's seq")?;
            return Ok(self.out);
        }
        let (base, write_ms) = super::lock_meta(store, tx, table)?;
        let renumbered = tx
            .execute(
                &format!(
                    "UPDATE {data} d SET \"_seq\" = $1 + r.\"_n\", \"_write_time\" = $2 \
                     FROM (SELECT {keys}, row_number() OVER (ORDER BY \"_seq\" DESC) \
                           AS \"_n\" FROM {data} WHERE \"_seq\" < 0) r \
                     WHERE {join}",
                    data = t.data,
                    keys = t.key_list,
                    join = t.key_join("d", "r"),
                ),
                &[&base, &time_of(write_ms)?],
            )
            .map_err(at())?;
        let seq = base + i64::try_from(renumbered).unwrap_or(i64::MAX);
        tx.execute(
            r#"UPDATE "_lakeport_meta" SET "seq" = $1, "last_write_ms" = $2 WHERE "id" = 1"#,
            &[&seq, &write_ms],
        )
        .map_err(at())?;
        self.out.seq = non_negative(seq, "the store's seq")?;
        Ok(self.out)
    }
}

/// A time in ms since the epoch as PostgreSQL's `timestamptz`.
fn time_of(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Error::store(format!("write time {ms} ms is out of range")))
}

/// The upsert of one batch: parameters are one array per column, the ordinals, then the
/// write time (`_seq = -ordinal`); returns one row (inserted, updated), inserted counting
/// revived tombstones.
fn upsert_sql(t: &TableSql) -> String {
    let n = t.def.columns.len();
    let cols: Vec<String> = (0..n).map(|i| t.col(i)).collect();
    let all = cols.join(", ");
    let arrays = t
        .def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 1, array_type(c.ty)))
        .chain(std::iter::once(format!("${}::int8[]", n + 1)))
        .collect::<Vec<_>>()
        .join(", ");
    let time = n + 2;
    let d_keys = t.columns_of(&t.key_idx, "d.");
    let mut sets: Vec<String> = t
        .other_idx
        .iter()
        .map(|&i| format!("{c} = excluded.{c}", c = cols[i]))
        .collect();
    sets.push("\"_seq\" = excluded.\"_seq\"".into());
    sets.push("\"_write_time\" = excluded.\"_write_time\"".into());
    sets.push("\"_deleted\" = false".into());
    let differs = if t.other_idx.is_empty() {
        "d.\"_deleted\"".to_string()
    } else {
        format!("d.\"_deleted\" OR {}", t.differs("d", "excluded"))
    };
    format!(
        "WITH i AS (SELECT * FROM unnest({arrays}) AS i({all}, \"_ord\")), \
         o AS (SELECT {d_keys}, d.\"_deleted\" FROM {data} d JOIN i ON {join_di}), \
         w AS (INSERT INTO {data} AS d ({all}, \"_seq\", \"_write_time\", \"_deleted\") \
               SELECT {all}, -\"_ord\", ${time}::timestamptz, false FROM i ORDER BY {keys} \
               ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE {differs} \
               RETURNING {d_keys}) \
         SELECT count(*) FILTER (WHERE o.\"_deleted\" IS NOT FALSE), \
                count(*) FILTER (WHERE o.\"_deleted\" IS FALSE) \
         FROM w LEFT JOIN o ON {join_wo}",
        data = t.data,
        keys = t.key_list,
        join_di = t.key_join("d", "i"),
        join_wo = t.key_join("w", "o"),
        sets = sets.join(", "),
    )
}

/// The tombstoning of one batch of keys: parameters are one array per key column, the
/// ordinals, then the write time (`_seq = -ordinal`); returns one row (tombstones written,
/// 0).
fn delete_sql(t: &TableSql) -> String {
    let k = t.key_idx.len();
    let arrays = t
        .key_idx
        .iter()
        .enumerate()
        .map(|(j, &i)| format!("${}::{}", j + 1, array_type(t.def.columns[i].ty)))
        .chain(std::iter::once(format!("${}::int8[]", k + 1)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sets: Vec<String> = t
        .other_idx
        .iter()
        .map(|&i| format!("{} = NULL", t.col(i)))
        .collect();
    sets.push("\"_seq\" = -i.\"_ord\"".into());
    sets.push(format!("\"_write_time\" = ${}::timestamptz", k + 2));
    sets.push("\"_deleted\" = true".into());
    format!(
        "WITH i AS (SELECT * FROM unnest({arrays}) AS i({keys}, \"_ord\")), \
         u AS (UPDATE {data} d SET {sets} FROM i WHERE {join} AND NOT d.\"_deleted\" \
               RETURNING 1) \
         SELECT count(*), 0::int8 FROM u",
        keys = t.key_list,
        data = t.data,
        sets = sets.join(", "),
        join = t.key_join("d", "i"),
    )
}
