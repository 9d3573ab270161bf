//! The metadata store: tables of typed rows, each write stamped with `_write_time` and a
//! store-wide change sequence `_seq`, plus the records of delivery runs.
//!
//! This module owns the [`Store`] trait every backend implements and the backends themselves
//! (SQLite and PostgreSQL); the tables it keeps are declared in the shared vocabulary
//! ([`crate::model`]: [`TableDef`], read from `schemas/*.yaml`). It does not parse input
//! files (that is `inventory`) and knows nothing of Parquet or the lake: a
//! snapshot comes out as Arrow record batches in the table's own *store types*
//! ([`TableDef::arrow_schema`]), and delivery takes it from there.
//!
//! Semantics every backend keeps (and the conformance suite checks):
//! - `_seq` is strictly increasing across the whole store, in commit order: a transaction's
//!   rows all take numbers above every earlier transaction's, each row changed its own (a key
//!   changed twice in one transaction takes one or two). A reader that sees `_seq` S sees
//!   every change up to S (see `postgres` for how concurrent writers keep this).
//! - `_write_time` is one UTC millisecond time per transaction, never lower than an earlier
//!   transaction's (so it is non-decreasing in `_seq`).
//! - An upsert whose values equal the stored row changes nothing and takes no `_seq`.
//! - A delete leaves a tombstone (key, `_seq`, `_write_time`; other columns NULL). Deleting a
//!   key that is absent or already deleted changes nothing.
//! - [`Store::apply`] is one transaction: all changes or none.

pub(crate) mod batch;
pub(crate) mod checks;
pub mod listing;
pub(crate) mod owner;
pub mod postgres;
pub(crate) mod row_bytes;
pub(crate) mod runs;
pub mod shards;
pub(crate) mod sorter;
pub(crate) mod sql;
pub mod sqlite;

#[cfg(test)]
pub(crate) mod conformance;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{DeliveredObject, TableDef};

pub use listing::{ListPage, ListQuery, SummaryBy, SummaryRow};
pub use owner::RunOwner;
pub use postgres::PostgresStore;
pub use shards::{ClaimFrom, ShardClaim, ShardOffer, ShardResult, ShardState, ShardStatus};
pub use sqlite::SqliteStore;

/// How a command opens the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads and writes; a SQLite file (and lakeport's tables) is created when missing.
    ReadWrite,
    /// [`Access::ReadWrite`] for a one-shot command that imports (`inventory import`,
    /// `snapshot`): a large import into an empty scope of a SQLite store holds the store alone
    /// while it writes, when nothing else has it open (see [`SqliteStore::open_alone`]).
    /// PostgreSQL opens as for [`Access::ReadWrite`].
    ReadWriteAlone,
    /// Reads only and creates nothing: a missing SQLite file is an [`Error::NotFound`], and a
    /// file on a read-only file, folder or mount opens (see [`SqliteStore::open_read_only`]).
    /// PostgreSQL opens as for [`Access::ReadWrite`].
    ReadOnly,
}

/// Opens the store named by a `--store` URL for reading and writing: `sqlite:PATH` or
/// `sqlite://PATH` (relative or absolute; the file is created if needed), or `postgres://…` /
/// `postgresql://…` (a PostgreSQL database; see [`postgres`]). Anything else is an
/// [`Error::InvalidConfig`].
pub fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    open_store_with(url, Access::ReadWrite)
}

/// [`open_store`] with the given [`Access`].
pub fn open_store_with(url: &str, access: Access) -> Result<Arc<dyn Store>> {
    if let Some(path) = sqlite_path(url)? {
        return Ok(Arc::new(match access {
            Access::ReadWrite => SqliteStore::open(path)?,
            Access::ReadWriteAlone => SqliteStore::open_alone(path)?,
            Access::ReadOnly => SqliteStore::open_read_only(path)?,
        }));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::open(url)?));
    }
    Err(Error::InvalidConfig(format!(
        "--store: expected sqlite:PATH or postgres://…, got {url:?}"
    )))
}

/// The file of a `sqlite:PATH` (or `sqlite://PATH`) store URL; `None` for another scheme.
pub fn sqlite_path(url: &str) -> Result<Option<&Path>> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Ok(None);
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "--store: {url:?} names no file; expected sqlite:PATH, e.g. sqlite:lakeport.db"
        )));
    }
    Ok(Some(Path::new(path)))
}

