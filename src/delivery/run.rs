//! One delivery run of a task, end to end.
//!
//! Full mode: open one consistent snapshot of the source table split into primary-key shards,
//! record the run (its plan: sequence range, shards, first object sequence id) in the store,
//! then deliver every shard on its own blocking thread ([`super::shard`]: convert each batch,
//! count and keep dirty rows, assign partitions, hand rows to the shard's Parquet writer;
//! [`super::dispatch`] dispatches the shards) — and only when every
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
//! Before it deletes or writes anything in the destination, a run makes sure its store owns
//! it ([`super::owner`]); a run that fails before it is recorded is recorded as a failed run.
//!
//! Either way the run holds its task's lease from the moment it is recorded, renewing it while
//! it writes; a run that takes over an interrupted one first removes what that one wrote.
//! Under the lease every run also aborts the multipart uploads that earlier runs of its task
//! journaled and never finished (a killed process, an abort that failed; see
//! [`crate::objstore::destination`]), journals its own under `_lakeport/<task>/uploads/<run id>/`,
//! and aborts what is left there once its shards are done.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::delivery::config::{Deletes, Mode, PartitionTime, Task};
use crate::delivery::dispatch::{deliver_shards, reported_paths, Delivered, RunShards};
use crate::delivery::manifest::{
    manifest_path, manifests_folder, manifests_to_prune, prunes_after, run_uploads_folder,
    uploads_folder, Manifest,
};
use crate::delivery::owner::ensure_owner;
use crate::delivery::shard::{is_dirty_file, RunObserver};
use crate::error::{Error, Result};
use crate::objstore::destination::Destination;
use crate::sink::spool::{default_spool_dir, remove_stale_spool_files, sweep_due};
use crate::store::{with_store, LiveSet, RunOwner, RunRecord, RunStatus, Store, TaskState};

/// Newest runs of a task read to find a run whose commit reported an error (the runs that
/// start after it are few: it held the task's lease until then).
const RUNS_TO_SETTLE: usize = 64;

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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Delivers `task` once (full, incremental or differential mode) and returns the committed run.
pub async fn run_task(
    store: Arc<dyn Store>,
    task: Arc<Task>,
    observer: Arc<dyn RunObserver>,
) -> Result<RunSummary> {
    let dest = open_destination_for_runs(&store, &task).await?;
    run_task_with(store, task, dest, observer).await
}

/// Opens the task's destination for its runs (one run, or continuous delivery). A failure
/// there (an unset credential variable, say) is recorded as a failed run of the task, as a
/// run that fails later is, so that `status` and the API show why nothing was delivered.
pub async fn open_destination_for_runs(
    store: &Arc<dyn Store>,
    task: &Task,
) -> Result<Arc<Destination>> {
    match task.open_destination() {
        Ok(dest) => Ok(Arc::new(dest)),
        Err(e) => Err(failed_before_start(store, task, now_ms(), e).await),
    }
}

/// [`run_task`] into a destination given by the caller instead of the task's URL (the same
/// lake reached through another object store, e.g. one that injects faults in tests).
///
/// The steps of a run: plan it ([`prepare`]: owner check, clean-up of the previous run's
/// replaced objects, the snapshot; nothing written), take the task's lease ([`take_lease`]:
/// the run recorded, interrupted runs taken over), write its objects and manifest
/// ([`write_objects`]), commit ([`commit`]) and remove what it replaced ([`clean_up`]). A run
/// that fails after it took the lease removes what it wrote and records the failure
/// ([`abandon`]).
pub async fn run_task_with(
    store: Arc<dyn Store>,
    task: Arc<Task>,
    dest: Arc<Destination>,
    observer: Arc<dyn RunObserver>,
) -> Result<RunSummary> {
    let clock = Instant::now();
    let started_ms = now_ms();
    sweep_stale_spool_files().await;
    // Nothing in the destination is touched before this store is known to own it.
    let Prepared {
        phase,
        replace_next,
        snapshot,
        plan,
    } = match prepare(&store, &task, &dest, started_ms).await {
        Ok(prepared) => prepared,
        Err(e) => return Err(failed_before_start(&store, &task, started_ms, e).await),
    };
    observer.planned(snapshot.rows);
    let (mut record, heart) = take_lease(&store, &task, &dest, plan).await?;
    tracing::info!(task = %task.name, run_id = record.run_id, seq = record.seq_to, rows = snapshot.rows,
        rows_estimated = snapshot.rows_estimated, shards = record.shards, "run planned");
    let written = write_objects(&store, &task, &dest, &mut record, snapshot, observer).await;
    heart.abort();
    record.ended_ms = Some(now_ms());
    let dirty_objects = match written {
        Ok(dirty_objects) => dirty_objects,
        Err(e) => return Err(abandon(&store, &dest, record, e).await),
    };
    record.status = RunStatus::Succeeded;
    commit(&store, &dest, &record, live_set(&task, phase, replace_next)).await?;
    clean_up(&store, &task, &dest, &record).await?;
    Ok(RunSummary {
        record,
        seconds: clock.elapsed().as_secs_f64(),
        dirty_objects,
    })
}

