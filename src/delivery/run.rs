//! One delivery run of a task, end to end.
//!
//! Full mode: open one consistent snapshot of the source table split into primary-key shards,
//! record the run (its plan: sequence range, shards, first object sequence id) in the store,
//! then deliver every shard on its own blocking thread — convert each batch, count and keep
//! dirty rows, assign partitions, hand rows to the shard's Parquet writer — and only when every
//! object of every shard is complete, commit the run record and the task's new live set in one
//! store transaction. The previous run's objects are removed after that commit (so for a moment
//! readers can see both the old and the new snapshot; see docs/concepts.md). A run that fails
//! removes every object it wrote, records the failure and leaves the live set as it was.
//!
//! Incremental mode: the same, over the live rows whose `_seq` is above the task's checkpoint
//! (split into `_seq` ranges rather than key ranges); its objects are added to the live set and
//! the commit moves the checkpoint to the run's `seq_to`. A task that emits deletes reads the
//! tombstones in that range too and delivers them as rows with `_op = 'delete'`, placed by the
//! time they were deleted.
//!
//! Differential mode: the task's first run is a full snapshot at the store's sequence S
//! (recorded with mode `differential`), whose commit sets the checkpoint to S; every later run
//! is incremental.
//!
//! Either way the run holds its task's lease from the moment it is recorded, renewing it while
//! it writes; a run that takes over an interrupted one first removes what that one wrote.
//! Under the lease every run also aborts the multipart uploads that earlier runs of its task
//! journaled and never finished (a killed process, an abort that failed; see
//! [`crate::sink::destination`]), journals its own under `_lakeport/<task>/uploads/<run id>/`,
//! and aborts what is left there once its shards are done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{
    filter, filter_record_batch, is_not_null, sort_to_indices, take_record_batch,
};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use tokio::runtime::Handle;

use crate::convert::row_json;
use crate::delivery::config::{Deletes, Mode, PartitionTime, Task};
use crate::delivery::manifest::{
    manifest_path, manifests_folder, manifests_to_prune, prunes_after, run_uploads_folder,
    uploads_folder, Manifest,
};
use crate::delivery::owner::ensure_owner;
use crate::delivery::shared::{deliver_shards, reported_paths, Delivered, RunShards};
use crate::error::{Error, Result};
use crate::sink::destination::Destination;
use crate::sink::ndjson::NdjsonWriter;
use crate::sink::parquet::{ObjectNaming, PartitionedWriter};
use crate::sink::partition::Partitioner;
use crate::sink::spool::{default_spool_dir, remove_stale_spool_files, sweep_due};
use crate::store::shards::this_worker_id;
use crate::store::{
    LiveSet, RunOwner, RunRecord, RunStatus, ShardReader, ShardResult, Store, TaskState,
    DELETED_COLUMN, SEQ_COLUMN, WRITE_TIME_COLUMN,
};

/// Rows per batch read from the store.
const BATCH_ROWS: usize = 65_536;

/// The least memory budget a shard's writer gets, however many shards share the task's.
const MIN_SHARD_BUFFER: usize = 16 << 20;

/// Newest runs of a task read to find a run whose commit reported an error (the runs that
/// start after it are few: it held the task's lease until then).
const RUNS_TO_SETTLE: usize = 64;

/// Dirty reason for a row whose partition-time column is NULL.
const NULL_PARTITION_TIME: &str = "null_partition_time";

/// Hears how a run goes (for a progress bar); called from shard threads.
pub trait RunObserver: Send + Sync {
    /// The snapshot is open and holds about `rows` live rows (counted, or for a large
    /// PostgreSQL table the server's estimate: see
    /// [`Snapshot::rows_estimated`](crate::store::Snapshot::rows_estimated)).
    fn planned(&self, _rows: u64) {}
    /// A shard has read `rows` more rows.
    fn delivered(&self, _rows: u64) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl RunObserver for Quiet {}

/// The outcome of a successful run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The committed run record.
    pub record: RunRecord,
    /// Wall-clock seconds the run took.
    pub seconds: f64,
    /// Dirty-row files written (relative to the destination).
    pub dirty_objects: Vec<String>,
}

impl RunSummary {
    /// One line: `TASK: R rows, O objects, B bytes, P partitions, D dirty rows in S.SSs (X rows/s)`.
    pub fn line(&self) -> String {
        let r = &self.record;
        let rate = if self.seconds > 0.0 {
            r.rows as f64 / self.seconds
        } else {
            0.0
        };
        format!(
            "{}: {} rows, {} objects, {} bytes, {} partitions, {} dirty rows in {:.2}s ({:.0} rows/s)",
            r.task,
            r.rows,
            r.objects.len(),
            r.bytes,
            r.partitions().len(),
            r.dirty_rows(),
            self.seconds,
            rate
        )
    }
}