/// One typed value of a table column. `Null` fits any nullable column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A UTF-8 string.
    String(String),
    /// A 64-bit signed integer.
    Int64(i64),
    /// A 64-bit float.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// Raw bytes.
    Binary(Vec<u8>),
    /// Milliseconds since the Unix epoch, UTC.
    TimestampMs(i64),
}

/// One change to apply to a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert or replace a row; values in the table's column order ([`TableDef::columns`]).
    Upsert(Vec<Value>),
    /// Delete by key; values in primary-key order ([`TableDef::primary_key`]).
    Delete(Vec<Value>),
}

/// What one [`Store::apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// Rows that did not exist (or were tombstones) and now do.
    pub inserted: u64,
    /// Existing rows whose values changed.
    pub updated: u64,
    /// Live rows turned into tombstones.
    pub deleted: u64,
    /// Changes that matched what was stored and took no `_seq` (including deletes of keys
    /// that were absent or already deleted).
    pub unchanged: u64,
    /// Highest `_seq` in the store after the transaction.
    pub seq: u64,
}

/// Row counts and sequence of one table, for `lakeport tables`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    /// Table name.
    pub table: String,
    /// Live (not deleted) rows.
    pub rows: u64,
    /// Tombstones not yet purged.
    pub tombstones: u64,
    /// Highest `_seq` of any row or tombstone of this table (0 when empty).
    pub max_seq: u64,
}

/// Reads one range of a consistent snapshot: a primary-key range in primary-key order, or (a
/// large table in PostgreSQL, see `postgres::read`) a range of the table's pages in storage
/// order.
///
/// Every reader of one [`Snapshot`] sees the same committed state, whatever writers commit
/// meanwhile. A reader is `Send` so that each shard can run on its own blocking thread.
pub trait ShardReader: Send {
    /// Streams the shard's live rows as record batches of at most `batch_rows` rows, in the
    /// schema of [`TableDef::arrow_schema`], calling `on_batch` for each. Stops at the first
    /// error from the store or from `on_batch`. Returns the number of rows read.
    fn read(
        &mut self,
        batch_rows: usize,
        on_batch: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64>;

    /// What another process needs to read this shard with [`Store::open_shard`] while the
    /// snapshot is open (see [`shards`]); `None` when only this reader can (SQLite).
    fn ticket(&self) -> Option<String> {
        None
    }
}

/// A consistent snapshot of one table, split into primary-key ranges (shards).
pub struct Snapshot {
    /// The highest `_seq` the snapshot contains: every change up to it, none after.
    pub seq: u64,
    /// Live rows in the snapshot (all shards): counted, or the server's estimate when
    /// [`rows_estimated`](Self::rows_estimated) says so. Progress reports size themselves by
    /// it; what a run delivered is counted as it reads.
    pub rows: u64,
    /// Whether [`rows`](Self::rows) is an estimate: a PostgreSQL snapshot read by page ranges
    /// (a large table) is not counted, because counting costs a scan of the whole table
    /// before the first row is read (about 0.5 s of 4 for a 1M-row table).
    pub rows_estimated: bool,
    /// One reader per shard, in key (or page) order; fewer than asked when the table has
    /// fewer rows.
    pub shards: Vec<Box<dyn ShardReader>>,
}

/// Status of a delivery run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Planned and writing.
    Running,
    /// Every object complete and the record committed.
    Succeeded,
    /// Stopped by an error (see `error`); its objects were removed or never became live.
    Failed,
    /// Recorded `Running`, but its process is known to have ended (it ran on this host and no
    /// process has its id now). Never stored: the status views show a dead run so until the
    /// task's next run takes it over (and records it `Failed`, "interrupted").
    Interrupted,
}

impl RunStatus {
    /// The status as stored and shown: `running`, `succeeded`, `failed` (or, shown only,
    /// `interrupted`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// The part of a table one snapshot import is the full state of: the rows whose first key
/// column equals `bucket` and whose second key column starts with `prefix` (`""`: the whole
/// bucket). Both key columns must be strings (as in `object_inventory`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportScope {
    /// Value of the first key column (the inventoried bucket).
    pub bucket: String,
    /// Prefix of the second key column (the object key); `""` for the whole bucket.
    pub prefix: String,
}

