//! Snapshot imports in SQLite ([`Store::apply_snapshot`](crate::store::Store::apply_snapshot)):
//! one write transaction that upserts a snapshot's rows, tombstones the rows of its scope the
//! snapshot did not hold, and records the import in `_lakeport_imports`.
//!
//! Every row is checked (types, scope) as it arrives, encoded as bytes
//! ([`row_bytes`](crate::store::row_bytes)) and handed to an external sort
//! ([`sorter`](crate::store::sorter)): bounded memory whatever the snapshot's size or order,
//! and the report is parsed on its own thread meanwhile. The sorted rows are then merged with
//! the scope's stored rows (live and tombstones), which are read in key order a chunk at a
//! time ([`ScopeCursor`]: one primary-key seek per [`SCAN_CHUNK`] rows) and encoded the same
//! way, so that an unchanged row is recognised by comparing bytes, without a lookup and
//! without a value on the heap:
//! - a stored row whose key comes before the snapshot's next row is absent from the snapshot
//!   and becomes a tombstone (if live);
//! - equal keys: equal bytes leave the row alone (no write, no `_seq`); otherwise the row is
//!   updated (a tombstone revived counts as an insert);
//! - a snapshot row past every stored row of its scope so far is inserted; rows arrive in key
//!   order, so the table and its indexes grow by appends.
//!
//! A key the snapshot repeats comes out of the sort in arrival order; the repeats are applied
//! as plain upserts after the first, so the last row of a key wins, as in any other write.
//! Writes go in between chunk reads, always at keys the cursor has passed, so a chunk never
//! sees the import's own writes. Every change takes its own `_seq`, in key order.
//!
//! A large snapshot into an empty scope, in a store opened for a one-shot command, is written
//! with a rollback journal while it holds the store alone, when nothing else has the store
//! open (see the `journal` submodule): its pages are written once, not to the WAL and again.

use std::cmp::Ordering;
use std::time::Instant;

use rusqlite::types::ValueRef;
use rusqlite::{CachedStatement, Connection, OptionalExtension, TransactionBehavior};

use super::schema::TableSql;
use super::write::{bind_column, Applier, Bind, Statements, Stored};
use super::{db, journal, SqliteStore};
use crate::error::{Error, Result};
use crate::store::checks::{check_scope_columns, older_than_newest, snapshot_row};
use crate::store::listing::prefix_upper_bound;
use crate::store::row_bytes::{Field, RowCodec};
use crate::store::sorter::{memory_budget, RowSorter, SortedRows};
use crate::store::sql::{non_negative, quote};
use crate::store::{Change, ImportOutcome, ImportRecord, Value};