/// Runs a store call on a blocking thread.
pub(super) async fn blocking<T, F>(store: &Arc<dyn Store>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T> + Send + 'static,
{
    let store = Arc::clone(store);
    crate::store::blocking(move || f(store.as_ref())).await
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Delivers `task` once (full, incremental or differential mode) and returns the committed run.
pub async fn run_task(
    store: Arc<dyn Store>,
    task: Arc<Task>,
    observer: Arc<dyn RunObserver>,
) -> Result<RunSummary> {
    let dest = match task.open_destination() {
        Ok(dest) => dest,
        Err(e) => return Err(failed_before_start(&store, &task, now_ms(), e).await),
    };
    run_task_with(store, task, Arc::new(dest), observer).await
}

/// [`run_task`] into a destination given by the caller instead of the task's URL (the same
/// lake reached through another object store, e.g. one that injects faults in tests).
pub async fn run_task_with(
    store: Arc<dyn Store>,
    task: Arc<Task>,
    dest: Arc<Destination>,
    observer: Arc<dyn RunObserver>,
) -> Result<RunSummary> {
    let clock = Instant::now();
    let started_ms = now_ms();
    let spool = default_spool_dir();
    let stale = if sweep_due() {
        tokio::task::spawn_blocking(move || remove_stale_spool_files(&spool))
            .await
            .unwrap_or(0)
    } else {
        0
    };
    if stale > 0 {
        tracing::info!(
            files = stale,
            "removed spool files of lakeport processes that ended without cleaning up"
        );
    }
    // Nothing in the destination is touched before this store is known to own it.
    let prepared = match prepare(&store, &task, &dest, started_ms).await {
        Ok(prepared) => prepared,
        Err(e) => return Err(failed_before_start(&store, &task, started_ms, e).await),
    };
    let Prepared {
        phase,
        replace_next,
        snapshot,
        plan,
    } = prepared;
    observer.planned(snapshot.rows);
    let lease = task.lease;
    let me = plan.owner.clone();
    let started = blocking(&store, move |s| {
        s.start_run(&plan, lease, &|other| process_gone(other, me.as_ref()))
    })
    .await
    .map_err(|e| match e {
        // Another run of the task holds its lease or moved its checkpoint meanwhile.
        Error::Conflict(m) => Error::Busy(m),
        e => e,
    })?;
    let mut record = started.run;
    let heart = tokio::spawn(keep_alive(Arc::clone(&store), record.run_id, lease / 6));
    if !started.interrupted.is_empty() {
        let ids: Vec<String> = started
            .interrupted
            .iter()
            .map(|r| r.run_id.to_string())
            .collect();
        tracing::warn!(task = %task.name, runs = %ids.join(", "),
            "took over runs that stopped without finishing; removing what they wrote");
        let unfinished: Vec<u64> = started.interrupted.iter().map(|r| r.run_id).collect();
        remove_run_objects(&dest, &record, &unfinished, &BTreeSet::new()).await;
    }
    // Under the lease, before this run uploads anything: every journaled upload of the task
    // belongs to a run that has ended. This is also the run's first request to a cloud
    // store, so a missing bucket or refused credentials stop the run here, before any write.
    let mut failure: Option<Error> = None;
    match dest
        .abort_journaled_uploads(&uploads_folder(&task.name))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(task = %task.name, uploads = n,
            "aborted multipart uploads that earlier runs left unfinished"),
        Err(e) => failure = Some(e),
    }
    let journal = run_uploads_folder(&task.name, record.run_id);
    let dest = Arc::new(dest.as_ref().clone().with_upload_journal(&journal));
    // Read under the lease: no other run of the task commits until this one ends.
    let name = task.name.clone();
    let live_before: BTreeSet<String> = blocking(&store, move |s| s.live_partitions(&name))
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    tracing::info!(task = %task.name, run_id = record.run_id, seq = record.seq_to, rows = snapshot.rows,
        rows_estimated = snapshot.rows_estimated, shards = record.shards, "run planned");

    let uploading = failure.is_none();
    let mut delivered = Vec::new();
    if uploading {
        let shards = RunShards {
            task: Arc::clone(&task),
            dest: Arc::clone(&dest),
            run: record.clone(),
            observer: Arc::clone(&observer),
        };
        match deliver_shards(&store, &shards, snapshot.shards).await {
            Ok(d) => delivered = d,
            Err(e) => failure = Some(e),
        }
    }

    // Every shard is done: an upload still journaled by this run is one whose abort failed.
    if uploading {
        match dest.abort_journaled_uploads(&journal).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(task = %task.name, uploads = n,
                "aborted multipart uploads whose abort failed when they failed"),
            Err(e) => tracing::warn!(task = %task.name,
                "cannot look for this run's unfinished multipart uploads (the next run will): {e}"),
        }
    }

    let mut dirty_objects = Vec::new();
    if failure.is_none() && delivered.iter().any(|d| d.attempt > 1) {
        // A worker that was killed or lost its claim may have left objects of this run that
        // the shard's final attempt did not write: remove them before anything names them.
        let keep = reported_paths(&delivered);
        remove_run_objects(&dest, &record, &[record.run_id], &keep).await;
    }
    if failure.is_none() {
        for Delivered { result, .. } in delivered {
            record.rows += result.rows;
            record.bytes += result.objects.iter().map(|o| o.bytes).sum::<u64>();
            record.objects.extend(result.objects);
            record.next_object_seq = record.next_object_seq.max(result.next_seq);
            for (reason, n) in result.dirty {
                *record.dirty.entry(reason).or_default() += n;
            }
            dirty_objects.extend(result.dirty_object.map(|o| o.path));
        }
        record.next_object_seq = record.next_object_seq.max(record.first_object_seq);
        record.objects.sort_by(|a, b| a.path.cmp(&b.path));
        record.new_partitions = record
            .partitions()
            .into_iter()
            .filter(|p| !live_before.contains(p))
            .collect();
        // Every object is complete: the manifest names them before the run commits.
        if let Err(e) = write_manifest(&dest, &record).await {
            failure = Some(e);
        }
    }

    heart.abort();
    record.ended_ms = Some(now_ms());
    if let Some(error) = failure {
        record.status = RunStatus::Failed;
        record.error = Some(error.to_string());
        record.objects.clear();
        remove_run_objects(&dest, &record, &[record.run_id], &BTreeSet::new()).await;
        let failed = record.clone();
        if let Err(e) = blocking(&store, move |s| s.finish_run(&failed, LiveSet::Replace)).await {
            tracing::error!(task = %task.name, "could not record the failed run: {e}");
        }
        return Err(error);
    }

    record.status = RunStatus::Succeeded;
    let live = match task.partition_time {
        // The live set was adopted from the destination's previous owner: this run replaces it.
        _ if replace_next => LiveSet::Replace,
        _ if phase == Phase::Incremental => LiveSet::Append,
        PartitionTime::RunTime => LiveSet::Append,
        _ => LiveSet::Replace,
    };
    let committed = record.clone();
    if let Err(e) = blocking(&store, move |s| s.finish_run(&committed, live)).await {
        settle_failed_commit(&store, &dest, &record, e).await?;
    }
    let name = task.name.clone();
    let state = blocking(&store, move |s| s.task_state(&name)).await?;
    remove_pending(&store, state.as_ref(), &dest).await?;
    if prunes_after(record.run_id) {
        if let Err(e) = prune_manifests(&dest, &task).await {
            tracing::warn!(task = %task.name, "old run manifests not pruned (next time): {e}");
        }
    }
    Ok(RunSummary {
        record,
        seconds: clock.elapsed().as_secs_f64(),
        dirty_objects,
    })
}