/// The record of one snapshot import (an inventory report or a bucket listing), kept in the
/// store and shown by `lakeport status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// Store-assigned id (increasing); 0 in a draft.
    pub import_id: u64,
    /// Table the rows went to.
    pub table: String,
    /// The scope's bucket.
    pub scope_bucket: String,
    /// The scope's key prefix (`""`: whole bucket).
    pub scope_prefix: String,
    /// Where the snapshot came from: a manifest URL, or the listed bucket URL.
    pub manifest_url: String,
    /// Identity of the snapshot: the hex MD5 of `manifest.json` (a listing has its own).
    pub manifest_md5: String,
    /// `s3`, `oss`, `obs`, or `listing`.
    pub provider: String,
    /// When the snapshot was taken (report creation time), ms since epoch UTC.
    pub created_ms: i64,
    /// When it was applied, ms since epoch UTC (set by the store).
    pub imported_ms: i64,
    /// Rows the snapshot held.
    pub rows: u64,
    /// Rows that were new (or revived tombstones).
    pub inserted: u64,
    /// Rows whose values changed.
    pub updated: u64,
    /// Rows of the scope absent from the snapshot, now tombstones.
    pub deleted: u64,
    /// Rows equal to what was stored (no write, no `_seq`).
    pub unchanged: u64,
    /// Time the store spent applying it, in ms (set by the store).
    pub duration_ms: u64,
    /// Highest `_seq` in the store after it (set by the store).
    pub seq: u64,
}

impl ImportRecord {
    /// A draft record of a snapshot about to be applied: where it comes from, nothing measured
    /// yet (the store fills in the id, counts, duration and `_seq`).
    pub fn draft(
        table: &str,
        scope: ImportScope,
        manifest_url: &str,
        manifest_md5: &str,
        provider: &str,
        created_ms: i64,
    ) -> ImportRecord {
        ImportRecord {
            import_id: 0,
            table: table.to_string(),
            scope_bucket: scope.bucket,
            scope_prefix: scope.prefix,
            manifest_url: manifest_url.to_string(),
            manifest_md5: manifest_md5.to_string(),
            provider: provider.to_string(),
            created_ms,
            imported_ms: 0,
            rows: 0,
            inserted: 0,
            updated: 0,
            deleted: 0,
            unchanged: 0,
            duration_ms: 0,
            seq: 0,
        }
    }
}

impl ImportRecord {
    /// The record of `draft` applied: `rows` read, what the store did (`out`), its write time
    /// and how long since `started` (the store fills in the id when it stores it).
    pub(crate) fn applied(
        draft: &ImportRecord,
        rows: u64,
        out: &ApplyOutcome,
        imported_ms: i64,
        started: std::time::Instant,
    ) -> ImportRecord {
        ImportRecord {
            imported_ms,
            rows,
            inserted: out.inserted,
            updated: out.updated,
            deleted: out.deleted,
            unchanged: out.unchanged,
            seq: out.seq,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ..draft.clone()
        }
    }
}

/// What [`Store::apply_snapshot`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The snapshot was applied; the stored record.
    Applied(ImportRecord),
    /// The same snapshot (same identity, same scope) was applied before: nothing was read or
    /// written; the earlier record.
    AlreadyImported(ImportRecord),
}

/// Runs `f` with `store` on a blocking thread (a store's methods block), for callers that
/// hold the store as an `Arc`.
pub async fn with_store<T, F>(store: &Arc<dyn Store>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T> + Send + 'static,
{
    let store = Arc::clone(store);
    blocking(move || f(store.as_ref())).await
}

/// Runs blocking work (store calls, file parsing) on tokio's blocking threads, never on the
/// async runtime's own; a panic in `f` becomes an [`Error::Store`].
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::store_caused("background work panicked or was cancelled", e))?
}

