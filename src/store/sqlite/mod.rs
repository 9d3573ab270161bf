//! SQLite backend of the metadata store: one database file in WAL mode.
//!
//! This file owns the on-disk layout (which other tools read, so the names are fixed), the
//! transactions of [`Store::apply`], consistent sharded snapshots and the run records. It does
//! not parse table declarations (that is [`crate::model::schema`]) and knows nothing of delivery
//! beyond storing its records.
//!
//! Layout:
//! - `_lakeport_meta(key, value)`: `seq` (highest `_seq` in the store) and `last_write_time`.
//! - `_lakeport_tables(name, definition)`: every declared table, its [`TableDef`] as JSON.
//! - `_lakeport_runs(run_id, task, status, started_ms, record)`: [`RunRecord`]s as JSON.
//! - `_lakeport_tasks(task, state)`: [`TaskState`]s as JSON (checkpoint, next object id,
//!   objects waiting for removal).
//! - `_lakeport_live(task, path, partition, object)`: every task's live objects, one row
//!   each ([`DeliveredObject`] as JSON), so that a run appends its objects without rewriting
//!   the task's whole live set (an incremental task's grows with every run).
//! - `_lakeport_imports(import_id, tbl, scope_bucket, scope_prefix, manifest_md5, created_ms,
//!   record)`: [`ImportRecord`]s as JSON (see the `import` submodule).
//! - `data_<table>`: the declared columns (TEXT, INTEGER, REAL, INTEGER 0/1, BLOB, INTEGER
//!   epoch ms), then `_seq`, `_write_time`, `_deleted`; primary key = the declared key,
//!   `WITHOUT ROWID`, with an index on (`_seq`, `_deleted`). A tombstone is a row with `_deleted = 1` and
//!   its non-key columns NULL.
//!
//! A snapshot opens one connection per shard and pins a WAL read snapshot on each (`BEGIN` and
//! a read of `seq`). Every data change bumps `seq` in its own transaction, so readers that saw
//! the same `seq` see the same rows: the snapshot first tries that without blocking anyone (a
//! long load in progress does not hold it up), and when commits keep slipping in between it
//! holds off writers with `BEGIN IMMEDIATE` on another connection for the instant the readers
//! take to pin. A shard reader keeps its read transaction until it is dropped (which keeps
//! the WAL from being checkpointed past it meanwhile).
//!
//! SQLite cannot store a NaN double (it turns it into NULL), so `apply` rejects NaN rather
//! than change the value silently; a zero double keeps no sign.

mod listing;

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, TransactionBehavior};

use crate::error::{Error, Result};
use crate::model::{ColumnType, DeliveredObject, TableDef};
use crate::store::batch::{append_null, Builders, ColumnBuilder};
use crate::store::checks::{
    check_def, check_key, check_row, checkpoint_within, decode_workers, differences, worker_json,
};
use crate::store::runs::{self, decode_object, decode_run, object_json, record_json, state_json};
use crate::store::sql::{data_columns, data_table, non_negative, now_ms, quote, to_i64};
use crate::store::{
    ApplyOutcome, Change, ImportOutcome, ImportRecord, Lag, LiveSet, OwnerGone, RunRecord,
    RunStatus, ShardReader, Snapshot, StartedRun, Store, StoreIdentity, TableStats, TaskState,
    Value, WorkerRecord,
};

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to pin a snapshot's readers without holding off writers.
const OPTIMISTIC_PINS: usize = 3;
/// Page cache of the write connection, in KiB (SQLite's negative `cache_size`).
const WRITE_CACHE_KIB: i64 = 32 * 1024;
/// Prepared statements kept per connection (four per table written, plus a few).
const STATEMENT_CACHE: usize = 128;