/// A run planned and not yet started: what [`prepare`] found.
struct Prepared {
    phase: Phase,
    /// The task's live set was adopted from another store ([`TaskState::replace_next`]).
    replace_next: bool,
    snapshot: crate::store::Snapshot,
    /// The run's record, `Running`, for [`Store::start_run`].
    plan: RunRecord,
}

/// Everything a run does before it is recorded: makes sure this store owns the destination
/// (claiming it on the task's first run), removes what the previous run replaced, and opens
/// the snapshot (or changes) to deliver. An error here has written nothing.
async fn prepare(
    store: &Arc<dyn Store>,
    task: &Task,
    dest: &Destination,
    started_ms: i64,
) -> Result<Prepared> {
    ensure_owner(store, task, dest).await?;
    let table = task.source.table.clone();
    let shards = task.concurrency;
    let name = task.name.clone();
    let state = blocking(store, move |s| s.task_state(&name)).await?;
    remove_pending(store, state.as_ref(), dest).await?;
    let phase = Phase::of(task.mode, state.is_some());
    let replace_next = state.as_ref().is_some_and(|s| s.replace_next);
    // An incremental run delivers the changes above the task's checkpoint, up to the store's
    // sequence when it starts; a full (or a differential task's first) run the whole table as
    // of then.
    let seq_from = match phase {
        Phase::Incremental => state.map_or(0, |state| state.checkpoint),
        Phase::Full | Phase::FirstSnapshot => 0,
    };
    let deletes = task.deletes == Deletes::Emit;
    let snapshot = blocking(store, move |s| match phase {
        Phase::Incremental => s.changes(&table, seq_from, shards, deletes),
        Phase::Full | Phase::FirstSnapshot => s.snapshot(&table, shards),
    })
    .await?;
    let mut plan = RunRecord::new(&task.name, phase.as_str(), started_ms, RunStatus::Running);
    plan.seq_from = seq_from;
    plan.seq_to = snapshot.seq;
    plan.shards = snapshot.shards.len() as u32;
    Ok(Prepared {
        phase,
        replace_next,
        snapshot,
        plan,
    })
}