/// The record of one delivery run, kept in the store and shown by `lakeport status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Store-assigned run id (increasing).
    pub run_id: u64,
    /// Task name.
    pub task: String,
    /// Current status.
    pub status: RunStatus,
    /// Delivery mode the run used (`full`, ...).
    pub mode: String,
    /// Start, ms since epoch UTC.
    pub started_ms: i64,
    /// End, ms since epoch UTC (None while running).
    pub ended_ms: Option<i64>,
    /// Highest `_seq` the run delivers (the snapshot's sequence in full mode).
    pub seq_to: u64,
    /// Lowest `_seq` the run delivers (exclusive); 0 in full mode.
    pub seq_from: u64,
    /// First object sequence id of the run; every shard numbers its objects from here.
    pub first_object_seq: u64,
    /// First object sequence id after the run's objects; set by the run when it finishes.
    #[serde(default)]
    pub next_object_seq: u64,
    /// Shards the run was split into.
    pub shards: u32,
    /// Rows delivered (clean rows written to Parquet).
    pub rows: u64,
    /// Bytes of Parquet written.
    pub bytes: u64,
    /// Objects written.
    pub objects: Vec<DeliveredObject>,
    /// Dirty rows by reason (reason → count).
    pub dirty: BTreeMap<String, u64>,
    /// Error text when the run failed.
    pub error: Option<String>,
    /// Last sign of life of a running run (its start, then each heartbeat), ms since epoch
    /// UTC by the store's clock; None in records written before leases existed, whose start
    /// then counts.
    #[serde(default)]
    pub heartbeat_ms: Option<i64>,
    /// Partitions the run added to the task's live set (none of its live objects were under
    /// them before), sorted: the ones a catalog has to be told about.
    #[serde(default)]
    pub new_partitions: Vec<String>,
    /// The process that runs it, when known: a run whose process is gone can be taken over
    /// at once instead of after its lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<RunOwner>,
}

/// A `lakeport serve` process working on the store (a worker), as it last reported itself.
/// Several workers on one store share its tasks: each run takes its task's lease
/// ([`Store::start_run`]), so a task runs in one worker at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Unique per process: `host:pid:started_ms`.
    pub worker_id: String,
    /// The host's name.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// The address its API listens on.
    pub listen: String,
    /// lakeport's version.
    pub version: String,
    /// When it started, ms since epoch UTC.
    pub started_ms: i64,
    /// Its last report, ms since epoch UTC (set by [`Store::worker_heartbeat`]).
    pub heartbeat_ms: i64,
}

/// Says whether the process of a `Running` run is known to be gone (see [`Store::start_run`]).
pub type OwnerGone<'a> = &'a (dyn Fn(&RunRecord) -> bool + Sync);

impl RunRecord {
    /// A run of `task` in `mode` that started at `started_ms` (ms since epoch UTC), with
    /// `status`, by this process, nothing planned or delivered yet.
    pub fn new(task: &str, mode: &str, started_ms: i64, status: RunStatus) -> RunRecord {
        RunRecord {
            run_id: 0,
            task: task.to_string(),
            status,
            mode: mode.to_string(),
            started_ms,
            ended_ms: None,
            seq_from: 0,
            seq_to: 0,
            first_object_seq: 0,
            next_object_seq: 0,
            shards: 0,
            rows: 0,
            bytes: 0,
            objects: Vec::new(),
            dirty: BTreeMap::new(),
            error: None,
            heartbeat_ms: None,
            new_partitions: Vec::new(),
            owner: RunOwner::this_process(),
        }
    }

    /// Distinct partitions the run wrote, sorted.
    pub fn partitions(&self) -> Vec<String> {
        let mut parts: Vec<String> = self.objects.iter().map(|o| o.partition.clone()).collect();
        parts.sort();
        parts.dedup();
        parts
    }

    /// Total dirty rows.
    pub fn dirty_rows(&self) -> u64 {
        self.dirty.values().sum()
    }
}

/// Where a task stands, kept by the store between runs. The objects that make up its output
/// in the lake (its live set, which grows with every incremental run) are kept apart:
/// [`Store::live_objects`], [`Store::live_partitions`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    /// Task name.
    pub task: String,
    /// Next object sequence id to use (object names never repeat within a task).
    pub next_object_seq: u64,
    /// Objects replaced by a later run and not yet removed from the lake.
    pub pending_removal: Vec<DeliveredObject>,
    /// Every change up to this `_seq` has been delivered: the highest `seq_to` of the task's
    /// succeeded runs (0 before the first). An incremental run starts above it.
    #[serde(default)]
    pub checkpoint: u64,
    /// The task's live set was adopted from the destination's previous owner
    /// ([`Store::adopt_task`]): the next succeeded run replaces it, whatever the task's mode,
    /// and clears this.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace_next: bool,
}

