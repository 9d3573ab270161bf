//! The `service` stage: `lakeport serve`, the long-lived process that runs every delivery task
//! on its schedule and answers an HTTP API about them.
//!
//! Each task of the pipelines folder gets a slot ([`TaskSlot`]). Tasks with a cron schedule
//! (seconds first, or `@hourly`-style; UTC) are ticked by tokio-cron-scheduler; a tick starts
//! a run unless the task's previous run is still going, in which case the tick is skipped and
//! counted (runs of one task never overlap — in this process by the slot, across processes by
//! the store's lease). `schedule: continuous` tasks run their follow loop
//! ([`crate::delivery::follow`]) for the life of the service. Tasks without a schedule run only
//! when asked (`POST /api/tasks/{name}/run`). A run is an ordinary delivery run: its heavy
//! work is on blocking threads, and each run is its own tokio task, so one slow or failing
//! task never delays another.
//!
//! Reload ([`Service::reload`], SIGHUP or `POST /api/reload`): the task files are read again
//! and applied as a whole or not at all; a task keeps its slot (in-flight flag, counters)
//! across reloads, its new definition used from its next run.
//!
//! Shutdown ([`Service::shutdown`]): ticking stops, continuous loops stop starting runs, and
//! the runs in flight get a grace period to finish; what is still running after it is
//! cancelled, which the exactly-once machinery makes safe (the next run of the task takes the
//! interrupted one over and removes what it wrote).
//!
//! The service keeps, per task, counters since it started (runs, rows, objects, bytes, dirty
//! rows, skipped ticks, the last error); everything else it reports comes from the store.

pub mod http;
pub mod metrics;
mod page;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::delivery::config::{cron_expression, parse_cron};
use crate::delivery::{follow, run_task, Quiet, RunSummary, Task};
use crate::error::{Error, Result};
use crate::service::metrics::Metrics;
use crate::sink::destination::Destination;
use crate::store::Store;

/// What the service has seen of one task since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlotStats {
    /// Runs started (by schedule, by request, or by the continuous loop).
    pub runs_started: u64,
    /// Runs that succeeded.
    pub runs_succeeded: u64,
    /// Runs that failed.
    pub runs_failed: u64,
    /// Scheduled ticks skipped because the previous run was still going.
    pub skipped_overlaps: u64,
    /// Rows delivered.
    pub rows: u64,
    /// Objects written.
    pub objects: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Dirty rows.
    pub dirty_rows: u64,
    /// The error of the last failed run, until a run succeeds.
    pub last_error: Option<String>,
    /// When the run in flight started (ms since epoch UTC).
    pub running_since_ms: Option<i64>,
}

/// A task's definition as the service runs it (replaced whole on reload).
#[derive(Debug)]
struct Definition {
    task: Arc<Task>,
    /// The cron expression it is ticked on and its parsed form (None: continuous or on
    /// request only).
    cron: Option<(String, croner::Cron)>,
}

impl Definition {
    fn new(task: Task) -> Result<Definition> {
        let bad =
            |e: String| Error::InvalidConfig(format!("{}: schedule: {e}", task.file.display()));
        let cron = match &task.schedule {
            Some(s) => match cron_expression(s).map_err(bad)? {
                Some(expr) => {
                    let parsed = parse_cron(&expr).map_err(bad)?;
                    Some((expr, parsed))
                }
                None => None,
            },
            None => None,
        };
        Ok(Definition {
            task: Arc::new(task),
            cron,
        })
    }
}

/// One task in the service. Its counters and its in-flight flag outlive reloads of its
/// definition, so a reload never lets two runs of a task overlap.
#[derive(Debug)]
pub struct TaskSlot {
    definition: std::sync::RwLock<Definition>,
    running: AtomicBool,
    stats: Mutex<SlotStats>,
    /// The scheduler's job ticking it.
    job: Mutex<Option<uuid::Uuid>>,
    /// Stops its continuous loop.
    follow_stop: Mutex<Option<watch::Sender<bool>>>,
}

impl TaskSlot {
    fn new(definition: Definition) -> TaskSlot {
        TaskSlot {
            definition: std::sync::RwLock::new(definition),
            running: AtomicBool::new(false),
            stats: Mutex::new(SlotStats::default()),
            job: Mutex::new(None),
            follow_stop: Mutex::new(None),
        }
    }

    fn definition(&self) -> std::sync::RwLockReadGuard<'_, Definition> {
        self.definition
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The task as the service runs it now.
    pub fn task(&self) -> Arc<Task> {
        Arc::clone(&self.definition().task)
    }

    /// The cron expression it is ticked on (None: continuous or on request only).
    pub fn cron(&self) -> Option<String> {
        self.definition().cron.as_ref().map(|(e, _)| e.clone())
    }

