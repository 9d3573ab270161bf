//! Writes to a SQLite data table: [`Store::apply`](crate::store::Store::apply), one
//! `BEGIN IMMEDIATE` transaction on the write connection, and the row-by-row writes that
//! snapshot imports share with it ([`Applier`], [`Statements`]). Each change is looked up by
//! its key and compared with the stored row: an unchanged row is not written and takes no
//! `_seq`, every other change takes the next one, and the transaction ends by storing the
//! store's new `seq` and `last_write_time`. Also the purge of old tombstones.
//!
//! The changes of one `apply` are checked (types, keys) as they arrive and sorted by key
//! before the write lock is taken, as an import's rows are ([`sorter`](crate::store::sorter):
//! bounded memory, runs beyond `LAKEPORT_SORT_MEMORY_MB` in `TMPDIR`), then applied in key
//! order: a file of rows in random key order then touches each B-tree page once, in order,
//! instead of once per row at random (`lakeport load` of 1M NDJSON rows in random key order:
//! 9.0–9.6 s instead of 21.5–23.2 s, measured 2026-12-07), and a bad row is refused before
//! anything is locked. Changes to one key keep the order they came in (the sort is stable), so
//! the last one wins; `_seq` follows key order within the transaction, as in an import.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Statement, ToSql, TransactionBehavior};

use super::schema::{pack_etag, raise_seq_index_floor, read_meta, TableSql, READ_SEQ};
use super::{db, SqliteStore};
use crate::error::{Error, Result};
use crate::store::row_bytes::{Field, RowCodec};
use crate::store::sorter::{memory_budget, RowSorter};
use crate::store::sql::{non_negative, now_ms};
use crate::store::{ApplyOutcome, Change, Value};

const READ_LAST_WRITE_TIME: &str =
    r#"SELECT "value" FROM "_lakeport_meta" WHERE "key" = 'last_write_time'"#;
const WRITE_META: &str = r#"UPDATE "_lakeport_meta" SET "value" = ?2 WHERE "key" = ?1"#;

/// Last byte of a sorted change: an upsert (the row follows its key) or a delete (the key
/// alone).
const UPSERT: u8 = 0;
const DELETE: u8 = 1;

/// [`Store::apply`](crate::store::Store::apply).
pub(super) fn apply(
    store: &SqliteStore,
    table: &str,
    changes: &mut dyn Iterator<Item = Result<Change>>,
) -> Result<ApplyOutcome> {
    let started = std::time::Instant::now();
    let t = store.table_sql(&store.lock(), table)?;
    let codec = RowCodec::new(t.def.columns.iter().map(|c| c.ty).collect(), &t.key_idx);
    let mut sorter = RowSorter::new(memory_budget()?);
    for change in changes {
        match change? {
            Change::Upsert(values) => {
                t.check_row(&values)?;
                sorter.push_with(|out| {
                    let key_len = codec.encode_values(&values, out);
                    out.push(UPSERT);
                    key_len
                })?;
            }
            Change::Delete(key) => {
                t.check_key(&key)?;
                sorter.push_with(|out| {
                    let key_len = codec.encode_key(&key, out);
                    out.push(DELETE);
                    key_len
                })?;
            }
        }
    }
    let rows = sorter.rows();
    let mut sorted = sorter.finish()?;
    tracing::debug!(
        rows,
        seconds = started.elapsed().as_secs_f64(),
        "changes read, checked and sorted; writing them in key order"
    );

    let mut conn = store.lock();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db(format_args!("starting a write to table {table}")))?;
    if store.table_sql(&tx, table)?.def != t.def {
        return Err(Error::Conflict(format!(
            "table {table} was redeclared while the rows were read; write them again"
        )));
    }
    // On any error `tx` is dropped, which rolls everything back.
    let mut a = Applier::begin(&tx, &t)?;
    {
        let mut s = Statements::prepare(&tx, &a)?;
        while let Some((row, key_len)) = sorted.next_row()? {
            match row.split_last() {
                Some((&UPSERT, encoded)) => a.upsert(&mut s, &codec.decode(encoded)?)?,
                Some((&DELETE, _)) => a.delete(&mut s, &codec.decode_key(&row[..key_len])?)?,
                _ => {
                    return Err(Error::store(
                        "a sorted change has no kind (a corrupt sort run)",
                    ))
                }
            }
        }
    }
    let out = a.finish(&tx)?;
    tx.commit()
        .map_err(db(format_args!("committing a write to table {table}")))?;
    Ok(out)
}