/// Removes the spool files of lakeport processes that ended without cleaning up (now and
/// then: see [`sweep_due`]).
async fn sweep_stale_spool_files() {
    if !sweep_due() {
        return;
    }
    let spool = default_spool_dir();
    let stale = tokio::task::spawn_blocking(move || remove_stale_spool_files(&spool))
        .await
        .unwrap_or(0);
    if stale > 0 {
        tracing::info!(
            files = stale,
            "removed spool files of lakeport processes that ended without cleaning up"
        );
    }
}

/// Records the run (its plan) under the task's lease, removes what the runs it took over
/// wrote, and starts renewing the lease (the returned task; abort it when the run ends).
/// Another run holding the lease, or one that moved the checkpoint meanwhile, is
/// [`Error::Busy`].
async fn take_lease(
    store: &Arc<dyn Store>,
    task: &Task,
    dest: &Destination,
    plan: RunRecord,
) -> Result<(RunRecord, tokio::task::JoinHandle<()>)> {
    let lease = task.lease;
    let me = plan.owner.clone();
    let started = with_store(store, move |s| {
        s.start_run(&plan, lease, &|other| process_gone(other, me.as_ref()))
    })
    .await
    .map_err(|e| match e {
        // Another run of the task holds its lease or moved its checkpoint meanwhile.
        Error::Conflict(m) => Error::Busy(m),
        e => e,
    })?;
    let record = started.run;
    let heart = tokio::spawn(keep_alive(Arc::clone(store), record.run_id, lease / 6));
    if !started.interrupted.is_empty() {
        let unfinished: Vec<u64> = started.interrupted.iter().map(|r| r.run_id).collect();
        let ids: Vec<String> = unfinished.iter().map(u64::to_string).collect();
        tracing::warn!(task = %task.name, runs = %ids.join(", "),
            "took over runs that stopped without finishing; removing what they wrote");
        remove_run_objects(dest, &record, &unfinished, &BTreeSet::new()).await;
    }
    Ok((record, heart))
}

/// Writes the run's objects (every shard of `snapshot`) and then its manifest, filling
/// `record` with what was written; returns the dirty-row files written. Under the lease,
/// before anything is uploaded, the multipart uploads that earlier runs journaled and never
/// finished are aborted; this is also the run's first request to a cloud store, so a missing
/// bucket or refused credentials stop the run here, before any write.
async fn write_objects(
    store: &Arc<dyn Store>,
    task: &Arc<Task>,
    dest: &Destination,
    record: &mut RunRecord,
    snapshot: crate::store::Snapshot,
    observer: Arc<dyn RunObserver>,
) -> Result<Vec<String>> {
    match dest
        .abort_journaled_uploads(&uploads_folder(&task.name))
        .await?
    {
        0 => {}
        n => tracing::warn!(task = %task.name, uploads = n,
            "aborted multipart uploads that earlier runs left unfinished"),
    }
    let journal = run_uploads_folder(&task.name, record.run_id);
    let dest = Arc::new(dest.clone().with_upload_journal(&journal));
    // Read under the lease: no other run of the task commits until this one ends.
    let name = task.name.clone();
    let live_before: BTreeSet<String> = with_store(store, move |s| s.live_partitions(&name))
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let shards = RunShards {
        task: Arc::clone(task),
        dest: Arc::clone(&dest),
        run: record.clone(),
        observer,
    };
    let delivered = deliver_shards(store, &shards, snapshot.shards).await;
    // Every shard is done: an upload still journaled by this run is one whose abort failed.
    match dest.abort_journaled_uploads(&journal).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(task = %task.name, uploads = n,
            "aborted multipart uploads whose abort failed when they failed"),
        Err(e) => tracing::warn!(task = %task.name,
            "cannot look for this run's unfinished multipart uploads (the next run will): {}",
            e.chain()),
    }
    let delivered = delivered?;
    if delivered.iter().any(|d| d.attempt > 1) {
        // A worker that was killed or lost its claim may have left objects of this run that
        // the shard's final attempt did not write: remove them before anything names them.
        let keep = reported_paths(&delivered);
        remove_run_objects(&dest, record, &[record.run_id], &keep).await;
    }
    let mut dirty_objects = Vec::new();
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
    write_manifest(&dest, record).await?;
    Ok(dirty_objects)
}