/// Records `error`, which stopped a run of `task` before it was recorded (its destination
/// could not be opened or refused this store, the snapshot could not be read), as a failed
/// run, so that `status` shows it; returns the error. Another run in progress
/// ([`Error::Busy`]) is no failure and is not recorded.
async fn failed_before_start(
    store: &Arc<dyn Store>,
    task: &Task,
    started_ms: i64,
    error: Error,
) -> Error {
    if matches!(error, Error::Busy(_)) {
        return error;
    }
    let mut record = RunRecord::new(
        &task.name,
        task.mode.as_str(),
        started_ms,
        RunStatus::Failed,
    );
    record.ended_ms = Some(now_ms());
    record.error = Some(error.to_string());
    if let Err(e) = blocking(store, move |s| s.record_failed_run(&record)).await {
        tracing::error!(task = %task.name, "could not record the failed run: {e}");
    }
    error
}

/// What one run of a task does, by the task's mode and whether it has delivered before./// What one run of a task does, by the task's mode and whether it has delivered before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A consistent snapshot of the whole table (mode `full`).
    Full,
    /// A differential task's first run: a snapshot at the store's sequence S, which becomes
    /// the checkpoint its incremental runs continue from.
    FirstSnapshot,
    /// The changes above the checkpoint (mode `incremental`, and a differential task once its
    /// snapshot is delivered).
    Incremental,
}

impl Phase {
    fn of(mode: Mode, delivered_before: bool) -> Phase {
        match mode {
            Mode::Full => Phase::Full,
            Mode::Incremental => Phase::Incremental,
            Mode::Differential if delivered_before => Phase::Incremental,
            Mode::Differential => Phase::FirstSnapshot,
        }
    }

    /// The mode recorded in the run record (and checked by [`Store::start_run`]).
    fn as_str(self) -> &'static str {
        match self {
            Phase::Full => "full",
            Phase::FirstSnapshot => "differential",
            Phase::Incremental => "incremental",
        }
    }
}

/// Whether `run`'s process is known to have ended: it ran on this host, in another process,
/// and no process has its id now. A reused id looks alive (the lease then decides), and a
/// run on another host is never judged from here.
fn process_gone(run: &RunRecord, me: Option<&RunOwner>) -> bool {
    match (&run.owner, me) {
        (Some(owner), Some(me)) => owner.is_gone_seen_from(me),
        _ => false,
    }
}

/// Renews a run's lease `every` so often until aborted. A heartbeat that fails is logged; if
/// the run was taken over meanwhile, committing it fails too.
async fn keep_alive(store: Arc<dyn Store>, run_id: u64, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(e) = blocking(&store, move |s| s.heartbeat(run_id)).await {
            tracing::error!(run_id, "cannot renew the run's lease: {e}");
        }
    }
}

/// Settles a run whose commit failed with `error` after every object was complete (a full
/// disk under a SQLite store, a PostgreSQL server lost mid-commit). A heartbeat asks the store
/// whether the run is still running; on PostgreSQL it waits for the run's row, so a commit
/// still under way on the server ends first:
/// - still running (its lease renewed): nothing was committed. What the run wrote is removed
///   while the lease is held, then the failure is recorded, as for any failed run: a reader
///   of the lake never sees the objects of a run that did not commit. `error` is returned.
/// - finished and recorded as succeeded: the commit went through and only its answer was
///   lost. The run succeeded.
/// - anything else (the store still unreachable or full; the run taken over once its lease
///   ran out): nothing is removed, since the objects may be committed or another run's, and
///   `error` is returned. The next run of the task takes this one over and removes them.
async fn settle_failed_commit(
    store: &Arc<dyn Store>,
    dest: &Destination,
    record: &RunRecord,
    error: Error,
) -> Result<()> {
    let run_id = record.run_id;
    match blocking(store, move |s| s.heartbeat(run_id)).await {
        Ok(()) => {
            let mut failed = record.clone();
            failed.status = RunStatus::Failed;
            failed.error = Some(error.to_string());
            failed.objects.clear();
            failed.new_partitions.clear();
            remove_run_objects(dest, &failed, &[run_id], &BTreeSet::new()).await;
            if let Err(e) = blocking(store, move |s| s.finish_run(&failed, LiveSet::Replace)).await
            {
                tracing::error!(task = %record.task, run_id,
                    "could not record the failed run (the next run takes it over): {e}");
            }
            Err(error)
        }
        Err(Error::Conflict(_)) => {
            let task = record.task.clone();
            let recorded = blocking(store, move |s| s.runs(Some(&task), RUNS_TO_SETTLE)).await;
            let committed = recorded.is_ok_and(|runs| {
                runs.iter()
                    .any(|r| r.run_id == run_id && r.status == RunStatus::Succeeded)
            });
            if committed {
                tracing::warn!(task = %record.task, run_id,
                    "the run's commit reported an error but went through: {error}");
                Ok(())
            } else {
                Err(error)
            }
        }
        Err(e) => {
            tracing::error!(task = %record.task, run_id,
                "cannot tell whether the run committed ({e}); what it wrote stays until the \
                 next run of the task takes it over");
            Err(error)
        }
    }
}