    /// Whether the task is continuous (its loop runs for the life of the service).
    pub fn is_continuous(&self) -> bool {
        self.definition().task.schedule.as_deref() == Some("continuous")
    }

    /// Whether a run is in flight.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// The next scheduled tick after now (ms since epoch UTC).
    pub fn next_run_ms(&self) -> Option<i64> {
        next_tick_ms(&self.definition().cron.as_ref()?.1, chrono::Utc::now())
    }

    /// A copy of the counters.
    pub fn stats(&self) -> SlotStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut SlotStats)) {
        f(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn record(&self, outcome: &Result<RunSummary>) {
        self.update(|s| {
            s.running_since_ms = None;
            match outcome {
                Ok(run) => {
                    let r = &run.record;
                    s.runs_succeeded += 1;
                    s.rows += r.rows;
                    s.objects += r.objects.len() as u64;
                    s.bytes += r.bytes;
                    s.dirty_rows += r.dirty_rows();
                    s.last_error = None;
                }
                Err(e) => {
                    s.runs_failed += 1;
                    s.last_error = Some(e.to_string());
                }
            }
        });
    }
}

/// Why a run was not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStarted {
    /// No task of that name.
    Unknown,
    /// A run of the task is in flight (or the task is continuous).
    Busy(String),
    /// The service is shutting down.
    Stopping,
}

/// Who asked for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Schedule,
    Request,
}

/// Reads the task files again (for reload); an error leaves the running set as it is.
pub type TaskLoader = Arc<dyn Fn() -> Result<BTreeMap<String, Task>> + Send + Sync>;

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// Tasks that are new.
    pub added: Vec<String>,
    /// Tasks that are gone (their runs in flight finish).
    pub removed: Vec<String>,
    /// Tasks whose definition was read again (runs in flight keep the old one).
    pub updated: Vec<String>,
}

