//! Snapshot imports in PostgreSQL ([`Store::apply_snapshot`](crate::store::Store::apply_snapshot)):
//! one write transaction that upserts a snapshot's rows, tombstones the rows of its scope the
//! snapshot did not hold, and records the import in `_lakeport_imports`.
//!
//! The rows take the [`bulk`](super::bulk) path whatever their number: one binary `COPY` into
//! a staging table, then set-based statements that tombstone the live rows of the scope the
//! stage does not hold (an anti-join on the server: nothing of the scope comes to the
//! client), revive, update and insert (an unchanged row is not written and takes no `_seq`).
//! Imports into one table are serialised by a transaction-level advisory lock on the table,
//! so two imports of one scope never diff against each other's uncommitted rows; the
//! "already imported" and "older than the newest" checks run again under it.

use std::time::Instant;

use super::postgres::types::ToSql;
use super::postgres::Transaction;
use super::{bulk, non_negative, PostgresStore};
use crate::error::{Error, Result};
use crate::store::checks::{check_scope_columns, older_than_newest, snapshot_row};
use crate::store::{Change, ImportOutcome, ImportRecord, ImportScope};

/// `_lakeport_imports`: the records, with the columns that find earlier imports of a scope.
pub(super) const CREATE_IMPORTS: &str = r#"
CREATE TABLE IF NOT EXISTS "_lakeport_imports" (
    "import_id" BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "tbl" TEXT NOT NULL,
    "scope_bucket" TEXT NOT NULL,
    "scope_prefix" TEXT NOT NULL,
    "manifest_md5" TEXT NOT NULL,
    "created_ms" BIGINT NOT NULL,
    "record" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS "_lakeport_imports_by_scope"
    ON "_lakeport_imports" ("tbl", "scope_bucket", "scope_prefix", "created_ms");
"#;

/// Applies a snapshot of one scope (see [`Store::apply_snapshot`](crate::store::Store::apply_snapshot)).
pub(super) fn apply_snapshot(
    store: &PostgresStore,
    draft: &ImportRecord,
    changes: &mut dyn Iterator<Item = Result<Change>>,
) -> Result<ImportOutcome> {
    let started = Instant::now();
    let table = draft.table.as_str();
    let mut conn = store.conn()?;
    let t = store.table_sql(&mut *conn, table)?;
    check_scope_columns(&t.def, &t.key_idx)?;
    // The caller names the snapshot ([`import_snapshot`](crate::inventory::import::import_snapshot)).
    let what = format!("importing into table {table}");
    let mut tx = conn.transaction().map_err(store.db(&what))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("lakeport import {table}")],
    )
    .map_err(store.db(&what))?;
    if let Some(earlier) = earlier_import(store, &mut tx, draft)? {
        return Ok(ImportOutcome::AlreadyImported(earlier));
    }
    if let Some(newest) = newest_import(store, &mut tx, draft)? {
        older_than_newest(draft, &newest)?;
    }
    let mut rows = changes.map(|change| {
        change
            .and_then(|c| snapshot_row(draft, &t.def, &t.key_idx, &t.is_key, t.derived, c))
            .map(Change::Upsert)
    });
    let staged = bulk::stage(store, &mut tx, &t, &mut rows)?;
    let scope = ImportScope {
        bucket: draft.scope_bucket.clone(),
        prefix: draft.scope_prefix.clone(),
    };
    let (out, write_ms) = bulk::merge(store, &mut tx, &t, &staged, Some(&scope))?;
    let rows = staged.rows();

    let mut record = ImportRecord::applied(draft, rows, &out, write_ms, started);
    record.import_id = insert_record(store, &mut tx, &record)?;
    tx.commit().map_err(store.db(&what))?;
    Ok(ImportOutcome::Applied(record))
}

/// The newest import records (see [`Store::imports`](crate::store::Store::imports)).
pub(super) fn imports(store: &PostgresStore, limit: usize) -> Result<Vec<ImportRecord>> {
    let mut conn = store.conn()?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.query(
        r#"SELECT "import_id", "record" FROM "_lakeport_imports"
           ORDER BY "import_id" DESC LIMIT $1"#,
        &[&limit],
    )
    .map_err(store.db("reading import records"))?
    .iter()
    .map(|r| decode_record(r.get(0), r.get(1)))
    .collect()
}

fn decode_record(id: i64, json: &str) -> Result<ImportRecord> {
    serde_json::from_str(json).map_err(|e| {
        Error::store_caused(format!("the stored record of import {id} is not valid"), e)
    })
}

/// An import of the same snapshot into the same scope, if there was one.
fn earlier_import(
    store: &PostgresStore,
    tx: &mut Transaction<'_>,
    draft: &ImportRecord,
) -> Result<Option<ImportRecord>> {
    find_import(
        store,
        tx,
        r#"SELECT "import_id", "record" FROM "_lakeport_imports"
           WHERE "tbl" = $1 AND "scope_bucket" = $2 AND "scope_prefix" = $3
             AND "manifest_md5" = $4
           ORDER BY "import_id" DESC LIMIT 1"#,
        &[
            &draft.table,
            &draft.scope_bucket,
            &draft.scope_prefix,
            &draft.manifest_md5,
        ],
    )
}

/// The newest snapshot applied to the draft's scope (by creation time), if any.
fn newest_import(
    store: &PostgresStore,
    tx: &mut Transaction<'_>,
    draft: &ImportRecord,
) -> Result<Option<ImportRecord>> {
    find_import(
        store,
        tx,
        r#"SELECT "import_id", "record" FROM "_lakeport_imports"
           WHERE "tbl" = $1 AND "scope_bucket" = $2 AND "scope_prefix" = $3
           ORDER BY "created_ms" DESC, "import_id" DESC LIMIT 1"#,
        &[&draft.table, &draft.scope_bucket, &draft.scope_prefix],
    )
}

/// The one import record (`import_id`, `record`) that `sql` selects, if any.
fn find_import(
    store: &PostgresStore,
    tx: &mut Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<ImportRecord>> {
    tx.query_opt(sql, params)
        .map_err(store.db("looking up earlier imports"))?
        .map(|r| decode_record(r.get(0), r.get(1)))
        .transpose()
}

/// Stores `record` under a new import id (which goes into the stored JSON too); the id.
fn insert_record(
    store: &PostgresStore,
    tx: &mut Transaction<'_>,
    record: &ImportRecord,
) -> Result<u64> {
    let at = || store.db("writing the import record");
    let row = tx
        .query_one(
            r#"INSERT INTO "_lakeport_imports"
               ("tbl", "scope_bucket", "scope_prefix", "manifest_md5", "created_ms", "record")
               VALUES ($1, $2, $3, $4, $5, '') RETURNING "import_id""#,
            &[
                &record.table,
                &record.scope_bucket,
                &record.scope_prefix,
                &record.manifest_md5,
                &record.created_ms,
            ],
        )
        .map_err(at())?;
    let id: i64 = row.get(0);
    let mut stored = record.clone();
    stored.import_id = non_negative(id, "an import id")?;
    let json = serde_json::to_string(&stored)
        .map_err(|e| Error::store_caused("encoding an import record", e))?;
    tx.execute(
        r#"UPDATE "_lakeport_imports" SET "record" = $2 WHERE "import_id" = $1"#,
        &[&id, &json],
    )
    .map_err(at())?;
    Ok(stored.import_id)
}