/// Removes objects a previous run replaced, then forgets them. Safe to repeat.
async fn remove_pending(
    store: &Arc<dyn Store>,
    state: Option<&TaskState>,
    dest: &Destination,
) -> Result<()> {
    let Some(state) = state.filter(|s| !s.pending_removal.is_empty()) else {
        return Ok(());
    };
    for object in &state.pending_removal {
        dest.delete(&object.path).await?;
    }
    let name = state.task.clone();
    let removed = state.pending_removal.clone();
    blocking(store, move |s| s.clear_pending_removal(&name, &removed)).await
}

/// Deletes the task's manifests but those of its newest `manifests.keep` runs.
async fn prune_manifests(dest: &Destination, task: &Task) -> Result<()> {
    let listed = dest.list(&manifests_folder(&task.name)).await?;
    let paths: Vec<String> = listed.into_iter().map(|(p, _)| p).collect();
    for path in manifests_to_prune(&task.name, &paths, task.manifests_keep) {
        dest.delete(&path).await?;
    }
    Ok(())
}

/// Writes the run's manifest ([`manifest_path`]) in one put.
async fn write_manifest(dest: &Destination, run: &RunRecord) -> Result<()> {
    let manifest = Manifest::of(run, dest.url());
    let mut json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Encode(format!("run manifest: {e}")))?;
    json.push(b'\n');
    dest.put_bytes(&manifest_path(&run.task, run.run_id), json)
        .await
}

/// Deletes everything failed or interrupted runs may have written: their objects, named
/// `<task>_<cid>_<seq>.parquet` with `seq` from the run's first object sequence id on (no live
/// object is numbered that high: a committed run moves the task's next id past its objects,
/// so they are found by name, whatever the shard count of the run that wrote them); the
/// manifests and dirty-row files of the runs `unfinished`; and the staging files of uploads a
/// killed process left half-done in a local destination; but none of the paths in `keep`.
/// Failures are logged: what is left is removed by the next run that fails or takes over.
async fn remove_run_objects(
    dest: &Destination,
    run: &RunRecord,
    unfinished: &[u64],
    keep: &BTreeSet<String>,
) {
    let task = run.task.clone();
    let first_seq = run.first_object_seq;
    let ids: BTreeSet<u64> = unfinished.iter().copied().collect();
    let manifests: BTreeSet<String> = ids.iter().map(|&id| manifest_path(&task, id)).collect();
    let keep = keep.clone();
    let left_by_run = {
        let manifests = manifests.clone();
        move |rel: &str| {
            let file = rel.rsplit('/').next().unwrap_or(rel);
            let by_run = written_by_run(file, &task, first_seq)
                || manifests.contains(rel)
                || ids.iter().any(|&id| is_dirty_file(rel, &task, id));
            by_run && !keep.contains(rel)
        }
    };
    match dest.list("").await {
        Ok(listed) => {
            for path in removal_order(listed, &left_by_run, &manifests) {
                if let Err(e) = dest.delete(&path).await {
                    tracing::error!(task = %run.task, "cannot remove {path} of an unfinished run: {e}");
                }
            }
        }
        Err(e) => {
            tracing::error!(task = %run.task, "cannot list the destination to clean up an unfinished run: {e}");
        }
    }
    match dest.remove_staged(left_by_run).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(task = %run.task, files = n, "removed half-written uploads"),
        Err(e) => tracing::error!(task = %run.task, "cannot remove half-written uploads: {e}"),
    }
}

/// The paths of `listed` that `left_by_run` selects, in the order to delete them: the
/// `manifests` first, so that a manifest never names objects already gone while a run's
/// leftovers are removed (listings come in any order).
fn removal_order(
    listed: Vec<(String, u64)>,
    left_by_run: impl Fn(&str) -> bool,
    manifests: &BTreeSet<String>,
) -> Vec<String> {
    let mut doomed: Vec<String> = listed
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| left_by_run(path))
        .collect();
    doomed.sort_by_key(|path| !manifests.contains(path));
    doomed
}

