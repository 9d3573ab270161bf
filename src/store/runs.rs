//! The rules of run records and task states that every backend keeps, apart from how it
//! stores them: which runs a new start takes over and which make it a conflict, what a new
//! run's record holds, who may heartbeat or finish a run, and how a successful run moves its
//! task's state (checkpoint, next object id, objects waiting for removal). A backend reads
//! the records, calls these, and writes what they return, all in one transaction of its own;
//! so SQLite and PostgreSQL keep one copy of the rules (and of their messages).
//!
//! It also owns the JSON encoding of [`RunRecord`]s and [`TaskState`]s, which both backends
//! store as text.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::DeliveredObject;
use crate::store::checks::show_ms;
use crate::store::{check_plan, LiveSet, OwnerGone, RunRecord, RunStatus, TaskState};

/// A stored run record, `id` naming it in errors.
pub(crate) fn decode_run(id: i64, json: &str) -> Result<RunRecord> {
    serde_json::from_str(json)
        .map_err(|e| Error::store_caused(format!("the stored record of run {id} is not valid"), e))
}

/// A run record as stored.
pub(crate) fn record_json(r: &RunRecord) -> Result<String> {
    serde_json::to_string(r)
        .map_err(|e| Error::store_caused(format!("encoding run {} of {}", r.run_id, r.task), e))
}

/// A task state as stored.
pub(crate) fn state_json(state: &TaskState) -> Result<String> {
    serde_json::to_string(state)
        .map_err(|e| Error::store_caused(format!("encoding the state of task {}", state.task), e))
}

/// A live object as stored.
pub(crate) fn object_json(task: &str, o: &DeliveredObject) -> Result<String> {
    serde_json::to_string(o)
        .map_err(|e| Error::store_caused(format!("encoding object {} of task {task}", o.path), e))
}

/// A stored live object of `task`.
pub(crate) fn decode_object(task: &str, json: &str) -> Result<DeliveredObject> {
    serde_json::from_str(json).map_err(|e| {
        Error::store_caused(
            format!("a stored live object of task {task} is not valid"),
            e,
        )
    })
}

/// Decides, for [`Store::start_run`](crate::store::Store::start_run), about the runs of
/// `task` still recorded as `Running` (`running`, by run id), at `now` (ms, the store's
/// clock): a run heard from (its start or last heartbeat) less than `lease` ago whose process
/// is not known to be `gone` makes the start an [`Error::Conflict`] naming it; every other one
/// is taken over: returned `Failed`, ended now, its error saying why ("interrupted: …"). The
/// caller writes the returned records back in the transaction that records the new run.
pub(crate) fn take_over(
    task: &str,
    running: Vec<RunRecord>,
    now: i64,
    lease: Duration,
    gone: OwnerGone<'_>,
) -> Result<Vec<RunRecord>> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut interrupted = Vec::with_capacity(running.len());
    for mut other in running {
        let heard = other.heartbeat_ms.unwrap_or(other.started_ms);
        let silent_ms = now.saturating_sub(heard);
        let process_gone = gone(&other);
        if silent_ms < lease_ms && !process_gone {
            return Err(Error::Conflict(format!(
                "task {task}: run {} is still running (started {}, last heard from {:.1} s \
                 ago); runs of a task never overlap, so this one did not start. If no \
                 lakeport process is running it, it is taken over once silent for {:.0} s",
                other.run_id,
                show_ms(other.started_ms),
                silent_ms as f64 / 1000.0,
                lease.as_secs_f64()
            )));
        }
        other.status = RunStatus::Failed;
        other.ended_ms = Some(now);
        let why = match (&other.owner, process_gone) {
            (Some(o), true) => format!("its process {} on {} is gone", o.pid, o.host),
            _ => format!(
                "no sign of life for {:.1} s (lease {:.0} s)",
                silent_ms as f64 / 1000.0,
                lease.as_secs_f64()
            ),
        };
        other.error = Some(format!(
            "interrupted: {why}; taken over by a later run, which removes what it wrote"
        ));
        interrupted.push(other);
    }
    Ok(interrupted)
}

/// The record of a run about to start at `now` (ms, the store's clock), once the task's
/// running runs are taken over: its plan checked against the task's `state`
/// ([`check_plan`]), `Running`, heard from now, its objects numbered from the state's
/// `next_object_seq`. The store assigns `run_id` when it inserts it.
pub(crate) fn new_run(
    record: &RunRecord,
    state: Option<&TaskState>,
    now: i64,
) -> Result<RunRecord> {
    check_plan(record, state)?;
    let next = state.map_or(0, |s| s.next_object_seq);
    let mut run = record.clone();
    run.status = RunStatus::Running;
    run.first_object_seq = next;
    run.next_object_seq = next;
    run.heartbeat_ms = Some(now);
    Ok(run)
}

/// Whether run `run_id` may record a heartbeat: it must still be `Running` (`status` as
/// stored); otherwise an [`Error::Conflict`] telling its process to stop writing.
pub(crate) fn check_heartbeat(run_id: u64, status: &str, run: &RunRecord) -> Result<()> {
    if status == RunStatus::Running.as_str() {
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "run {run_id} of task {} is no longer running ({status}{}); stop writing",
        run.task,
        run.error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    )))
}

