//! Snapshot imports in SQLite ([`Store::apply_snapshot`](crate::store::Store::apply_snapshot)):
//! one write transaction that upserts a snapshot's rows, tombstones the rows of its scope the
//! snapshot did not hold, and records the import in `_lakeport_imports`.
//!
//! Every row is checked (types, scope) as it arrives and appended to a temporary staging
//! table (`temp."staged_<table>"`, see [`Staging`]); appends cost little whatever the report's
//! order, and SQLite's sorter then hands the rows back in key order. They are matched with the
//! stored ones in one of three modes:
//! - **fresh**: the scope holds no row at all (not even a tombstone): the staged rows are
//!   copied into the data table in key order by one statement: no lookups, and the table and
//!   its indexes grow by appends.
//! - **sorted merge**, while the keys strictly ascend (the order of the key columns after the
//!   first, compared as UTF-8 bytes, SQLite's BINARY order; only when every key column is a
//!   string): per row one seek on the primary key for the first stored row of the scope past
//!   the previous key, on pages the previous seek just read. Live stored rows before the row's
//!   key are absent from the snapshot and listed (`temp."absent_<table>"`); the equal one is
//!   compared; none means an insert. After the last row the listed rows, then the live rows
//!   past the last key, become tombstones.
//! - **seen**, from the first key that does not ascend (a repeated key; or any key when the
//!   key columns are not all strings, in which case rows are not staged): the keys
//!   are collected in a temporary table (`temp."seen_<table>"`, on the write connection,
//!   spilled to a temp file by SQLite past its cache), first backfilled with the scope's live
//!   keys up to the previous one (exactly the snapshot's rows so far), so memory does not grow
//!   with the snapshot. After the last row, one `INSERT … SELECT` finds the scope's live rows
//!   absent from it (a range scan of the primary key over the scope) into
//!   `temp."gone_<table>"`, and one `UPDATE … FROM` turns them into tombstones.
//!
//! Either way every tombstone takes its own `_seq`, in key order within each step.

use std::cmp::Ordering;
use std::time::Instant;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Connection, OptionalExtension, TransactionBehavior};

use super::{db, non_negative, quote, Applier, SqliteStore, Statements, Stored};
use crate::error::{Error, Result};
use crate::store::{Change, ColumnType, ImportOutcome, ImportRecord, Value};

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

/// The smallest string greater than every string that starts with `prefix`, in code-point
/// (= UTF-8 byte, SQLite BINARY) order; `None` when there is none (empty prefix, or one made
/// only of `char::MAX`).
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// SQL of one table's import, built from its declaration.
struct ImportSql {
    /// `temp."seen_<table>"`.
    seen: String,
    create_seen: String,
    insert_seen: String,
    /// `temp."gone_<table>"`.
    gone: String,
    create_gone: String,
    /// Fills `gone` with the scope's live rows absent from `seen`; `?1` bucket, `?2` prefix,
    /// `?3` upper bound of the prefix (NULL: none).
    find_gone: String,
    /// One row of the scope (live or tombstone) if there is any; `?1`–`?3` as in `find_gone`.
    any_in_scope: String,
    /// Tombstones the rows in `gone`: `_seq` = `?1` + rank, `_write_time` = `?2`.
    tombstone_gone: String,
    /// `temp."absent_<table>"`: the rows a sorted merge found absent, tombstoned at its end.
    absent: String,
    /// The sorted merge's statements, `None` unless every key column is a string.
    merge: Option<MergeSql>,
}

/// SQL of the sorted merge. The seeks select the key columns after the first, `_deleted`,
/// then the other columns in table order, in key order, from the scope's rows: `?1` bucket.
/// The tombstone statements set `_seq` = `?1` + rank in key order, `_write_time` = `?2`, on
/// the live rows of the scope selected with `?3` bucket. When the scope's prefix has an upper
/// bound it is the last parameter.
struct MergeSql {
    /// Rows from the scope's start: `?2` prefix.
    seek_first: String,
    /// Rows past a key: `?2..` the key columns after the first.
    seek_after: String,
    /// Tombstones every live row of the scope: `?4` prefix.
    tombstone_all: String,
    /// Tombstones the live rows past a key: `?4..` the key columns after the first.
    tombstone_after: String,
    create_absent: String,
    /// Lists a key in `absent`, `?1..` in key order.
    insert_absent: String,
    /// Tombstones the rows listed in `absent`.
    tombstone_absent: String,
    /// Fills `seen` with the scope's live keys up to a key that are not in `absent`: `?1`
    /// bucket, `?2` prefix, `?3..` the key columns after the first.
    backfill_seen: String,
}

