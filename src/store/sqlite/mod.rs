//! SQLite backend of the metadata store: one database file in WAL mode (left only while a
//! large first import holds the store alone: see the `journal` submodule).
//!
//! This module owns the on-disk layout (which other tools read, so the names are fixed), the
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
//!   epoch ms), then `_seq`, `_write_time`, `_deleted` (and `_folder_len`, `_etag`,
//!   `_seq_indexed`);
//!   primary key = the declared key, `WITHOUT ROWID`, with a partial index on (`_seq`,
//!   `_deleted`) of the rows marked `_seq_indexed`: a large import leaves its rows out and
//!   raises the table's floor in `_lakeport_meta` instead (`schema::seq_index_sql`; changes
//!   from below the floor are read by key ranges). A tombstone is a row with `_deleted = 1`
//!   and its non-key columns NULL. A derived column (`object_inventory.prefix`) is not stored but
//!   computed from the key and `_folder_len` (a virtual generated column; see
//!   `schema::create_table_sql`); so is `object_inventory.etag`, from its packed bytes in
//!   `_etag` (`schema::packed_etag`); a table made before either is rebuilt by
//!   `ensure_table`.
//! - `<table>`: a view of the current state (live rows, declared columns, `_seq`,
//!   `_write_time`) for SQL readers; `docs/store.md` describes the layout for them.
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
//!
//! Files:
//! - `mod.rs`: [`SqliteStore`], opening a store (for writing, or read-only), its connections,
//!   and the [`Store`] implementation, which hands each call to one of the files below;
//! - `schema.rs`: lakeport's own tables, the `_lakeport_meta` counters, stored table
//!   definitions, each data table's layout and SQL, and declaring a table;
//! - `write.rs`: [`Store::apply`] and the row writes that imports share with it; purging
//!   tombstones;
//! - `read.rs`: snapshots and changes, their shard readers and how they pin one state; lag and
//!   table stats;
//! - `runs.rs`: run records, task states, live sets and workers;
//! - `import.rs`: snapshot imports; `journal.rs`: a large import into an empty scope written
//!   with a rollback journal while it holds the store alone; `listing.rs`: listing and
//!   summarising `object_inventory`;
//! - `tests.rs`: the conformance suite on SQLite and this backend's own tests.

mod import;
mod journal;
mod listing;
mod read;
mod runs;
mod schema;
mod write;

