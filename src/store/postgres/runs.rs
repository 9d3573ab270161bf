//! PLACEHOLDER (branch pg-store only): run records, task states and live sets in PostgreSQL.

use std::time::Duration;

use super::PostgresStore;
use crate::error::Result;
use crate::store::{DeliveredObject, LiveSet, OwnerGone, RunRecord, StartedRun, TaskState};

pub(super) const CREATE_RUNS: &str = "";

pub(super) fn start_run(
    _s: &PostgresStore,
    _record: &RunRecord,
    _lease: Duration,
    _gone: OwnerGone<'_>,
) -> Result<StartedRun> {
    todo!()
}
pub(super) fn heartbeat(_s: &PostgresStore, _run_id: u64) -> Result<()> {
    todo!()
}
pub(super) fn finish_run(_s: &PostgresStore, _record: &RunRecord, _live: LiveSet) -> Result<()> {
    todo!()
}
pub(super) fn clear_pending_removal(
    _s: &PostgresStore,
    _task: &str,
    _removed: &[DeliveredObject],
) -> Result<()> {
    todo!()
}
pub(super) fn task_state(_s: &PostgresStore, _task: &str) -> Result<Option<TaskState>> {
    todo!()
}
pub(super) fn live_objects(_s: &PostgresStore, _task: &str) -> Result<Vec<DeliveredObject>> {
    todo!()
}
pub(super) fn live_partitions(_s: &PostgresStore, _task: &str) -> Result<Vec<(String, u64)>> {
    todo!()
}
pub(super) fn runs(
    _s: &PostgresStore,
    _task: Option<&str>,
    _limit: usize,
) -> Result<Vec<RunRecord>> {
    todo!()
}
