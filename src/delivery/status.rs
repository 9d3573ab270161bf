//! What the store says about a task right now: its last run (and last success), its live set
//! in the lake, its checkpoint and how far the source table has moved past it; and when its
//! schedule runs it next. Shared by `lakeport status` and the service's API.

use serde::Serialize;

use crate::config::schedule::rfc3339_local;
use crate::delivery::config::{Deletes, Task};
use crate::error::{Error, Result};
use crate::store::{Lag, RunOwner, RunRecord, RunStatus, Store};

/// Runs looked through for the last succeeded one.
const RUNS_FOR_LAST_SUCCESS: usize = 100;

/// Scheduled runs shown ahead.
pub const NEXT_RUNS: usize = 3;

/// A task's status.
#[derive(Debug, Clone, Serialize)]
pub struct TaskStatus {
    /// Task name.
    pub task: String,
    /// Its mode.
    pub mode: String,
    /// Its schedule, if any.
    pub schedule: Option<String>,
    /// The IANA timezone its cron schedule is read in (None: no cron schedule).
    pub schedule_timezone: Option<String>,
    /// Its next scheduled runs (3), RFC 3339 with that zone's offset (empty: no cron
    /// schedule).
    pub next_runs: Vec<String>,
    /// The newest run (any status).
    pub last_run: Option<RunRecord>,
    /// When the newest succeeded run (among the task's last 100) ended, ms since epoch UTC.
    pub last_success_ms: Option<i64>,
    /// Objects in its live set.
    pub live_objects: usize,
    /// Partitions they are in.
    pub live_partitions: usize,
    /// Every change up to this `_seq` has been delivered.
    pub checkpoint: u64,
    /// How far the source table has moved past the checkpoint (None: the table is not in the
    /// store yet).
    pub lag: Option<Lag>,
    /// Age of the oldest undelivered change, in seconds, when there is one.
    pub lag_seconds: Option<f64>,
}

/// Reads `task`'s status from the store (blocking: call it off the async runtime's threads).
pub fn task_status(store: &dyn Store, task: &Task, now_ms: i64) -> Result<TaskStatus> {
    let name = &task.name;
    let runs = store.runs(Some(name), RUNS_FOR_LAST_SUCCESS)?;
    let last_success_ms = runs
        .iter()
        .find(|r| r.status == RunStatus::Succeeded)
        .and_then(|r| r.ended_ms);
    let checkpoint = store.task_state(name)?.map_or(0, |s| s.checkpoint);
    let partitions = store.live_partitions(name)?;
    let deletes = task.deletes == Deletes::Emit;
    let lag = match store.lag(&task.source.table, checkpoint, deletes) {
        Ok(lag) => Some(lag),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let lag_seconds = lag_seconds(lag.as_ref(), now_ms);
    let mut last_run = runs.into_iter().next();
    if let Some(run) = last_run.as_mut() {
        run.status = shown_status(run, RunOwner::this_process().as_ref());
    }
    Ok(TaskStatus {
        task: name.clone(),
        mode: task.mode.as_str().to_string(),
        schedule: task.schedule.clone(),
        schedule_timezone: task.cron.as_ref().map(|c| c.zone().name().to_string()),
        next_runs: next_runs(task, now_ms),
        last_run,
        last_success_ms,
        live_objects: partitions.iter().map(|(_, n)| *n as usize).sum(),
        live_partitions: partitions.len(),
        checkpoint,
        lag,
        lag_seconds,
    })
}

/// The status to show for `run`, seen from process `me`: a run recorded `Running` whose
/// process is known to have ended is [`RunStatus::Interrupted`] (a run of another host, or
/// whose process id is taken again, looks alive: its lease then decides when it is taken
/// over).
pub fn shown_status(run: &RunRecord, me: Option<&RunOwner>) -> RunStatus {
    match (run.status, &run.owner, me) {
        (RunStatus::Running, Some(owner), Some(me)) if owner.is_gone_seen_from(me) => {
            RunStatus::Interrupted
        }
        (status, _, _) => status,
    }
}

/// Age at `now_ms` of the oldest change `lag` counts, in seconds (None: nothing behind).
pub fn lag_seconds(lag: Option<&Lag>, now_ms: i64) -> Option<f64> {
    lag.and_then(|l| l.oldest_write_ms)
        .map(|ms| (now_ms - ms).max(0) as f64 / 1000.0)
}

/// `task`'s next scheduled runs after `now_ms`, RFC 3339 in its schedule's zone.
pub fn next_runs(task: &Task, now_ms: i64) -> Vec<String> {
    let (Some(cron), Some(now)) = (&task.cron, chrono::DateTime::from_timestamp_millis(now_ms))
    else {
        return Vec::new();
    };
    cron.next_times(now, NEXT_RUNS)
        .iter()
        .map(rfc3339_local)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::planned;

    #[test]
    fn a_running_run_whose_process_is_gone_shows_as_interrupted() {
        let me = RunOwner {
            host: "h".into(),
            pid: std::process::id(),
            start_ticks: None,
        };
        let mut run = planned("daily");
        // No process has the highest pid Linux hands out.
        run.owner = Some(RunOwner {
            host: "h".into(),
            pid: 4_194_304,
            start_ticks: None,
        });
        assert_eq!(shown_status(&run, Some(&me)), RunStatus::Interrupted);
        // Alive (this very process), on another host, or unknown: as recorded.
        run.owner = Some(me.clone());
        assert_eq!(shown_status(&run, Some(&me)), RunStatus::Running);
        run.owner = Some(RunOwner {
            host: "elsewhere".into(),
            pid: 4_194_304,
            start_ticks: None,
        });
        assert_eq!(shown_status(&run, Some(&me)), RunStatus::Running);
        run.owner = None;
        assert_eq!(shown_status(&run, Some(&me)), RunStatus::Running);
        // A finished run is shown as it finished, whoever ran it.
        run.status = RunStatus::Failed;
        run.owner = Some(RunOwner {
            host: "h".into(),
            pid: 4_194_304,
            start_ticks: None,
        });
        assert_eq!(shown_status(&run, Some(&me)), RunStatus::Failed);
    }
}