/// Checks a run's plan against its task's state as the store holds it when the run takes the
/// task's lease (every backend calls this in [`Store::start_run`]): an `incremental` run must
/// start at the checkpoint, and a `differential` run (a differential task's first snapshot)
/// only while the task has delivered nothing. Either way another run finished between
/// planning and starting, and the plan is stale: [`Error::Conflict`].
pub(crate) fn check_plan(record: &RunRecord, state: Option<&TaskState>) -> Result<()> {
    let task = &record.task;
    let checkpoint = state.map_or(0, |s| s.checkpoint);
    if record.mode == "incremental" && record.seq_from != checkpoint {
        return Err(Error::Conflict(format!(
            "task {task}: this run was planned from _seq {} but the task's checkpoint is \
             now {checkpoint} (another run finished meanwhile); run it again",
            record.seq_from
        )));
    }
    if record.mode == "differential" && state.is_some() {
        return Err(Error::Conflict(format!(
            "task {task}: this run was planned as the task's first snapshot, but another run \
             has delivered one meanwhile (checkpoint {checkpoint}); run it again to continue \
             incrementally"
        )));
    }
    Ok(())
}

/// How far a table has moved past a task's checkpoint ([`Store::lag`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lag {
    /// The highest `_seq` in the table (rows and tombstones; 0 when empty).
    pub newest_seq: u64,
    /// Changes whose `_seq` is above the checkpoint: what the next incremental run delivers
    /// (live rows; tombstones only when the task delivers deletes).
    pub rows_behind: u64,
    /// `_write_time` of the oldest of those rows (ms since epoch UTC), if any.
    pub oldest_write_ms: Option<i64>,
}

/// A run just recorded by [`Store::start_run`], and the runs of its task it took over.
#[derive(Debug, Clone, PartialEq)]
pub struct StartedRun {
    /// The new run, `Running`.
    pub run: RunRecord,
    /// Runs that were still `Running` but silent past their lease, now `Failed`.
    pub interrupted: Vec<RunRecord>,
}

/// How a finished run changes the task's live set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveSet {
    /// The run's objects replace the live set; the old ones move to `pending_removal`.
    Replace,
    /// The run's objects are added to the live set (run-time snapshot partitions).
    Append,
}

/// Who a store is: its id and, for messages, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    /// Made when the store was created (a random UUID), never changed.
    pub id: String,
    /// When the id was made, ms since epoch UTC.
    pub created_ms: i64,
    /// Where the store is, without secrets: `sqlite:/absolute/path.db` or
    /// `postgres://user@host:port/database`.
    pub location: String,
}

/// The metadata store: every backend implements the focused traits that make it up
/// ([`Tables`], [`Runs`], [`Imports`], [`Workers`], [`Listing`]), and `Store` is all of them,
/// which commands and the service hold (`Arc<dyn Store>`; import the trait whose methods a
/// caller uses). Methods block: call them from a blocking thread
/// (`tokio::task::spawn_blocking`), never directly on the async runtime.
pub trait Store: Tables + Runs + Imports + Workers + Listing + Send + Sync {}

impl<T: Tables + Runs + Imports + Workers + Listing + Send + Sync> Store for T {}

/// Tables and their rows: declaring tables, applying changes (each [`Tables::apply`] one
/// transaction), consistent sharded snapshots and change reads, and the store's identity.
pub trait Tables {
    /// The store's identity: an id made when the store was created and kept in it, which a
    /// task's destination records as its owner (see [`crate::delivery::owner`]). A store made
    /// before ids existed gets one the first time it is opened for writing; opened read-only,
    /// it has none yet ([`Error::NotFound`]).
    fn identity(&self) -> Result<StoreIdentity>;

    /// Creates `def`'s table if it does not exist. A table of that name that exists with a
    /// different definition is an [`Error::Conflict`] naming the difference. Idempotent.
    fn ensure_table(&self, def: &TableDef) -> Result<()>;