/// Columns of `_lakeport_imports` besides the JSON record, used to find earlier imports of a
/// scope without decoding every record.
pub(super) const CREATE_IMPORTS: &str = r#"
CREATE TABLE IF NOT EXISTS "_lakeport_imports" (
    "import_id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "tbl" TEXT NOT NULL,
    "scope_bucket" TEXT NOT NULL,
    "scope_prefix" TEXT NOT NULL,
    "manifest_md5" TEXT NOT NULL,
    "created_ms" INTEGER NOT NULL,
    "record" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS "_lakeport_imports_by_scope"
    ON "_lakeport_imports" ("tbl", "scope_bucket", "scope_prefix", "created_ms");
"#;

/// Stored rows read per seek of the scope.
const SCAN_CHUNK: usize = 1024;

/// The fewest rows of a snapshot import that leaves its rows out of the `_seq` index (the
/// store's `unindexed_min_rows`).
pub(super) const UNINDEXED_MIN_ROWS: u64 = 100_000;

/// The two statements that read a scope's stored rows in key order, a chunk at a time: every
/// key column, `_deleted`, then every other column in table order (a computed one too). `?1` is the bucket; the
/// first chunk starts at the prefix (`?2`), the next ones past a key (`?2..` the key columns
/// after the first); when the prefix has an upper bound it is the last parameter.
struct ScanSql {
    first: String,
    after: String,
}

impl ScanSql {
    /// `bounded`: the scope's prefix has an upper bound (see [`prefix_upper_bound`]).
    fn new(t: &TableSql, bounded: bool) -> ScanSql {
        let name = |i: usize| quote(&t.def.columns[i].name);
        let keys: Vec<String> = t.key_idx.iter().map(|&i| name(i)).collect();
        let key_list = keys.join(", ");
        // Every other column, a computed one too: the rows are compared as encoded bytes.
        let others: String = (0..t.def.columns.len())
            .filter(|&i| !t.is_key[i])
            .map(|i| format!(", {}", name(i)))
            .collect();
        let (k1, k2) = (&keys[0], &keys[1]);
        let tail = keys[1..].join(", ");
        let n = keys.len();
        let select = |from: &str, upper_at: usize| {
            let upper = if bounded {
                format!(" AND {k2} < ?{upper_at}")
            } else {
                String::new()
            };
            format!(
                "SELECT {key_list}, \"_deleted\"{others} FROM {data} \
                 WHERE {k1} = ?1 AND {from}{upper} ORDER BY {key_list} LIMIT {SCAN_CHUNK}",
                data = t.data
            )
        };
        let tail_params = (2..=n)
            .map(|p| format!("?{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        ScanSql {
            first: select(&format!("{k2} >= ?2"), 3),
            after: select(&format!("({tail}) > ({tail_params})"), n + 1),
        }
    }
}

impl SqliteStore {
    pub(super) fn apply_snapshot_impl(
        &self,
        draft: &ImportRecord,
        changes: &mut dyn Iterator<Item = Result<Change>>,
    ) -> Result<ImportOutcome> {
        let started = Instant::now();
        let table = draft.table.as_str();
        // Refuse what can be refused before reading a row, without holding the write lock
        // while the snapshot is read and sorted; checked again under it.
        let (t, upper) = {
            let conn = self.lock();
            let t = self.table_sql(&conn, table)?;
            check_scope_columns(&t.def, &t.key_idx)?;
            if let Some(earlier) = earlier_import(&conn, draft)? {
                return Ok(ImportOutcome::AlreadyImported(earlier));
            }
            refuse_older(&conn, draft)?;
            (t, prefix_upper_bound(&draft.scope_prefix))
        };

        let codec = RowCodec::new(t.def.columns.iter().map(|c| c.ty).collect(), &t.key_idx);
        let mut sorter = RowSorter::new(memory_budget()?);
        for change in changes {
            let values = snapshot_row(draft, &t.def, &t.key_idx, &t.is_key, t.derived, change?)?;
            sorter.push_with(|out| codec.encode_values(&values, out))?;
        }
        let rows = sorter.rows();
        let mut sorted = sorter.finish()?;
        tracing::debug!(
            rows,
            seconds = started.elapsed().as_secs_f64(),
            "snapshot read and sorted; merging with the stored scope"
        );

        let scope = Scope {
            bucket: &draft.scope_bucket,
            prefix: &draft.scope_prefix,
            upper: upper.as_deref(),
        };
        let mut conn = self.lock();
        let alone = self.alone
            && rows >= self.unindexed_min_rows
            && ScopeCursor::prepare(&conn, &t, &codec, scope)?
                .peek()?
                .is_none()
            && journal::take_alone(&conn, &self.path)?;
        let merged = self.merge_sorted(
            &mut conn,
            draft,
            &t,
            &codec,
            scope,
            rows,
            &mut sorted,
            started,
        );
        if alone {
            if let Err(e) = journal::give_back(&conn, &self.path) {
                // The import is in (or rolled back); the next open goes back to WAL mode.
                tracing::warn!(store = %self.path.display(), error = %e, "after a large import");
            }
        }
        merged
    }

    /// Merges the sorted rows of a snapshot of `rows` rows with its stored scope in one write
    /// transaction on `conn` (see the module's doc), and records the import.
    #[allow(clippy::too_many_arguments)]
    fn merge_sorted(
        &self,
        conn: &mut Connection,
        draft: &ImportRecord,
        t: &TableSql,
        codec: &RowCodec,
        scope: Scope<'_>,
        rows: u64,
        sorted: &mut SortedRows,
        started: Instant,
    ) -> Result<ImportOutcome> {
        let table = draft.table.as_str();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(format_args!("starting an import into table {table}")))?;
        if let Some(earlier) = earlier_import(&tx, draft)? {
            return Ok(ImportOutcome::AlreadyImported(earlier));
        }
        refuse_older(&tx, draft)?;
        if self.table_sql(&tx, table)?.def != t.def {
            return Err(Error::Conflict(format!(
                "{}: table {table} was redeclared while the snapshot was read; import it again",
                draft.manifest_url
            )));
        }
        let mut a = Applier::begin(&tx, t)?;
        {
            let mut s = Statements::prepare(&tx, &a)?;
            let mut stored = ScopeCursor::prepare(&tx, t, codec, scope)?;
            // A large snapshot into an empty scope, or one that changes a quarter of its rows
            // or more, leaves its rows out of the `_seq` index (`Applier::stop_indexing`).
            a.index_at_most(self.unindexed_min_rows.max(rows / 4));
            if rows >= self.unindexed_min_rows && stored.peek()?.is_none() {
                a.stop_indexing();
            }
            let mut previous_key: Option<Vec<u8>> = None;
            let mut scratch = Vec::new();
            while let Some((row, key_len)) = sorted.next_row()? {
                let key = &row[..key_len];
                if previous_key.as_deref() == Some(key) {
                    a.upsert(&mut s, &codec.decode(row)?)?;
                    continue;
                }
                let found = loop {
                    let Some(next) = stored.peek()? else {
                        break Stored::Absent;
                    };
                    match next.key().cmp(key) {
                        Ordering::Less => {
                            tombstone_if_live(&mut a, &mut s, codec, &next)?;
                            stored.advance();
                        }
                        Ordering::Equal => {
                            let found = if next.deleted {
                                Stored::Tombstone
                            } else if next.bytes == row {
                                Stored::Same
                            } else {
                                Stored::Different
                            };
                            stored.advance();
                            break found;
                        }
                        Ordering::Greater => break Stored::Absent,
                    }
                };
                a.write_upsert_with(&mut s, found, |stmt| {
                    codec.for_each_field(row, &mut scratch, |i, field| {
                        bind_column(stmt, t, i, field)
                            .map_err(db("binding a value of the snapshot"))
                    })
                })?;
                match &mut previous_key {
                    Some(p) => {
                        p.clear();
                        p.extend_from_slice(key);
                    }
                    None => previous_key = Some(key.to_vec()),
                }
            }
            // Whatever the scope holds past the snapshot's last key is absent from it.
            while let Some(next) = stored.peek()? {
                tombstone_if_live(&mut a, &mut s, codec, &next)?;
                stored.advance();
            }
        }
        let write_time = a.write_time;
        let out = a.finish(&tx)?;

        let mut record = ImportRecord::applied(draft, rows, &out, write_time, started);
        record.import_id = insert_record(&tx, &record)?;
        tx.commit()
            .map_err(db(format_args!("committing an import into table {table}")))?;
        Ok(ImportOutcome::Applied(record))
    }

    pub(super) fn imports_impl(&self, limit: usize) -> Result<Vec<ImportRecord>> {
        let conn = self.lock();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let at = || db("reading import records");
        let mut stmt = conn
            .prepare_cached(
                r#"SELECT "import_id", "record" FROM "_lakeport_imports"
                   ORDER BY "import_id" DESC LIMIT ?1"#,
            )
            .map_err(at())?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(at())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row.map_err(at())?;
            out.push(decode_record(id, &json)?);
        }
        Ok(out)
    }
}