const CREATE_META: &str = r#"
CREATE TABLE IF NOT EXISTS "_lakeport_meta" ("key" TEXT PRIMARY KEY, "value" INTEGER);
INSERT OR IGNORE INTO "_lakeport_meta" ("key", "value") VALUES ('seq', 0), ('last_write_time', 0);
CREATE TABLE IF NOT EXISTS "_lakeport_tables" ("name" TEXT PRIMARY KEY, "definition" TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS "_lakeport_runs" (
    "run_id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "task" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "started_ms" INTEGER NOT NULL,
    "record" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS "_lakeport_runs_by_task" ON "_lakeport_runs" ("task", "run_id");
CREATE TABLE IF NOT EXISTS "_lakeport_tasks" ("task" TEXT PRIMARY KEY, "state" TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS "_lakeport_live" (
    "task" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "partition" TEXT NOT NULL,
    "object" TEXT NOT NULL,
    PRIMARY KEY ("task", "path")
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS "_lakeport_live_by_partition" ON "_lakeport_live" ("task", "partition");
CREATE TABLE IF NOT EXISTS "_lakeport_workers" (
    "worker_id" TEXT PRIMARY KEY,
    "heartbeat_ms" INTEGER NOT NULL,
    "record" TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS "_lakeport_store" (
    "one" INTEGER PRIMARY KEY CHECK ("one" = 1),
    "id" TEXT NOT NULL,
    "created_ms" INTEGER NOT NULL
);
"#;

/// Gives a store its id when it has none (a new store, or one made before ids existed).
const MAKE_IDENTITY: &str = r#"INSERT OR IGNORE INTO "_lakeport_store" ("one", "id", "created_ms")
    VALUES (1, ?1, ?2)"#;
const READ_IDENTITY: &str = r#"SELECT "id", "created_ms" FROM "_lakeport_store" WHERE "one" = 1"#;

mod import;

const READ_SEQ: &str = r#"SELECT "value" FROM "_lakeport_meta" WHERE "key" = 'seq'"#;
const READ_LAST_WRITE_TIME: &str =
    r#"SELECT "value" FROM "_lakeport_meta" WHERE "key" = 'last_write_time'"#;
const WRITE_META: &str = r#"UPDATE "_lakeport_meta" SET "value" = ?2 WHERE "key" = ?1"#;

/// Changes of at least this many rows are read by key ranges when they are a quarter of the
/// table or more: one pass over the table in key order beats a `_seq`-index lookup per row.
const KEY_SCAN_MIN_ROWS: u64 = 50_000;

/// The SQLite metadata store. Writes go through one connection (serialised by a mutex);
/// each snapshot shard reads on a connection of its own.
pub struct SqliteStore {
    path: PathBuf,
    /// Opened with [`SqliteStore::open_read_only`]: every connection is read-only.
    read_only: bool,
    conn: Mutex<Connection>,
    tables: Mutex<HashMap<String, Arc<TableSql>>>,
    /// Optimistic attempts of a snapshot before it holds off writers.
    optimistic_pins: usize,
    /// Changes of at least this many rows that are a quarter of the table or more are read
    /// by key ranges rather than through the `_seq` index (see [`Store::changes`]).
    key_scan_min_rows: u64,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path`: WAL mode, `synchronous=NORMAL`,
    /// a 30 s busy timeout, and the `_lakeport_*` tables. A missing parent folder is an
    /// [`Error::InvalidConfig`]; any other failure an [`Error::Store`]; both name the path.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                return Err(Error::InvalidConfig(format!(
                    "store {}: folder {} does not exist",
                    path.display(),
                    parent.display()
                )));
            }
        }
        let conn = open_wal(path).map_err(|e| why_not_writable(path).unwrap_or(e))?;
        let at = |e: rusqlite::Error| Error::Store(format!("opening {}: {e}", path.display()));
        move_live_objects_out_of_task_states(&conn)?;
        conn.pragma_update(None, "cache_size", -WRITE_CACHE_KIB)
            .map_err(at)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            read_only: false,
            conn: Mutex::new(conn),
            tables: Mutex::new(HashMap::new()),
            optimistic_pins: OPTIMISTIC_PINS,
            key_scan_min_rows: KEY_SCAN_MIN_ROWS,
        })
    }

    /// Opens the existing store file at `path` for reading only, creating nothing: no file,
    /// no table, no index (for the commands that only read: `tables`, `status`, `ls`, `du`,
    /// `ddl`). A store on a read-only file, folder or file system opens too: SQLite first
    /// reads it as usual; when it cannot make the shared-memory file (`-shm`) that WAL
    /// readers use beside the store (a read-only folder or mount), the file is opened as
    /// immutable (`?immutable=1`), which is right as long as nothing writes it meanwhile —
    /// and nothing can, where lakeport cannot write either. A missing file is
    /// [`Error::NotFound`]; a file that is not a lakeport store, [`Error::Store`].
    pub fn open_read_only(path: &Path) -> Result<SqliteStore> {
        if !path.is_file() {
            return Err(Error::NotFound(format!(
                "store {}: no such file",
                path.display()
            )));
        }
        let conn = match connect_read_only(path, false) {
            Ok(conn) => conn,
            Err(first) => connect_read_only(path, true).map_err(|_| first)?,
        };
        Ok(SqliteStore {
            path: path.to_path_buf(),
            read_only: true,
            conn: Mutex::new(conn),
            tables: Mutex::new(HashMap::new()),
            optimistic_pins: OPTIMISTIC_PINS,
            key_scan_min_rows: KEY_SCAN_MIN_ROWS,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store was opened with [`SqliteStore::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// A new connection to the store file, read-only when the store is: each snapshot shard
    /// and listing reads on one of its own.
    fn connect(&self) -> Result<Connection> {
        if self.read_only {
            connect_read_only(&self.path, false)
                .or_else(|first| connect_read_only(&self.path, true).map_err(|_| first))
        } else {
            connect(&self.path)
        }
    }

    /// The stored definition of table `name`, or `None` when it was never declared.
    pub fn table_def(&self, name: &str) -> Result<Option<TableDef>> {
        let conn = self.lock();
        stored_def(&conn, name)
    }

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
            Error::Store(
                "snapshot: shard readers saw different states while writers were held off".into(),
            )
        })?;
        released.map_err(db("snapshot: releasing the write lock"))?;
        Ok(seq)
    }

    /// The write connection. A panic while it was held leaves no transaction open (rusqlite's
    /// `Transaction` rolls back on drop), so a poisoned lock is safe to take over.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The statements and layout of table `name`, read through `conn` on first use.
    fn table_sql(&self, conn: &Connection, name: &str) -> Result<Arc<TableSql>> {
        let cache = || self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = cache().get(name) {
            return Ok(Arc::clone(t));
        }
        let def = stored_def(conn, name)?.ok_or_else(|| {
            Error::NotFound(format!(
                "table {name:?} is not in the store (declare it under schemas/)"
            ))
        })?;
        let sql = Arc::new(TableSql::new(def));
        cache().insert(name.to_string(), Arc::clone(&sql));
        Ok(sql)
    }
}

/// A new connection to `path` with the busy timeout and synchronous mode every connection uses.
fn connect(path: &Path) -> Result<Connection> {
    let at = |e: rusqlite::Error| Error::Store(format!("opening {}: {e}", path.display()));
    let conn = Connection::open(path).map_err(at)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(at)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(at)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A read-only connection to the store file at `path` (`immutable`: SQLite is told that
/// nothing changes the file, so it needs no `-shm` beside it), checked to be a lakeport store
/// by a read of its sequence.
fn connect_read_only(path: &Path, immutable: bool) -> Result<Connection> {
    let at =
        |e: rusqlite::Error| Error::Store(format!("opening {} for reading: {e}", path.display()));
    let absolute = std::path::absolute(path).map_err(|e| Error::io("resolving", path, e))?;
    let mut uri = String::from("file:");
    uri.extend(percent_encoding::utf8_percent_encode(
        &absolute.to_string_lossy(),
        URI_PATH,
    ));
    uri.push_str(if immutable {
        "?immutable=1"
    } else {
        "?mode=ro"
    });
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&uri, flags).map_err(at)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(at)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = '_lakeport_meta'",
            [],
            |r| r.get(0),
        )
        .map_err(at)?;
    if !has_meta {
        return Err(Error::Store(format!(
            "{} is not a lakeport store (it has no _lakeport_meta table)",
            path.display()
        )));
    }
    read_meta(&conn, READ_SEQ, "seq")?;
    Ok(conn)
}

/// Characters of a path that a `file:` URI must escape (SQLite decodes `%XX` in the path).
const URI_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'?')
    .add(b'#')
    .add(b'"');

/// Why the store at `path` cannot be written, when the file system says so: the file is not
/// writable (permission, read-only mount), or its folder is not (SQLite keeps its `-wal` and
/// `-shm` files beside the store, and creates the store there when it is missing). `None`
/// when both are writable (the failure lies elsewhere).
fn why_not_writable(path: &Path) -> Option<Error> {
    let refused = |context: String, source: std::io::Error| Some(Error::Io { context, source });
    if path.exists() {
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
            return refused(
                format!("store {}: cannot write the file", path.display()),
                e,
            );
        }
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match tempfile::Builder::new()
        .prefix(".lakeport-write-check")
        .tempfile_in(folder)
    {
        Ok(_) => None,
        Err(e) => refused(
            format!(
                "store {}: cannot write in its folder {} (SQLite keeps its -wal and -shm \
                 files beside the store)",
                path.display(),
                folder.display()
            ),
            e,
        ),
    }
}

/// Opens the store's first connection: WAL mode, lakeport's own tables created. SQLite
/// answers "database is locked" at once, without waiting for the busy timeout, in a few
/// races around opening a WAL database (another connection recovering or removing the WAL
/// as it closes, another opener switching the journal mode); such refusals are retried, with
/// exponential backoff, for up to the busy timeout.
fn open_wal(path: &Path) -> Result<Connection> {
    let at = |e: rusqlite::Error| Error::Store(format!("opening {}: {e}", path.display()));
    let policy = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(5),
        max_interval: Duration::from_millis(200),
        max_elapsed_time: Some(BUSY_TIMEOUT),
        ..backoff::ExponentialBackoff::default()
    };
    let attempt = || -> std::result::Result<Connection, backoff::Error<Error>> {
        let classify = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                backoff::Error::transient(at(e))
            }
            _ => backoff::Error::permanent(at(e)),
        };
        let conn = Connection::open(path).map_err(classify)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(classify)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(backoff::Error::permanent(Error::Store(format!(
                "opening {}: cannot switch to WAL mode (journal mode is {mode})",
                path.display()
            ))));
        }
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;{CREATE_META}{}",
            import::CREATE_IMPORTS
        ))
        .map_err(classify)?;
        let made = conn
            .execute(
                MAKE_IDENTITY,
                rusqlite::params![uuid::Uuid::new_v4().to_string(), now_ms()],
            )
            .and_then(|_| conn.execute_batch("COMMIT"));
        if let Err(e) = made {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(classify(e));
        }
        Ok(conn)
    };
    let conn = backoff::retry(policy, attempt).map_err(|e| match e {
        backoff::Error::Permanent(e) | backoff::Error::Transient { err: e, .. } => e,
    })?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(at)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Maps a rusqlite error to [`Error::Store`], saying what was being done.
fn db(what: impl fmt::Display) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| Error::Store(format!("{what}: {e}"))
}

/// A stored integer that must not be negative (`_seq`, counters).
fn read_meta(conn: &Connection, sql: &str, what: &str) -> Result<i64> {
    let v: Option<i64> = conn
        .prepare_cached(sql)
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db(format_args!("reading {what}")))?;
    Ok(v.unwrap_or(0))
}

fn stored_def(conn: &Connection, name: &str) -> Result<Option<TableDef>> {
    read_json(
        conn,
        r#"SELECT "definition" FROM "_lakeport_tables" WHERE "name" = ?1"#,
        name,
        &format!("definition of table {name}"),
    )
}

/// The JSON value stored in the one row `sql` selects for `key` (None when there is no row);
/// `what` names it in errors.
fn read_json<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    key: &str,
    what: &str,
) -> Result<Option<T>> {
    let json: Option<String> = conn
        .query_row(sql, [key], |r| r.get(0))
        .optional()
        .map_err(db(format_args!("reading the {what}")))?;
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| Error::Store(format!("the stored {what} is not valid: {e}")))
    })
    .transpose()
}

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "TEXT",
        ColumnType::Int64 | ColumnType::Bool | ColumnType::TimestampMs => "INTEGER",
        ColumnType::Double => "REAL",
        ColumnType::Binary => "BLOB",
    }
}

/// One table's layout and SQL texts, built once per table.
#[derive(Debug)]
struct TableSql {
    def: TableDef,
    schema: SchemaRef,
    /// `schema` with a last, non-null Boolean [`DELETED_COLUMN`].
    schema_with_deleted: SchemaRef,
    /// Column indexes of the key, in key order.
    key_idx: Vec<usize>,
    /// Column indexes of the other columns, in table order.
    other_idx: Vec<usize>,
    /// Whether column i is part of the key.
    is_key: Vec<bool>,
    /// `SELECT _deleted, <others> WHERE <key> = ?1..` (key bound in key order).
    lookup: String,
    /// `INSERT` binding column i at `?i+1`, `_seq` at `?n+1`, `_write_time` at `?n+2`.
    insert: String,
    /// `UPDATE` (also revives a tombstone) with the same numbering as `insert`.
    update: String,
    /// Tombstone `UPDATE`: `_seq` `?1`, `_write_time` `?2`, key at `?3..` in key order.
    tombstone: String,
    /// `"data_<table>"`.
    data: String,
    /// `"k1", "k2"`.
    key_list: String,
    /// Every column, then `_seq`, `_write_time`.
    select_list: String,
}