/// The dirty-row file of run `run_id`'s shard (see [`Shard::deliver`]).
fn dirty_file_path(task: &str, run_id: u64, concurrent_id: u32) -> String {
    format!("_dirty/{task}/run-{run_id}_{concurrent_id}.ndjson")
}

/// Whether `rel` is a dirty-row file of run `run_id` of `task`, any shard.
fn is_dirty_file(rel: &str, task: &str, run_id: u64) -> bool {
    rel.strip_prefix(&format!("_dirty/{task}/run-{run_id}_"))
        .and_then(|r| r.strip_suffix(".ndjson"))
        .is_some_and(|cid| cid.parse::<u32>().is_ok())
}

/// Whether an object file name is one a run of `task` numbering its objects from `first_seq`
/// would write.
fn written_by_run(file: &str, task: &str, first_seq: u64) -> bool {
    let Some(rest) = file.strip_prefix(task).and_then(|r| r.strip_prefix('_')) else {
        return false;
    };
    let Some(rest) = rest.strip_suffix(".parquet") else {
        return false;
    };
    let Some((cid, seq)) = rest.split_once('_') else {
        return false;
    };
    matches!((cid.parse::<u32>(), seq.parse::<u64>()), (Ok(_), Ok(s)) if s >= first_seq)
}

/// Everything a shard thread needs.
pub(super) struct Shard {
    pub task: Arc<Task>,
    /// The destination, journaling uploads under the run's folder.
    pub dest: Arc<Destination>,
    /// The id its objects are named with (the shard's, or an attempt's: see `shared`).
    pub concurrent_id: u32,
    pub run: RunRecord,
    pub run_time_ms: i64,
    pub runtime: Handle,
    pub observer: Arc<dyn RunObserver>,
    /// When either is set the shard must stop (its claim was lost, its run failed): the read
    /// fails at the next batch.
    pub cancelled: [Arc<AtomicBool>; 2],
}

impl Shard {
    /// Reads the shard and writes its objects. On failure, removes the objects it started.
    pub(super) fn deliver(self, reader: &mut dyn ShardReader) -> Result<ShardResult> {
        let task = &self.task;
        let metadata = vec![
            ("lakeport.task".to_string(), task.name.clone()),
            ("lakeport.run_id".to_string(), self.run.run_id.to_string()),
            ("lakeport.mode".to_string(), self.run.mode.clone()),
            (
                "lakeport.seq_from".to_string(),
                self.run.seq_from.to_string(),
            ),
            ("lakeport.seq_to".to_string(), self.run.seq_to.to_string()),
            (
                "lakeport.concurrent_id".to_string(),
                self.concurrent_id.to_string(),
            ),
            (
                "lakeport.worker".to_string(),
                this_worker_id().0.to_string(),
            ),
        ];
        let naming = ObjectNaming {
            task: task.name.clone(),
            concurrent_id: self.concurrent_id,
            first_seq: self.run.first_object_seq,
        };
        // The task's memory budget is for the whole run: each shard gets its share.
        let mut parquet = task.parquet.clone();
        parquet.buffer_bytes =
            (parquet.buffer_bytes / self.run.shards.max(1) as usize).max(MIN_SHARD_BUFFER);
        let mut writer = PartitionedWriter::new(
            Arc::clone(&self.dest),
            task.schema.arrow_schema(),
            parquet,
            naming,
            metadata,
            self.runtime.clone(),
        )?;
        if let Some(seq) = task
            .schema
            .columns()
            .iter()
            .find(|c| c.source == SEQ_COLUMN)
        {
            writer = writer.with_seq_column(&seq.name);
        }
        let mut dirty_file = if task.dirty_keep {
            let rel = dirty_file_path(&task.name, self.run.run_id, self.concurrent_id);
            Some(NdjsonWriter::new(
                Arc::clone(&self.dest),
                rel,
                self.runtime.clone(),
            )?)
        } else {
            None
        };
        let mut batches = BatchDelivery {
            task,
            partitioner: Partitioner::new(task.prefix.clone(), task.timezone),
            run_time_ms: self.run_time_ms,
            dirty: BTreeMap::new(),
            rows: 0,
        };
        let read = reader.read(BATCH_ROWS, &mut |batch| {
            if self.cancelled.iter().any(|c| c.load(Ordering::SeqCst)) {
                return Err(Error::Busy(format!(
                    "shard {} of run {}: stopped (its claim was lost or its run failed)",
                    self.concurrent_id, self.run.run_id
                )));
            }
            let n = batch.num_rows() as u64;
            batches.deliver(&batch, &mut writer, dirty_file.as_mut())?;
            self.observer.delivered(n);
            Ok(())
        });
        if let Err(e) = read {
            // The dirty-row file is uploaded only when the shard finishes: nothing of it yet.
            for rel in writer.abort() {
                if let Err(de) = self.runtime.block_on(self.dest.delete(&rel)) {
                    tracing::warn!(object = %self.dest.object_url(&rel), error = %de,
                        "could not remove an object of a failed shard (the run removes it)");
                }
            }
            return Err(e);
        }
        let next_seq = writer.next_seq();
        let objects = writer.finish()?;
        let dirty_object = match dirty_file {
            Some(f) => f.finish()?,
            None => None,
        };
        Ok(ShardResult {
            objects,
            rows: batches.rows,
            next_seq,
            dirty: batches.dirty,
            dirty_object,
            worker: this_worker_id().0.to_string(),
        })
    }
}

