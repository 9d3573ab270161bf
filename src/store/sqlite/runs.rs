//! Run records, task states, live sets and workers in SQLite (their tables are in the layout
//! in the module docs of [`sqlite`](super)): how they are stored and read. Every call runs on
//! the write connection; one that reads before it writes does both in one `BEGIN IMMEDIATE`
//! transaction. The rules (which runs a start takes over, what a run's record and its task's
//! new state hold) are `store::runs`, shared with PostgreSQL. Also the upgrade of stores made
//! when a task's live objects were kept in its state.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::schema::read_json;
use super::{db, SqliteStore};
use crate::error::{Error, Result};
use crate::model::DeliveredObject;
use crate::store::checks::{decode_workers, worker_json};
use crate::store::runs::{self, decode_object, decode_run, object_json, record_json, state_json};
use crate::store::sql::{non_negative, now_ms, to_i64};
use crate::store::{LiveSet, OwnerGone, RunRecord, RunStatus, StartedRun, TaskState, WorkerRecord};

/// The status and record of run `id`, if the store holds it.
fn stored_run(conn: &Connection, id: i64) -> Result<Option<(String, RunRecord)>> {
    let stored: Option<(String, String)> = conn
        .query_row(
            r#"SELECT "status", "record" FROM "_lakeport_runs" WHERE "run_id" = ?1"#,
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db(format!("reading run {id}")))?;
    stored
        .map(|(status, json)| Ok((status, decode_run(id, &json)?)))
        .transpose()
}

/// The task's runs recorded as `Running`.
fn running_runs(conn: &Connection, task: &str) -> Result<Vec<RunRecord>> {
    read_runs(
        conn,
        r#"SELECT "run_id", "record" FROM "_lakeport_runs"
           WHERE "task" = ?1 AND "status" = 'running' ORDER BY "run_id""#,
        [task],
        &format!("reading the running runs of task {task}"),
    )
}

/// The run records `sql` selects as (`run_id`, `record`) rows; `what` names the read in errors.
fn read_runs(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: &str,
) -> Result<Vec<RunRecord>> {
    let at = || db(what);
    let mut stmt = conn.prepare_cached(sql).map_err(at())?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(at())?;
    let mut out = Vec::new();
    for row in rows {
        let (id, json) = row.map_err(at())?;
        out.push(decode_run(id, &json)?);
    }
    Ok(out)
}

/// Inserts `run` with the next run id, which it sets (the id is the row's, so the record is
/// written once the row exists).
fn insert_run(conn: &Connection, run: &mut RunRecord) -> Result<()> {
    let at = || db(format!("recording a run of task {}", run.task));
    conn.execute(
        r#"INSERT INTO "_lakeport_runs" ("task", "status", "started_ms", "record")
           VALUES (?1, ?2, ?3, '{}')"#,
        rusqlite::params![run.task, run.status.as_str(), run.started_ms],
    )
    .map_err(at())?;
    let id = conn.last_insert_rowid();
    run.run_id = non_negative(id, "a run id")?;
    conn.execute(
        r#"UPDATE "_lakeport_runs" SET "record" = ?1 WHERE "run_id" = ?2"#,
        rusqlite::params![record_json(run)?, id],
    )
    .map_err(at())?;
    Ok(())
}

fn load_task_state(conn: &Connection, task: &str) -> Result<Option<TaskState>> {
    read_json(
        conn,
        r#"SELECT "state" FROM "_lakeport_tasks" WHERE "task" = ?1"#,
        task,
        &format!("state of task {task}"),
    )
}

fn save_task_state(conn: &Connection, state: &TaskState) -> Result<()> {
    let json = state_json(state)?;
    conn.execute(
        r#"INSERT INTO "_lakeport_tasks" ("task", "state") VALUES (?1, ?2)
           ON CONFLICT ("task") DO UPDATE SET "state" = excluded."state""#,
        rusqlite::params![state.task, json],
    )
    .map_err(db(format_args!("writing the state of task {}", state.task)))?;
    Ok(())
}

