//! Continuous delivery (`lakeport run <task> --follow`, or a task with `schedule: continuous`):
//! one incremental run after another, each started as soon as it is due.
//!
//! The loop polls the source table's lag (its newest `_seq` and the changes above the
//! checkpoint) every `max_delay / 10` (between 50 ms and 1 s). A run is due when there are
//! changes and either the oldest of them has waited `max_delay` since it was committed, or the
//! changes behind are estimated (rows × the bytes per row of the last run) to fill an object of
//! `target_file_size`. Every run is an ordinary incremental run — its own lease, plan, objects,
//! manifest and checkpoint — so stopping between or inside runs is as safe as for single runs.
//!
//! Stopping: once `stop` turns true no new run starts; a run in flight is finished first (its
//! changes delivered), then the loop returns. Changes committed after it stay behind the
//! checkpoint for the next start. A run that fails transiently (object store, store, another
//! run holding the lease) is retried after a growing pause (1 s doubling to 60 s); a failure
//! only the operator can fix (a refused bucket, bad configuration) ends the loop with it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::delivery::config::{Deletes, Mode, Task};
use crate::delivery::run::{run_task_with, RunSummary};
use crate::delivery::shard::RunObserver;
use crate::error::{Error, Result};
use crate::objstore::destination::Destination;
use crate::store::{blocking, Lag, Store};

/// Bytes per row assumed before the first run has measured them.
const DEFAULT_ROW_BYTES: u64 = 100;
/// The longest pause after failed runs.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// What a follow loop did until it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowSummary {
    /// Runs that succeeded.
    pub runs: u64,
    /// Rows they delivered.
    pub rows: u64,
    /// Objects they wrote.
    pub objects: u64,
    /// Runs that failed and were retried.
    pub failed_runs: u64,
}

/// Whether a run is due now: changes are behind and the oldest has waited `max_delay`, or
/// they are estimated to fill an object.
fn due(lag: &Lag, now_ms: i64, max_delay: Duration, estimated_bytes: u64, target: u64) -> bool {
    if lag.rows_behind == 0 {
        return false;
    }
    let waited = lag.oldest_write_ms.map_or(Duration::MAX, |t| {
        Duration::from_millis(now_ms.saturating_sub(t).max(0) as u64)
    });
    waited >= max_delay || estimated_bytes >= target
}

/// How long to sleep before the next look: the poll period, or less when the oldest change
/// behind becomes due sooner.
fn next_wait(lag: &Lag, now_ms: i64, max_delay: Duration, poll: Duration) -> Duration {
    match lag.oldest_write_ms {
        Some(t) if lag.rows_behind > 0 => {
            let due_at = t.saturating_add(max_delay.as_millis() as i64);
            let left = Duration::from_millis(due_at.saturating_sub(now_ms).max(1) as u64);
            left.min(poll)
        }
        _ => poll,
    }
}

/// Whether a failed run should end the loop rather than be retried.
fn is_final(e: &Error) -> bool {
    matches!(
        e,
        Error::Permanent { .. }
            | Error::InvalidConfig(_)
            | Error::NotFound(_)
            | Error::InvalidInput(_)
    )
}