fn decode_record(id: i64, json: &str) -> Result<ImportRecord> {
    serde_json::from_str(json).map_err(|e| {
        Error::store_caused(format!("the stored record of import {id} is not valid"), e)
    })
}

/// An import of the same snapshot into the same scope, if there was one.
fn earlier_import(conn: &Connection, draft: &ImportRecord) -> Result<Option<ImportRecord>> {
    let found: Option<(i64, String)> = conn
        .query_row(
            r#"SELECT "import_id", "record" FROM "_lakeport_imports"
               WHERE "tbl" = ?1 AND "scope_bucket" = ?2 AND "scope_prefix" = ?3
                 AND "manifest_md5" = ?4
               ORDER BY "import_id" DESC LIMIT 1"#,
            rusqlite::params![
                draft.table,
                draft.scope_bucket,
                draft.scope_prefix,
                draft.manifest_md5
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db("looking up earlier imports"))?;
    found.map(|(id, json)| decode_record(id, &json)).transpose()
}

/// Refuses a snapshot created before the newest one applied to its scope.
fn refuse_older(conn: &Connection, draft: &ImportRecord) -> Result<()> {
    let newest: Option<(i64, String)> = conn
        .query_row(
            r#"SELECT "import_id", "record" FROM "_lakeport_imports"
               WHERE "tbl" = ?1 AND "scope_bucket" = ?2 AND "scope_prefix" = ?3
               ORDER BY "created_ms" DESC, "import_id" DESC LIMIT 1"#,
            rusqlite::params![draft.table, draft.scope_bucket, draft.scope_prefix],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db("looking up earlier imports"))?;
    let Some((id, json)) = newest else {
        return Ok(());
    };
    older_than_newest(draft, &decode_record(id, &json)?)
}

/// The scope of a snapshot: its bucket, its key prefix and the prefix's upper bound.
#[derive(Clone, Copy)]
struct Scope<'d> {
    bucket: &'d str,
    prefix: &'d str,
    upper: Option<&'d str>,
}