/// [`Store::purge_tombstones`](crate::store::Store::purge_tombstones).
pub(super) fn purge_tombstones(store: &SqliteStore, table: &str, up_to_seq: u64) -> Result<u64> {
    let conn = store.lock();
    let t = store.table_sql(&conn, table)?;
    let at = || db(format!("purging tombstones of table {table}"));
    let tx = conn.unchecked_transaction().map_err(at())?;
    let purged = tx
        .execute(
            &format!(
                "DELETE FROM {} WHERE \"_deleted\" = 1 AND \"_seq\" <= ?1",
                t.data
            ),
            [i64::try_from(up_to_seq).unwrap_or(i64::MAX)],
        )
        .map_err(at())?;
    if purged > 0 {
        // Rows went without a new `seq`: what was read of the table before is stale (see
        // `read::lag`).
        tx.execute(
            r#"INSERT INTO "_lakeport_meta" ("key", "value") VALUES ('tombstones_purged', ?1)
               ON CONFLICT ("key") DO UPDATE SET "value" = "value" + excluded."value""#,
            [purged as i64],
        )
        .map_err(at())?;
    }
    tx.commit().map_err(at())?;
    Ok(purged as u64)
}

/// Binds column `i`'s value `field` of a row at `?i+1` of an insert or update of table `t`:
/// as it is, or packed when it is the table's packed column ([`TableSql::packed`]).
pub(super) fn bind_column(
    stmt: &mut Statement<'_>,
    t: &TableSql,
    i: usize,
    field: Field<'_>,
) -> rusqlite::Result<()> {
    if t.packed == Some(i) {
        if let Field::Text(text) = field {
            if let Some(bytes) = pack_etag(text) {
                return stmt.raw_bind_parameter(i + 1, &bytes[..]);
            }
        }
    }
    stmt.raw_bind_parameter(i + 1, FieldSql(field))
}

/// Binds a [`Field`] without copying it.
struct FieldSql<'a>(Field<'a>);

impl ToSql for FieldSql<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Field::Null => ValueRef::Null,
            Field::Int(n) => ValueRef::Integer(n),
            Field::Real(d) => ValueRef::Real(d),
            Field::Text(t) => ValueRef::Text(t),
            Field::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Binds a [`Value`] without copying it.
pub(super) struct Bind<'a>(pub(super) &'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::String(s) => ValueRef::Text(s.as_bytes()),
            Value::Int64(v) | Value::TimestampMs(v) => ValueRef::Integer(*v),
            Value::Double(v) => ValueRef::Real(*v),
            Value::Bool(b) => ValueRef::Integer(i64::from(*b)),
            Value::Binary(b) => ValueRef::Blob(b),
        }))
    }
}

/// Whether `v` equals the stored `r`. Doubles are equal when bit-identical, both NaN, or both
/// zero (SQLite keeps no sign on a zero REAL). A stored value of another storage class differs.
fn same(v: &Value, r: ValueRef<'_>) -> bool {
    match (v, r) {
        (Value::Null, ValueRef::Null) => true,
        (Value::String(s), ValueRef::Text(t)) => s.as_bytes() == t,
        (Value::Int64(a) | Value::TimestampMs(a), ValueRef::Integer(b)) => *a == b,
        (Value::Bool(a), ValueRef::Integer(b)) => i64::from(*a) == b,
        (Value::Double(a), ValueRef::Real(b)) => {
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) || (*a == 0.0 && b == 0.0)
        }
        (Value::Binary(a), ValueRef::Blob(b)) => a.as_slice() == b,
        _ => false,
    }
}

/// What the store holds for one key.
pub(super) enum Stored {
    Absent,
    Tombstone,
    Same,
    Different,
}

/// Counters of one `apply`.
pub(super) struct Applier<'t> {
    t: &'t TableSql,
    /// `seq` when the write began.
    start_seq: i64,
    seq: i64,
    pub(super) write_time: i64,
    /// Whether the rows this write changes go into the `_seq` index (see
    /// [`stop_indexing`](Applier::stop_indexing)).
    seq_indexed: bool,
    /// Changes after which the write stops indexing (see
    /// [`index_at_most`](Applier::index_at_most)).
    index_until: u64,
    out: ApplyOutcome,
}