/// The service: task slots, the runs in flight, the scheduler.
pub struct Service {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    slots: std::sync::RwLock<BTreeMap<String, Arc<TaskSlot>>>,
    loader: TaskLoader,
    runs: Mutex<JoinSet<()>>,
    stopping: AtomicBool,
    /// Held while the scheduler or the set of tasks changes (start, reload, shutdown).
    scheduler: tokio::sync::Mutex<Option<JobScheduler>>,
    /// When the service started (ms since epoch UTC).
    pub started_ms: i64,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("tasks", &self.slots().keys().cloned().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service for the tasks `loader` reads, over `store`; nothing runs until
    /// [`Service::start`].
    pub fn new(store: Arc<dyn Store>, loader: TaskLoader) -> Result<Arc<Service>> {
        let tasks = loader()?;
        let slots: BTreeMap<String, Arc<TaskSlot>> = tasks
            .into_iter()
            .map(|(name, task)| Ok((name, Arc::new(TaskSlot::new(Definition::new(task)?)))))
            .collect::<Result<_>>()?;
        let metrics = Arc::new(Metrics::new(slots.keys().map(String::as_str)));
        Ok(Arc::new(Service {
            store,
            metrics,
            slots: std::sync::RwLock::new(slots),
            loader,
            runs: Mutex::new(JoinSet::new()),
            stopping: AtomicBool::new(false),
            scheduler: tokio::sync::Mutex::new(None),
            started_ms: chrono::Utc::now().timestamp_millis(),
        }))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Every task slot, by name (a snapshot: a reload may change the set afterwards).
    pub fn slots(&self) -> BTreeMap<String, Arc<TaskSlot>> {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One task's slot.
    pub fn slot(&self, name: &str) -> Option<Arc<TaskSlot>> {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Starts ticking the cron tasks and the continuous tasks' loops.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let mut guard = self.scheduler.lock().await;
        let scheduler = JobScheduler::new()
            .await
            .map_err(|e| Error::Store(format!("starting the scheduler: {e}")))?;
        for slot in self.slots().values() {
            self.schedule(&scheduler, slot).await?;
        }
        scheduler
            .start()
            .await
            .map_err(|e| Error::Store(format!("starting the scheduler: {e}")))?;
        *guard = Some(scheduler);
        Ok(())
    }

    /// Starts what drives `slot`: its continuous loop, or a job on its cron schedule.
    async fn schedule(
        self: &Arc<Self>,
        scheduler: &JobScheduler,
        slot: &Arc<TaskSlot>,
    ) -> Result<()> {
        if slot.is_continuous() {
            self.spawn_follow(slot);
            return Ok(());
        }
        let Some(cron) = slot.cron() else {
            return Ok(());
        };
        let (service, tick_slot) = (Arc::downgrade(self), Arc::clone(slot));
        let job = Job::new_async(cron.as_str(), move |_, _| {
            let (service, slot) = (service.clone(), Arc::clone(&tick_slot));
            Box::pin(async move {
                if let Some(service) = service.upgrade() {
                    let _ = service.start_run(&slot, Trigger::Schedule);
                }
            })
        })
        .map_err(|e| Error::InvalidConfig(format!("schedule {cron:?}: {e}")))?;
        let id = scheduler
            .add(job)
            .await
            .map_err(|e| Error::Store(format!("scheduling task {}: {e}", slot.task().name)))?;
        *slot.job.lock().unwrap_or_else(PoisonError::into_inner) = Some(id);
        Ok(())
    }

    /// Stops what drives `slot` (its job, or its continuous loop after the run in flight).
    async fn unschedule(scheduler: &JobScheduler, slot: &TaskSlot) {
        let job = slot
            .job
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(id) = job {
            if let Err(e) = scheduler.remove(&id).await {
                tracing::warn!(task = %slot.task().name, "removing its scheduled job: {e}");
            }
        }
        let stop = slot
            .follow_stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(true);
        }
    }

    /// Reads the task files again and applies them: new tasks start, removed ones stop
    /// (their runs in flight finish), the others take their new definition for their next
    /// run. Any problem in any file (or a schedule the scheduler cannot run) is an error and
    /// changes nothing.
    pub async fn reload(self: &Arc<Self>) -> Result<Reloaded> {
        let loader = Arc::clone(&self.loader);
        let tasks = crate::store::blocking(move || loader()).await?;
        let mut definitions = BTreeMap::new();
        for (name, task) in tasks {
            definitions.insert(name, Definition::new(task)?);
        }
        let guard = self.scheduler.lock().await;
        let Some(scheduler) = guard.as_ref() else {
            return Err(Error::Conflict("the service is not running".into()));
        };
        let mut done = Reloaded::default();
        let current = self.slots();
        for (name, slot) in &current {
            if !definitions.contains_key(name) {
                Self::unschedule(scheduler, slot).await;
                done.removed.push(name.clone());
            }
        }
        let mut next = BTreeMap::new();
        for (name, definition) in definitions {
            let slot = match current.get(&name) {
                Some(slot) => {
                    Self::unschedule(scheduler, slot).await;
                    *slot
                        .definition
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = definition;
                    done.updated.push(name.clone());
                    Arc::clone(slot)
                }
                None => {
                    done.added.push(name.clone());
                    Arc::new(TaskSlot::new(definition))
                }
            };
            self.schedule(scheduler, &slot).await?;
            next.insert(name, slot);
        }
        *self.slots.write().unwrap_or_else(PoisonError::into_inner) = next;
        tracing::info!(added = ?done.added, removed = ?done.removed, updated = ?done.updated, "tasks reloaded");
        Ok(done)
    }

    /// Starts a run of task `name` now, unless one is in flight (`POST …/run`).
    pub fn run_now(self: &Arc<Self>, name: &str) -> std::result::Result<(), NotStarted> {
        let slot = self.slot(name).ok_or(NotStarted::Unknown)?;
        if slot.is_continuous() {
            return Err(NotStarted::Busy(format!(
                "task {name} is continuous: it delivers changes by itself as they come"
            )));
        }
        self.start_run(&slot, Trigger::Request)
    }

    fn start_run(
        self: &Arc<Self>,
        slot: &Arc<TaskSlot>,
        trigger: Trigger,
    ) -> std::result::Result<(), NotStarted> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(NotStarted::Stopping);
        }
        if slot
            .running
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            let since = slot.stats().running_since_ms.unwrap_or_default();
            if trigger == Trigger::Schedule {
                slot.update(|s| s.skipped_overlaps += 1);
                self.metrics.record_skip(&slot.task().name);
                tracing::warn!(task = %slot.task().name, "tick skipped: the previous run is still going");
            }
            return Err(NotStarted::Busy(format!(
                "task {} is running (a run started at {})",
                slot.task().name,
                rfc3339(since)
            )));
        }
        let now = chrono::Utc::now().timestamp_millis();
        slot.update(|s| {
            s.runs_started += 1;
            s.running_since_ms = Some(now);
        });
        let (store, slot) = (Arc::clone(&self.store), Arc::clone(slot));
        let metrics = Arc::clone(&self.metrics);
        self.track(async move {
            let clock = std::time::Instant::now();
            let task = slot.task();
            let outcome = run_task(store, Arc::clone(&task), Arc::new(Quiet)).await;
            metrics.record_run(&task.name, &outcome, clock.elapsed().as_secs_f64());
            match &outcome {
                Ok(run) => tracing::info!("{}", run.line()),
                Err(e) => tracing::error!(task = %task.name, "run failed: {e}"),
            }
            slot.record(&outcome);
            slot.running.store(false, Ordering::SeqCst);
        });
        Ok(())
    }

    /// Spawns `work` among the runs shutdown waits for, first forgetting the finished ones
    /// (so a long-lived service does not keep one entry per run it ever did).
    fn track(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        while runs.try_join_next().is_some() {}
        runs.spawn(work);
    }

    fn spawn_follow(self: &Arc<Self>, slot: &Arc<TaskSlot>) {
        let (store, slot) = (Arc::clone(&self.store), Arc::clone(slot));
        let metrics = Arc::clone(&self.metrics);
        let (stop_tx, stop) = watch::channel(false);
        *slot
            .follow_stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(stop_tx);
        slot.running.store(true, Ordering::SeqCst);
        self.track(async move {
            let task = slot.task();
            let dest = match Destination::parse(&task.destination) {
                Ok(d) => Arc::new(d.with_retry(task.retry)),
                Err(e) => {
                    slot.record(&Err(e));
                    return;
                }
            };
            let on_run = |run: &RunSummary| {
                slot.update(|s| s.runs_started += 1);
                let outcome = Ok(run.clone());
                metrics.record_run(&run.record.task, &outcome, run.seconds);
                slot.record(&outcome);
            };
            let name = task.name.clone();
            if let Err(e) = follow(store, task, dest, Arc::new(Quiet), stop, on_run).await {
                tracing::error!(task = %name, "continuous delivery stopped: {e}");
                slot.record(&Err(e));
            }
            slot.running.store(false, Ordering::SeqCst);
        });
    }

    /// Stops ticking and lets the runs in flight finish within `grace`; cancels what is left
    /// after it (safe: the next run of such a task takes it over). Returns how many runs were
    /// cancelled.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(mut scheduler) = self.scheduler.lock().await.take() {
            for slot in self.slots().values() {
                Self::unschedule(&scheduler, slot).await;
            }
            if let Err(e) = scheduler.shutdown().await {
                tracing::warn!("stopping the scheduler: {e}");
            }
        }
        let mut runs =
            std::mem::take(&mut *self.runs.lock().unwrap_or_else(PoisonError::into_inner));
        let waited =
            tokio::time::timeout(grace, async { while runs.join_next().await.is_some() {} }).await;
        if waited.is_ok() {
            return 0;
        }
        let left = runs.len();
        tracing::warn!(
            runs = left,
            "grace period over: cancelling the runs still going"
        );
        runs.abort_all();
        while runs.join_next().await.is_some() {}
        left
    }
}

