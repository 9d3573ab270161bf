//! How a run's shards are delivered: all in the run's own process, or shared with every
//! worker of the store.
//!
//! A store that shares snapshot shards (PostgreSQL; semantics in [`crate::store::shards`])
//! gets a run's shards *offered*: the run's process and any other worker with a free slot
//! claim them one at a time, deliver them and report what they wrote; the run commits once
//! every shard is done, exactly as if it had written them all. A worker delivers only shards
//! of tasks it declares exactly as the run's process does ([`fingerprint`]). A claim is
//! renewed every sixth of the task's lease; one not renewed for the lease (a killed worker)
//! is claimed again by a later *attempt*, which names its objects with its own concurrent id
//! (`cid + shards × (attempt − 1)`), so two attempts never write the same object. Before
//! the run commits, anything of the run the final attempts did not report (what a killed
//! worker had written) is removed by name. A worker that learns its claim was lost stops and
//! removes what it wrote.
//!
//! A process delivers at most [`shard_slots`] shared shards at once, its own runs' and
//! other workers' together (`--shard-slots`, default: the CPUs it may use). A store that
//! keeps snapshots to one process (SQLite) has each run deliver all its shards at once, one
//! thread each, as before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::config::Task;
use super::manifest::run_uploads_folder;
use super::shard::{Quiet, RunObserver, Shard};
use crate::error::{Error, Result};
use crate::objstore::destination::{hex, Destination};
use crate::store::shards::this_worker_id;
use crate::store::{
    with_store, ClaimFrom, RunOwner, RunRecord, ShardClaim, ShardOffer, ShardReader, ShardResult,
    ShardState, ShardStatus, Store,
};

/// How often a run waiting for other workers' shards looks again.
const POLL: Duration = Duration::from_millis(250);
/// How often an idle worker looks for shards to deliver.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Shared shards this process delivers at once; 0 until set: the CPUs it may use.
static SLOTS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many shared shards this process delivers at once (before the first run).
pub fn set_shard_slots(slots: usize) {
    SLOTS.store(slots.max(1), Ordering::SeqCst);
}