/// Stores made when a task's live objects were kept in its state's JSON get them moved into
/// `_lakeport_live` (once; a task's state then stays small however many objects it has).
pub(super) fn move_live_objects_out_of_task_states(conn: &Connection) -> Result<()> {
    let at = || db("moving live objects out of task states");
    let tx = conn.unchecked_transaction().map_err(at())?;
    let old: Vec<(String, String)> = tx
        .prepare(r#"SELECT "task", "state" FROM "_lakeport_tasks" WHERE "state" LIKE '%"live_objects":%'"#)
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(at())?;
    if old.is_empty() {
        return Ok(());
    }
    for (task, json) in old {
        let mut state: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
            Error::store_caused(format!("the stored state of task {task} is not valid"), e)
        })?;
        let objects = state
            .as_object_mut()
            .and_then(|m| m.remove("live_objects"))
            .unwrap_or_default();
        let objects: Vec<DeliveredObject> = serde_json::from_value(objects).map_err(|e| {
            Error::store_caused(format!("the live objects of task {task} are not valid"), e)
        })?;
        put_live(&tx, &task, &objects)?;
        tx.execute(
            r#"UPDATE "_lakeport_tasks" SET "state" = ?2 WHERE "task" = ?1"#,
            rusqlite::params![task, state.to_string()],
        )
        .map_err(at())?;
    }
    tx.commit().map_err(at())
}

/// Adds `objects` to the live set of `task` (replacing entries of the same path).
fn put_live(conn: &Connection, task: &str, objects: &[DeliveredObject]) -> Result<()> {
    let at = || db(format!("recording the live objects of task {task}"));
    let mut insert = conn
        .prepare_cached(
            r#"INSERT OR REPLACE INTO "_lakeport_live" ("task", "path", "partition", "object")
               VALUES (?1, ?2, ?3, ?4)"#,
        )
        .map_err(at())?;
    for o in objects {
        let json = object_json(task, o)?;
        insert
            .execute(rusqlite::params![task, o.path, o.partition, json])
            .map_err(at())?;
    }
    Ok(())
}

/// The live objects of `task`, sorted by path.
fn load_live(conn: &Connection, task: &str) -> Result<Vec<DeliveredObject>> {
    let at = || db(format!("reading the live objects of task {task}"));
    let mut stmt = conn
        .prepare_cached(
            r#"SELECT "object" FROM "_lakeport_live" WHERE "task" = ?1 ORDER BY "path""#,
        )
        .map_err(at())?;
    let rows = stmt
        .query_map([task], |r| r.get::<_, String>(0))
        .map_err(at())?;
    let mut out = Vec::new();
    for json in rows {
        let json = json.map_err(at())?;
        out.push(decode_object(task, &json)?);
    }
    Ok(out)
}

/// Commits a successful run's objects and its task's new state: the objects join the live
/// set (replacing it with [`LiveSet::Replace`], the old ones then waiting for removal), the
/// checkpoint and the next object id move on.
fn advance_state(conn: &Connection, run: &RunRecord, live: LiveSet) -> Result<()> {
    let task = &run.task;
    let state = runs::advance_state(load_task_state(conn, task)?, run, live, || {
        load_live(conn, task)
    })?;
    if live == LiveSet::Replace {
        conn.execute(r#"DELETE FROM "_lakeport_live" WHERE "task" = ?1"#, [task])
            .map_err(db(format!("replacing the live objects of task {task}")))?;
    }
    put_live(conn, task, &run.objects)?;
    save_task_state(conn, &state)
}

/// [`Store::start_run`](crate::store::Store::start_run).
pub(super) fn start_run(
    store: &SqliteStore,
    record: &RunRecord,
    lease: Duration,
    gone: OwnerGone<'_>,
) -> Result<StartedRun> {
    let task = &record.task;
    let mut conn = store.lock();
    let at = || db(format!("starting a run of task {task}"));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at())?;
    let now = now_ms();
    let interrupted = runs::take_over(task, running_runs(&tx, task)?, now, lease, gone)?;
    for other in &interrupted {
        tx.execute(
            r#"UPDATE "_lakeport_runs" SET "status" = ?1, "record" = ?2 WHERE "run_id" = ?3"#,
            rusqlite::params![
                other.status.as_str(),
                record_json(other)?,
                to_i64(other.run_id, "run id")?
            ],
        )
        .map_err(at())?;
    }
    let state = load_task_state(&tx, task)?;
    let mut run = runs::new_run(record, state.as_ref(), now)?;
    insert_run(&tx, &mut run)?;
    tx.commit().map_err(at())?;
    Ok(StartedRun { run, interrupted })
}