    /// Row counts and highest `_seq` of every table, sorted by name.
    fn table_stats(&self) -> Result<Vec<TableStats>>;

    /// Applies `changes` to `table` in one transaction: all of them or, on the first error
    /// (from the store or yielded by the iterator), none. Upserts carry every column; deletes
    /// carry the key. A value the store refuses ([`Error::InvalidInput`]) is reported before
    /// the next change is taken from `changes`, so the caller knows which change it was.
    /// Unknown table: [`Error::NotFound`].
    fn apply(
        &self,
        table: &str,
        changes: &mut dyn Iterator<Item = Result<Change>>,
    ) -> Result<ApplyOutcome>;

    /// Opens one consistent snapshot of `table`'s live rows split into at most `shards`
    /// primary-key ranges of about equal size (a backend may split a large table by where
    /// rows are stored instead: [`ShardReader`]). All shard readers see the same state, even
    /// while writers commit. Unknown table: [`Error::NotFound`].
    fn snapshot(&self, table: &str, shards: usize) -> Result<Snapshot>;

    /// Opens one consistent snapshot of `table`'s live rows changed after `after_seq`: every
    /// live row whose `_seq` is above it, up to the snapshot's `seq` (the bound an
    /// incremental run fixes when it starts). The rows are split into at most `shards`
    /// ranges, each read in order: `_seq` ranges of about equal size, or, when the changes
    /// are a large part of the table (a backend's choice), key ranges read in key order. With
    /// `deletes`, the
    /// tombstones in that range are included too and every batch carries a last column
    /// [`DELETED_COLUMN`]; without, tombstones are left out and batches have the table's
    /// schema. A checkpoint above the store's newest `_seq` is an [`Error::Conflict`] (the
    /// store is not the one the checkpoint came from); unknown table: [`Error::NotFound`].
    fn changes(
        &self,
        table: &str,
        after_seq: u64,
        shards: usize,
        deletes: bool,
    ) -> Result<Snapshot>;

    /// How far `table` has moved past a checkpoint: its newest `_seq`, the changes above the
    /// checkpoint (live rows, and tombstones too with `deletes`) and the write time of the
    /// oldest of them. Unknown table: [`Error::NotFound`].
    fn lag(&self, table: &str, after_seq: u64, deletes: bool) -> Result<Lag>;

    /// Removes `table`'s tombstones whose `_seq` is at most `up_to_seq` (every task that
    /// delivers deletes has delivered past them) and returns how many. Live rows and the
    /// store's sequence are untouched. Unknown table: [`Error::NotFound`].
    fn purge_tombstones(&self, table: &str, up_to_seq: u64) -> Result<u64>;
}

/// Delivery runs and task states: a run is recorded under its task's lease
/// ([`Runs::start_run`]), renews it ([`Runs::heartbeat`]) and commits its record, the task's
/// checkpoint and live set in one transaction ([`Runs::finish_run`]).
pub trait Runs {
    /// Records a new run as `Running` and assigns its `run_id` and `first_object_seq`
    /// (the task's `next_object_seq`). Two runs of one task never overlap: while another run
    /// of the task is `Running` and was heard from (its start or last [`Store::heartbeat`])
    /// less than `lease` ago, this is an [`Error::Conflict`] naming it. A `Running` run
    /// silent for longer is taken over in the same transaction: recorded `Failed`
    /// ("interrupted") and returned in [`StartedRun::interrupted`]. It never committed, so
    /// every object it may have written is named at or past the new run's
    /// `first_object_seq`, which the new run rewrites or removes. An `incremental` run
    /// must be planned from the task's checkpoint (`seq_from`): one that another run moved
    /// meanwhile is an [`Error::Conflict`]. A `Running` run for which `gone` is true (its
    /// process is known to have ended) is taken over at once, whatever its lease.
    fn start_run(
        &self,
        record: &RunRecord,
        lease: Duration,
        gone: OwnerGone<'_>,
    ) -> Result<StartedRun>;

    /// Records that a running run is alive, renewing its lease. A run that is no longer
    /// `Running` (finished, or taken over after its lease ran out) is an [`Error::Conflict`]:
    /// its process must stop writing.
    fn heartbeat(&self, run_id: u64) -> Result<()>;