use crate::store::Imports;
use crate::store::Listing;
use crate::store::Runs;
use crate::store::Tables;
use crate::store::Workers;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::model::{DeliveredObject, TableDef};
use crate::store::sql::now_ms;
use crate::store::{
    ApplyOutcome, Change, ImportOutcome, ImportRecord, Lag, LiveSet, OwnerGone, RunRecord,
    Snapshot, StartedRun, StoreIdentity, TableStats, TaskState, WorkerRecord,
};
use schema::{read_meta, stored_def, Layout, TableSql, CREATE_META, READ_SEQ};

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Page size of a new store file, in bytes (SQLite's default is 4096): fewer page splits and
/// b-tree levels for rows of a few hundred bytes. Measured at 10M objects (docs/store.md):
/// 8 KiB imports as fast as 16 KiB and rewrites a changed row's random `_seq`-index page as
/// cheaply as 4 KiB.
const PAGE_SIZE: i64 = 8_192;
/// Page cache of the write connection, in KiB (SQLite's negative `cache_size`).
const WRITE_CACHE_KIB: i64 = 32 * 1024;
/// Prepared statements kept per connection (four per table written, plus a few).
const STATEMENT_CACHE: usize = 128;

/// Gives a store its id when it has none (a new store, or one made before ids existed).
const MAKE_IDENTITY: &str = r#"INSERT OR IGNORE INTO "_lakeport_store" ("one", "id", "created_ms")
    VALUES (1, ?1, ?2)"#;
const READ_IDENTITY: &str = r#"SELECT "id", "created_ms" FROM "_lakeport_store" WHERE "one" = 1"#;

/// The SQLite metadata store. Writes go through one connection (serialised by a mutex);
/// each snapshot shard reads on a connection of its own.
pub struct SqliteStore {
    path: PathBuf,
    /// Opened with [`SqliteStore::open_read_only`]: every connection is read-only.
    read_only: bool,
    /// Read-only, and opened as immutable (no `-shm` could be made beside the file): every
    /// connection opens the same way, decided once when the store opened.
    immutable: bool,
    conn: Mutex<Connection>,
    tables: Mutex<HashMap<String, Arc<TableSql>>>,
    /// Optimistic attempts of a snapshot before it holds off writers.
    optimistic_pins: usize,
    /// Changes of at least this many rows that are a quarter of the table or more are read
    /// by key ranges rather than through the `_seq` index (see [`Store::changes`]).
    key_scan_min_rows: u64,
    /// Snapshot imports of at least this many rows into an empty scope, or that change this
    /// many rows and a quarter of the snapshot or more, leave their rows out of the `_seq`
    /// index (see `import::apply_snapshot_impl`).
    unindexed_min_rows: u64,
    /// Opened for a one-shot command ([`SqliteStore::open_alone`]): a large import into an
    /// empty scope may hold the store alone and write with a rollback journal ([`journal`]).
    alone: bool,
    below_floor_lags: read::BelowFloorLags,
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
        let at = |e: rusqlite::Error| Error::store_caused(format!("opening {}", path.display()), e);
        runs::move_live_objects_out_of_task_states(&conn)?;
        conn.pragma_update(None, "cache_size", -WRITE_CACHE_KIB)
            .map_err(at)?;
        Ok(SqliteStore::on(path, conn, false, false))
    }

    /// The store at `path` whose first connection is `conn` (`read_only`, `immutable`: see
    /// [`SqliteStore::open_read_only`]), with the default thresholds.
    fn on(path: &Path, conn: Connection, read_only: bool, immutable: bool) -> SqliteStore {
        SqliteStore {
            path: path.to_path_buf(),
            read_only,
            immutable,
            conn: Mutex::new(conn),
            tables: Mutex::new(HashMap::new()),
            optimistic_pins: read::OPTIMISTIC_PINS,
            key_scan_min_rows: read::KEY_SCAN_MIN_ROWS,
            unindexed_min_rows: import::UNINDEXED_MIN_ROWS,
            alone: false,
            below_floor_lags: Default::default(),
        }
    }

    /// [`SqliteStore::open`] for a one-shot command (`inventory import`, `snapshot`): a large
    /// import into an empty scope writes with a rollback journal instead of the WAL when no
    /// other connection has the store open, and meanwhile holds it alone ([`journal`]).
    pub fn open_alone(path: &Path) -> Result<SqliteStore> {
        let mut store = SqliteStore::open(path)?;
        store.alone = true;
        Ok(store)
    }

    /// Opens the existing store file at `path` for reading only, creating nothing: no file,
    /// no table, no index (for the commands that only read: `tables`, `status`, `ls`, `du`,
    /// `ddl`). A store on a read-only file, folder or file system opens too: SQLite first
    /// reads it as usual; when it cannot make the shared-memory file (`-shm`) that WAL
    /// readers use beside the store (a read-only folder or mount), the file is opened as
    /// immutable (`?immutable=1`), which is right as long as nothing writes it meanwhile —
    /// and nothing can, where lakeport cannot write either. A store with a rollback journal
    /// beside it (an import that held it alone was killed: see [`journal`]) is first rolled
    /// back, and never opened as immutable. A missing file is [`Error::NotFound`]; a file that
    /// is not a lakeport store, [`Error::Store`].
    pub fn open_read_only(path: &Path) -> Result<SqliteStore> {
        if !path.is_file() {
            return Err(Error::NotFound(format!(
                "store {}: no such file",
                path.display()
            )));
        }
        journal::roll_back_if_left(path)?;
        let (conn, immutable) = match connect_read_only(path, false) {
            Ok(conn) => (conn, false),
            Err(first) if journal::journal_path(path).exists() => return Err(first),
            Err(first) => (connect_read_only(path, true).map_err(|_| first)?, true),
        };
        Ok(SqliteStore::on(path, conn, true, immutable))
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
            connect_read_only(&self.path, self.immutable)
        } else {
            connect(&self.path)
        }
    }

    /// The stored definition of table `name`, or `None` when it was never declared.
    pub fn table_def(&self, name: &str) -> Result<Option<TableDef>> {
        let conn = self.lock();
        stored_def(&conn, name)
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
        let layout = Layout::of(conn, &def)?;
        let sql = Arc::new(TableSql::new(def, layout));
        cache().insert(name.to_string(), Arc::clone(&sql));
        Ok(sql)
    }

    /// Forgets what [`SqliteStore::table_sql`] read of table `name` (its layout changed).
    fn forget_table(&self, name: &str) {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }
}