impl Applier<'_> {
    fn err(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |e| Error::store_caused(format!("{what} in table {}", self.t.name()), e)
    }

    /// Looks `key` up (`key_at(j)` is the j-th key value) and compares the stored row with
    /// `values` (None for a delete, which only needs to know whether the row is live).
    fn stored<'v>(
        &self,
        lookup: &mut rusqlite::Statement<'_>,
        key_at: impl Fn(usize) -> &'v Value,
        values: Option<&[Value]>,
    ) -> Result<Stored> {
        for j in 0..self.t.key_idx.len() {
            lookup
                .raw_bind_parameter(j + 1, Bind(key_at(j)))
                .map_err(self.err("binding a key"))?;
        }
        let mut rows = lookup.raw_query();
        let Some(row) = rows.next().map_err(self.err("looking up a key"))? else {
            return Ok(Stored::Absent);
        };
        self.compare_stored(row, 0, values)
    }

    /// Compares a stored row whose `_deleted` is column `at`, followed by the other columns
    /// in table order, with `values` (None: only whether it is live).
    fn compare_stored(
        &self,
        row: &rusqlite::Row<'_>,
        at: usize,
        values: Option<&[Value]>,
    ) -> Result<Stored> {
        let deleted: i64 = row.get(at).map_err(self.err("looking up a key"))?;
        if deleted != 0 {
            return Ok(Stored::Tombstone);
        }
        let Some(values) = values else {
            return Ok(Stored::Same);
        };
        for (p, &i) in self.t.other_idx.iter().enumerate() {
            let r = row
                .get_ref(at + p + 1)
                .map_err(self.err("looking up a key"))?;
            if !same(&values[i], r) {
                return Ok(Stored::Different);
            }
        }
        Ok(Stored::Same)
    }

    /// Upserts a row its caller has checked ([`TableSql::check_row`]: `apply` and imports
    /// check every row as it arrives, before the sort).
    pub(super) fn upsert(&mut self, s: &mut Statements<'_>, values: &[Value]) -> Result<()> {
        let key_idx = &self.t.key_idx;
        let stored = self.stored(&mut s.lookup, |j| &values[key_idx[j]], Some(values))?;
        self.write_upsert(s, values, stored)
    }

    /// Writes a checked upsert given what the store holds for its key.
    fn write_upsert(
        &mut self,
        s: &mut Statements<'_>,
        values: &[Value],
        stored: Stored,
    ) -> Result<()> {
        let table = self.t.name();
        self.write_upsert_with(s, stored, |stmt| {
            for (i, v) in values.iter().enumerate() {
                bind_column(stmt, self.t, i, Field::from(v)).map_err(|e| {
                    Error::store_caused(format!("binding a value in table {table}"), e)
                })?;
            }
            Ok(())
        })
    }

    /// Writes an upsert given what the store holds for its key; `bind` binds the row's
    /// columns to the insert or update statement (column i at `?i+1`).
    pub(super) fn write_upsert_with(
        &mut self,
        s: &mut Statements<'_>,
        stored: Stored,
        bind: impl FnOnce(&mut rusqlite::Statement<'_>) -> Result<()>,
    ) -> Result<()> {
        // Decided before the counters are borrowed below; an unchanged row leaves them as
        // they are, so deciding for it too changes nothing.
        let indexed = self.indexes_next();
        let (stmt, counter) = match stored {
            Stored::Same => {
                self.out.unchanged += 1;
                return Ok(());
            }
            Stored::Absent => (&mut s.insert, &mut self.out.inserted),
            Stored::Tombstone => (&mut s.update, &mut self.out.inserted),
            Stored::Different => (&mut s.update, &mut self.out.updated),
        };
        let table = self.t.name();
        let at = |what: &'static str| {
            move |e: rusqlite::Error| Error::store_caused(format!("{what} in table {table}"), e)
        };
        let seq = self.seq + 1;
        let n = self.t.def.columns.len();
        bind(stmt)?;
        stmt.raw_bind_parameter(n + 1, seq)
            .map_err(at("binding _seq"))?;
        stmt.raw_bind_parameter(n + 2, self.write_time)
            .map_err(at("binding _write_time"))?;
        if self.t.partial_seq_index {
            stmt.raw_bind_parameter(n + 3, indexed)
                .map_err(at("binding _seq_indexed"))?;
        }
        stmt.raw_execute().map_err(at("writing a row"))?;
        *counter += 1;
        self.seq = seq;
        Ok(())
    }

    /// Deletes by a key its caller has checked ([`TableSql::check_key`], before the sort).
    fn delete(&mut self, s: &mut Statements<'_>, key: &[Value]) -> Result<()> {
        match self.stored(&mut s.lookup, |j| &key[j], None)? {
            Stored::Absent | Stored::Tombstone => self.out.unchanged += 1,
            Stored::Same | Stored::Different => {
                self.write_tombstone(s, key.iter().map(Bind))?;
            }
        }
        Ok(())
    }

    /// Tombstones the live row with `key` (in key order) under the next `_seq`.
    pub(super) fn write_tombstone(
        &mut self,
        s: &mut Statements<'_>,
        key: impl IntoIterator<Item = impl ToSql>,
    ) -> Result<()> {
        self.seq += 1;
        let stmt = &mut s.tombstone;
        stmt.raw_bind_parameter(1, self.seq)
            .map_err(self.err("binding _seq"))?;
        stmt.raw_bind_parameter(2, self.write_time)
            .map_err(self.err("binding _write_time"))?;
        for (j, v) in key.into_iter().enumerate() {
            stmt.raw_bind_parameter(j + 3, v)
                .map_err(self.err("binding a key"))?;
        }
        if self.t.partial_seq_index {
            let indexed = self.indexes_next();
            stmt.raw_bind_parameter(3 + self.t.key_idx.len(), indexed)
                .map_err(self.err("binding _seq_indexed"))?;
        }
        stmt.raw_execute()
            .map_err(self.err("writing a tombstone"))?;
        self.out.deleted += 1;
        Ok(())
    }
}