/// Per-shard state for turning store batches into partitioned lake rows.
struct BatchDelivery<'a> {
    task: &'a Task,
    partitioner: Partitioner,
    run_time_ms: i64,
    dirty: BTreeMap<String, u64>,
    rows: u64,
}

impl BatchDelivery<'_> {
    fn deliver(
        &mut self,
        batch: &RecordBatch,
        writer: &mut PartitionedWriter,
        mut dirty_file: Option<&mut NdjsonWriter>,
    ) -> Result<()> {
        // Rows without a partition time cannot be placed: dirty.
        let time_column = match &self.task.partition_time {
            PartitionTime::WriteTime => Some(WRITE_TIME_COLUMN),
            PartitionTime::Column(c) => Some(c.as_str()),
            PartitionTime::RunTime => None,
        };
        let mut batch = batch.clone();
        if self.task.schema.has_op_column() && column_of(&batch, DELETED_COLUMN).is_none() {
            // A snapshot holds no deletes: every row is an upsert.
            batch = with_column(
                &batch,
                DELETED_COLUMN,
                Arc::new(BooleanArray::from(vec![false; batch.num_rows()])),
            )?;
        }
        if let Some(name) = time_column {
            let times = partition_times(&batch, name)?;
            if times.null_count() > 0 {
                for row in (0..batch.num_rows()).filter(|&r| times.is_null(r)) {
                    let detail = format!("partition time column {name} is NULL");
                    self.record_dirty(
                        &batch,
                        row,
                        NULL_PARTITION_TIME,
                        name,
                        &detail,
                        dirty_file.as_deref_mut(),
                    )?;
                }
                let mask = is_not_null(times.as_ref())?;
                batch = filter_record_batch(&batch, &mask)?;
            }
        }

        let converted = self.task.schema.convert(&batch)?;
        for d in &converted.dirty {
            self.record_dirty(
                &batch,
                d.row,
                d.reason.as_str(),
                &d.column,
                &d.detail,
                dirty_file.as_deref_mut(),
            )?;
        }
        let clean = converted.batch;
        if clean.num_rows() == 0 {
            return Ok(());
        }
        self.rows += clean.num_rows() as u64;

        let ids = match time_column {
            None => {
                let id = self.partitioner.for_instant(self.run_time_ms)?;
                return writer.write_owned(self.partitioner.prefix(id), clean);
            }
            Some(name) => {
                let times = partition_times(&batch, name)?;
                let times = match &converted.kept {
                    Some(mask) => filter(times.as_ref(), mask)?,
                    None => times,
                };
                self.partitioner
                    .assign(times.as_primitive::<TimestampMillisecondType>())?
            }
        };
        write_partitioned(&self.partitioner, writer, clean, &ids)
    }

    fn record_dirty(
        &mut self,
        batch: &RecordBatch,
        row: usize,
        reason: &str,
        column: &str,
        detail: &str,
        dirty_file: Option<&mut NdjsonWriter>,
    ) -> Result<()> {
        *self.dirty.entry(reason.to_string()).or_default() += 1;
        if let Some(file) = dirty_file {
            let seq = column_of(batch, SEQ_COLUMN)
                .map(|c| c.as_primitive::<Int64Type>().value(row))
                .unwrap_or_default();
            let line = serde_json::json!({
                "reason": reason,
                "column": column,
                "detail": detail,
                "_seq": seq,
                "row": row_json(batch, row),
            });
            file.write(&line)?;
        }
        Ok(())
    }
}

/// The partition times of a batch's rows: column `name`, except for deletes (rows flagged in
/// [`DELETED_COLUMN`]), which have no values but their key and are placed by the time they were
/// deleted (`_write_time`).
fn partition_times(batch: &RecordBatch, name: &str) -> Result<arrow::array::ArrayRef> {
    let times = column(batch, name)?;
    let Some(deleted) = column_of(batch, DELETED_COLUMN) else {
        return Ok(times);
    };
    if name == WRITE_TIME_COLUMN || deleted.as_boolean().true_count() == 0 {
        return Ok(times);
    }
    let write_times = column(batch, WRITE_TIME_COLUMN)?;
    Ok(zip(deleted.as_boolean(), &write_times, &times)?)
}

