//! Shards of a run shared among the store's workers: what a run offers, what a worker claims
//! and what it reports back.
//!
//! A store whose snapshots other processes can join ([`Store::shares_shards`]: PostgreSQL,
//! through exported snapshots) lets the run that opened a snapshot *offer* its shards
//! ([`Store::offer_shards`]), each with a [`ShardReader::ticket`] that says how to read it.
//! Any worker — the run's own process included — *claims* a shard
//! ([`Store::claim_shard`]: one claimer at a time, `FOR UPDATE SKIP LOCKED`), opens it from
//! the ticket ([`Store::open_shard`]), writes its objects, keeps its claim alive
//! ([`Store::renew_shard_claims`]) and reports what it delivered or why it failed
//! ([`Store::finish_shard`]). A claim not renewed within the run's lease expires: the shard
//! is claimed again, as a new *attempt* (the attempt is part of the claim, and a report of an
//! attempt that lost its claim is refused, so a late worker never overwrites a finished
//! shard). The run commits once every shard is done ([`Store::shards`]); its shard rows go
//! with its end. Shards of a run that is no longer running are never claimed.
//!
//! SQLite snapshots live in one process's connections: its readers have no ticket, it offers
//! nothing, and a run delivers all its shards itself.
//!
//! [`Store::shares_shards`]: super::Store::shares_shards
//! [`Store::offer_shards`]: super::Store::offer_shards
//! [`Store::claim_shard`]: super::Store::claim_shard
//! [`Store::open_shard`]: super::Store::open_shard
//! [`Store::renew_shard_claims`]: super::Store::renew_shard_claims
//! [`Store::finish_shard`]: super::Store::finish_shard
//! [`Store::shards`]: super::Store::shards
//! [`ShardReader::ticket`]: super::ShardReader::ticket

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RunRecord;
use crate::model::DeliveredObject;

/// One shard a run offers to every worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOffer {
    /// The shard's place in the run (0-based, in key or `_seq` order).
    pub concurrent_id: u32,
    /// What another process needs to read it ([`super::ShardReader::ticket`]).
    pub ticket: String,
}

/// Which offered shards a worker may claim.
#[derive(Debug, Clone, Copy)]
pub enum ClaimFrom<'a> {
    /// Only shards of this run (the run's own process).
    Run(u64),
    /// Shards of any running run of these tasks, each given as `(task, fingerprint)`: a
    /// worker delivers only shards of a task it declares exactly as the run's process did.
    Tasks(&'a [(String, String)]),
}

/// A shard a worker has claimed.
#[derive(Debug, Clone)]
pub struct ShardClaim {
    /// The run's record as its process planned it.
    pub run: RunRecord,
    /// The fingerprint of the task definition the run was planned with.
    pub fingerprint: String,
    /// The shard's place in the run.
    pub concurrent_id: u32,
    /// 1 for the first claim of the shard, one more for each claim after a lost one.
    pub attempt: u32,
    /// How to read it ([`super::Store::open_shard`]).
    pub ticket: String,
    /// How long the claim lasts unrenewed (the run's task's lease).
    pub lease: Duration,
}

/// What a shard delivered, reported by its claimer for the run to commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardResult {
    /// Its complete objects.
    pub objects: Vec<DeliveredObject>,
    /// Rows written.
    pub rows: u64,
    /// The first object sequence id its writer did not use.
    pub next_seq: u64,
    /// Dirty rows by reason.
    pub dirty: BTreeMap<String, u64>,
    /// Its dirty-row file, when it kept any.
    pub dirty_object: Option<DeliveredObject>,
    /// The worker that delivered it.
    pub worker: String,
}

/// Where an offered shard is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardState {
    /// Offered, not claimed yet (or its last claim was lost: see `attempt`).
    Pending,
    /// Claimed by `worker`, renewed within the lease (as far as the store knows).
    Claimed,
    /// Delivered.
    Done(ShardResult),
    /// Its claimer gave up: the error.
    Failed(String),
}

/// One offered shard as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatus {
    /// The run it belongs to.
    pub run_id: u64,
    /// The run's task.
    pub task: String,
    /// Its place in the run.
    pub concurrent_id: u32,
    /// Claims so far (0: never claimed).
    pub attempt: u32,
    /// The worker of the latest claim.
    pub worker: Option<String>,
    /// Last renewal of the latest claim (or its end), ms since epoch UTC.
    pub heartbeat_ms: Option<i64>,
    /// Where it is.
    pub state: ShardState,
}

/// The worker id a process claims shards under, `host:pid:started_ms` and, when the process's
/// start time is known, `:t<start ticks>` (what tells it from a later process with its id; see
/// [`RunOwner`](super::RunOwner)), and that start time: the same id a `lakeport serve`
/// process reports itself with (`GET /api/workers`).
pub fn this_worker_id() -> (&'static str, i64) {
    static ID: std::sync::OnceLock<(String, i64)> = std::sync::OnceLock::new();
    let (id, started_ms) = ID.get_or_init(|| {
        let me = super::RunOwner::this_process();
        let host = me.as_ref().map(|me| me.host.as_str()).unwrap_or_default();
        let started_ms = chrono::Utc::now().timestamp_millis();
        let mut id = format!("{host}:{}:{started_ms}", std::process::id());
        if let Some(ticks) = me.as_ref().and_then(|me| me.start_ticks) {
            id.push_str(&format!(":t{ticks}"));
        }
        (id, started_ms)
    });
    (id, *started_ms)
}