/// One stored row as the cursor holds it.
struct StoredRow<'b> {
    /// The row encoded as the snapshot's rows are.
    bytes: &'b [u8],
    key_len: usize,
    deleted: bool,
}

impl StoredRow<'_> {
    fn key(&self) -> &[u8] {
        &self.bytes[..self.key_len]
    }
}

/// Reads a scope's stored rows (live and tombstones) in key order, [`SCAN_CHUNK`] at a time,
/// encoded into one buffer. Each chunk is read whole before the caller writes anything.
struct ScopeCursor<'c, 'd> {
    first: CachedStatement<'c>,
    after: CachedStatement<'c>,
    codec: &'d RowCodec,
    scope: Scope<'d>,
    buffer: Vec<u8>,
    /// (start, key length, end, deleted) of each row of the chunk in `buffer`.
    rows: Vec<(usize, usize, usize, bool)>,
    next: usize,
    /// The key (after the bucket) of the last row read, where the next chunk starts.
    last_key: Option<Vec<Value>>,
    /// No stored row past the current chunk.
    exhausted: bool,
}

impl<'c, 'd> ScopeCursor<'c, 'd> {
    fn prepare(
        conn: &'c Connection,
        t: &TableSql,
        codec: &'d RowCodec,
        scope: Scope<'d>,
    ) -> Result<ScopeCursor<'c, 'd>> {
        let sql = ScanSql::new(t, scope.upper.is_some());
        let prepare = |q: &str| {
            conn.prepare_cached(q)
                .map_err(db("preparing the read of the snapshot's scope"))
        };
        Ok(ScopeCursor {
            first: prepare(&sql.first)?,
            after: prepare(&sql.after)?,
            codec,
            scope,
            buffer: Vec::new(),
            rows: Vec::new(),
            next: 0,
            last_key: None,
            exhausted: false,
        })
    }

    /// The next stored row, reading the next chunk when this one is done; `None` past the
    /// scope's last row.
    fn peek(&mut self) -> Result<Option<StoredRow<'_>>> {
        if self.next == self.rows.len() && !self.exhausted {
            self.read_chunk()?;
        }
        Ok(self
            .rows
            .get(self.next)
            .map(|&(start, key_len, end, deleted)| StoredRow {
                bytes: &self.buffer[start..end],
                key_len,
                deleted,
            }))
    }

    fn advance(&mut self) {
        self.next += 1;
    }

    fn read_chunk(&mut self) -> Result<()> {
        let at = || db("reading the snapshot's scope");
        self.buffer.clear();
        self.rows.clear();
        self.next = 0;
        let stmt = match &self.last_key {
            None => {
                self.first
                    .raw_bind_parameter(2, self.scope.prefix)
                    .map_err(at())?;
                &mut self.first
            }
            Some(key) => {
                for (j, v) in key.iter().enumerate().skip(1) {
                    self.after
                        .raw_bind_parameter(j + 1, Bind(v))
                        .map_err(at())?;
                }
                &mut self.after
            }
        };
        stmt.raw_bind_parameter(1, self.scope.bucket)
            .map_err(at())?;
        if let Some(upper) = self.scope.upper {
            let last = stmt.parameter_count();
            stmt.raw_bind_parameter(last, upper).map_err(at())?;
        }
        let keys = self.codec.key_columns();
        let mut q = stmt.raw_query();
        while let Some(row) = q.next().map_err(at())? {
            let field = |p: usize| row.get_ref(p).map(field_of).map_err(at());
            let start = self.buffer.len();
            let key_len = self
                .codec
                .encode_fields(&mut self.buffer, field, |p| field(keys + 1 + p))?;
            let deleted: i64 = row.get(keys).map_err(at())?;
            self.rows
                .push((start, key_len, self.buffer.len(), deleted != 0));
        }
        drop(q);
        self.exhausted = self.rows.len() < SCAN_CHUNK;
        if let Some(&(start, key_len, _, _)) = self.rows.last() {
            self.last_key = Some(
                self.codec
                    .decode_key(&self.buffer[start..start + key_len])?,
            );
        }
        Ok(())
    }
}