/// `batch` with one more column, last.
fn with_column(
    batch: &RecordBatch,
    name: &str,
    values: arrow::array::ArrayRef,
) -> Result<RecordBatch> {
    let mut fields: Vec<arrow::datatypes::FieldRef> =
        batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(arrow::datatypes::Field::new(
        name,
        values.data_type().clone(),
        false,
    )));
    let mut columns = batch.columns().to_vec();
    columns.push(values);
    Ok(RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )?)
}

fn column_of(batch: &RecordBatch, name: &str) -> Option<arrow::array::ArrayRef> {
    batch.column_by_name(name).cloned()
}

fn column(batch: &RecordBatch, name: &str) -> Result<arrow::array::ArrayRef> {
    column_of(batch, name)
        .ok_or_else(|| Error::Store(format!("snapshot batch has no column {name}")))
}

/// Writes `batch` to the writer, one batch per partition: rows are grouped by partition id
/// with one sort per batch, and each partition's rows are gathered into a batch of their own
/// (so the writer can keep it without holding the whole input alive).
fn write_partitioned(
    partitioner: &Partitioner,
    writer: &mut PartitionedWriter,
    batch: RecordBatch,
    ids: &UInt32Array,
) -> Result<()> {
    let first = ids.value(0);
    if ids.values().iter().all(|&id| id == first) {
        return writer.write_owned(partitioner.prefix(first), batch);
    }
    let order = sort_to_indices(ids, None, None)?;
    let order = order.values();
    let mut start = 0;
    while start < order.len() {
        let id = ids.value(order[start] as usize);
        let mut end = start + 1;
        while end < order.len() && ids.value(order[end] as usize) == id {
            end += 1;
        }
        let rows = UInt32Array::from(order[start..end].to_vec());
        writer.write_owned(partitioner.prefix(id), take_record_batch(&batch, &rows)?)?;
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_removed_manifests_first() {
        let listed: Vec<(String, u64)> = [
            "A_0_7.parquet",
            "dt=1/A_1_8.parquet",
            "_lakeport/A/runs/4.json",
            "A_0_3.parquet",
            "_dirty/A/run-4_0.ndjson",
            "_lakeport/A/runs/3.json",
        ]
        .iter()
        .map(|p| (p.to_string(), 1))
        .collect();
        let manifests = BTreeSet::from(["_lakeport/A/runs/4.json".to_string()]);
        let left = |p: &str| p != "A_0_3.parquet" && p != "_lakeport/A/runs/3.json";
        assert_eq!(
            removal_order(listed, left, &manifests),
            [
                "_lakeport/A/runs/4.json",
                "A_0_7.parquet",
                "dt=1/A_1_8.parquet",
                "_dirty/A/run-4_0.ndjson"
            ]
        );
    }

    #[test]
    fn failed_run_objects_are_found_by_name() {
        assert!(written_by_run("daily_0_7.parquet", "daily", 7));
        assert!(written_by_run("daily_1_9.parquet", "daily", 7));
        assert!(written_by_run("daily_5_7.parquet", "daily", 7));
        assert!(!written_by_run("daily_0_6.parquet", "daily", 7));
        assert!(!written_by_run("daily-x_0_7.parquet", "daily", 7));
        assert!(!written_by_run("daily_0_7.parquet.tmp", "daily", 7));
        assert!(!written_by_run("daily_x_7.parquet", "daily", 7));
    }

    #[test]
    fn only_a_run_of_an_ended_process_on_this_host_is_gone() {
        let me = RunOwner::this_process().expect("this host has a name");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let ended = child.id();
        child.wait().unwrap();
        let run = |host: &str, pid: u32| RunRecord {
            owner: Some(RunOwner {
                host: host.into(),
                pid,
            }),
            ..crate::store::conformance::planned("t")
        };
        assert!(process_gone(&run(&me.host, ended), Some(&me)));
        assert!(
            !process_gone(&run(&me.host, me.pid), Some(&me)),
            "this process"
        );
        assert!(!process_gone(&run(&me.host, 1), Some(&me)), "init is alive");
        assert!(!process_gone(&run("elsewhere", ended), Some(&me)));
        assert!(!process_gone(&run(&me.host, ended), None));
    }

    #[test]
    fn dirty_files_of_a_run_are_found_by_name() {
        let path = dirty_file_path("daily", 12, 3);
        assert!(is_dirty_file(&path, "daily", 12));
        assert!(!is_dirty_file(&path, "daily", 1));
        assert!(!is_dirty_file(&path, "dail", 12));
        assert!(!is_dirty_file("_dirty/daily/run-12_x.ndjson", "daily", 12));
    }
}