/// [`Store::heartbeat`](crate::store::Store::heartbeat).
pub(super) fn heartbeat(store: &SqliteStore, run_id: u64) -> Result<()> {
    let mut conn = store.lock();
    let at = || db(format!("recording a heartbeat of run {run_id}"));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at())?;
    let id = to_i64(run_id, "run id")?;
    let Some((status, mut run)) = stored_run(&tx, id)? else {
        return Err(Error::NotFound(format!("run {run_id} is not in the store")));
    };
    runs::check_heartbeat(run_id, &status, &run)?;
    run.heartbeat_ms = Some(now_ms());
    tx.execute(
        r#"UPDATE "_lakeport_runs" SET "record" = ?1 WHERE "run_id" = ?2"#,
        rusqlite::params![record_json(&run)?, id],
    )
    .map_err(at())?;
    tx.commit().map_err(at())
}

/// [`Store::finish_run`](crate::store::Store::finish_run).
pub(super) fn finish_run(store: &SqliteStore, record: &RunRecord, live: LiveSet) -> Result<()> {
    let (task, id) = (&record.task, record.run_id);
    runs::check_finished(record)?;
    let mut conn = store.lock();
    let at = || db(format!("finishing run {id} of task {task}"));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at())?;
    let run_id = to_i64(id, "run id")?;
    let stored = stored_run(&tx, run_id)?.map(|(status, run)| (run.task, status));
    runs::check_finish(
        record,
        stored
            .as_ref()
            .map(|(t, status)| (t.as_str(), status.as_str())),
    )?;
    tx.execute(
        r#"UPDATE "_lakeport_runs" SET "status" = ?1, "record" = ?2 WHERE "run_id" = ?3"#,
        rusqlite::params![record.status.as_str(), record_json(record)?, run_id],
    )
    .map_err(at())?;
    if record.status == RunStatus::Succeeded {
        advance_state(&tx, record, live)?;
    }
    tx.commit().map_err(at())?;
    Ok(())
}

/// [`Store::record_failed_run`](crate::store::Store::record_failed_run).
pub(super) fn record_failed_run(store: &SqliteStore, record: &RunRecord) -> Result<u64> {
    runs::check_failed_before_start(record)?;
    let mut conn = store.lock();
    let at = || db(format!("recording a failed run of task {}", record.task));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at())?;
    let mut run = record.clone();
    insert_run(&tx, &mut run)?;
    tx.commit().map_err(at())?;
    Ok(run.run_id)
}

/// [`Store::clear_pending_removal`](crate::store::Store::clear_pending_removal).
pub(super) fn clear_pending_removal(
    store: &SqliteStore,
    task: &str,
    removed: &[DeliveredObject],
) -> Result<()> {
    let mut conn = store.lock();
    let at = || db(format!("updating the state of task {task}"));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at())?;
    let Some(mut state) = load_task_state(&tx, task)? else {
        return Ok(());
    };
    if runs::forget_removed(&mut state, removed) {
        save_task_state(&tx, &state)?;
        tx.commit().map_err(at())?;
    }
    Ok(())
}

/// [`Store::task_state`](crate::store::Store::task_state).
pub(super) fn task_state(store: &SqliteStore, task: &str) -> Result<Option<TaskState>> {
    let conn = store.lock();
    load_task_state(&conn, task)
}

/// [`Store::adopt_task`](crate::store::Store::adopt_task).
pub(super) fn adopt_task(
    store: &SqliteStore,
    task: &str,
    objects: &[DeliveredObject],
    next_object_seq: u64,
) -> Result<()> {
    let mut conn = store.lock();
    let at = || db(format!("adopting the live objects of task {task}"));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at())?;
    let before = load_task_state(&tx, task)?;
    let state = runs::adopted_state(task, before.as_ref(), next_object_seq);
    tx.execute(r#"DELETE FROM "_lakeport_live" WHERE "task" = ?1"#, [task])
        .map_err(at())?;
    put_live(&tx, task, objects)?;
    save_task_state(&tx, &state)?;
    tx.commit().map_err(at())
}