    /// Commits a finished run in one transaction: stores the record and, when it succeeded,
    /// updates the task's state (`next_object_seq` past every object the run named, the live
    /// set per `live`). A failed run only stores the record. A `run_id` the store does not
    /// hold is [`Error::NotFound`]; a run of another task or one that already finished is
    /// [`Error::Conflict`]; a record still `Running` is [`Error::InvalidInput`].
    fn finish_run(&self, record: &RunRecord, live: LiveSet) -> Result<()>;

    /// Records a run that failed before it started (`record`, status `Failed`, with its
    /// error): its destination could not be opened, or refused this store. It takes no lease,
    /// takes nothing over and changes no task state; the store gives it a run id (returned),
    /// so `status` shows the failure as the task's last run. A record that is not `Failed` is
    /// an [`Error::InvalidInput`].
    fn record_failed_run(&self, record: &RunRecord) -> Result<u64>;

    /// Forgets `removed` objects from the task's `pending_removal` once they are gone.
    fn clear_pending_removal(&self, task: &str, removed: &[DeliveredObject]) -> Result<()>;

    /// The task's state, or `None` when it never ran.
    fn task_state(&self, task: &str) -> Result<Option<TaskState>>;

    /// Makes `objects` (found in the task's destination, written under another store) the
    /// task's live set, in one transaction: checkpoint 0, the next object id at least
    /// `next_object_seq`, nothing waiting for removal and [`TaskState::replace_next`] set, so
    /// the task's next succeeded run delivers everything this store holds and then removes
    /// them. Used when a task moves to this store ([`crate::delivery::owner`]). Whatever the
    /// task's state was, it is replaced; a run of the task in progress is not stopped (the
    /// caller checks there is none).
    fn adopt_task(
        &self,
        task: &str,
        objects: &[DeliveredObject],
        next_object_seq: u64,
    ) -> Result<()>;

    /// The objects that make up the task's current output in the lake, sorted by path.
    fn live_objects(&self, task: &str) -> Result<Vec<DeliveredObject>>;

    /// The partitions of the task's live objects, sorted, each with how many live objects
    /// it holds (no object is read).
    fn live_partitions(&self, task: &str) -> Result<Vec<(String, u64)>>;

    /// The newest runs of `task` (or of every task), newest first, at most `limit`.
    fn runs(&self, task: Option<&str>, limit: usize) -> Result<Vec<RunRecord>>;
}

/// Inventory imports: a report applied as the full snapshot of its scope, and the records of
/// imports.
pub trait Imports {
    /// Applies a full snapshot of one scope of `draft.table` in one transaction: the upserts
    /// `changes` yields (every one inside the scope), then a tombstone for every live row of
    /// the scope the snapshot did not hold; unchanged rows are not written and take no `_seq`.
    /// Then stores the import record (the draft's source fields plus what the store measured).
    ///
    /// Before reading any change: a snapshot with the same `manifest_md5` already applied to
    /// the same scope is [`ImportOutcome::AlreadyImported`]; one created before the newest
    /// applied to the same scope is an [`Error::Conflict`] naming both. A delete among the
    /// changes, a row outside the scope or any error (from the store or the iterator) leaves
    /// the store unchanged.
    fn apply_snapshot(
        &self,
        draft: &ImportRecord,
        changes: &mut dyn Iterator<Item = Result<Change>>,
    ) -> Result<ImportOutcome>;

    /// The newest import records (of every table), newest first, at most `limit`.
    fn imports(&self, limit: usize) -> Result<Vec<ImportRecord>>;
}

/// `lakeport serve` processes working on the store, and the snapshot shards a store may share
/// between them (PostgreSQL; a store that does not share shards keeps the defaults, which say
/// so).
pub trait Workers {
    // --- Workers (`lakeport serve` processes sharing the store) ---

    /// Records that `worker` is alive: stores it with `heartbeat_ms` set to now, and forgets
    /// every worker silent for longer than `forget_after` (one that was killed).
    fn worker_heartbeat(&self, worker: &WorkerRecord, forget_after: Duration) -> Result<()>;

    /// Every worker the store knows, oldest first.
    fn workers(&self) -> Result<Vec<WorkerRecord>>;

    /// Forgets a worker that stopped.
    fn remove_worker(&self, worker_id: &str) -> Result<()>;

