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
//! Shutdown ([`Service::shutdown`]): ticking stops, continuous loops stop starting runs, and
//! the runs in flight get a grace period to finish; what is still running after it is
//! cancelled, which the exactly-once machinery makes safe (the next run of the task takes the
//! interrupted one over and removes what it wrote).
//!
//! The service keeps, per task, counters since it started (runs, rows, objects, bytes, dirty
//! rows, skipped ticks, the last error); everything else it reports comes from the store.

pub mod http;
pub mod metrics;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::delivery::config::cron_expression;
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

/// One task in the service.
#[derive(Debug)]
pub struct TaskSlot {
    /// The task.
    pub task: Arc<Task>,
    /// The cron expression it is ticked on (None: continuous or on request only).
    pub cron: Option<String>,
    running: AtomicBool,
    /// The parsed `cron`, to tell the next tick.
    schedule: Option<croner::Cron>,
    stats: Mutex<SlotStats>,
}

impl TaskSlot {
    fn new(task: Task) -> Result<TaskSlot> {
        let cron = match &task.schedule {
            Some(s) => cron_expression(s).map_err(|e| {
                Error::InvalidConfig(format!("{}: schedule: {e}", task.file.display()))
            })?,
            None => None,
        };
        let schedule = match &cron {
            Some(expr) => Some(parse_cron(expr).map_err(|e| {
                Error::InvalidConfig(format!("{}: schedule: {e}", task.file.display()))
            })?),
            None => None,
        };
        Ok(TaskSlot {
            task: Arc::new(task),
            cron,
            running: AtomicBool::new(false),
            schedule,
            stats: Mutex::new(SlotStats::default()),
        })
    }

    /// Whether the task is continuous (its loop runs for the life of the service).
    pub fn is_continuous(&self) -> bool {
        self.task.schedule.as_deref() == Some("continuous")
    }

    /// Whether a run is in flight.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// The next scheduled tick after now (ms since epoch UTC).
    pub fn next_run_ms(&self) -> Option<i64> {
        let next = self
            .schedule
            .as_ref()?
            .find_next_occurrence(&chrono::Utc::now(), false)
            .ok()?;
        Some(next.timestamp_millis())
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

/// The service: task slots, the runs in flight, the scheduler.
pub struct Service {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    slots: BTreeMap<String, Arc<TaskSlot>>,
    runs: Mutex<JoinSet<()>>,
    stop: watch::Sender<bool>,
    stopping: AtomicBool,
    scheduler: tokio::sync::Mutex<Option<JobScheduler>>,
    /// When the service started (ms since epoch UTC).
    pub started_ms: i64,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("tasks", &self.slots.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service for `tasks` over `store`; nothing runs until [`Service::start`].
    pub fn new(store: Arc<dyn Store>, tasks: BTreeMap<String, Task>) -> Result<Arc<Service>> {
        let slots = tasks
            .into_iter()
            .map(|(name, task)| Ok((name, Arc::new(TaskSlot::new(task)?))))
            .collect::<Result<_>>()?;
        let (stop, _) = watch::channel(false);
        let slots: BTreeMap<String, Arc<TaskSlot>> = slots;
        let metrics = Arc::new(Metrics::new(slots.keys().map(String::as_str)));
        Ok(Arc::new(Service {
            store,
            metrics,
            slots,
            runs: Mutex::new(JoinSet::new()),
            stop,
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

    /// Every task slot, by name.
    pub fn slots(&self) -> &BTreeMap<String, Arc<TaskSlot>> {
        &self.slots
    }

    /// Starts ticking the cron tasks and the continuous tasks' loops.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let scheduler = JobScheduler::new()
            .await
            .map_err(|e| Error::Store(format!("starting the scheduler: {e}")))?;
        for slot in self.slots.values() {
            if slot.is_continuous() {
                self.spawn_follow(slot);
                continue;
            }
            let Some(cron) = &slot.cron else { continue };
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
            scheduler
                .add(job)
                .await
                .map_err(|e| Error::Store(format!("scheduling task {}: {e}", slot.task.name)))?;
        }
        scheduler
            .start()
            .await
            .map_err(|e| Error::Store(format!("starting the scheduler: {e}")))?;
        *self.scheduler.lock().await = Some(scheduler);
        Ok(())
    }

    /// Starts a run of task `name` now, unless one is in flight (`POST …/run`).
    pub fn run_now(self: &Arc<Self>, name: &str) -> std::result::Result<(), NotStarted> {
        let slot = self.slots.get(name).ok_or(NotStarted::Unknown)?;
        if slot.is_continuous() {
            return Err(NotStarted::Busy(format!(
                "task {name} is continuous: it delivers changes by itself as they come"
            )));
        }
        self.start_run(slot, Trigger::Request)
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
                self.metrics.record_skip(&slot.task.name);
                tracing::warn!(task = %slot.task.name, "tick skipped: the previous run is still going");
            }
            return Err(NotStarted::Busy(format!(
                "task {} is running (a run started at {})",
                slot.task.name,
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
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spawn(async move {
                let clock = std::time::Instant::now();
                let outcome = run_task(store, Arc::clone(&slot.task), Arc::new(Quiet)).await;
                metrics.record_run(&slot.task.name, &outcome, clock.elapsed().as_secs_f64());
                match &outcome {
                    Ok(run) => tracing::info!("{}", run.line()),
                    Err(e) => tracing::error!(task = %slot.task.name, "run failed: {e}"),
                }
                slot.record(&outcome);
                slot.running.store(false, Ordering::SeqCst);
            });
        Ok(())
    }

    fn spawn_follow(self: &Arc<Self>, slot: &Arc<TaskSlot>) {
        let (store, slot) = (Arc::clone(&self.store), Arc::clone(slot));
        let metrics = Arc::clone(&self.metrics);
        let stop = self.stop.subscribe();
        slot.running.store(true, Ordering::SeqCst);
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spawn(async move {
                let task = Arc::clone(&slot.task);
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
                    metrics.record_run(&slot.task.name, &outcome, run.seconds);
                    slot.record(&outcome);
                };
                if let Err(e) = follow(store, task, dest, Arc::new(Quiet), stop, on_run).await {
                    tracing::error!(task = %slot.task.name, "continuous delivery stopped: {e}");
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
            if let Err(e) = scheduler.shutdown().await {
                tracing::warn!("stopping the scheduler: {e}");
            }
        }
        let _ = self.stop.send(true);
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

/// `ms` since epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// A 6-field cron expression (seconds first) as the scheduler parses it.
fn parse_cron(expr: &str) -> std::result::Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?}: {e}"))
}