impl ImportSql {
    /// `bounded`: the scope's prefix has an upper bound (see [`prefix_upper_bound`]).
    fn new(t: &super::TableSql, bounded: bool) -> ImportSql {
        let table = t.name();
        let data = &t.data;
        let seen = format!("temp.{}", quote(&format!("seen_{table}")));
        let gone = format!("temp.{}", quote(&format!("gone_{table}")));
        let absent = format!("temp.{}", quote(&format!("absent_{table}")));
        let keys: Vec<String> = t
            .key_idx
            .iter()
            .map(|&i| quote(&t.def.columns[i].name))
            .collect();
        let key_list = keys.join(", ");
        let cols = |alias: &str| {
            keys.iter()
                .map(|k| format!("{alias}.{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let equal = |a: &str, b: &str| {
            keys.iter()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let params = (1..=keys.len())
            .map(|p| format!("?{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (k1, k2) = (&keys[0], &keys[1]);
        let nulls: Vec<String> = t
            .other_idx
            .iter()
            .map(|&i| format!("{} = NULL", quote(&t.def.columns[i].name)))
            .collect();
        let sets = if nulls.is_empty() {
            String::new()
        } else {
            format!("{}, ", nulls.join(", "))
        };
        let tail = keys[1..].join(", ");
        let tail_params = |first: usize| {
            (first..first + keys.len() - 1)
                .map(|p| format!("?{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let merge = t
            .key_idx
            .iter()
            .all(|&i| t.def.columns[i].ty == ColumnType::String)
            .then(|| {
                let others: String = t
                    .other_idx
                    .iter()
                    .map(|&i| format!(", {}", quote(&t.def.columns[i].name)))
                    .collect();
                let upper = |p: usize| {
                    if bounded {
                        format!(" AND {k2} < ?{p}")
                    } else {
                        String::new()
                    }
                };
                let seek = |from: &str, p: usize| {
                    format!(
                        "SELECT {tail}, \"_deleted\"{others} FROM {data} \
                         WHERE {k1} = ?1 AND {from}{} ORDER BY {key_list}",
                        upper(p)
                    )
                };
                let numbered = |from: &str| {
                    format!(
                        "UPDATE {data} SET {sets}\"_seq\" = ?1 + g.n, \"_write_time\" = ?2, \"_deleted\" = 1 \
                         FROM (SELECT {key_list}, row_number() OVER (ORDER BY {key_list}) AS n \
                         FROM {from}) AS g WHERE {eq}",
                        eq = equal(data, "g"),
                    )
                };
                let tombstone = |from: &str, p: usize| {
                    numbered(&format!(
                        "{data} WHERE {k1} = ?3 AND {from}{} AND \"_deleted\" = 0",
                        upper(p)
                    ))
                };
                let n = keys.len();
                MergeSql {
                    seek_first: seek(&format!("{k2} >= ?2"), 3),
                    seek_after: seek(&format!("({tail}) > ({})", tail_params(2)), n + 1),
                    tombstone_all: tombstone(&format!("{k2} >= ?4"), 5),
                    tombstone_after: tombstone(
                        &format!("({tail}) > ({})", tail_params(4)),
                        n + 3,
                    ),
                    create_absent: format!(
                        "DROP TABLE IF EXISTS {absent}; CREATE TABLE {absent} ({key_list}, PRIMARY KEY ({key_list})) WITHOUT ROWID;"
                    ),
                    insert_absent: format!("INSERT INTO {absent} ({key_list}) VALUES ({params})"),
                    tombstone_absent: numbered(&absent),
                    backfill_seen: format!(
                        "INSERT INTO {seen} ({key_list}) SELECT {d} FROM {data} AS d \
                         WHERE d.{k1} = ?1 AND d.{k2} >= ?2 AND ({dtail}) <= ({}) AND d.\"_deleted\" = 0 \
                         AND NOT EXISTS (SELECT 1 FROM {absent} AS x WHERE {eq})",
                        tail_params(3),
                        d = cols("d"),
                        dtail = keys[1..]
                            .iter()
                            .map(|k| format!("d.{k}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        eq = equal("x", "d"),
                    ),
                }
            });
        ImportSql {
            absent,
            merge,
            create_seen: format!(
                "DROP TABLE IF EXISTS {seen}; CREATE TABLE {seen} ({key_list}, PRIMARY KEY ({key_list})) WITHOUT ROWID;"
            ),
            insert_seen: format!("INSERT OR IGNORE INTO {seen} ({key_list}) VALUES ({params})"),
            create_gone: format!(
                "DROP TABLE IF EXISTS {gone}; CREATE TABLE {gone} ({key_list});"
            ),
            find_gone: format!(
                "INSERT INTO {gone} ({key_list}) SELECT {d} FROM {data} AS d \
                 WHERE d.{k1} = ?1 AND d.{k2} >= ?2 AND (?3 IS NULL OR d.{k2} < ?3) \
                 AND d.\"_deleted\" = 0 \
                 AND NOT EXISTS (SELECT 1 FROM {seen} AS s WHERE {eq}) ORDER BY {d}",
                d = cols("d"),
                eq = equal("s", "d"),
            ),
            any_in_scope: format!(
                "SELECT 1 FROM {data} WHERE {k1} = ?1 AND {k2} >= ?2 AND (?3 IS NULL OR {k2} < ?3) LIMIT 1"
            ),
            tombstone_gone: format!(
                "UPDATE {data} SET {sets}\"_seq\" = ?1 + g.rowid, \"_write_time\" = ?2, \"_deleted\" = 1 \
                 FROM {gone} AS g WHERE {eq}",
                eq = equal(data, "g"),
            ),
            seen,
            gone,
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
        let mut conn = self.lock();
        let t = self.table_sql(&conn, table)?;
        check_scope_columns(&t)?;
        let upper = prefix_upper_bound(&draft.scope_prefix);
        let sql = ImportSql::new(&t, upper.is_some());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(format_args!("starting an import into table {table}")))?;
        if let Some(earlier) = earlier_import(&tx, draft)? {
            return Ok(ImportOutcome::AlreadyImported(earlier));
        }
        refuse_older(&tx, draft)?;
        let scope = Scope {
            bucket: &draft.scope_bucket,
            prefix: &draft.scope_prefix,
            upper: upper.as_deref(),
        };
        // A scope with no rows at all (not even tombstones) cannot hold anything to update or
        // tombstone: rows go straight in, without a lookup or a key table.
        let fresh = scope_is_empty(&tx, &sql, &scope)?;

        let mut a = Applier::begin(&tx, &t)?;
        let mut rows = 0u64;
        {
            let mut s = Statements::prepare(&tx, &a)?;
            let mut merge = match &sql.merge {
                Some(m) if !fresh => Some(Merge::prepare(&tx, m, t.key_idx.len())?),
                _ => None,
            };
            // An empty scope is staged and bulk-copied in key order; any other scope whose
            // keys allow a merge is staged too and then read back in key order, so that the
            // merge takes one sequential seek per row whatever order the report came in.
            let mut staged = if fresh || merge.is_some() {
                Some(Staging::start(&tx, &t)?)
            } else {
                None
            };
            let mut seen = None;
            if !fresh && merge.is_none() {
                seen = Some(start_seen(&tx, &sql)?);
            }
            for change in changes {
                let values = match change? {
                    Change::Upsert(values) => values,
                    Change::Delete(_) => {
                        return Err(Error::InvalidInput(format!(
                            "{}: a snapshot holds rows, not deletes",
                            draft.manifest_url
                        )))
                    }
                };
                check_in_scope(&t, draft, &values)?;
                rows += 1;
                if let Some(staging) = &mut staged {
                    t.check_row(&values)?;
                    staging.push(&values)?;
                    continue;
                }
                match_row(
                    &tx, &sql, &scope, &mut a, &mut s, &mut merge, &mut seen, &values,
                )?;
            }
            if !fresh {
                if let Some(staging) = staged.take() {
                    staging.for_each_in_key_order(&tx, &t, &mut |values| {
                        match_row(
                            &tx, &sql, &scope, &mut a, &mut s, &mut merge, &mut seen, &values,
                        )
                    })?;
                }
            }
            if let Some(staging) = staged {
                staging.finish(&tx, &t, &mut a, &mut s)?;
            } else if let Some(m) = &mut merge {
                if let Some(sql) = &sql.merge {
                    m.finish(&tx, sql, &mut a, &scope)?;
                }
            } else if seen.is_some() {
                drop(seen);
                let deleted = tombstone_absent(&tx, &sql, &scope, a.seq, a.write_time)?;
                a.seq += i64::try_from(deleted).unwrap_or(i64::MAX);
                a.out.deleted += deleted;
            }
        }
        let write_time = a.write_time;
        let out = a.finish(&tx)?;
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
            sql.seen, sql.gone, sql.absent
        ))
        .map_err(db("dropping the import's key tables"))?;

        let mut record = draft.clone();
        record.table = table.to_string();
        record.imported_ms = write_time;
        record.rows = rows;
        record.inserted = out.inserted;
        record.updated = out.updated;
        record.deleted = out.deleted;
        record.unchanged = out.unchanged;
        record.seq = out.seq;
        record.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
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

/// The table's first two key columns must be strings: the bucket and the key of a scope.
fn check_scope_columns(t: &super::TableSql) -> Result<()> {
    let string_key = |j: usize| {
        t.key_idx
            .get(j)
            .is_some_and(|&i| t.def.columns[i].ty == ColumnType::String)
    };
    if string_key(0) && string_key(1) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "table {}: a snapshot import needs a primary key that starts with two string \
             columns (bucket, key), found [{}]",
            t.name(),
            t.def.primary_key.join(", ")
        )))
    }
}

fn check_in_scope(t: &super::TableSql, draft: &ImportRecord, values: &[Value]) -> Result<()> {
    let bucket = values.get(t.key_idx[0]);
    let key = values.get(t.key_idx[1]);
    let inside = matches!(bucket, Some(Value::String(b)) if *b == draft.scope_bucket)
        && matches!(key, Some(Value::String(k)) if k.starts_with(&draft.scope_prefix));
    if inside {
        return Ok(());
    }
    let show = |v: Option<&Value>| match v {
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => format!("{other:?}"),
        None => "nothing".into(),
    };
    Err(Error::InvalidInput(format!(
        "{}: row with bucket {} and key {} is outside the snapshot's scope (bucket {:?}, prefix {:?})",
        draft.manifest_url,
        show(bucket),
        show(key),
        draft.scope_bucket,
        draft.scope_prefix
    )))
}

fn decode_record(id: i64, json: &str) -> Result<ImportRecord> {
    serde_json::from_str(json).map_err(|e| {
        Error::Store(format!(
            "the stored record of import {id} is not valid: {e}"
        ))
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
    let newest = decode_record(id, &json)?;
    if draft.created_ms >= newest.created_ms {
        return Ok(());
    }
    let scope = if draft.scope_prefix.is_empty() {
        format!("bucket {}", draft.scope_bucket)
    } else {
        format!(
            "bucket {} prefix {:?}",
            draft.scope_bucket, draft.scope_prefix
        )
    };
    Err(Error::Conflict(format!(
        "{}: refused: this snapshot was created at {}, before the newest one applied to {scope} \
         (created at {}, {}, import {}); reports apply in creation order",
        draft.manifest_url,
        show_ms(draft.created_ms),
        show_ms(newest.created_ms),
        newest.manifest_url,
        newest.import_id
    )))
}

/// An epoch-ms time as RFC 3339 UTC (the number itself when out of range).
fn show_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// Whether the scope holds no row at all, live or tombstone.
fn scope_is_empty(conn: &Connection, sql: &ImportSql, scope: &Scope<'_>) -> Result<bool> {
    let any: Option<i64> = conn
        .query_row(
            &sql.any_in_scope,
            rusqlite::params![scope.bucket, scope.prefix, scope.upper],
            |r| r.get(0),
        )
        .optional()
        .map_err(db("looking for rows in the snapshot's scope"))?;
    Ok(any.is_none())
}

/// Tombstones the scope's live rows absent from the snapshot, numbering them from `seq + 1`
/// in key order; returns how many.
fn tombstone_absent(
    conn: &Connection,
    sql: &ImportSql,
    scope: &Scope<'_>,
    seq: i64,
    write_time: i64,
) -> Result<u64> {
    conn.execute_batch(&sql.create_gone)
        .map_err(db("creating the import's table of absent rows"))?;
    let found = conn
        .execute(
            &sql.find_gone,
            rusqlite::params![scope.bucket, scope.prefix, scope.upper],
        )
        .map_err(db("finding rows absent from the snapshot"))?;
    if found == 0 {
        return Ok(0);
    }
    let changed = conn
        .execute(&sql.tombstone_gone, rusqlite::params![seq, write_time])
        .map_err(db("writing tombstones for rows absent from the snapshot"))?;
    if changed != found {
        return Err(Error::Store(format!(
            "tombstoning rows absent from the snapshot: found {found}, changed {changed}"
        )));
    }
    Ok(u64::try_from(found).unwrap_or(u64::MAX))
}

/// The scope of a snapshot: its bucket, its key prefix and the prefix's upper bound.
struct Scope<'d> {
    bucket: &'d str,
    prefix: &'d str,
    upper: Option<&'d str>,
}

/// A snapshot's rows, staged: appended to a temporary table as they arrive (in report order,
/// cheap), then read back in key order. For an empty scope they are copied into the data table
/// in one `INSERT … SELECT … ORDER BY <key>` ([`Staging::finish`]), so that the table and its
/// indexes are built by appends and `_seq` follows the key; a key the snapshot repeats fails
/// that statement (SQLite undoes just the statement) and the staged rows are then applied one
/// by one in report order, the later row of a key winning as in any other import. For other
/// scopes [`Staging::for_each_in_key_order`] feeds the sorted merge.
struct Staging<'c> {
    insert: CachedStatement<'c>,
}

impl<'c> Staging<'c> {
    fn start(conn: &'c Connection, t: &super::TableSql) -> Result<Staging<'c>> {
        let staging = staging_table(t);
        let columns = column_list(t);
        conn.pragma_update(Some("temp"), "cache_size", -TEMP_CACHE_KIB)
            .map_err(db("sizing the cache of the import's staging table"))?;
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS {staging}; CREATE TABLE {staging} ({columns});"
        ))
        .map_err(db("creating the import's staging table"))?;
        let params = (1..=t.def.columns.len())
            .map(|p| format!("?{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let insert = conn
            .prepare_cached(&format!(
                "INSERT INTO {staging} ({columns}) VALUES ({params})"
            ))
            .map_err(db("preparing the import's staging table"))?;
        Ok(Staging { insert })
    }

    fn push(&mut self, values: &[Value]) -> Result<()> {
        for (i, v) in values.iter().enumerate() {
            self.insert
                .raw_bind_parameter(i + 1, super::Bind(v))
                .map_err(db("binding a staged value"))?;
        }
        self.insert
            .raw_execute()
            .map_err(db("staging a row of the import"))?;
        Ok(())
    }

    /// Hands every staged row to `each` in key order (rows of one key in arrival order), then
    /// drops the staging table.
    fn for_each_in_key_order(
        self,
        conn: &Connection,
        t: &super::TableSql,
        each: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<()> {
        drop(self.insert);
        read_staged(conn, t, &format!("{}, rowid", t.key_list), each)?;
        drop_staging(conn, t)
    }

    fn finish(
        self,
        conn: &Connection,
        t: &super::TableSql,
        a: &mut Applier<'_>,
        s: &mut Statements<'_>,
    ) -> Result<()> {
        drop(self.insert);
        let staging = staging_table(t);
        let columns = column_list(t);
        let copy = format!(
            "INSERT INTO {data} ({columns}, \"_seq\", \"_write_time\", \"_deleted\") \
             SELECT {columns}, ?1 + row_number() OVER (ORDER BY {key}), ?2, 0 \
             FROM {staging} ORDER BY {key}",
            data = t.data,
            key = t.key_list,
        );
        match conn.execute(&copy, rusqlite::params![a.seq, a.write_time]) {
            Ok(n) => {
                let n = u64::try_from(n).unwrap_or(u64::MAX);
                a.seq += i64::try_from(n).unwrap_or(i64::MAX);
                a.out.inserted += n;
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                read_staged(conn, t, "rowid", &mut |values| {
                    if !a.insert_new(s, &values)? {
                        a.upsert(s, &values)?;
                    }
                    Ok(())
                })?;
            }
            Err(e) => return Err(db("copying the staged rows into the table")(e)),
        }
        drop_staging(conn, t)
    }
}

/// Hands every staged row to `each`, ordered by `order` (an `ORDER BY` list).
fn read_staged(
    conn: &Connection,
    t: &super::TableSql,
    order: &str,
    each: &mut dyn FnMut(Vec<Value>) -> Result<()>,
) -> Result<()> {
    let at = || db("reading the import's staging table");
    let mut read = conn
        .prepare(&format!(
            "SELECT {} FROM {} ORDER BY {order}",
            column_list(t),
            staging_table(t)
        ))
        .map_err(at())?;
    let mut rows = read.query([]).map_err(at())?;
    while let Some(row) = rows.next().map_err(at())? {
        each(row_values(t, row)?)?;
    }
    Ok(())
}

fn drop_staging(conn: &Connection, t: &super::TableSql) -> Result<()> {
    conn.execute_batch(&format!("DROP TABLE IF EXISTS {};", staging_table(t)))
        .map_err(db("dropping the import's staging table"))
}

/// Matches one snapshot row with the stored one: by the sorted merge while keys ascend, then
/// (from the first key that does not) by lookup, recording the key for the delete pass.
#[allow(clippy::too_many_arguments)]
fn match_row<'c>(
    tx: &'c Connection,
    sql: &ImportSql,
    scope: &Scope<'_>,
    a: &mut Applier<'_>,
    s: &mut Statements<'_>,
    merge: &mut Option<Merge<'c>>,
    seen: &mut Option<CachedStatement<'c>>,
    values: &[Value],
) -> Result<()> {
    if let Some(m) = merge {
        if m.row(a, s, scope, values)? {
            return Ok(());
        }
        // The first key that does not ascend: the rows so far are exactly the scope's live
        // rows up to the previous key.
        *seen = Some(start_seen(tx, sql)?);
        if let Some(merge_sql) = &sql.merge {
            m.backfill(tx, merge_sql, scope)?;
        }
        *merge = None;
    }
    a.upsert(s, values)?;
    if let Some(seen) = seen {
        for (j, &i) in a.t.key_idx.iter().enumerate() {
            seen.raw_bind_parameter(j + 1, super::Bind(&values[i]))
                .map_err(db("binding a key"))?;
        }
        seen.raw_execute()
            .map_err(db("recording a key of the import"))?;
    }
    Ok(())
}

/// `temp."staged_<table>"`.
fn staging_table(t: &super::TableSql) -> String {
    format!("temp.{}", quote(&format!("staged_{}", t.name())))
}

/// Every declared column, quoted, in table order.
fn column_list(t: &super::TableSql) -> String {
    t.def
        .columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored row read back as values of the declared columns.
fn row_values(t: &super::TableSql, row: &rusqlite::Row<'_>) -> Result<Vec<Value>> {
    use rusqlite::types::ValueRef;
    let at = |e: rusqlite::Error| Error::Store(format!("reading a staged row: {e}"));
    t.def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = row.get_ref(i).map_err(at)?;
            Ok(match (v, c.ty) {
                (ValueRef::Null, _) => Value::Null,
                (ValueRef::Integer(n), ColumnType::Bool) => Value::Bool(n != 0),
                (ValueRef::Integer(n), ColumnType::TimestampMs) => Value::TimestampMs(n),
                (ValueRef::Integer(n), _) => Value::Int64(n),
                (ValueRef::Real(f), _) => Value::Double(f),
                (ValueRef::Text(b), _) => Value::String(
                    String::from_utf8(b.to_vec())
                        .map_err(|e| Error::Store(format!("reading a staged row: {e}")))?,
                ),
                (ValueRef::Blob(b), _) => Value::Binary(b.to_vec()),
            })
        })
        .collect()
}

/// Page cache of the temporary schema (the key table), in KiB: about a million keys of
/// inventory size fit before SQLite spills to its temp file, which random-order inserts would
/// otherwise read and write page by page.
const TEMP_CACHE_KIB: i64 = 96 * 1024;

/// Creates the import's key table; its insert statement.
fn start_seen<'c>(conn: &'c Connection, sql: &ImportSql) -> Result<CachedStatement<'c>> {
    conn.pragma_update(Some("temp"), "cache_size", -TEMP_CACHE_KIB)
        .map_err(db("sizing the cache of the import's key table"))?;
    conn.execute_batch(&sql.create_seen)
        .map_err(db("creating the import's key table"))?;
    conn.prepare_cached(&sql.insert_seen)
        .map_err(db("preparing the import's key table"))
}

/// The state of a sorted merge (see the module documentation).
struct Merge<'c> {
    seek_first: CachedStatement<'c>,
    seek_after: CachedStatement<'c>,
    /// Lists a stored row absent from the snapshot in `absent`.
    list_absent: CachedStatement<'c>,
    /// Rows listed in `absent`.
    absent: u64,
    /// The key columns after the first of the last snapshot row; meaningful once `started`.
    prev: Vec<String>,
    started: bool,
}

impl<'c> Merge<'c> {
    fn prepare(conn: &'c Connection, sql: &MergeSql, key_columns: usize) -> Result<Merge<'c>> {
        conn.execute_batch(&sql.create_absent)
            .map_err(db("creating the import's table of absent rows"))?;
        let prepare = |q: &str| {
            conn.prepare_cached(q)
                .map_err(db("preparing the import's seek"))
        };
        Ok(Merge {
            seek_first: prepare(&sql.seek_first)?,
            seek_after: prepare(&sql.seek_after)?,
            list_absent: prepare(&sql.insert_absent)?,
            absent: 0,
            prev: vec![String::new(); key_columns - 1],
            started: false,
        })
    }

    /// Applies one snapshot row if its key ascends past the previous one; `false` (nothing
    /// done) when it does not.
    fn row(
        &mut self,
        a: &mut Applier<'_>,
        s: &mut Statements<'_>,
        scope: &Scope<'_>,
        values: &[Value],
    ) -> Result<bool> {
        a.t.check_row(values)?;
        let key_idx = &a.t.key_idx;
        let tail = |j: usize| match &values[key_idx[j + 1]] {
            Value::String(v) => Ok(v.as_str()),
            other => Err(Error::InvalidInput(format!(
                "column {}: expected a string key, found {other:?}",
                a.t.def.columns[key_idx[j + 1]].name
            ))),
        };
        if self.started {
            let mut order = Ordering::Equal;
            for (j, prev) in self.prev.iter().enumerate() {
                order = tail(j)?.as_bytes().cmp(prev.as_bytes());
                if order != Ordering::Equal {
                    break;
                }
            }
            if order != Ordering::Greater {
                return Ok(false);
            }
        }
        let stmt = if self.started {
            let stmt = &mut self.seek_after;
            for (j, prev) in self.prev.iter().enumerate() {
                stmt.raw_bind_parameter(j + 2, prev.as_str())
                    .map_err(db("binding a key"))?;
            }
            stmt
        } else {
            let stmt = &mut self.seek_first;
            stmt.raw_bind_parameter(2, scope.prefix)
                .map_err(db("binding the scope's prefix"))?;
            stmt
        };
        stmt.raw_bind_parameter(1, scope.bucket)
            .map_err(db("binding the scope's bucket"))?;
        if let Some(upper) = scope.upper {
            let last = stmt.parameter_count();
            stmt.raw_bind_parameter(last, upper)
                .map_err(db("binding the scope's upper bound"))?;
        }
        let at = self.prev.len();
        let mut found = Stored::Absent;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(db("seeking the next stored row"))? {
            let mut order = Ordering::Equal;
            for j in 0..at {
                order = stored_key(a, row, j)?.cmp(tail(j)?.as_bytes());
                if order != Ordering::Equal {
                    break;
                }
            }
            match order {
                Ordering::Greater => break,
                Ordering::Equal => {
                    found = a.compare_stored(row, at, Some(values))?;
                    break;
                }
                Ordering::Less => {
                    let deleted: i64 = row.get(at).map_err(db("reading a stored row"))?;
                    if deleted != 0 {
                        continue;
                    }
                    // Live and absent from the snapshot so far; tombstoned at the end, unless
                    // the snapshot goes out of order and holds it after all.
                    let list = &mut self.list_absent;
                    list.raw_bind_parameter(1, scope.bucket)
                        .map_err(db("binding the scope's bucket"))?;
                    for j in 0..at {
                        let key = ToSqlOutput::Borrowed(ValueRef::Text(stored_key(a, row, j)?));
                        list.raw_bind_parameter(j + 2, key)
                            .map_err(db("binding a key"))?;
                    }
                    list.raw_execute()
                        .map_err(db("listing a row absent from the snapshot"))?;
                    self.absent += 1;
                }
            }
        }
        drop(rows);
        a.write_upsert(s, values, found)?;
        for (j, prev) in self.prev.iter_mut().enumerate() {
            prev.clear();
            prev.push_str(tail(j)?);
        }
        self.started = true;
        Ok(true)
    }

    /// Fills the key table with the scope's live keys up to the previous one, when the
    /// merge stops.
    fn backfill(&self, conn: &Connection, sql: &MergeSql, scope: &Scope<'_>) -> Result<()> {
        let mut stmt = conn
            .prepare_cached(&sql.backfill_seen)
            .map_err(db("preparing the import's key table"))?;
        stmt.raw_bind_parameter(1, scope.bucket)
            .map_err(db("binding the scope's bucket"))?;
        stmt.raw_bind_parameter(2, scope.prefix)
            .map_err(db("binding the scope's prefix"))?;
        for (j, prev) in self.prev.iter().enumerate() {
            stmt.raw_bind_parameter(j + 3, prev.as_str())
                .map_err(db("binding a key"))?;
        }
        stmt.raw_execute()
            .map_err(db("filling the import's key table"))?;
        Ok(())
    }

    /// Tombstones the scope's live rows past the last key, numbered in key order.
    fn finish(
        &self,
        conn: &Connection,
        sql: &MergeSql,
        a: &mut Applier<'_>,
        scope: &Scope<'_>,
    ) -> Result<()> {
        if self.absent > 0 {
            let changed = conn
                .prepare_cached(&sql.tombstone_absent)
                .and_then(|mut stmt| stmt.execute(rusqlite::params![a.seq, a.write_time]))
                .map_err(db("writing tombstones for rows absent from the snapshot"))?;
            if u64::try_from(changed).ok() != Some(self.absent) {
                return Err(Error::Store(format!(
                    "tombstoning rows absent from the snapshot: listed {}, changed {changed}",
                    self.absent
                )));
            }
            a.seq += i64::try_from(changed).unwrap_or(i64::MAX);
            a.out.deleted += self.absent;
        }
        let mut stmt = conn
            .prepare_cached(if self.started {
                &sql.tombstone_after
            } else {
                &sql.tombstone_all
            })
            .map_err(db("preparing the tombstones past the snapshot's last key"))?;
        stmt.raw_bind_parameter(1, a.seq)
            .map_err(db("binding _seq"))?;
        stmt.raw_bind_parameter(2, a.write_time)
            .map_err(db("binding _write_time"))?;
        stmt.raw_bind_parameter(3, scope.bucket)
            .map_err(db("binding the scope's bucket"))?;
        if self.started {
            for (j, prev) in self.prev.iter().enumerate() {
                stmt.raw_bind_parameter(j + 4, prev.as_str())
                    .map_err(db("binding a key"))?;
            }
        } else {
            stmt.raw_bind_parameter(4, scope.prefix)
                .map_err(db("binding the scope's prefix"))?;
        }
        if let Some(upper) = scope.upper {
            let last = stmt.parameter_count();
            stmt.raw_bind_parameter(last, upper)
                .map_err(db("binding the scope's upper bound"))?;
        }
        let changed = stmt
            .raw_execute()
            .map_err(db("writing tombstones past the snapshot's last key"))?;
        a.seq += i64::try_from(changed).unwrap_or(i64::MAX);
        a.out.deleted += u64::try_from(changed).unwrap_or(u64::MAX);
        Ok(())
    }
}

/// The `j`-th selected column of a seek: a stored key column after the first, as bytes.
fn stored_key<'r>(a: &Applier<'_>, row: &'r rusqlite::Row<'_>, j: usize) -> Result<&'r [u8]> {
    match row.get_ref(j).map_err(db("reading a stored key"))? {
        ValueRef::Text(t) => Ok(t),
        other => Err(Error::Store(format!(
            "table {}: stored key column {} holds {:?}, not text",
            a.t.name(),
            a.t.def.columns[a.t.key_idx[j + 1]].name,
            other.data_type()
        ))),
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
        .map_err(|e| Error::Store(format!("encoding an import record: {e}")))?;
    conn.execute(
        r#"UPDATE "_lakeport_imports" SET "record" = ?2 WHERE "import_id" = ?1"#,
        rusqlite::params![id, json],
    )
    .map_err(db("writing the import record"))?;
    Ok(stored.import_id)
}

#[cfg(test)]
mod tests {
    use super::{prefix_upper_bound, ImportSql};
    use crate::store::schema::OBJECT_INVENTORY_YAML;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Store, TableDef};

    /// The sorted merge seeks and range-tombstones on the primary key, in its order.
    #[test]
    fn merge_statements_search_the_primary_key_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let def = TableDef::from_yaml(OBJECT_INVENTORY_YAML, "object_inventory").unwrap();
        store.ensure_table(&def).unwrap();
        let conn = store.lock();
        let t = store.table_sql(&conn, "object_inventory").unwrap();
        for bounded in [false, true] {
            let sql = ImportSql::new(&t, bounded);
            let m = sql.merge.as_ref().expect("string keys merge");
            for q in [
                &m.seek_first,
                &m.seek_after,
                &m.tombstone_all,
                &m.tombstone_after,
            ] {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {q}")).unwrap();
                let mut rows = stmt.raw_query();
                let mut plan = Vec::new();
                while let Some(row) = rows.next().unwrap() {
                    plan.push(row.get::<_, String>(3).unwrap());
                }
                let plan = plan.join(" | ");
                let want = if q == &m.seek_after || q == &m.tombstone_after {
                    "USING PRIMARY KEY (bucket=? AND (key,version_id)>(?,?)"
                } else {
                    "USING PRIMARY KEY (bucket=? AND key>?"
                };
                assert!(
                    plan.contains(&format!("SEARCH data_object_inventory {want}")),
                    "{q}: {plan}"
                );
                assert_eq!(bounded, plan.contains("AND key<?)"), "{q}: {plan}");
                if q.starts_with("SELECT") {
                    assert!(!plan.contains("TEMP B-TREE"), "{q}: {plan}");
                }
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