    // --- Shards shared among workers (semantics: `store::shards`) ---

    /// Whether other processes can read this store's snapshot shards (their readers have
    /// tickets) and the methods below work. `false` (SQLite): they are
    /// [`Error::Conflict`]s, and [`Store::shards`] lists nothing.
    fn shares_shards(&self) -> bool {
        false
    }

    /// Opens the shard a [`ShardReader::ticket`] describes, in the same snapshot, while the
    /// snapshot is still open in the process that took it (else an error).
    fn open_shard(&self, ticket: &str) -> Result<Box<dyn ShardReader>> {
        let _ = ticket;
        Err(shards_not_shared())
    }

    /// Offers the shards of running run `run_id` to every worker, with the fingerprint of
    /// the task definition it was planned with, claimable by one worker at a time for
    /// `lease` unrenewed. Forgets the shards of runs that are no longer running.
    fn offer_shards(
        &self,
        run_id: u64,
        fingerprint: &str,
        lease: Duration,
        offers: &[ShardOffer],
    ) -> Result<()> {
        let _ = (run_id, fingerprint, lease, offers);
        Err(shards_not_shared())
    }

    /// Claims for `worker` one offered shard of a running run that is pending or whose
    /// claim has expired (the lowest run, then shard, first), or `None`.
    fn claim_shard(&self, worker: &str, from: ClaimFrom<'_>) -> Result<Option<ShardClaim>> {
        let _ = (worker, from);
        Err(shards_not_shared())
    }

    /// Renews every claim `worker` holds on shards of running runs; returns them as
    /// `(run_id, concurrent_id, attempt)`. A claim missing from the answer is lost.
    fn renew_shard_claims(&self, worker: &str) -> Result<Vec<(u64, u32, u32)>> {
        let _ = worker;
        Err(shards_not_shared())
    }

    /// Reports the end of `worker`'s claim `attempt` of a shard: what it delivered, or why
    /// it failed. `false` (nothing stored) when that claim is no longer held.
    fn finish_shard(
        &self,
        worker: &str,
        run_id: u64,
        concurrent_id: u32,
        attempt: u32,
        outcome: std::result::Result<&ShardResult, &str>,
    ) -> Result<bool> {
        let _ = (worker, run_id, concurrent_id, attempt, outcome);
        Err(shards_not_shared())
    }

    /// Makes a shard claimable again at once when claim `attempt` is still its latest and
    /// unreported (its worker is known to be gone); `false` when it is not.
    fn release_shard(&self, run_id: u64, concurrent_id: u32, attempt: u32) -> Result<bool> {
        let _ = (run_id, concurrent_id, attempt);
        Err(shards_not_shared())
    }

    /// The offered shards of run `run_id` in shard order, or with `None` those of every
    /// running run, by run.
    fn shards(&self, run_id: Option<u64>) -> Result<Vec<ShardStatus>> {
        let _ = run_id;
        Ok(Vec::new())
    }
}

/// Listing and summarising the `object_inventory` table as a bucket (`ls`, `du`).
pub trait Listing {
    // --- Listing the object-inventory table (semantics: `store::listing`) ---

    /// One page of `object_inventory` listed as S3 lists a bucket: current objects of
    /// `q.bucket` under `q.prefix` in key-byte order, rolled up into common prefixes when
    /// `q.delimiter` is set, resuming after `q.continuation_token`. One read transaction per
    /// page. An unknown bucket gives an empty page; a bad limit or token is
    /// [`Error::InvalidInput`]; an undeclared `object_inventory` table is [`Error::NotFound`].
    fn list_objects(&self, q: &ListQuery) -> Result<ListPage>;

    /// Counts and bytes of the current objects of `bucket` under `prefix`, grouped `by`, in
    /// the group's natural order (see [`SummaryBy`]); empty for an unknown bucket. One read
    /// transaction. An undeclared `object_inventory` table is [`Error::NotFound`].
    fn summarize_objects(
        &self,
        bucket: &str,
        prefix: &str,
        by: SummaryBy,
    ) -> Result<Vec<SummaryRow>>;
}

/// What a store that keeps its snapshots to one process says when asked to share a shard.
fn shards_not_shared() -> Error {
    Error::Conflict("this store does not share snapshot shards between processes".into())
}