impl TableSql {
    fn new(def: TableDef) -> TableSql {
        let data = data_table(&def.table);
        let key_idx = def.key_indexes();
        let other_idx: Vec<usize> = (0..def.columns.len())
            .filter(|i| !key_idx.contains(i))
            .collect();
        let n = def.columns.len();
        let col = |i: usize| quote(&def.columns[i].name);
        let key_eq = |first: usize, by_column: bool| {
            key_idx
                .iter()
                .enumerate()
                .map(|(j, &i)| {
                    let p = if by_column { i + 1 } else { j + first };
                    format!("{} = ?{p}", col(i))
                })
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let others = other_idx
            .iter()
            .map(|&i| col(i))
            .collect::<Vec<_>>()
            .join(", ");
        let lookup = format!(
            "SELECT \"_deleted\"{}{others} FROM {data} WHERE {}",
            if others.is_empty() { "" } else { ", " },
            key_eq(1, false)
        );
        let all = (0..n).map(col).collect::<Vec<_>>().join(", ");
        let params = (1..=n).map(|p| format!("?{p}")).collect::<Vec<_>>();
        let insert = format!(
            "INSERT INTO {data} ({all}, \"_seq\", \"_write_time\", \"_deleted\") VALUES ({}, ?{}, ?{}, 0)",
            params.join(", "),
            n + 1,
            n + 2
        );
        let mut sets: Vec<String> = other_idx
            .iter()
            .map(|&i| format!("{} = ?{}", col(i), i + 1))
            .collect();
        sets.push(format!("\"_seq\" = ?{}", n + 1));
        sets.push(format!("\"_write_time\" = ?{}", n + 2));
        sets.push("\"_deleted\" = 0".into());
        let update = format!(
            "UPDATE {data} SET {} WHERE {}",
            sets.join(", "),
            key_eq(0, true)
        );
        let mut nulls: Vec<String> = other_idx
            .iter()
            .map(|&i| format!("{} = NULL", col(i)))
            .collect();
        nulls.push("\"_seq\" = ?1".into());
        nulls.push("\"_write_time\" = ?2".into());
        nulls.push("\"_deleted\" = 1".into());
        let tombstone = format!(
            "UPDATE {data} SET {} WHERE {}",
            nulls.join(", "),
            key_eq(3, false)
        );
        let key_list = key_idx
            .iter()
            .map(|&i| col(i))
            .collect::<Vec<_>>()
            .join(", ");
        let select_list = format!("{all}, \"_seq\", \"_write_time\"");
        TableSql {
            schema: def.arrow_schema(),
            schema_with_deleted: def.arrow_schema_with_deleted(),
            is_key: (0..n).map(|i| key_idx.contains(&i)).collect(),
            def,
            key_idx,
            other_idx,
            lookup,
            insert,
            update,
            tombstone,
            data,
            key_list,
            select_list,
        }
    }

    fn name(&self) -> &str {
        &self.def.table
    }

    /// Checks an upsert's values against the declared columns.
    fn check_row(&self, values: &[Value]) -> Result<()> {
        check_row(&self.def, &self.is_key, values)
    }

    /// Checks a delete's key values against the declared key columns.
    fn check_key(&self, key: &[Value]) -> Result<()> {
        check_key(&self.def, &self.key_idx, key)
    }

    /// `SELECT` in key order within optional key bounds: the live rows, or with `changes`
    /// the rows (and tombstones when `changes` says so, with `_deleted` last) whose `_seq` is
    /// in a range. Parameters: the lower bound at `?1..?k`, the upper at the next `k`, then the
    /// range's first `_seq` and the one past its end. The `_seq` test is written `+"_seq"` so
    /// that SQLite walks the primary key rather than the `_seq` index.
    fn range_sql(&self, lower: bool, upper: bool, changes: Option<bool>) -> String {
        let k = self.key_idx.len();
        let params = |first: usize| {
            (first..first + k)
                .map(|p| format!("?{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let deletes = changes == Some(true);
        let mut sql = format!(
            "SELECT {}{} FROM {} WHERE {}",
            self.select_list,
            if deletes { ", \"_deleted\"" } else { "" },
            self.data,
            if deletes { "1" } else { "\"_deleted\" = 0" }
        );
        let mut next = 1;
        if lower {
            let _ = write!(sql, " AND ({}) >= ({})", self.key_list, params(next));
            next += k;
        }
        if upper {
            let _ = write!(sql, " AND ({}) < ({})", self.key_list, params(next));
            next += k;
        }
        if changes.is_some() {
            let _ = write!(
                sql,
                " AND +\"_seq\" >= ?{next} AND +\"_seq\" < ?{}",
                next + 1
            );
        }
        let _ = write!(sql, " ORDER BY {}", self.key_list);
        sql
    }
}

/// Binds a [`Value`] without copying it.
struct Bind<'a>(&'a Value);

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
enum Stored {
    Absent,
    Tombstone,
    Same,
    Different,
}

/// Counters of one `apply`.
struct Applier<'t> {
    t: &'t TableSql,
    /// `seq` when the write began.
    start_seq: i64,
    seq: i64,
    write_time: i64,
    out: ApplyOutcome,
}

impl Applier<'_> {
    fn err(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |e| Error::Store(format!("{what} in table {}: {e}", self.t.name()))
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

    fn upsert(&mut self, s: &mut Statements<'_>, values: &[Value]) -> Result<()> {
        self.t.check_row(values)?;
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
                stmt.raw_bind_parameter(i + 1, Bind(v))
                    .map_err(|e| Error::Store(format!("binding a value in table {table}: {e}")))?;
            }
            Ok(())
        })
    }

    /// Writes an upsert given what the store holds for its key; `bind` binds the row's
    /// columns to the insert or update statement (column i at `?i+1`).
    fn write_upsert_with(
        &mut self,
        s: &mut Statements<'_>,
        stored: Stored,
        bind: impl FnOnce(&mut rusqlite::Statement<'_>) -> Result<()>,
    ) -> Result<()> {
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
            move |e: rusqlite::Error| Error::Store(format!("{what} in table {table}: {e}"))
        };
        let seq = self.seq + 1;
        let n = self.t.def.columns.len();
        bind(stmt)?;
        stmt.raw_bind_parameter(n + 1, seq)
            .map_err(at("binding _seq"))?;
        stmt.raw_bind_parameter(n + 2, self.write_time)
            .map_err(at("binding _write_time"))?;
        stmt.raw_execute().map_err(at("writing a row"))?;
        *counter += 1;
        self.seq = seq;
        Ok(())
    }

    fn delete(&mut self, s: &mut Statements<'_>, key: &[Value]) -> Result<()> {
        self.t.check_key(key)?;
        match self.stored(&mut s.lookup, |j| &key[j], None)? {
            Stored::Absent | Stored::Tombstone => self.out.unchanged += 1,
            Stored::Same | Stored::Different => {
                self.write_tombstone(s, key.iter().map(Bind))?;
            }
        }
        Ok(())
    }

    /// Tombstones the live row with `key` (in key order) under the next `_seq`.
    fn write_tombstone(
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
        stmt.raw_execute()
            .map_err(self.err("writing a tombstone"))?;
        self.out.deleted += 1;
        Ok(())
    }
}

struct Statements<'c> {
    lookup: rusqlite::CachedStatement<'c>,
    insert: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
    tombstone: rusqlite::CachedStatement<'c>,
}

fn apply_in(
    conn: &Connection,
    t: &TableSql,
    changes: &mut dyn Iterator<Item = Result<Change>>,
) -> Result<ApplyOutcome> {
    let mut a = Applier::begin(conn, t)?;
    let mut s = Statements::prepare(conn, &a)?;
    for change in changes {
        match change? {
            Change::Upsert(values) => a.upsert(&mut s, &values)?,
            Change::Delete(key) => a.delete(&mut s, &key)?,
        }
    }
    drop(s);
    a.finish(conn)
}