/// [`Store::live_objects`](crate::store::Store::live_objects).
pub(super) fn live_objects(store: &SqliteStore, task: &str) -> Result<Vec<DeliveredObject>> {
    let conn = store.lock();
    load_live(&conn, task)
}

/// [`Store::live_partitions`](crate::store::Store::live_partitions).
pub(super) fn live_partitions(store: &SqliteStore, task: &str) -> Result<Vec<(String, u64)>> {
    let conn = store.lock();
    let at = || db(format!("reading the live partitions of task {task}"));
    let mut stmt = conn
        .prepare_cached(
            r#"SELECT "partition", count(*) FROM "_lakeport_live" WHERE "task" = ?1
               GROUP BY "partition" ORDER BY "partition""#,
        )
        .map_err(at())?;
    let parts = stmt
        .query_map([task], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)))
        .map_err(at())?
        .collect::<rusqlite::Result<Vec<(String, i64)>>>()
        .map_err(at())?;
    parts
        .into_iter()
        .map(|(p, n)| Ok((p, non_negative(n, "an object count")?)))
        .collect()
}

/// [`Store::runs`](crate::store::Store::runs).
pub(super) fn runs(
    store: &SqliteStore,
    task: Option<&str>,
    limit: usize,
) -> Result<Vec<RunRecord>> {
    let conn = store.lock();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = match task {
        Some(_) => {
            r#"SELECT "run_id", "record" FROM "_lakeport_runs" WHERE "task" = ?1
               ORDER BY "run_id" DESC LIMIT ?2"#
        }
        None => {
            r#"SELECT "run_id", "record" FROM "_lakeport_runs" WHERE ?1 IS NULL
               ORDER BY "run_id" DESC LIMIT ?2"#
        }
    };
    read_runs(
        &conn,
        sql,
        rusqlite::params![task, limit],
        "reading run records",
    )
}

/// [`Store::worker_heartbeat`](crate::store::Store::worker_heartbeat).
pub(super) fn worker_heartbeat(
    store: &SqliteStore,
    worker: &WorkerRecord,
    forget_after: Duration,
) -> Result<()> {
    let (now, json) = worker_json(worker)?;
    let forget_ms = i64::try_from(forget_after.as_millis()).unwrap_or(i64::MAX);
    let mut conn = store.lock();
    let at = || db(format!("recording worker {}", worker.worker_id));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at())?;
    tx.execute(
        r#"INSERT INTO "_lakeport_workers" ("worker_id", "heartbeat_ms", "record")
           VALUES (?1, ?2, ?3)
           ON CONFLICT ("worker_id") DO UPDATE SET "heartbeat_ms" = excluded."heartbeat_ms",
               "record" = excluded."record""#,
        rusqlite::params![worker.worker_id, now, json],
    )
    .map_err(at())?;
    tx.execute(
        r#"DELETE FROM "_lakeport_workers" WHERE "heartbeat_ms" < ?1"#,
        [now.saturating_sub(forget_ms)],
    )
    .map_err(at())?;
    tx.commit().map_err(at())
}

/// [`Store::workers`](crate::store::Store::workers).
pub(super) fn workers(store: &SqliteStore) -> Result<Vec<WorkerRecord>> {
    let conn = store.lock();
    let at = || db("reading the workers");
    let mut stmt = conn
        .prepare_cached(r#"SELECT "record" FROM "_lakeport_workers""#)
        .map_err(at())?;
    let records = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(at())?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(at())?;
    decode_workers(&records)
}

/// [`Store::remove_worker`](crate::store::Store::remove_worker).
pub(super) fn remove_worker(store: &SqliteStore, worker_id: &str) -> Result<()> {
    let conn = store.lock();
    conn.execute(
        r#"DELETE FROM "_lakeport_workers" WHERE "worker_id" = ?1"#,
        [worker_id],
    )
    .map_err(db(format!("forgetting worker {worker_id}")))?;
    Ok(())
}