/// Tombstones a stored row the snapshot does not hold, unless it is a tombstone already.
fn tombstone_if_live(
    a: &mut Applier<'_>,
    s: &mut Statements<'_>,
    codec: &RowCodec,
    row: &StoredRow<'_>,
) -> Result<()> {
    if row.deleted {
        return Ok(());
    }
    let key = codec.decode_key(row.bytes)?;
    a.write_tombstone(s, key.iter().map(Bind))
}

fn field_of(v: ValueRef<'_>) -> Field<'_> {
    match v {
        ValueRef::Null => Field::Null,
        ValueRef::Integer(n) => Field::Int(n),
        ValueRef::Real(d) => Field::Real(d),
        ValueRef::Text(t) => Field::Text(t),
        ValueRef::Blob(b) => Field::Blob(b),
    }
}

/// Stores `record` under a new import id (which goes into the stored JSON too); the id.
fn insert_record(conn: &Connection, record: &ImportRecord) -> Result<u64> {
    conn.execute(
        r#"INSERT INTO "_lakeport_imports"
           ("tbl", "scope_bucket", "scope_prefix", "manifest_md5", "created_ms", "record")
           VALUES (?1, ?2, ?3, ?4, ?5, '')"#,
        rusqlite::params![
            record.table,
            record.scope_bucket,
            record.scope_prefix,
            record.manifest_md5,
            record.created_ms
        ],
    )
    .map_err(db("writing the import record"))?;
    let id = conn.last_insert_rowid();
    let mut stored = record.clone();
    stored.import_id = non_negative(id, "an import id")?;
    let json = serde_json::to_string(&stored)
        .map_err(|e| Error::store_caused("encoding an import record", e))?;
    conn.execute(
        r#"UPDATE "_lakeport_imports" SET "record" = ?2 WHERE "import_id" = ?1"#,
        rusqlite::params![id, json],
    )
    .map_err(db("writing the import record"))?;
    Ok(stored.import_id)
}

#[cfg(test)]
mod tests {
    use super::{prefix_upper_bound, ScanSql};
    use crate::model::schema::OBJECT_INVENTORY_YAML;
    use crate::model::TableDef;
    use crate::store::sqlite::tests::query_plan;
    use crate::store::sqlite::SqliteStore;
    use crate::store::Tables;

    /// The scope is read by seeks on the primary key, in its order, without a sort.
    #[test]
    fn scope_reads_search_the_primary_key_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let def = TableDef::from_yaml(OBJECT_INVENTORY_YAML, "object_inventory").unwrap();
        store.ensure_table(&def).unwrap();
        let conn = store.lock();
        let t = store.table_sql(&conn, "object_inventory").unwrap();
        for bounded in [false, true] {
            let sql = ScanSql::new(&t, bounded);
            for (q, want) in [
                (&sql.first, "USING PRIMARY KEY (bucket=? AND key>?"),
                (
                    &sql.after,
                    "USING PRIMARY KEY (bucket=? AND (key,version_id)>(?,?)",
                ),
            ] {
                let plan = query_plan(&conn, q);
                assert!(
                    plan.contains(&format!("SEARCH data_object_inventory {want}")),
                    "{q}: {plan}"
                );
                assert_eq!(bounded, plan.contains("AND key<?)"), "{q}: {plan}");
                assert!(!plan.contains("TEMP B-TREE"), "{q}: {plan}");
            }
        }
    }

    #[test]
    fn prefix_upper_bound_is_the_next_string_past_the_prefix() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("a/"), Some("a0".into()));
        assert_eq!(prefix_upper_bound("logs/2024"), Some("logs/2025".into()));
        assert_eq!(prefix_upper_bound("a\u{D7FF}"), Some("a\u{E000}".into()));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        for (p, k) in [("a/", "a/b"), ("a/", "a/\u{10FFFF}x"), ("é", "éz")] {
            let upper = prefix_upper_bound(p).unwrap();
            assert!(k.starts_with(p) && k < upper.as_str(), "{k} < {upper}");
        }
        assert!("a0" >= prefix_upper_bound("a/").unwrap().as_str());
    }
}