impl<'t> Applier<'t> {
    /// Starts counting a write to `t` inside the caller's transaction on `conn`.
    fn begin(conn: &Connection, t: &'t TableSql) -> Result<Applier<'t>> {
        let start_seq = read_meta(conn, READ_SEQ, "seq")?;
        let last_write_time = read_meta(conn, READ_LAST_WRITE_TIME, "last_write_time")?;
        Ok(Applier {
            t,
            start_seq,
            seq: start_seq,
            write_time: now_ms().max(last_write_time),
            out: ApplyOutcome::default(),
        })
    }

    /// Stores the new `seq` and `last_write_time` when anything changed; the outcome.
    fn finish(mut self, conn: &Connection) -> Result<ApplyOutcome> {
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
    fn prepare(conn: &'c Connection, a: &Applier<'_>) -> Result<Statements<'c>> {
        let prepare = |sql: &str| conn.prepare_cached(sql).map_err(a.err("preparing"));
        Ok(Statements {
            lookup: prepare(&a.t.lookup)?,
            insert: prepare(&a.t.insert)?,
            update: prepare(&a.t.update)?,
            tombstone: prepare(&a.t.tombstone)?,
        })
    }
}

fn create_table_sql(def: &TableDef) -> String {
    let (columns, key) = data_columns(
        def,
        sql_type,
        &[
            "\"_seq\" INTEGER NOT NULL",
            "\"_write_time\" INTEGER NOT NULL",
            "\"_deleted\" INTEGER NOT NULL DEFAULT 0",
        ],
    );
    format!(
        "CREATE TABLE {} ({columns}, PRIMARY KEY ({key})) WITHOUT ROWID;\n{}",
        data_table(&def.table),
        seq_index_sql(def)
    )
}

/// The `_seq` index: it carries `_deleted` too, so counting the changes above a checkpoint
/// (`changes`, `lag`) reads the index alone.
fn seq_index_sql(def: &TableDef) -> String {
    format!(
        "CREATE INDEX {} ON {} (\"_seq\", \"_deleted\");",
        quote(&format!("data_{}_by_seq", def.table)),
        data_table(&def.table)
    )
}

/// Rebuilds the `_seq` index of a table made before it carried `_deleted` (once per store).
fn upgrade_seq_index(conn: &Connection, def: &TableDef) -> Result<()> {
    let at = || db(format!("upgrading the _seq index of table {}", def.table));
    let name = format!("data_{}_by_seq", def.table);
    let columns: i64 = conn
        .query_row("SELECT count(*) FROM pragma_index_info(?1)", [&name], |r| {
            r.get(0)
        })
        .map_err(at())?;
    if columns == 1 {
        conn.execute_batch(&format!(
            "DROP INDEX {};\n{}",
            quote(&name),
            seq_index_sql(def)
        ))
        .map_err(at())?;
    }
    Ok(())
}

/// The status and record of run `id`, if the store holds it.
fn stored_run(conn: &Connection, id: i64) -> Result<Option<(String, RunRecord)>> {
    let stored: Option<(String, String)> = conn
        .query_row(
            r#"SELECT "status", "record" FROM "_lakeport_runs" WHERE "run_id" = ?1"#,
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db(format!("reading run {id}")))?;
    stored
        .map(|(status, json)| Ok((status, decode_run(id, &json)?)))
        .transpose()
}

/// The task's runs recorded as `Running`.
fn running_runs(conn: &Connection, task: &str) -> Result<Vec<RunRecord>> {
    read_runs(
        conn,
        r#"SELECT "run_id", "record" FROM "_lakeport_runs"
           WHERE "task" = ?1 AND "status" = 'running' ORDER BY "run_id""#,
        [task],
        &format!("reading the running runs of task {task}"),
    )
}

/// The run records `sql` selects as (`run_id`, `record`) rows; `what` names the read in errors.
fn read_runs(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: &str,
) -> Result<Vec<RunRecord>> {
    let at = || db(what);
    let mut stmt = conn.prepare_cached(sql).map_err(at())?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(at())?;
    let mut out = Vec::new();
    for row in rows {
        let (id, json) = row.map_err(at())?;
        out.push(decode_run(id, &json)?);
    }
    Ok(out)
}

/// Inserts `run` with the next run id, which it sets (the id is the row's, so the record is
/// written once the row exists).
fn insert_run(conn: &Connection, run: &mut RunRecord) -> Result<()> {
    let at = || db(format!("recording a run of task {}", run.task));
    conn.execute(
        r#"INSERT INTO "_lakeport_runs" ("task", "status", "started_ms", "record")
           VALUES (?1, ?2, ?3, '{}')"#,
        rusqlite::params![run.task, run.status.as_str(), run.started_ms],
    )
    .map_err(at())?;
    let id = conn.last_insert_rowid();
    run.run_id = non_negative(id, "a run id")?;
    conn.execute(
        r#"UPDATE "_lakeport_runs" SET "record" = ?1 WHERE "run_id" = ?2"#,
        rusqlite::params![record_json(run)?, id],
    )
    .map_err(at())?;
    Ok(())
}

fn load_task_state(conn: &Connection, task: &str) -> Result<Option<TaskState>> {
    read_json(
        conn,
        r#"SELECT "state" FROM "_lakeport_tasks" WHERE "task" = ?1"#,
        task,
        &format!("state of task {task}"),
    )
}

fn save_task_state(conn: &Connection, state: &TaskState) -> Result<()> {
    let json = state_json(state)?;
    conn.execute(
        r#"INSERT INTO "_lakeport_tasks" ("task", "state") VALUES (?1, ?2)
           ON CONFLICT ("task") DO UPDATE SET "state" = excluded."state""#,
        rusqlite::params![state.task, json],
    )
    .map_err(db(format_args!("writing the state of task {}", state.task)))?;
    Ok(())
}

/// Stores made when a task's live objects were kept in its state's JSON get them moved into
/// `_lakeport_live` (once; a task's state then stays small however many objects it has).
fn move_live_objects_out_of_task_states(conn: &Connection) -> Result<()> {
    let at = || db("moving live objects out of task states");
    let tx = conn.unchecked_transaction().map_err(at())?;
    let old: Vec<(String, String)> = tx
        .prepare(r#"SELECT "task", "state" FROM "_lakeport_tasks" WHERE "state" LIKE '%"live_objects":%'"#)
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(at())?;
    if old.is_empty() {
        return Ok(());
    }
    for (task, json) in old {
        let mut state: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
            Error::Store(format!("the stored state of task {task} is not valid: {e}"))
        })?;
        let objects = state
            .as_object_mut()
            .and_then(|m| m.remove("live_objects"))
            .unwrap_or_default();
        let objects: Vec<DeliveredObject> = serde_json::from_value(objects).map_err(|e| {
            Error::Store(format!(
                "the live objects of task {task} are not valid: {e}"
            ))
        })?;
        put_live(&tx, &task, &objects)?;
        tx.execute(
            r#"UPDATE "_lakeport_tasks" SET "state" = ?2 WHERE "task" = ?1"#,
            rusqlite::params![task, state.to_string()],
        )
        .map_err(at())?;
    }
    tx.commit().map_err(at())
}

/// Adds `objects` to the live set of `task` (replacing entries of the same path).
fn put_live(conn: &Connection, task: &str, objects: &[DeliveredObject]) -> Result<()> {
    let at = || db(format!("recording the live objects of task {task}"));
    let mut insert = conn
        .prepare_cached(
            r#"INSERT OR REPLACE INTO "_lakeport_live" ("task", "path", "partition", "object")
               VALUES (?1, ?2, ?3, ?4)"#,
        )
        .map_err(at())?;
    for o in objects {
        let json = object_json(task, o)?;
        insert
            .execute(rusqlite::params![task, o.path, o.partition, json])
            .map_err(at())?;
    }
    Ok(())
}

/// The live objects of `task`, sorted by path.
fn load_live(conn: &Connection, task: &str) -> Result<Vec<DeliveredObject>> {
    let at = || db(format!("reading the live objects of task {task}"));
    let mut stmt = conn
        .prepare_cached(
            r#"SELECT "object" FROM "_lakeport_live" WHERE "task" = ?1 ORDER BY "path""#,
        )
        .map_err(at())?;
    let rows = stmt
        .query_map([task], |r| r.get::<_, String>(0))
        .map_err(at())?;
    let mut out = Vec::new();
    for json in rows {
        let json = json.map_err(at())?;
        out.push(decode_object(task, &json)?);
    }
    Ok(out)
}