pub(super) struct Statements<'c> {
    lookup: rusqlite::CachedStatement<'c>,
    insert: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
    tombstone: rusqlite::CachedStatement<'c>,
}

impl<'t> Applier<'t> {
    /// Starts counting a write to `t` inside the caller's transaction on `conn`.
    pub(super) fn begin(conn: &Connection, t: &'t TableSql) -> Result<Applier<'t>> {
        let start_seq = read_meta(conn, READ_SEQ, "seq")?;
        let last_write_time = read_meta(conn, READ_LAST_WRITE_TIME, "last_write_time")?;
        Ok(Applier {
            t,
            start_seq,
            seq: start_seq,
            write_time: now_ms().max(last_write_time),
            seq_indexed: true,
            index_until: u64::MAX,
            out: ApplyOutcome::default(),
        })
    }

    /// Stops indexing (as [`stop_indexing`](Applier::stop_indexing)) once the write has
    /// made `changes` changes: those are indexed, the ones after are not.
    pub(super) fn index_at_most(&mut self, changes: u64) {
        self.index_until = changes;
    }

    /// Whether the change about to be written goes into the `_seq` index.
    fn indexes_next(&mut self) -> bool {
        if self.out.inserted + self.out.updated + self.out.deleted >= self.index_until {
            self.stop_indexing();
        }
        self.seq_indexed
    }

    /// Leaves the rows this write changes from here on out of the `_seq` index; at the end
    /// the table's `_seq` index floor is raised to the write's last `_seq`, so that changes
    /// since a checkpoint below it are read by key ranges (for a write that changes a large
    /// share of a table: the index would cost as much as its rows' keys, and reading such a
    /// change set through it is slower than reading the table in key order anyway).
    pub(super) fn stop_indexing(&mut self) {
        if self.t.partial_seq_index {
            self.seq_indexed = false;
        }
    }

    /// Stores the new `seq` and `last_write_time` when anything changed; the outcome.
    pub(super) fn finish(mut self, conn: &Connection) -> Result<ApplyOutcome> {
        if !self.seq_indexed && self.seq != self.start_seq {
            raise_seq_index_floor(conn, self.t.name(), self.seq)?;
        }
        if self.seq != self.start_seq {
            let mut w = conn
                .prepare_cached(WRITE_META)
                .map_err(db("writing the store's seq"))?;
            w.execute(rusqlite::params!["seq", self.seq])
                .map_err(db("writing the store's seq"))?;
            w.execute(rusqlite::params!["last_write_time", self.write_time])
                .map_err(db("writing the store's last_write_time"))?;
        }
        self.out.seq = non_negative(self.seq, "the store's seq")?;
        Ok(self.out)
    }
}

impl<'c> Statements<'c> {
    pub(super) fn prepare(conn: &'c Connection, a: &Applier<'_>) -> Result<Statements<'c>> {
        let prepare = |sql: &str| conn.prepare_cached(sql).map_err(a.err("preparing"));
        Ok(Statements {
            lookup: prepare(&a.t.lookup)?,
            insert: prepare(&a.t.insert)?,
            update: prepare(&a.t.update)?,
            tombstone: prepare(&a.t.tombstone)?,
        })
    }
}