/// How many shared shards this process delivers at once.
pub fn shard_slots() -> usize {
    match SLOTS.load(Ordering::SeqCst) {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
}

/// The permits of [`shard_slots`], shared by every run and the worker loop of the process.
fn slots() -> Arc<Semaphore> {
    static SEMAPHORE: OnceLock<Arc<Semaphore>> = OnceLock::new();
    Arc::clone(SEMAPHORE.get_or_init(|| Arc::new(Semaphore::new(shard_slots()))))
}

/// The fingerprint of a task's definition: the MD5 of lakeport's version and everything the
/// task declares (but the path of its file). Two workers deliver each other's shards only
/// when they agree on it.
pub fn fingerprint(task: &Task) -> String {
    let declared = Task {
        file: std::path::PathBuf::new(),
        ..task.clone()
    };
    let text = format!("{}\n{declared:?}", env!("CARGO_PKG_VERSION"));
    hex(&Md5::digest(text.as_bytes()))
}

/// A run's own readers, by shard: taken out while this process delivers the shard.
type RunReaders = Arc<Mutex<Vec<Option<Box<dyn ShardReader>>>>>;

/// What a run hands its shards.
pub(super) struct RunShards {
    pub task: Arc<Task>,
    /// The destination, journaling uploads under the run's folder.
    pub dest: Arc<Destination>,
    pub run: RunRecord,
    pub observer: Arc<dyn RunObserver>,
}

/// One shard's end as the run sees it: what it delivered and the attempt that did.
pub(super) struct Delivered {
    pub result: ShardResult,
    pub attempt: u32,
}

/// Delivers every shard of `readers` (one per shard, in order) and returns what each
/// delivered, in order; the first error when any failed.
pub(super) async fn deliver_shards(
    store: &Arc<dyn Store>,
    run: &RunShards,
    readers: Vec<Box<dyn ShardReader>>,
) -> Result<Vec<Delivered>> {
    let tickets: Option<Vec<String>> = readers.iter().map(|r| r.ticket()).collect();
    match tickets {
        Some(tickets) if store.shares_shards() && !readers.is_empty() => {
            deliver_shared(store, run, readers, tickets).await
        }
        _ => deliver_here(run, readers).await,
    }
}

/// Every shard on its own blocking thread of this process.
async fn deliver_here(
    run: &RunShards,
    readers: Vec<Box<dyn ShardReader>>,
) -> Result<Vec<Delivered>> {
    let mut handles = Vec::new();
    for (cid, mut reader) in readers.into_iter().enumerate() {
        let never = Arc::new(AtomicBool::new(false));
        let shard = shard(run, &run.run, cid as u32, 1, [Arc::clone(&never), never]);
        handles.push(tokio::task::spawn_blocking(move || {
            shard.deliver(reader.as_mut())
        }));
    }
    let mut failure = None;
    let mut out = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(Ok(result)) => out.push(Delivered { result, attempt: 1 }),
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(Error::store_caused("shard thread panicked", e));
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The shard `concurrent_id` of `record`, claim `attempt`, for a thread of this process.
fn shard(
    run: &RunShards,
    record: &RunRecord,
    concurrent_id: u32,
    attempt: u32,
    cancelled: [Arc<AtomicBool>; 2],
) -> Shard {
    Shard {
        task: Arc::clone(&run.task),
        dest: Arc::clone(&run.dest),
        concurrent_id: naming_id(concurrent_id, attempt, record.shards),
        run: record.clone(),
        run_time_ms: record.started_ms,
        runtime: Handle::current(),
        observer: Arc::clone(&run.observer),
        cancelled,
    }
}

/// The concurrent id claim `attempt` of shard `concurrent_id` names its objects with.
fn naming_id(concurrent_id: u32, attempt: u32, shards: u32) -> u32 {
    concurrent_id.saturating_add(shards.saturating_mul(attempt.saturating_sub(1)))
}

/// Offers the shards, delivers them as this process gets them, and waits for the rest.
async fn deliver_shared(
    store: &Arc<dyn Store>,
    run: &RunShards,
    readers: Vec<Box<dyn ShardReader>>,
    tickets: Vec<String>,
) -> Result<Vec<Delivered>> {
    let run_id = run.run.run_id;
    let shards = readers.len();
    let offers: Vec<ShardOffer> = tickets
        .into_iter()
        .enumerate()
        .map(|(cid, ticket)| ShardOffer {
            concurrent_id: cid as u32,
            ticket,
        })
        .collect();
    let print = fingerprint(&run.task);
    let lease = run.task.lease;
    with_store(store, move |s| {
        s.offer_shards(run_id, &print, lease, &offers)
    })
    .await?;
    // The readers stay here until the run ends: the first holds the transaction that
    // exported the snapshot, which the other workers' readers join.
    let readers: RunReaders = Arc::new(Mutex::new(readers.into_iter().map(Some).collect()));
    let mut running: JoinSet<Result<()>> = JoinSet::new();
    let mut failure: Option<Error> = None;
    // Set when the run fails: this process's shards of it stop at their next batch.
    let stop = Arc::new(AtomicBool::new(false));
    let ended = |joined: std::result::Result<Result<()>, tokio::task::JoinError>| {
        joined
            .map_err(|e| Error::store_caused("shard task panicked", e))
            .and_then(|r| r)
            .err()
    };
    let statuses = loop {
        while let Some(joined) = running.try_join_next() {
            if let Some(e) = ended(joined) {
                failure.get_or_insert(e);
            }
        }
        if failure.is_some() {
            break None;
        }
        if let Ok(permit) = slots().try_acquire_owned() {
            let me = this_worker_id().0;
            match with_store(store, move |s| s.claim_shard(me, ClaimFrom::Run(run_id))).await {
                Err(e) => {
                    failure = Some(e);
                    break None;
                }
                Ok(Some(claim)) => {
                    let job = ClaimJob {
                        store: Arc::clone(store),
                        task: Arc::clone(&run.task),
                        dest: Arc::clone(&run.dest),
                        observer: Arc::clone(&run.observer),
                        claim,
                        stop: Arc::clone(&stop),
                    };
                    let readers = Arc::clone(&readers);
                    running
                        .spawn(async move { job.deliver_from(readers, permit).await.map(|_| ()) });
                    continue;
                }
                Ok(None) => drop(permit),
            }
        }
        let statuses = match with_store(store, move |s| s.shards(Some(run_id))).await {
            Ok(statuses) => statuses,
            Err(e) => {
                failure = Some(e);
                break None;
            }
        };
        let failed = statuses.iter().find_map(|s| match &s.state {
            ShardState::Failed(e) => Some(Error::store(format!(
                "shard {} failed in worker {}: {e}",
                s.concurrent_id,
                s.worker.as_deref().unwrap_or("?")
            ))),
            _ => None,
        });
        if let Some(e) = failed {
            failure = Some(e);
            break None;
        }
        release_claims_of_gone_workers(store, &statuses).await;
        if statuses.len() == shards
            && statuses
                .iter()
                .all(|s| matches!(s.state, ShardState::Done(_)))
        {
            break Some(statuses);
        }
        tokio::select! {
            Some(joined) = running.join_next(), if !running.is_empty() => {
                if let Some(e) = ended(joined) {
                    failure.get_or_insert(e);
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    };
    if failure.is_some() {
        // This process's shards stop now; other workers' stop once the run has ended (their
        // claims are then lost).
        stop.store(true, Ordering::SeqCst);
    }
    while let Some(joined) = running.join_next().await {
        if let Some(e) = ended(joined) {
            failure.get_or_insert(e);
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let statuses = statuses.unwrap_or_default();
    Ok(statuses
        .into_iter()
        .filter_map(|s| match s.state {
            ShardState::Done(result) => Some(Delivered {
                result,
                attempt: s.attempt,
            }),
            _ => None,
        })
        .collect())
}

/// Makes the shards claimed by workers known to be gone (killed processes on this host)
/// claimable again now, rather than when their claims expire. A failure is logged: the
/// claims then expire.
async fn release_claims_of_gone_workers(store: &Arc<dyn Store>, statuses: &[ShardStatus]) {
    let Some(me) = RunOwner::this_process() else {
        return;
    };
    for s in statuses.iter().filter(|s| s.state == ShardState::Claimed) {
        let Some(owner) = s.worker.as_deref().and_then(worker_owner) else {
            continue;
        };
        if !owner.is_gone_seen_from(&me) {
            continue;
        }
        let (run_id, cid, attempt) = (s.run_id, s.concurrent_id, s.attempt);
        match with_store(store, move |st| st.release_shard(run_id, cid, attempt)).await {
            Ok(true) => tracing::warn!(run_id, shard = cid, worker = %owner.pid,
                "the worker holding a shard has ended: the shard is claimable again"),
            Ok(false) => {}
            Err(e) => tracing::warn!(run_id, shard = cid, "cannot release a shard: {}", e.chain()),
        }
    }
}

/// The host and process of a worker id (`host:pid:started_ms`, then `:t<start ticks>` when
/// the process's start time is known; see `this_worker_id`).
fn worker_owner(worker_id: &str) -> Option<RunOwner> {
    let (worker_id, start_ticks) = match worker_id.rsplit_once(":t") {
        Some((rest, ticks)) => match ticks.parse() {
            Ok(ticks) => (rest, Some(ticks)),
            Err(_) => (worker_id, None),
        },
        None => (worker_id, None),
    };
    let mut parts = worker_id.rsplitn(3, ':');
    let _started = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    Some(RunOwner {
        host: host.to_string(),
        pid,
        start_ticks,
    })
}

/// One claimed shard and what delivering it needs.
struct ClaimJob {
    store: Arc<dyn Store>,
    task: Arc<Task>,
    /// The destination, journaling uploads under the run's folder.
    dest: Arc<Destination>,
    observer: Arc<dyn RunObserver>,
    claim: ShardClaim,
    /// Set to stop the delivery at its next batch (its run failed).
    stop: Arc<AtomicBool>,
}

impl ClaimJob {
    /// Delivers the claim with the run's own reader of the shard (or, when an earlier attempt
    /// of this process used it up, one opened from the ticket), puts the reader back and
    /// reports the end.
    async fn deliver_from(
        self,
        readers: RunReaders,
        permit: OwnedSemaphorePermit,
    ) -> Result<ShardResult> {
        let cid = self.claim.concurrent_id as usize;
        let own = readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(cid)
            .and_then(Option::take);
        let (outcome, reader) = self.deliver(own, permit).await;
        if let Some(reader) = reader {
            if let Some(slot) = readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(cid)
            {
                *slot = Some(reader);
            }
        }
        outcome
    }

    /// Opens the shard (unless `reader` is given), delivers it while renewing the claim,
    /// reports the end, and hands back the reader.
    async fn deliver(
        self,
        reader: Option<Box<dyn ShardReader>>,
        permit: OwnedSemaphorePermit,
    ) -> (Result<ShardResult>, Option<Box<dyn ShardReader>>) {
        let claim = &self.claim;
        let (run_id, cid, attempt) = (claim.run.run_id, claim.concurrent_id, claim.attempt);
        let me = this_worker_id().0;
        let mut reader = match reader {
            Some(r) => r,
            None => {
                let ticket = claim.ticket.clone();
                match with_store(&self.store, move |s| s.open_shard(&ticket)).await {
                    Ok(r) => r,
                    Err(e) => {
                        let why = format!("opening the shard: {}", e.chain());
                        self.report(Err(&why)).await;
                        return (Err(e), None);
                    }
                }
            }
        };
        tracing::info!(task = %claim.run.task, run_id, shard = cid, attempt, "delivering a shard");
        let cancelled = Arc::new(AtomicBool::new(false));
        let keeper = tokio::spawn(keep_claim(
            Arc::clone(&self.store),
            (run_id, cid, attempt),
            claim.lease,
            Arc::clone(&cancelled),
        ));
        let run = RunShards {
            task: Arc::clone(&self.task),
            dest: Arc::clone(&self.dest),
            run: claim.run.clone(),
            observer: Arc::clone(&self.observer),
        };
        let stops = [cancelled, Arc::clone(&self.stop)];
        let shard = shard(&run, &claim.run, cid, attempt, stops);
        let joined = tokio::task::spawn_blocking(move || {
            let outcome = shard.deliver(reader.as_mut());
            (outcome, reader)
        })
        .await;
        keeper.abort();
        drop(permit);
        let (outcome, reader) = match joined {
            Ok((outcome, reader)) => (outcome, Some(reader)),
            Err(e) => (Err(Error::store_caused("shard thread panicked", e)), None),
        };
        let outcome = outcome.map(|mut result| {
            result.worker = me.to_string();
            result
        });
        let reported = match &outcome {
            Ok(result) => self.report(Ok(result)).await,
            Err(e) => {
                let why = e.chain().to_string();
                self.report(Err(&why)).await
            }
        };
        match outcome {
            Ok(result) if !reported => {
                // Another attempt has the shard now: what this one wrote is not the run's.
                remove_objects(&self.dest, &result).await;
                let lost = format!(
                    "shard {cid} of run {run_id}: the claim was lost (another worker delivers it)"
                );
                (Err(Error::Busy(lost)), reader)
            }
            outcome => (outcome, reader),
        }
    }

    /// Reports the claim's end; whether the store took it (the claim was still held).
    async fn report(&self, outcome: std::result::Result<&ShardResult, &str>) -> bool {
        let (run_id, cid, attempt) = (
            self.claim.run.run_id,
            self.claim.concurrent_id,
            self.claim.attempt,
        );
        let outcome: std::result::Result<ShardResult, String> =
            outcome.cloned().map_err(str::to_string);
        let me = this_worker_id().0;
        let reported = with_store(&self.store, move |s| {
            s.finish_shard(
                me,
                run_id,
                cid,
                attempt,
                outcome.as_ref().map_err(String::as_str),
            )
        })
        .await;
        match reported {
            Ok(taken) => taken,
            Err(e) => {
                tracing::error!(
                    run_id,
                    shard = cid,
                    "cannot report the end of a shard: {}",
                    e.chain()
                );
                false
            }
        }
    }
}

/// Renews this worker's claims every sixth of `lease` until aborted; sets `cancelled` once
/// the claim `(run, shard, attempt)` is no longer among them (or renewing failed for a whole
/// lease).
async fn keep_claim(
    store: Arc<dyn Store>,
    claim: (u64, u32, u32),
    lease: Duration,
    cancelled: Arc<AtomicBool>,
) {
    let every = (lease / 6).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        ticks.tick().await;
        let me = this_worker_id().0;
        match with_store(&store, move |s| s.renew_shard_claims(me)).await {
            Ok(held) if held.contains(&claim) => last_renewal = tokio::time::Instant::now(),
            Ok(_) => {
                tracing::warn!(run_id = claim.0, shard = claim.1,
                    "the shard's claim was lost (the run ended or another worker took it): stopping");
                cancelled.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::error!(
                    run_id = claim.0,
                    shard = claim.1,
                    "cannot renew a shard's claim: {}",
                    e.chain()
                );
                if last_renewal.elapsed() >= lease {
                    cancelled.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

/// Deletes a shard's objects and dirty-row file (of an attempt whose claim was lost).
async fn remove_objects(dest: &Destination, result: &ShardResult) {
    for object in result.objects.iter().chain(&result.dirty_object) {
        if let Err(e) = dest.delete(&object.path).await {
            tracing::error!(
                "cannot remove {} of a shard whose claim was lost: {}",
                object.path,
                e.chain()
            );
        }
    }
}

/// Claims and delivers, while this process has a free slot, the shards other workers' runs
/// offer of the tasks `tasks` lists (called anew each time: a reload changes them), until
/// `stop` turns true.
pub async fn help_with_shards(
    store: Arc<dyn Store>,
    tasks: impl Fn() -> Vec<Arc<Task>> + Send + 'static,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        if *stop.borrow() {
            break;
        }
        let mut claimed = false;
        if let Ok(permit) = slots().try_acquire_owned() {
            let known: BTreeMap<String, Arc<Task>> =
                tasks().into_iter().map(|t| (t.name.clone(), t)).collect();
            let prints: Vec<(String, String)> = known
                .values()
                .map(|t| (t.name.clone(), fingerprint(t)))
                .collect();
            let me = this_worker_id().0;
            let claim = if prints.is_empty() {
                Ok(None)
            } else {
                with_store(&store, move |s| {
                    s.claim_shard(me, ClaimFrom::Tasks(&prints))
                })
                .await
            };
            match claim {
                Ok(Some(claim)) => {
                    claimed = true;
                    let key = (claim.run.run_id, claim.concurrent_id, claim.attempt);
                    let job = match known.get(&claim.run.task) {
                        Some(task) => helper_job(&store, task, claim),
                        None => Err(Error::NotFound(format!(
                            "task {} is not declared here",
                            claim.run.task
                        ))),
                    };
                    let store = Arc::clone(&store);
                    running.spawn(async move {
                        let failed = match job {
                            Ok(job) => job.deliver(None, permit).await.0.err(),
                            Err(e) => {
                                // Said at once, rather than left to expire with the claim.
                                let (run, cid, attempt) = key;
                                let why = format!("starting the shard: {}", e.chain());
                                let _ = with_store(&store, move |s| {
                                    s.finish_shard(me, run, cid, attempt, Err(&why))
                                })
                                .await;
                                Some(e)
                            }
                        };
                        if let Some(e) = failed {
                            tracing::error!("delivering another worker's shard: {}", e.chain());
                        }
                    });
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("looking for shards to deliver: {}", e.chain()),
            }
        }
        if !claimed {
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
    }
    while running.join_next().await.is_some() {}
}

/// A claim of another worker's run, to deliver into `task`'s destination.
fn helper_job(store: &Arc<dyn Store>, task: &Arc<Task>, claim: ShardClaim) -> Result<ClaimJob> {
    let journal = run_uploads_folder(&task.name, claim.run.run_id);
    let dest = task.open_destination()?.with_upload_journal(&journal);
    Ok(ClaimJob {
        store: Arc::clone(store),
        task: Arc::clone(task),
        dest: Arc::new(dest),
        observer: Arc::new(Quiet),
        claim,
        stop: Arc::new(AtomicBool::new(false)),
    })
}

/// The paths of a run's objects and dirty-row files that the shards' final attempts
/// reported, for removing the rest (see the module docs).
pub(super) fn reported_paths(delivered: &[Delivered]) -> BTreeSet<String> {
    delivered
        .iter()
        .flat_map(|d| d.result.objects.iter().chain(&d.result.dirty_object))
        .map(|o| o.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, naming_id};
    use crate::delivery::load_tasks;
    use crate::model::schema::load_tables;

    /// The fingerprint of the one task a pipelines folder at `dir` declares with `yaml`.
    fn print_of(dir: &std::path::Path, yaml: &str) -> String {
        std::fs::create_dir_all(dir.join("pipelines")).unwrap();
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        std::fs::write(dir.join("pipelines/t.yaml"), yaml).unwrap();
        let tables = load_tables(&dir.join("schemas")).unwrap();
        let tasks = load_tasks(&dir.join("pipelines"), &tables).unwrap();
        fingerprint(&tasks["daily"])
    }

    #[test]
    fn workers_agree_on_a_task_declared_alike_wherever_its_file_is() {
        let yaml = "name: daily\nsource: object_inventory\ndestination: /lake/daily\n\
                    prefix: \"dt=$yyyy-$MM-$dd\"\nmode: full\nconcurrency: 4\n";
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let here = print_of(a.path(), yaml);
        assert_eq!(here, print_of(b.path(), yaml));
        assert_eq!(here.len(), 32);
        let other = print_of(b.path(), &yaml.replace("concurrency: 4", "concurrency: 2"));
        assert_ne!(here, other, "a different declaration is another task");
    }

    #[test]
    fn worker_ids_name_their_host_and_process() {
        let owner = super::worker_owner("db-1:host:4242:1700000000000").unwrap();
        assert_eq!((owner.host.as_str(), owner.pid), ("db-1:host", 4242));
        assert_eq!(owner.start_ticks, None);
        let owner = super::worker_owner("db-1:host:4242:1700000000000:t987").unwrap();
        assert_eq!((owner.host.as_str(), owner.pid), ("db-1:host", 4242));
        assert_eq!(owner.start_ticks, Some(987));
        let (me, _) = crate::store::shards::this_worker_id();
        assert_eq!(
            super::worker_owner(me),
            crate::store::RunOwner::this_process()
        );
        assert!(super::worker_owner("no-pid").is_none());
        assert!(super::worker_owner("h:x:1").is_none());
    }

    #[test]
    fn every_attempt_of_every_shard_names_its_objects_apart() {
        let shards = 4;
        let mut seen = std::collections::BTreeSet::new();
        for attempt in 1..=3 {
            for cid in 0..shards {
                assert!(seen.insert(naming_id(cid, attempt, shards)));
            }
        }
        assert_eq!(
            naming_id(2, 1, shards),
            2,
            "a first attempt keeps the shard's id"
        );
        assert_eq!(naming_id(2, 3, shards), 10);
    }
}
