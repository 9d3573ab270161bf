//! Snapshot imports in SQLite ([`Store::apply_snapshot`](crate::store::Store::apply_snapshot)):
//! one write transaction that upserts a snapshot's rows, tombstones the rows of its scope the
//! snapshot did not hold, and records the import in `_lakeport_imports`.
//!
//! The keys the snapshot held are collected in a temporary table (`temp."seen_<table>"`, on
//! the write connection, spilled to a temp file by SQLite past its cache), so memory does not
//! grow with the snapshot. After the last row, one `INSERT … SELECT` finds the scope's live
//! rows absent from it (a range scan of the primary key over the scope) into
//! `temp."gone_<table>"`, and one `UPDATE … FROM` turns them into tombstones, each with its
//! own `_seq` in key order.

use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{db, non_negative, quote, Applier, SqliteStore, Statements};
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
}

impl ImportSql {
    fn new(t: &super::TableSql) -> ImportSql {
        let table = t.name();
        let data = &t.data;
        let seen = format!("temp.{}", quote(&format!("seen_{table}")));
        let gone = format!("temp.{}", quote(&format!("gone_{table}")));
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
        ImportSql {
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
        let sql = ImportSql::new(&t);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(format_args!("starting an import into table {table}")))?;
        if let Some(earlier) = earlier_import(&tx, draft)? {
            return Ok(ImportOutcome::AlreadyImported(earlier));
        }
        refuse_older(&tx, draft)?;
        // A scope with no rows at all (not even tombstones) cannot hold anything to update or
        // tombstone: rows go straight in, without a lookup or a key table.
        let fresh = scope_is_empty(&tx, &sql, draft)?;
        if !fresh {
            tx.execute_batch(&sql.create_seen)
                .map_err(db("creating the import's key table"))?;
        }

        let mut a = Applier::begin(&tx, &t)?;
        let mut rows = 0u64;
        {
            let mut s = Statements::prepare(&tx, &a)?;
            let mut seen = None;
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
                if fresh {
                    // A key the snapshot repeats is found by the insert's constraint and
                    // takes the upsert path.
                    if !a.insert_new(&mut s, &values)? {
                        a.upsert(&mut s, &values)?;
                    }
                    continue;
                }
                a.upsert(&mut s, &values)?;
                let seen = seen.get_or_insert(
                    tx.prepare_cached(&sql.insert_seen)
                        .map_err(db("preparing the import's key table"))?,
                );
                for (j, &i) in t.key_idx.iter().enumerate() {
                    seen.raw_bind_parameter(j + 1, super::Bind(&values[i]))
                        .map_err(db("binding a key"))?;
                }
                seen.raw_execute()
                    .map_err(db("recording a key of the import"))?;
            }
        }
        let deleted = if fresh {
            0
        } else {
            tombstone_absent(&tx, &sql, draft, a.seq, a.write_time)?
        };
        a.seq += i64::try_from(deleted).unwrap_or(i64::MAX);
        a.out.deleted += deleted;
        let write_time = a.write_time;
        let out = a.finish(&tx)?;
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
            sql.seen, sql.gone
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
fn scope_is_empty(conn: &Connection, sql: &ImportSql, draft: &ImportRecord) -> Result<bool> {
    let upper = prefix_upper_bound(&draft.scope_prefix);
    let any: Option<i64> = conn
        .query_row(
            &sql.any_in_scope,
            rusqlite::params![draft.scope_bucket, draft.scope_prefix, upper],
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
    draft: &ImportRecord,
    seq: i64,
    write_time: i64,
) -> Result<u64> {
    conn.execute_batch(&sql.create_gone)
        .map_err(db("creating the import's table of absent rows"))?;
    let upper = prefix_upper_bound(&draft.scope_prefix);
    let found = conn
        .execute(
            &sql.find_gone,
            rusqlite::params![draft.scope_bucket, draft.scope_prefix, upper],
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
    use super::prefix_upper_bound;

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