/// Commits a successful run's objects and its task's new state: the objects join the live
/// set (replacing it with [`LiveSet::Replace`], the old ones then waiting for removal), the
/// checkpoint and the next object id move on.
fn advance_state(conn: &Connection, run: &RunRecord, live: LiveSet) -> Result<()> {
    let task = &run.task;
    let state = runs::advance_state(load_task_state(conn, task)?, run, live, || {
        load_live(conn, task)
    })?;
    if live == LiveSet::Replace {
        conn.execute(r#"DELETE FROM "_lakeport_live" WHERE "task" = ?1"#, [task])
            .map_err(db(format!("replacing the live objects of task {task}")))?;
    }
    put_live(conn, task, &run.objects)?;
    save_task_state(conn, &state)
}

impl Store for SqliteStore {
    fn identity(&self) -> Result<StoreIdentity> {
        let conn = self.lock();
        let location = format!(
            "sqlite:{}",
            std::path::absolute(&self.path)
                .unwrap_or_else(|_| self.path.clone())
                .display()
        );
        let no_id = || {
            Error::NotFound(format!(
                "store {location} has no id yet (made before stores had one; any command \
                 that writes to it gives it one)"
            ))
        };
        let has_table: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = '_lakeport_store'",
                [],
                |r| r.get(0),
            )
            .map_err(db("reading the store's id"))?;
        if !has_table {
            return Err(no_id());
        }
        let row: Option<(String, i64)> = conn
            .query_row(READ_IDENTITY, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db("reading the store's id"))?;
        let (id, created_ms) = row.ok_or_else(no_id)?;
        Ok(StoreIdentity {
            id,
            created_ms,
            location,
        })
    }

    fn ensure_table(&self, def: &TableDef) -> Result<()> {
        check_def(def)?;
        let name = &def.table;
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(format_args!("declaring table {name}")))?;
        if let Some(stored) = stored_def(&tx, name)? {
            if stored == *def {
                listing::ensure_index(&tx, def)?;
                upgrade_seq_index(&tx, def)?;
                return tx
                    .commit()
                    .map_err(db(format_args!("declaring table {name}")));
            }
            return Err(Error::Conflict(format!(
                "table {name} exists in the store with a different definition: {}",
                differences(&stored, def).join("; ")
            )));
        }
        let json = serde_json::to_string(def)
            .map_err(|e| Error::Store(format!("encoding the definition of table {name}: {e}")))?;
        tx.execute(
            r#"INSERT INTO "_lakeport_tables" ("name", "definition") VALUES (?1, ?2)"#,
            [name, &json],
        )
        .map_err(db(format_args!("declaring table {name}")))?;
        tx.execute_batch(&create_table_sql(def))
            .map_err(db(format_args!("creating table {name}")))?;
        listing::ensure_index(&tx, def)?;
        tx.commit()
            .map_err(db(format_args!("declaring table {name}")))?;
        Ok(())
    }

    fn table_stats(&self) -> Result<Vec<TableStats>> {
        let conn = self.lock();
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

    fn apply(
        &self,
        table: &str,
        changes: &mut dyn Iterator<Item = Result<Change>>,
    ) -> Result<ApplyOutcome> {
        let mut conn = self.lock();
        let t = self.table_sql(&conn, table)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(format_args!("starting a write to table {table}")))?;
        // On any error `tx` is dropped, which rolls everything back.
        let out = apply_in(&tx, &t, changes)?;
        tx.commit()
            .map_err(db(format_args!("committing a write to table {table}")))?;
        Ok(out)
    }

    fn snapshot(&self, table: &str, shards: usize) -> Result<Snapshot> {
        let shards = shards.max(1);
        let readers = (0..shards)
            .map(|_| self.connect())
            .collect::<Result<Vec<_>>>()?;
        let t = self.table_sql(&readers[0], table)?;
        let at = |what: &str| db(format!("snapshot of table {table}: {what}"));
        let seq = self.pin_snapshot(&readers)?;

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

    fn changes(
        &self,
        table: &str,
        after_seq: u64,
        shards: usize,
        deletes: bool,
    ) -> Result<Snapshot> {
        let shards = shards.max(1);
        let readers = (0..shards)
            .map(|_| self.connect())
            .collect::<Result<Vec<_>>>()?;
        let t = self.table_sql(&readers[0], table)?;
        let at = |what: &str| {
            db(format!(
                "changes of table {table} after _seq {after_seq}: {what}"
            ))
        };
        let seq = self.pin_snapshot(&readers)?;
        checkpoint_within(table, after_seq, seq)?;
        // Shard s reads `_seq` in [starts[s], starts[s + 1]).
        let first = to_i64(after_seq, "a checkpoint")? + 1;
        let end = to_i64(seq, "the store's seq")? + 1;
        let live_in_range = format!(
            "FROM {} WHERE {}\"_seq\" >= ?1 AND \"_seq\" < ?2",
            t.data,
            unless_deletes(deletes)
        );
        let count: i64 = readers[0]
            .query_row(
                &format!("SELECT count(*) {live_in_range}"),
                [first, end],
                |r| r.get(0),
            )
            .map_err(at("counting rows"))?;
        let rows = non_negative(count, "a row count")?;
        let used = usize::try_from(rows).unwrap_or(usize::MAX).min(shards);
        if rows >= self.key_scan_min_rows.max(1) {
            let live: i64 = readers[0]
                .query_row(
                    &format!("SELECT count(*) FROM {} WHERE \"_deleted\" = 0", t.data),
                    [],
                    |r| r.get(0),
                )
                .map_err(at("counting the table's rows"))?;
            let live = non_negative(live, "a row count")?;
            if rows.saturating_mul(4) >= live && live >= used as u64 {
                // A large share of the table: one pass in key order, split by key ranges.
                let bounds = shard_bounds(&readers[0], &t, live, used)
                    .map_err(at("finding shard bounds"))?;
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

    fn lag(&self, table: &str, after_seq: u64, deletes: bool) -> Result<Lag> {
        let conn = self.connect()?;
        let t = self.table_sql(&conn, table)?;
        let at = |what: &str| db(format!("lag of table {table}: {what}"));
        let after = to_i64(after_seq, "a checkpoint")?;
        let tx = conn
            .unchecked_transaction()
            .map_err(at("starting a read"))?;
        let newest: Option<i64> = tx
            .query_row(&format!("SELECT max(\"_seq\") FROM {}", t.data), [], |r| {
                r.get(0)
            })
            .map_err(at("reading the newest _seq"))?;
        let behind = format!(
            "FROM {} WHERE {}\"_seq\" > ?1",
            t.data,
            unless_deletes(deletes)
        );
        let rows: i64 = tx
            .query_row(&format!("SELECT count(*) {behind}"), [after], |r| r.get(0))
            .map_err(at("counting rows behind"))?;
        let oldest: Option<i64> = tx
            .query_row(
                &format!("SELECT \"_write_time\" {behind} ORDER BY \"_seq\" LIMIT 1"),
                [after],
                |r| r.get(0),
            )
            .optional()
            .map_err(at("reading the oldest change"))?;
        Ok(Lag {
            newest_seq: non_negative(newest.unwrap_or(0), "a _seq")?,
            rows_behind: non_negative(rows, "a row count")?,
            oldest_write_ms: oldest,
        })
    }

    fn purge_tombstones(&self, table: &str, up_to_seq: u64) -> Result<u64> {
        let conn = self.lock();
        let t = self.table_sql(&conn, table)?;
        let purged = conn
            .execute(
                &format!(
                    "DELETE FROM {} WHERE \"_deleted\" = 1 AND \"_seq\" <= ?1",
                    t.data
                ),
                [i64::try_from(up_to_seq).unwrap_or(i64::MAX)],
            )
            .map_err(db(format!("purging tombstones of table {table}")))?;
        Ok(purged as u64)
    }

    fn start_run(
        &self,
        record: &RunRecord,
        lease: Duration,
        gone: OwnerGone<'_>,
    ) -> Result<StartedRun> {
        let task = &record.task;
        let mut conn = self.lock();
        let at = || db(format!("starting a run of task {task}"));
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at())?;
        let now = now_ms();
        let interrupted = runs::take_over(task, running_runs(&tx, task)?, now, lease, gone)?;
        for other in &interrupted {
            tx.execute(
                r#"UPDATE "_lakeport_runs" SET "status" = ?1, "record" = ?2 WHERE "run_id" = ?3"#,
                rusqlite::params![
                    other.status.as_str(),
                    record_json(other)?,
                    to_i64(other.run_id, "run id")?
                ],
            )
            .map_err(at())?;
        }
        let state = load_task_state(&tx, task)?;
        let mut run = runs::new_run(record, state.as_ref(), now)?;
        insert_run(&tx, &mut run)?;
        tx.commit().map_err(at())?;
        Ok(StartedRun { run, interrupted })
    }

    fn heartbeat(&self, run_id: u64) -> Result<()> {
        let mut conn = self.lock();
        let at = || db(format!("recording a heartbeat of run {run_id}"));
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at())?;
        let id = to_i64(run_id, "run id")?;
        let Some((status, mut run)) = stored_run(&tx, id)? else {
            return Err(Error::NotFound(format!("run {run_id} is not in the store")));
        };
        runs::check_heartbeat(run_id, &status, &run)?;
        run.heartbeat_ms = Some(now_ms());
        tx.execute(
            r#"UPDATE "_lakeport_runs" SET "record" = ?1 WHERE "run_id" = ?2"#,
            rusqlite::params![record_json(&run)?, id],
        )
        .map_err(at())?;
        tx.commit().map_err(at())
    }

    fn finish_run(&self, record: &RunRecord, live: LiveSet) -> Result<()> {
        let (task, id) = (&record.task, record.run_id);
        runs::check_finished(record)?;
        let mut conn = self.lock();
        let at = || db(format!("finishing run {id} of task {task}"));
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at())?;
        let run_id = to_i64(id, "run id")?;
        let stored = stored_run(&tx, run_id)?.map(|(status, run)| (run.task, status));
        runs::check_finish(
            record,
            stored
                .as_ref()
                .map(|(t, status)| (t.as_str(), status.as_str())),
        )?;
        tx.execute(
            r#"UPDATE "_lakeport_runs" SET "status" = ?1, "record" = ?2 WHERE "run_id" = ?3"#,
            rusqlite::params![record.status.as_str(), record_json(record)?, run_id],
        )
        .map_err(at())?;
        if record.status == RunStatus::Succeeded {
            advance_state(&tx, record, live)?;
        }
        tx.commit().map_err(at())?;
        Ok(())
    }

    fn record_failed_run(&self, record: &RunRecord) -> Result<u64> {
        runs::check_failed_before_start(record)?;
        let mut conn = self.lock();
        let at = || db(format!("recording a failed run of task {}", record.task));
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at())?;
        let mut run = record.clone();
        insert_run(&tx, &mut run)?;
        tx.commit().map_err(at())?;
        Ok(run.run_id)
    }

    fn clear_pending_removal(&self, task: &str, removed: &[DeliveredObject]) -> Result<()> {
        let mut conn = self.lock();
        let at = || db(format!("updating the state of task {task}"));
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at())?;
        let Some(mut state) = load_task_state(&tx, task)? else {
            return Ok(());
        };
        if runs::forget_removed(&mut state, removed) {
            save_task_state(&tx, &state)?;
            tx.commit().map_err(at())?;
        }
        Ok(())
    }

    fn task_state(&self, task: &str) -> Result<Option<TaskState>> {
        let conn = self.lock();
        load_task_state(&conn, task)
    }

    fn adopt_task(
        &self,
        task: &str,
        objects: &[DeliveredObject],
        next_object_seq: u64,
    ) -> Result<()> {
        let mut conn = self.lock();
        let at = || db(format!("adopting the live objects of task {task}"));
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at())?;
        let before = load_task_state(&tx, task)?;
        let state = runs::adopted_state(task, before.as_ref(), next_object_seq);
        tx.execute(r#"DELETE FROM "_lakeport_live" WHERE "task" = ?1"#, [task])
            .map_err(at())?;
        put_live(&tx, task, objects)?;
        save_task_state(&tx, &state)?;
        tx.commit().map_err(at())
    }

    fn live_objects(&self, task: &str) -> Result<Vec<DeliveredObject>> {
        let conn = self.lock();
        load_live(&conn, task)
    }

    fn live_partitions(&self, task: &str) -> Result<Vec<(String, u64)>> {
        let conn = self.lock();
        let at = || db(format!("reading the live partitions of task {task}"));
        let mut stmt = conn
            .prepare_cached(
                r#"SELECT "partition", count(*) FROM "_lakeport_live" WHERE "task" = ?1
                   GROUP BY "partition" ORDER BY "partition""#,
            )
            .map_err(at())?;
        let parts = stmt
            .query_map([task], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)))
            .map_err(at())?
            .collect::<rusqlite::Result<Vec<(String, i64)>>>()
            .map_err(at())?;
        parts
            .into_iter()
            .map(|(p, n)| Ok((p, non_negative(n, "an object count")?)))
            .collect()
    }

    fn runs(&self, task: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        let conn = self.lock();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = match task {
            Some(_) => {
                r#"SELECT "run_id", "record" FROM "_lakeport_runs" WHERE "task" = ?1
                   ORDER BY "run_id" DESC LIMIT ?2"#
            }
            None => {
                r#"SELECT "run_id", "record" FROM "_lakeport_runs" WHERE ?1 IS NULL
                   ORDER BY "run_id" DESC LIMIT ?2"#
            }
        };
        read_runs(
            &conn,
            sql,
            rusqlite::params![task, limit],
            "reading run records",
        )
    }

    fn apply_snapshot(
        &self,
        draft: &ImportRecord,
        changes: &mut dyn Iterator<Item = Result<Change>>,
    ) -> Result<ImportOutcome> {
        self.apply_snapshot_impl(draft, changes)
    }

    fn imports(&self, limit: usize) -> Result<Vec<ImportRecord>> {
        self.imports_impl(limit)
    }

    fn worker_heartbeat(&self, worker: &WorkerRecord, forget_after: Duration) -> Result<()> {
        let (now, json) = worker_json(worker)?;
        let forget_ms = i64::try_from(forget_after.as_millis()).unwrap_or(i64::MAX);
        let mut conn = self.lock();
        let at = || db(format!("recording worker {}", worker.worker_id));
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at())?;
        tx.execute(
            r#"INSERT INTO "_lakeport_workers" ("worker_id", "heartbeat_ms", "record")
               VALUES (?1, ?2, ?3)
               ON CONFLICT ("worker_id") DO UPDATE SET "heartbeat_ms" = excluded."heartbeat_ms",
                   "record" = excluded."record""#,
            rusqlite::params![worker.worker_id, now, json],
        )
        .map_err(at())?;
        tx.execute(
            r#"DELETE FROM "_lakeport_workers" WHERE "heartbeat_ms" < ?1"#,
            [now.saturating_sub(forget_ms)],
        )
        .map_err(at())?;
        tx.commit().map_err(at())
    }

    fn workers(&self) -> Result<Vec<WorkerRecord>> {
        let conn = self.lock();
        let at = || db("reading the workers");
        let mut stmt = conn
            .prepare_cached(r#"SELECT "record" FROM "_lakeport_workers""#)
            .map_err(at())?;
        let records = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(at())?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(at())?;
        decode_workers(&records)
    }

    fn remove_worker(&self, worker_id: &str) -> Result<()> {
        let conn = self.lock();
        conn.execute(
            r#"DELETE FROM "_lakeport_workers" WHERE "worker_id" = ?1"#,
            [worker_id],
        )
        .map_err(db(format!("forgetting worker {worker_id}")))?;
        Ok(())
    }

    fn list_objects(&self, q: &crate::store::ListQuery) -> Result<crate::store::ListPage> {
        listing::list_objects(self, q)
    }

    fn summarize_objects(
        &self,
        bucket: &str,
        prefix: &str,
        by: crate::store::SummaryBy,
    ) -> Result<Vec<crate::store::SummaryRow>> {
        listing::summarize_objects(self, bucket, prefix, by)
    }
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
        return Err(Error::Store(format!(
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
                Error::Store(format!("reading table {}: {what}: {e}", t.name()))
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
            return Err(Error::Store(format!(
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
    move |e| Error::Store(format!("reading table {}: {e}", t.name()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;
    use crate::store::open_store;

    /// `EXPLAIN QUERY PLAN` of `sql`, its detail lines joined by ` | `.
    pub(super) fn query_plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let mut rows = stmt.raw_query();
        let mut plan = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            plan.push(row.get::<_, String>(3).unwrap());
        }
        plan.join(" | ")
    }

    fn with_store(test: fn(&dyn Store)) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        test(&store);
    }

    crate::store::conformance::conformance_suite!(with_store);

    const T: &str = "table: t\nprimary_key: [k]\ncolumns:\n  - { name: k, type: string }\n  - { name: n, type: int64 }\n  - { name: f, type: double }\n  - { name: b, type: bool }\n";

    fn t_store(dir: &Path) -> (SqliteStore, TableDef) {
        let store = SqliteStore::open(&dir.join("s.db")).unwrap();
        let def = TableDef::from_yaml(T, "t").unwrap();
        store.ensure_table(&def).unwrap();
        (store, def)
    }

    /// A store made when a task's live objects were kept in its state's JSON gets them moved
    /// to their own table when opened; nothing else of the state changes.
    #[test]
    fn live_objects_move_out_of_old_task_states() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let old = r#"{"task":"daily","next_object_seq":3,"live_objects":[{"path":"dt=1/daily_0_1.parquet","partition":"dt=1","rows":5,"bytes":50},{"path":"dt=2/daily_0_2.parquet","partition":"dt=2","rows":6,"bytes":60}],"pending_removal":[],"checkpoint":9}"#;
        {
            let store = SqliteStore::open(&path).unwrap();
            store
                .lock()
                .execute(
                    r#"INSERT INTO "_lakeport_tasks" ("task", "state") VALUES ('daily', ?1)"#,
                    [old],
                )
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let live = store.live_objects("daily").unwrap();
        assert_eq!(
            live.iter()
                .map(|o| (o.path.as_str(), o.rows))
                .collect::<Vec<_>>(),
            [("dt=1/daily_0_1.parquet", 5), ("dt=2/daily_0_2.parquet", 6)]
        );
        let state = store.task_state("daily").unwrap().unwrap();
        assert_eq!((state.next_object_seq, state.checkpoint), (3, 9));
        let json: String = store
            .lock()
            .query_row(r#"SELECT "state" FROM "_lakeport_tasks""#, [], |r| r.get(0))
            .unwrap();
        assert!(!json.contains("live_objects"), "{json}");
    }

    /// A store made when the `_seq` index held `_seq` alone gets the covering one on the next
    /// declaration of the table, and the count of changes reads the index only.
    #[test]
    fn an_old_seq_index_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let (store, def) = t_store(dir.path());
        let index_columns = |store: &SqliteStore| -> i64 {
            store
                .lock()
                .query_row(
                    "SELECT count(*) FROM pragma_index_info('data_t_by_seq')",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(index_columns(&store), 2);
        store
            .lock()
            .execute_batch(
                r#"DROP INDEX "data_t_by_seq"; CREATE INDEX "data_t_by_seq" ON "data_t" ("_seq");"#,
            )
            .unwrap();
        assert_eq!(index_columns(&store), 1);
        store.ensure_table(&def).unwrap();
        assert_eq!(index_columns(&store), 2);
        let plan = query_plan(
            &store.lock(),
            r#"SELECT count(*) FROM "data_t" WHERE "_deleted" = 0 AND "_seq" >= 1 AND "_seq" < 9"#,
        );
        assert!(plan.contains("COVERING INDEX data_t_by_seq"), "{plan}");
    }

    fn upsert(store: &SqliteStore, k: &str, n: Value, f: Value) -> Result<ApplyOutcome> {
        let row = Change::Upsert(vec![Value::String(k.into()), n, f, Value::Bool(true)]);
        store.apply("t", &mut std::iter::once(Ok(row)))
    }

    fn read_all(store: &SqliteStore, shards: usize) -> Result<u64> {
        let mut snap = store.snapshot("t", shards)?;
        let mut n = 0;
        for s in &mut snap.shards {
            n += s.read(10, &mut |_| Ok(()))?;
        }
        Ok(n)
    }

    /// The changes tests again, with every change set read by key ranges.
    #[test]
    fn changes_read_by_key_ranges() {
        for test in [
            conformance::changes_after_a_checkpoint,
            conformance::changes_with_deletes_and_purging,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
            store.key_scan_min_rows = 0;
            test(&store);
        }
    }

    /// The consistency test again, with snapshots always holding off writers while they pin.
    #[test]
    fn snapshot_consistent_under_writer_when_holding_off_writers() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        store.optimistic_pins = 0;
        conformance::snapshot_consistent_under_writer(&store);
    }

    /// A snapshot taken while a long write transaction is open does not wait for it: it sees
    /// the state before.
    #[test]
    fn snapshot_does_not_wait_for_an_open_write() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = t_store(dir.path());
        for i in 0..10 {
            upsert(&store, &format!("k{i}"), Value::Int64(i), Value::Null).unwrap();
        }
        let (yielded_tx, yielded) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let store = &store;
        std::thread::scope(|s| {
            let writer = s.spawn(move || {
                let mut changes = (0..2).map(|i| {
                    if i == 1 {
                        yielded_tx.send(()).unwrap();
                        go_rx.recv().unwrap();
                    }
                    let row = vec![
                        Value::String(format!("new{i}")),
                        Value::Int64(i),
                        Value::Null,
                        Value::Null,
                    ];
                    Ok(Change::Upsert(row))
                });
                store.apply("t", &mut changes).unwrap()
            });
            yielded.recv().unwrap();
            let started = std::time::Instant::now();
            let snap = store.snapshot("t", 3);
            go.send(()).unwrap();
            let snap = snap.unwrap();
            assert!(started.elapsed() < Duration::from_secs(5));
            assert_eq!((snap.seq, snap.rows, snap.shards.len()), (10, 10, 3));
            assert_eq!(writer.join().unwrap().seq, 12);
        });
    }

    #[test]
    fn layout_uses_the_documented_names() {
        let dir = tempfile::tempdir().unwrap();
        let (store, def) = t_store(dir.path());
        assert_eq!(store.table_def("t").unwrap(), Some(def));
        assert_eq!(store.table_def("u").unwrap(), None);
        let conn = Connection::open(dir.path().join("s.db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for want in [
            "_lakeport_meta",
            "_lakeport_runs",
            "_lakeport_tables",
            "_lakeport_tasks",
            "data_t",
            "data_t_by_seq",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let cols: Vec<(String, String, bool, i64)> = conn
            .prepare(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info('data_t') ORDER BY cid",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let cols: Vec<(&str, &str, bool, i64)> = cols
            .iter()
            .map(|(n, t, nn, pk)| (n.as_str(), t.as_str(), *nn, *pk))
            .collect();
        assert_eq!(
            cols,
            [
                ("k", "TEXT", true, 1),
                ("n", "INTEGER", false, 0),
                ("f", "REAL", false, 0),
                ("b", "INTEGER", false, 0),
                ("_seq", "INTEGER", true, 0),
                ("_write_time", "INTEGER", true, 0),
                ("_deleted", "INTEGER", true, 0),
            ]
        );
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'data_t'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.ends_with("WITHOUT ROWID"), "{sql}");

        upsert(&store, "a", Value::Int64(1), Value::Null).unwrap();
        let meta: Vec<(String, i64)> = conn
            .prepare("SELECT key, value FROM _lakeport_meta ORDER BY key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(meta[1], ("seq".to_string(), 1));
        assert_eq!(meta[0].0, "last_write_time");
        assert!(meta[0].1 > 1_600_000_000_000);
    }

    #[test]
    fn range_reads_use_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let def = TableDef::from_yaml(conformance_pairs(), "p").unwrap();
        store.ensure_table(&def).unwrap();
        let t = TableSql::new(def);
        let conn = store.lock();
        for sql in [
            t.range_sql(true, true, None),
            t.range_sql(false, true, None),
            // Changes read by key ranges walk the key, not the _seq index.
            t.range_sql(true, true, Some(false)),
            t.range_sql(false, true, Some(true)),
            t.lookup.clone(),
        ] {
            let plan = query_plan(&conn, &sql);
            assert!(
                plan.contains("SEARCH") && plan.contains("PRIMARY KEY"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }

    fn conformance_pairs() -> &'static str {
        "table: p\nprimary_key: [a, b]\ncolumns:\n  - { name: a, type: string }\n  - { name: b, type: int64 }\n"
    }

    #[test]
    fn nan_is_refused_and_signed_zero_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = t_store(dir.path());
        let err = upsert(&store, "a", Value::Int64(1), Value::Double(f64::NAN)).unwrap_err();
        assert!(
            err.to_string()
                .contains("column f: expected double, found double NaN"),
            "{err}"
        );
        upsert(&store, "a", Value::Int64(1), Value::Double(-0.0)).unwrap();
        let again = upsert(&store, "a", Value::Int64(1), Value::Double(0.0)).unwrap();
        assert_eq!((again.unchanged, again.seq), (1, 1));
        let inf = upsert(&store, "a", Value::Int64(1), Value::Double(f64::INFINITY)).unwrap();
        assert_eq!(inf.updated, 1);
        let again = upsert(&store, "a", Value::Int64(1), Value::Double(f64::INFINITY)).unwrap();
        assert_eq!(again.unchanged, 1);
    }

    #[test]
    fn foreign_storage_class_is_an_error_naming_table_column_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = t_store(dir.path());
        upsert(&store, "a", Value::Int64(1), Value::Double(1.5)).unwrap();
        upsert(&store, "b/c", Value::Int64(2), Value::Double(2.5)).unwrap();
        assert_eq!(read_all(&store, 2).unwrap(), 2);
        let conn = Connection::open(dir.path().join("s.db")).unwrap();
        conn.execute("UPDATE data_t SET n = 'twelve' WHERE k = 'b/c'", [])
            .unwrap();
        let err = read_all(&store, 2).unwrap_err();
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(
                "table t: column n of row (k=\"b/c\"): expected int64, found TEXT \"twelve\""
            ),
            "{msg}"
        );
        conn.execute("UPDATE data_t SET n = 2, b = 7 WHERE k = 'b/c'", [])
            .unwrap();
        let msg = read_all(&store, 1).unwrap_err().to_string();
        assert!(
            msg.contains("column b of row (k=\"b/c\"): expected bool, found INTEGER 7"),
            "{msg}"
        );
        // Text that is not UTF-8 (a lone continuation byte) is named with its row.
        conn.execute(
            "UPDATE data_t SET b = 1, k = CAST(X'622F80' AS TEXT) WHERE k = 'b/c'",
            [],
        )
        .unwrap();
        let msg = read_all(&store, 1).unwrap_err().to_string();
        assert!(
            msg.contains("table t: column k of row (k=") && msg.contains("expected string"),
            "{msg}"
        );
    }

    #[test]
    fn shard_readers_can_read_again_and_on_other_threads() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = t_store(dir.path());
        for i in 0..50 {
            upsert(&store, &format!("k{i:02}"), Value::Int64(i), Value::Null).unwrap();
        }
        let snap = store.snapshot("t", 3).unwrap();
        upsert(&store, "k00", Value::Int64(-1), Value::Null).unwrap();
        let counts: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = snap
                .shards
                .into_iter()
                .map(|mut r| {
                    s.spawn(move || {
                        let first = r.read(7, &mut |_| Ok(())).unwrap();
                        let second = r.read(1000, &mut |_| Ok(())).unwrap();
                        assert_eq!(first, second);
                        first
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(counts, [16, 17, 17]);
        // An error from the callback stops the read and comes back as is.
        let mut snap = store.snapshot("t", 1).unwrap();
        let err = snap.shards[0]
            .read(10, &mut |_| Err(Error::Encode("full".into())))
            .unwrap_err();
        assert_eq!(err.to_string(), "encoding: full");
    }

    /// A rough timing of loading and reading the object-inventory table; run with
    /// `cargo test --lib store_speed -- --ignored --nocapture` (`LAKEPORT_SPEED_ROWS` rows).
    #[test]
    #[ignore]
    fn store_speed() {
        let rows: i64 = std::env::var("LAKEPORT_SPEED_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let def = TableDef::from_yaml(
            crate::model::schema::OBJECT_INVENTORY_YAML,
            "object_inventory",
        )
        .unwrap();
        store.ensure_table(&def).unwrap();
        let row = |i: i64, size: i64| {
            let mut v: Vec<Value> = def
                .columns
                .iter()
                .map(|c| match c.ty {
                    ColumnType::String => Value::String(format!("{}-{i}", c.name)),
                    ColumnType::Int64 => Value::Int64(size),
                    ColumnType::Bool => Value::Bool(i % 2 == 0),
                    ColumnType::TimestampMs => Value::TimestampMs(1_700_000_000_000 + i),
                    _ => Value::Null,
                })
                .collect();
            v[0] = Value::String("bucket".into());
            v[1] = Value::String(format!("logs/2024/{i:09}.gz"));
            v[2] = Value::String(String::new());
            Change::Upsert(v)
        };
        let time = |what: &str, f: &mut dyn FnMut() -> ApplyOutcome| {
            let t = std::time::Instant::now();
            let out = f();
            eprintln!("{what}: {:?} {out:?}", t.elapsed());
        };
        time("load", &mut || {
            store
                .apply("object_inventory", &mut (0..rows).map(|i| Ok(row(i, i))))
                .unwrap()
        });
        time("reload unchanged", &mut || {
            store
                .apply("object_inventory", &mut (0..rows).map(|i| Ok(row(i, i))))
                .unwrap()
        });
        time("update all", &mut || {
            store
                .apply(
                    "object_inventory",
                    &mut (0..rows).map(|i| Ok(row(i, i + 1))),
                )
                .unwrap()
        });
        let t = std::time::Instant::now();
        let mut snap = store.snapshot("object_inventory", 4).unwrap();
        eprintln!("snapshot: {:?}", t.elapsed());
        let mut n = 0;
        for s in &mut snap.shards {
            n += s.read(8192, &mut |_| Ok(())).unwrap();
        }
        eprintln!("read {n} rows: {:?}", t.elapsed());
        assert_eq!(n, rows as u64);
    }

    /// Processes racing to create and open store files all succeed. SQLite refuses some
    /// openers at once with "database is locked" while another process switches a new file
    /// to WAL (threads of one process do not race this way); `open_wal` retries those. The
    /// test runs eight copies of `race_opener_child` (this test binary, run again) over the
    /// same 100 new files. The race is rare (here about one opening in 150 of a new file by
    /// three processes failed before the retry), so this guards more than it proves.
    #[test]
    fn racing_processes_all_open_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..8)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "store::sqlite::tests::race_opener_child",
                        "--ignored",
                        "--nocapture",
                    ])
                    .env("LAKEPORT_RACE_DIR", dir.path())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(
                text.contains("1 passed"),
                "the child test did not run:\n{text}"
            );
        }
    }

    /// One racer of `racing_processes_all_open_the_store` (run by it, ignored otherwise).
    #[test]
    #[ignore = "run by racing_processes_all_open_the_store"]
    fn race_opener_child() {
        let dir = std::path::PathBuf::from(std::env::var_os("LAKEPORT_RACE_DIR").unwrap());
        for n in 0..100 {
            let store = SqliteStore::open(&dir.join(format!("race-{n}.db"))).unwrap();
            store.table_stats().unwrap();
        }
    }

    #[test]
    fn open_store_urls() {
        let dir = tempfile::tempdir().unwrap();
        let abs = dir.path().join("a.db");
        let store = open_store(&format!("sqlite://{}", abs.display())).unwrap();
        assert!(store.table_stats().unwrap().is_empty());
        assert!(abs.exists());
        open_store(&format!("sqlite:{}", abs.display())).unwrap();

        // Nothing listens there: a store error naming the URL without its password.
        let pg = open_store("postgres://u:secret@127.0.0.1:1/db")
            .err()
            .unwrap();
        assert!(matches!(&pg, Error::Store(_)), "{pg}");
        assert!(
            pg.to_string().contains("postgres://u:***@127.0.0.1:1/db"),
            "{pg}"
        );
        assert!(!pg.to_string().contains("secret"), "{pg}");
        let other = open_store("mysql://x").err().unwrap();
        assert_eq!(
            other.to_string(),
            "--store: expected sqlite:PATH or postgres://…, got \"mysql://x\""
        );
        assert!(matches!(
            open_store("sqlite:"),
            Err(Error::InvalidConfig(_))
        ));

        let missing = dir.path().join("no/such/dir/x.db");
        let err = open_store(&format!("sqlite:{}", missing.display()))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        let not_db = dir.path().join("text.db");
        std::fs::write(
            &not_db,
            "this is not a database, just some text of some length......",
        )
        .unwrap();
        let err = SqliteStore::open(&not_db).unwrap_err();
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        assert!(
            err.to_string().contains(&not_db.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn relative_sqlite_url() {
        let dir = tempfile::tempdir().unwrap();
        let rel = dir
            .path()
            .strip_prefix(std::env::current_dir().unwrap())
            .map(Path::to_path_buf);
        // Only meaningful when the temp dir is under the working directory; otherwise use a
        // relative path of our own inside the crate's target folder.
        let rel = rel.unwrap_or_else(|_| {
            let p = PathBuf::from("target/tmp-store-test");
            std::fs::create_dir_all(&p).unwrap();
            p
        });
        let file = rel.join(format!("rel-{}.db", std::process::id()));
        let store = open_store(&format!("sqlite:{}", file.display())).unwrap();
        drop(store);
        assert!(file.exists());
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn apply_from_another_connection_is_seen() {
        // Two stores on one file (two processes, in effect) share seq and see each other's tables.
        let dir = tempfile::tempdir().unwrap();
        let (one, _) = t_store(dir.path());
        let two = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        upsert(&one, "a", Value::Int64(1), Value::Null).unwrap();
        let row = Change::Upsert(vec![
            Value::String("b".into()),
            Value::Int64(2),
            Value::Null,
            Value::Null,
        ]);
        let out = two.apply("t", &mut std::iter::once(Ok(row))).unwrap();
        assert_eq!(out.seq, 2);
        assert_eq!(one.table_stats().unwrap()[0].rows, 2);
    }
}