/// A run that failed after it took the lease: removes every object it may have written (and
/// its manifest), records it failed with `error` (the live set stays as it was) and returns
/// the error.
async fn abandon(
    store: &Arc<dyn Store>,
    dest: &Destination,
    mut record: RunRecord,
    error: Error,
) -> Error {
    record.status = RunStatus::Failed;
    record.error = Some(error.chain().to_string());
    record.objects.clear();
    remove_run_objects(dest, &record, &[record.run_id], &BTreeSet::new()).await;
    let task = record.task.clone();
    if let Err(e) = with_store(store, move |s| s.finish_run(&record, LiveSet::Replace)).await {
        tracing::error!(task = %task, "could not record the failed run: {}", e.chain());
    }
    error
}

/// How a succeeded run changes its task's live set: an incremental run and a run-time
/// partitioned snapshot add to it, a full snapshot replaces it, and so does the first run
/// after the live set was adopted from another store.
fn live_set(task: &Task, phase: Phase, replace_next: bool) -> LiveSet {
    match task.partition_time {
        _ if replace_next => LiveSet::Replace,
        _ if phase == Phase::Incremental => LiveSet::Append,
        PartitionTime::RunTime => LiveSet::Append,
        _ => LiveSet::Replace,
    }
}

/// Commits the succeeded run: its record, the task's checkpoint and live set, in one store
/// transaction. A commit that fails is settled ([`settle_failed_commit`]).
async fn commit(
    store: &Arc<dyn Store>,
    dest: &Destination,
    record: &RunRecord,
    live: LiveSet,
) -> Result<()> {
    let committed = record.clone();
    if let Err(e) = with_store(store, move |s| s.finish_run(&committed, live)).await {
        settle_failed_commit(store, dest, record, e).await?;
    }
    Ok(())
}

/// After the commit: removes the objects the run replaced, and now and then the task's old
/// run manifests.
async fn clean_up(
    store: &Arc<dyn Store>,
    task: &Task,
    dest: &Destination,
    record: &RunRecord,
) -> Result<()> {
    let name = task.name.clone();
    let state = with_store(store, move |s| s.task_state(&name)).await?;
    remove_pending(store, state.as_ref(), dest).await?;
    if prunes_after(record.run_id) {
        if let Err(e) = prune_manifests(dest, task).await {
            tracing::warn!(task = %task.name, "old run manifests not pruned (next time): {}", e.chain());
        }
    }
    Ok(())
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
    let state = with_store(store, move |s| s.task_state(&name)).await?;
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
    let snapshot = with_store(store, move |s| match phase {
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
    record.error = Some(error.chain().to_string());
    if let Err(e) = with_store(store, move |s| s.record_failed_run(&record)).await {
        tracing::error!(task = %task.name, "could not record the failed run: {}", e.chain());
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
        if let Err(e) = with_store(&store, move |s| s.heartbeat(run_id)).await {
            tracing::error!(run_id, "cannot renew the run's lease: {}", e.chain());
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
    match with_store(store, move |s| s.heartbeat(run_id)).await {
        Ok(()) => {
            let mut failed = record.clone();
            failed.status = RunStatus::Failed;
            failed.error = Some(error.chain().to_string());
            failed.objects.clear();
            failed.new_partitions.clear();
            remove_run_objects(dest, &failed, &[run_id], &BTreeSet::new()).await;
            if let Err(e) =
                with_store(store, move |s| s.finish_run(&failed, LiveSet::Replace)).await
            {
                tracing::error!(task = %record.task, run_id,
                    "could not record the failed run (the next run takes it over): {}", e.chain());
            }
            Err(error)
        }
        Err(Error::Conflict(_)) => {
            let task = record.task.clone();
            let recorded = with_store(store, move |s| s.runs(Some(&task), RUNS_TO_SETTLE)).await;
            let committed = recorded.is_ok_and(|runs| {
                runs.iter()
                    .any(|r| r.run_id == run_id && r.status == RunStatus::Succeeded)
            });
            if committed {
                tracing::warn!(task = %record.task, run_id,
                    "the run's commit reported an error but went through: {}", error.chain());
                Ok(())
            } else {
                Err(error)
            }
        }
        Err(e) => {
            tracing::error!(task = %record.task, run_id,
                "cannot tell whether the run committed ({}); what it wrote stays until the \
                 next run of the task takes it over", e.chain());
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
    with_store(store, move |s| s.clear_pending_removal(&name, &removed)).await
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
        .map_err(|e| Error::encode_caused("run manifest", e))?;
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
                    tracing::error!(task = %run.task, "cannot remove {path} of an unfinished run: {}", e.chain());
                }
            }
        }
        Err(e) => {
            tracing::error!(task = %run.task, "cannot list the destination to clean up an unfinished run: {}", e.chain());
        }
    }
    match dest.remove_staged(left_by_run).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(task = %run.task, files = n, "removed half-written uploads"),
        Err(e) => {
            tracing::error!(task = %run.task, "cannot remove half-written uploads: {}", e.chain())
        }
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
                start_ticks: None,
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
}