/// Checks a record given to
/// [`Store::record_failed_run`](crate::store::Store::record_failed_run): it must be failed
/// ([`Error::InvalidInput`]).
pub(crate) fn check_failed_before_start(record: &RunRecord) -> Result<()> {
    if record.status != RunStatus::Failed {
        return Err(Error::InvalidInput(format!(
            "run of task {}: a run that failed before it started must be recorded failed, not {}",
            record.task,
            record.status.as_str()
        )));
    }
    Ok(())
}

/// Checks a record given to [`Store::finish_run`](crate::store::Store::finish_run) before
/// the store is read: it must be succeeded or failed ([`Error::InvalidInput`]).
pub(crate) fn check_finished(record: &RunRecord) -> Result<()> {
    if record.status == RunStatus::Running {
        return Err(Error::InvalidInput(format!(
            "run {} of task {}: a finished run must be succeeded or failed, not running",
            record.run_id, record.task
        )));
    }
    Ok(())
}

/// Checks a finishing run against what the store holds of it (`stored`: its task and
/// status; `None` when absent): absent is [`Error::NotFound`]; another task's run, or one
/// that is no longer `Running`, is an [`Error::Conflict`].
pub(crate) fn check_finish(record: &RunRecord, stored: Option<(&str, &str)>) -> Result<()> {
    let (task, id) = (&record.task, record.run_id);
    match stored {
        None => Err(Error::NotFound(format!(
            "run {id} of task {task} is not in the store"
        ))),
        Some((t, _)) if t != task.as_str() => Err(Error::Conflict(format!(
            "run {id} belongs to task {t}, not to task {task}"
        ))),
        Some((_, status)) if status != RunStatus::Running.as_str() => Err(Error::Conflict(
            format!("run {id} of task {task} has already finished ({status})"),
        )),
        Some(_) => Ok(()),
    }
}

/// The state of `run`'s task after the run succeeded, from its state before (`None`: the
/// task never succeeded): the next object id and the checkpoint move on; objects the run
/// rewrote no longer wait for removal; with [`LiveSet::Replace`], the old live objects
/// (`old_live`, read only then) that the run did not rewrite now wait for removal. The caller
/// then makes the live set the run's objects (`Replace`) or adds them to it, replacing entries
/// of the same path (`Append`), and stores the state.
pub(crate) fn advance_state(
    state: Option<TaskState>,
    run: &RunRecord,
    live: LiveSet,
    old_live: impl FnOnce() -> Result<Vec<DeliveredObject>>,
) -> Result<TaskState> {
    let mut state = state.unwrap_or_else(|| TaskState {
        task: run.task.clone(),
        ..TaskState::default()
    });
    state.next_object_seq = state.next_object_seq.max(run.next_object_seq);
    state.checkpoint = state.checkpoint.max(run.seq_to);
    state.replace_next = false;
    let is_new = |o: &DeliveredObject| run.objects.iter().any(|n| n.path == o.path);
    state.pending_removal.retain(|o| !is_new(o));
    if live == LiveSet::Replace {
        let gone: Vec<DeliveredObject> = old_live()?.into_iter().filter(|o| !is_new(o)).collect();
        put_objects(&mut state.pending_removal, &gone);
    }
    Ok(state)
}

/// The state of a task whose live set is adopted from another store
/// ([`Store::adopt_task`](crate::store::Store::adopt_task)): checkpoint 0, objects numbered
/// from at least `next_object_seq` (and past its own earlier ones, `before`), nothing waiting
/// for removal, the next run replacing the live set.
pub(crate) fn adopted_state(
    task: &str,
    before: Option<&TaskState>,
    next_object_seq: u64,
) -> TaskState {
    TaskState {
        task: task.to_string(),
        next_object_seq: next_object_seq.max(before.map_or(0, |s| s.next_object_seq)),
        pending_removal: Vec::new(),
        checkpoint: 0,
        replace_next: true,
    }
}

/// Puts `objects` into `list`, replacing entries of the same path (in place; the last of
/// several with one path wins).
pub(crate) fn put_objects(list: &mut Vec<DeliveredObject>, objects: &[DeliveredObject]) {
    let mut at: HashMap<String, usize> = list
        .iter()
        .enumerate()
        .map(|(i, o)| (o.path.clone(), i))
        .collect();
    for o in objects {
        match at.get(&o.path) {
            Some(&i) => list[i] = o.clone(),
            None => {
                at.insert(o.path.clone(), list.len());
                list.push(o.clone());
            }
        }
    }
}

/// Forgets `removed` objects (by path) from the state's `pending_removal`
/// ([`Store::clear_pending_removal`](crate::store::Store::clear_pending_removal)); whether
/// any was there (the state then needs storing).
pub(crate) fn forget_removed(state: &mut TaskState, removed: &[DeliveredObject]) -> bool {
    let before = state.pending_removal.len();
    state
        .pending_removal
        .retain(|o| !removed.iter().any(|r| r.path == o.path));
    state.pending_removal.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(path: &str, rows: u64) -> DeliveredObject {
        DeliveredObject {
            path: path.into(),
            rows,
            ..DeliveredObject::default()
        }
    }

    #[test]
    fn put_objects_replaces_in_place_and_appends_in_order() {
        let mut list = vec![obj("a", 1), obj("b", 1)];
        put_objects(&mut list, &[obj("c", 2), obj("a", 2), obj("c", 3)]);
        assert_eq!(list, [obj("a", 2), obj("b", 1), obj("c", 3)]);
    }
}