/// A new connection to `path` with the busy timeout and synchronous mode every connection uses.
fn connect(path: &Path) -> Result<Connection> {
    let at = |e: rusqlite::Error| Error::store_caused(format!("opening {}", path.display()), e);
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
    let at = |e: rusqlite::Error| waited_in_vain(path, "opening", " for reading", e);
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
        return Err(Error::store(format!(
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
    let at = |e: rusqlite::Error| waited_in_vain(path, "opening", "", e);
    let policy = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(5),
        max_interval: Duration::from_millis(200),
        max_elapsed_time: Some(BUSY_TIMEOUT),
        ..backoff::ExponentialBackoff::default()
    };
    let attempt = || -> std::result::Result<Connection, backoff::Error<Error>> {
        let classify = |e: rusqlite::Error| {
            if journal::is_busy(&e) {
                backoff::Error::transient(at(e))
            } else {
                backoff::Error::permanent(at(e))
            }
        };
        let conn = Connection::open(path).map_err(classify)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
        // Takes effect only in a new, empty file (an existing store keeps its page size).
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(classify)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(classify)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(backoff::Error::permanent(Error::store(format!(
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

/// [`Error::Store`] for `e`, met while `doing` the store at `path` (`doing {path}{what}`): when
/// SQLite answered "busy" and a large import holds the store alone, the message says which
/// process and since when ([`journal`]).
fn waited_in_vain(path: &Path, doing: &str, what: &str, e: rusqlite::Error) -> Error {
    let held = journal::is_busy(&e)
        .then(|| journal::holder(path))
        .flatten()
        .map(|holder| {
            format!(
                " (a large import holds the store alone while it writes: {holder}; it gives \
                 the store back when it commits)"
            )
        })
        .unwrap_or_default();
    Error::store_caused(format!("{doing} {}{what}{held}", path.display()), e)
}

/// Maps a rusqlite error to [`Error::Store`], saying what was being done.
fn db(what: impl fmt::Display) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| Error::store_caused(what.to_string(), e)
}

impl Tables for SqliteStore {
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
        schema::ensure_table(self, def)
    }

    fn table_stats(&self) -> Result<Vec<TableStats>> {
        read::table_stats(self)
    }

    fn apply(
        &self,
        table: &str,
        changes: &mut dyn Iterator<Item = Result<Change>>,
    ) -> Result<ApplyOutcome> {
        write::apply(self, table, changes)
    }

    fn snapshot(&self, table: &str, shards: usize) -> Result<Snapshot> {
        read::snapshot(self, table, shards)
    }

    fn changes(
        &self,
        table: &str,
        after_seq: u64,
        shards: usize,
        deletes: bool,
    ) -> Result<Snapshot> {
        read::changes(self, table, after_seq, shards, deletes)
    }

    fn lag(&self, table: &str, after_seq: u64, deletes: bool) -> Result<Lag> {
        read::lag(self, table, after_seq, deletes)
    }

    fn purge_tombstones(&self, table: &str, up_to_seq: u64) -> Result<u64> {
        write::purge_tombstones(self, table, up_to_seq)
    }
}

impl Runs for SqliteStore {
    fn start_run(
        &self,
        record: &RunRecord,
        lease: Duration,
        gone: OwnerGone<'_>,
    ) -> Result<StartedRun> {
        runs::start_run(self, record, lease, gone)
    }

    fn heartbeat(&self, run_id: u64) -> Result<()> {
        runs::heartbeat(self, run_id)
    }

    fn finish_run(&self, record: &RunRecord, live: LiveSet) -> Result<()> {
        runs::finish_run(self, record, live)
    }

    fn record_failed_run(&self, record: &RunRecord) -> Result<u64> {
        runs::record_failed_run(self, record)
    }

    fn clear_pending_removal(&self, task: &str, removed: &[DeliveredObject]) -> Result<()> {
        runs::clear_pending_removal(self, task, removed)
    }

    fn task_state(&self, task: &str) -> Result<Option<TaskState>> {
        runs::task_state(self, task)
    }

    fn adopt_task(
        &self,
        task: &str,
        objects: &[DeliveredObject],
        next_object_seq: u64,
    ) -> Result<()> {
        runs::adopt_task(self, task, objects, next_object_seq)
    }

    fn live_objects(&self, task: &str) -> Result<Vec<DeliveredObject>> {
        runs::live_objects(self, task)
    }

    fn live_partitions(&self, task: &str) -> Result<Vec<(String, u64)>> {
        runs::live_partitions(self, task)
    }

    fn runs(&self, task: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        runs::runs(self, task, limit)
    }
}

impl Imports for SqliteStore {
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
}

impl Workers for SqliteStore {
    fn worker_heartbeat(&self, worker: &WorkerRecord, forget_after: Duration) -> Result<()> {
        runs::worker_heartbeat(self, worker, forget_after)
    }

    fn workers(&self) -> Result<Vec<WorkerRecord>> {
        runs::workers(self)
    }

    fn remove_worker(&self, worker_id: &str) -> Result<()> {
        runs::remove_worker(self, worker_id)
    }
}

impl Listing for SqliteStore {
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

#[cfg(test)]
mod tests;
