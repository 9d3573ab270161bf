//! This process as a worker of the store: several `lakeport serve` processes on one store
//! share its tasks (each run takes its task's lease in the store, so a task runs in one
//! worker at a time, and a killed worker's run is taken over by the next one to tick, at once
//! when it ran on the same host and its process is gone, else once its lease runs out).
//!
//! A run's shards are shared too when the store can (PostgreSQL): any worker with a free
//! slot claims a shard another worker's run offers (`delivery::shared`).
//!
//! Each worker reports itself every [`REPORT_EVERY`]; `GET /api/workers` (any worker) lists
//! them with the runs and shards each holds. A worker silent for [`SILENT_AFTER`] shows as not
//! alive; one silent for [`FORGET_AFTER`] is forgotten; one that stops cleanly removes itself.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::store::shards::this_worker_id;
use crate::store::{
    blocking, RunOwner, RunRecord, RunStatus, ShardState, ShardStatus, Store, WorkerRecord,
};

/// How often a worker reports itself.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);
/// A worker silent this long shows as not alive.
pub const SILENT_AFTER: Duration = Duration::from_secs(30);
/// A worker silent this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Newest runs searched for the ones running.
const RECENT_RUNS: usize = 1000;

/// This process's record: host, pid, the API's address, version, start time.
pub fn this_worker(listen: &str) -> WorkerRecord {
    let host = RunOwner::this_process()
        .map(|me| me.host)
        .unwrap_or_default();
    let pid = std::process::id();
    let (worker_id, started_ms) = this_worker_id();
    WorkerRecord {
        worker_id: worker_id.to_string(),
        host,
        pid,
        listen: listen.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_ms,
        heartbeat_ms: started_ms,
    }
}

/// Reports `me` now and then every [`REPORT_EVERY`] until the task is aborted; a failed
/// report is logged and retried at the next one.
pub async fn report(store: Arc<dyn Store>, me: WorkerRecord) {
    let mut every = tokio::time::interval(REPORT_EVERY);
    loop {
        every.tick().await;
        let (s, w) = (Arc::clone(&store), me.clone());
        if let Err(e) = blocking(move || s.worker_heartbeat(&w, FORGET_AFTER)).await {
            tracing::warn!(worker = %me.worker_id, "reporting this worker to the store: {}", e.chain());
        }
    }
}

/// Removes `me` from the store's workers (at a clean stop).
pub async fn leave(store: Arc<dyn Store>, me: &WorkerRecord) {
    let id = me.worker_id.clone();
    if let Err(e) = blocking(move || store.remove_worker(&id)).await {
        tracing::warn!(worker = %me.worker_id, "removing this worker from the store: {}", e.chain());
    }
}

/// A run a worker holds, as `GET /api/workers` shows it.
#[derive(Debug, Serialize)]
pub struct HeldRun {
    /// The run's task.
    pub task: String,
    /// The run's id.
    pub run_id: u64,
    /// `full`, `incremental` or `differential`.
    pub mode: String,
    /// When it started, ms since epoch UTC.
    pub started_ms: i64,
    /// Its last heartbeat (which renews the task's lease), ms since epoch UTC.
    pub heartbeat_ms: Option<i64>,
}

/// A worker as `GET /api/workers` shows it.
#[derive(Debug, Serialize)]
pub struct WorkerView {
    #[serde(flatten)]
    /// The worker as it last reported itself.
    pub worker: WorkerRecord,
    /// Reported within [`SILENT_AFTER`].
    pub alive: bool,
    /// Runs recorded as running in its process.
    pub runs: Vec<HeldRun>,
    /// Shards of running runs it has claimed (its own runs' or other workers').
    pub shards: Vec<HeldShard>,
}

/// A shard a worker has claimed, as `GET /api/workers` shows it.
#[derive(Debug, Serialize)]
pub struct HeldShard {
    /// The run's task.
    pub task: String,
    /// The run's id.
    pub run_id: u64,
    /// The shard's place in the run.
    pub concurrent_id: u32,
    /// Which claim of the shard this is (1 for the first).
    pub attempt: u32,
    /// When the claim was last renewed, ms since epoch UTC.
    pub heartbeat_ms: Option<i64>,
}

/// Every worker of the store with the runs it holds, oldest first; and the running runs no
/// listed worker holds (a CLI `deliver`, or a worker that was forgotten).
pub fn workers(store: &dyn Store) -> Result<(Vec<WorkerView>, Vec<HeldRun>)> {
    let now = chrono::Utc::now().timestamp_millis();
    let silent_ms = i64::try_from(SILENT_AFTER.as_millis()).unwrap_or(i64::MAX);
    let mut running: Vec<RunRecord> = store
        .runs(None, RECENT_RUNS)?
        .into_iter()
        .filter(|r| r.status == RunStatus::Running)
        .collect();
    running.reverse();
    let held = |r: &RunRecord| HeldRun {
        task: r.task.clone(),
        run_id: r.run_id,
        mode: r.mode.clone(),
        started_ms: r.started_ms,
        heartbeat_ms: r.heartbeat_ms,
    };
    // A worker holds the running runs whose owner is its process.
    let holds = |w: &WorkerRecord, r: &RunRecord| {
        r.owner
            .as_ref()
            .is_some_and(|o| o.host == w.host && o.pid == w.pid)
    };
    let claimed: Vec<ShardStatus> = store
        .shards(None)?
        .into_iter()
        .filter(|s| s.state == ShardState::Claimed)
        .collect();
    let views: Vec<WorkerView> = store
        .workers()?
        .into_iter()
        .map(|w| {
            let runs = running.iter().filter(|r| holds(&w, r)).map(held).collect();
            let shards = claimed
                .iter()
                .filter(|s| s.worker.as_deref() == Some(w.worker_id.as_str()))
                .map(|s| HeldShard {
                    task: s.task.clone(),
                    run_id: s.run_id,
                    concurrent_id: s.concurrent_id,
                    attempt: s.attempt,
                    heartbeat_ms: s.heartbeat_ms,
                })
                .collect();
            WorkerView {
                alive: now.saturating_sub(w.heartbeat_ms) <= silent_ms,
                runs,
                shards,
                worker: w,
            }
        })
        .collect();
    let orphans = running
        .iter()
        .filter(|r| !views.iter().any(|v| holds(&v.worker, r)))
        .map(held)
        .collect();
    Ok((views, orphans))
}