/// The first tick of `cron` after `now` (ms since epoch UTC). Ticks fall on whole seconds:
/// croner keeps the sub-second part of the instant it is asked from, so `now` is cut to its
/// second first (a tick at that very second has passed, and is not returned).
fn next_tick_ms(cron: &croner::Cron, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    use chrono::SubsecRound;
    let next = cron
        .find_next_occurrence(&now.trunc_subsecs(0), false)
        .ok()?;
    Some(next.timestamp_millis())
}

/// `ms` since epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_tick_is_on_a_whole_second_after_now() {
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let ms = |text: &str| at(text).timestamp_millis();
        let daily = parse_cron("0 0 2 * * *").unwrap();
        for (now, next) in [
            ("2026-11-28T01:59:59.500Z", "2026-11-28T02:00:00Z"),
            ("2026-11-28T02:00:00.000Z", "2026-11-29T02:00:00Z"),
            ("2026-11-28T02:00:00.300Z", "2026-11-29T02:00:00Z"),
            ("2026-11-28T06:39:14.189Z", "2026-11-29T02:00:00Z"),
        ] {
            assert_eq!(next_tick_ms(&daily, at(now)), Some(ms(next)), "from {now}");
        }
        let every_second = parse_cron("* * * * * *").unwrap();
        assert_eq!(
            next_tick_ms(&every_second, at("2026-11-28T06:39:14.999Z")),
            Some(ms("2026-11-28T06:39:15Z"))
        );
    }

    #[tokio::test]
    async fn finished_runs_are_forgotten_and_shutdown_waits_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(crate::store::SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let loader: TaskLoader = Arc::new(|| Ok(BTreeMap::new()));
        let service = Service::new(store, loader).unwrap();
        for _ in 0..5 {
            service.track(async {});
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        service.track(async move {
            let _ = rx.await;
        });
        assert_eq!(
            service.runs.lock().unwrap().len(),
            1,
            "the finished five are gone"
        );
        // The one left is cancelled after the grace period; one that ends in time is not.
        assert_eq!(service.shutdown(Duration::from_millis(50)).await, 1);
        drop(tx);
        let service = Service::new(
            Arc::new(crate::store::SqliteStore::open(&dir.path().join("t.db")).unwrap()),
            Arc::new(|| Ok(BTreeMap::new())),
        )
        .unwrap();
        service.track(tokio::time::sleep(Duration::from_millis(20)));
        assert_eq!(service.shutdown(Duration::from_secs(5)).await, 0);
    }
}