/// Delivers `task` continuously into `dest` until `stop` turns true (see the module
/// documentation), calling `on_run` after every run that delivered something. The task must be
/// incremental or differential.
pub async fn follow(
    store: Arc<dyn Store>,
    task: Arc<Task>,
    dest: Arc<Destination>,
    observer: Arc<dyn RunObserver>,
    mut stop: watch::Receiver<bool>,
    mut on_run: impl FnMut(&RunSummary),
) -> Result<FollowSummary> {
    if task.mode == Mode::Full {
        return Err(Error::InvalidConfig(format!(
            "{}: mode: full cannot run continuously (each run delivers the whole table); use \
             incremental or differential",
            task.file.display()
        )));
    }
    let poll = (task.max_delay / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let table = task.source.table.clone();
    let deletes = task.deletes == Deletes::Emit;
    let target = task.parquet.target_file_size;
    let mut row_bytes = DEFAULT_ROW_BYTES;
    let mut summary = FollowSummary::default();
    let mut pause = Duration::ZERO;
    tracing::info!(task = %task.name, max_delay = ?task.max_delay, ?poll, "following changes");
    while !*stop.borrow() {
        let name = task.name.clone();
        let t = table.clone();
        let s = Arc::clone(&store);
        let looked = blocking(move || {
            let checkpoint = s.task_state(&name)?.map_or(0, |st| st.checkpoint);
            s.lag(&t, checkpoint, deletes)
        })
        .await;
        let lag = match looked {
            Ok(lag) => lag,
            Err(e) if is_final(&e) => return Err(e),
            Err(e) => {
                pause = grow(pause);
                tracing::warn!(task = %task.name, "cannot read the lag; trying again in {:.0}s: {}",
                    pause.as_secs_f64(), e.chain());
                sleep_or_stop(pause, &mut stop).await;
                continue;
            }
        };
        let now = chrono::Utc::now().timestamp_millis();
        let estimated = lag.rows_behind.saturating_mul(row_bytes);
        if !due(&lag, now, task.max_delay, estimated, target) {
            sleep_or_stop(next_wait(&lag, now, task.max_delay, poll), &mut stop).await;
            continue;
        }
        let run = run_task_with(
            Arc::clone(&store),
            Arc::clone(&task),
            Arc::clone(&dest),
            Arc::clone(&observer),
        )
        .await;
        match run {
            Ok(done) => {
                pause = Duration::ZERO;
                let r = &done.record;
                summary.runs += 1;
                summary.rows += r.rows;
                summary.objects += r.objects.len() as u64;
                if let Some(per_row) = r.bytes.checked_div(r.rows) {
                    row_bytes = per_row.max(1);
                    on_run(&done);
                }
            }
            Err(e) if is_final(&e) => return Err(e),
            Err(e) => {
                summary.failed_runs += 1;
                pause = grow(pause);
                tracing::warn!(task = %task.name, "run failed; trying again in {:.0}s: {}",
                    pause.as_secs_f64(), e.chain());
                sleep_or_stop(pause, &mut stop).await;
            }
        }
    }
    tracing::info!(task = %task.name, runs = summary.runs, rows = summary.rows, "stopped following");
    Ok(summary)
}

/// The pause after one more failure: 1 s, doubling, at most [`MAX_PAUSE`].
fn grow(pause: Duration) -> Duration {
    (pause * 2).clamp(Duration::from_secs(1), MAX_PAUSE)
}

/// Sleeps `wait`, or less if `stop` changes meanwhile.
async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = stop.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(rows: u64, oldest: Option<i64>) -> Lag {
        Lag {
            newest_seq: 10,
            rows_behind: rows,
            oldest_write_ms: oldest,
        }
    }

    #[test]
    fn a_run_is_due_when_the_oldest_change_has_waited_or_an_object_is_full() {
        let second = Duration::from_secs(1);
        assert!(!due(&lag(0, None), 5_000, second, 0, 100));
        assert!(!due(&lag(3, Some(4_500)), 5_000, second, 300, 1_000));
        assert!(due(&lag(3, Some(4_000)), 5_000, second, 300, 1_000));
        assert!(due(&lag(3, Some(4_900)), 5_000, second, 1_000, 1_000));
        // A write time in the future (another host's clock) waits the delay at most from now.
        assert!(!due(&lag(3, Some(9_000)), 5_000, second, 300, 1_000));
    }

    #[test]
    fn the_wait_ends_when_the_oldest_change_becomes_due() {
        let second = Duration::from_secs(1);
        let poll = Duration::from_millis(100);
        assert_eq!(next_wait(&lag(0, None), 5_000, second, poll), poll);
        assert_eq!(
            next_wait(&lag(2, Some(4_950)), 5_000, second, poll),
            poll,
            "due in 950 ms: poll first"
        );
        assert_eq!(
            next_wait(&lag(2, Some(4_030)), 5_000, second, poll),
            Duration::from_millis(30)
        );
        assert_eq!(
            next_wait(&lag(2, Some(3_000)), 5_000, second, poll),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn pauses_grow_to_a_minute() {
        let mut p = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..8 {
            p = grow(p);
            seen.push(p.as_secs());
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
