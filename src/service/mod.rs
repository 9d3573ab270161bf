//! The `service` stage: `lakeport serve`, the long-lived process that runs every delivery task
//! and inventory watcher on its schedule and answers an HTTP API about them.
//!
//! Inventory watchers ([`crate::inventory::watch`]) get slots of their own ([`WatcherSlot`])
//! and the same scheduling rules: a tick runs one pass (list the root, import the complete
//! reports not handled yet) unless the previous pass is still going.
//!
//! Each task of the pipelines folder gets a slot ([`TaskSlot`]). Tasks with a cron schedule
//! (seconds first, or `@hourly`-style) are ticked by tokio-cron-scheduler at the instants
//! [`Schedule`] computes in the schedule's timezone, DST-correct: one one-shot job per slot at
//! its next instant, which arms the next one when it fires (the scheduler's own timezone cron
//! jobs keep the UTC offset of the day they were made, an hour off after a DST change). A
//! tick starts a run unless the task's previous run is still going, in which case the tick is
//! skipped and counted (runs of one task never overlap — in this process by the slot, across
//! processes by the store's lease). `schedule: continuous` tasks run their follow loop
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
mod views;
pub mod workers;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::schedule::Schedule;
use crate::delivery::status::{lag_seconds, next_runs, task_status, TaskStatus};
use crate::delivery::{follow, open_destination_for_runs, run_task, Quiet, RunSummary, Task};
use crate::error::{Error, Result};
use crate::inventory::watch::{PassSummary, WatchDef, WatchEvent, Watcher};
use crate::model::TableDef;
use crate::pipelines::Pipelines;
use crate::service::metrics::Metrics;
use crate::store::{blocking, ImportOutcome, Store};

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
    /// Watchers: what their passes did with reports.
    #[serde(skip)]
    pub reports: ReportCounts,
}

/// What a watcher's passes did with reports since the service started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReportCounts {
    /// Reports applied.
    pub applied: u64,
    /// Reports found applied before (nothing read).
    pub already_imported: u64,
    /// Reports that failed.
    pub failed: u64,
    /// Reports seen but not complete yet, at the last pass.
    pub waiting: u64,
    /// When the last report was applied (ms since epoch UTC).
    pub last_applied_ms: Option<i64>,
}

/// What a slot runs: a delivery task or an inventory watcher, as declared in its file.
pub trait Scheduled: std::fmt::Debug + Send + Sync + 'static {
    /// What a slot keeps between runs besides its counters.
    type State: std::fmt::Debug + Default + Send + 'static;
    /// The declared name.
    fn name(&self) -> &str;
    /// The file it was declared in.
    fn file(&self) -> &Path;
    /// Its schedule, if any (cron, `@hourly`…, or `continuous`), as written.
    fn schedule(&self) -> Option<&str>;
    /// Its cron schedule in its timezone (None: continuous or on request only).
    fn cron(&self) -> Option<&Schedule>;
}

impl Scheduled for Task {
    /// Its status as last read from the store.
    type State = Option<CachedStatus>;
    fn name(&self) -> &str {
        &self.name
    }
    fn file(&self) -> &Path {
        &self.file
    }
    fn schedule(&self) -> Option<&str> {
        self.schedule.as_deref()
    }
    fn cron(&self) -> Option<&Schedule> {
        self.cron.as_ref()
    }
}

impl Scheduled for WatchDef {
    /// The watcher, with what it handled, kept while its target stays the same.
    type State = Option<Watcher>;
    fn name(&self) -> &str {
        &self.name
    }
    fn file(&self) -> &Path {
        &self.file
    }
    fn schedule(&self) -> Option<&str> {
        Some(&self.schedule)
    }
    fn cron(&self) -> Option<&Schedule> {
        Some(&self.cron)
    }
}

/// How long a task's status read from the store is served before it is read again (unless a
/// run of the task started or ended meanwhile, or the task was reloaded, which makes it stale
/// at once). However many requests ask, each task's status is read at most this often.
pub const STATUS_TTL: Duration = Duration::from_secs(1);

/// A task's status as read from the store, kept for [`STATUS_TTL`].
#[derive(Debug)]
pub struct CachedStatus {
    read_at: std::time::Instant,
    generation: u64,
    status: TaskStatus,
}

/// A task's or watcher's definition as the service runs it (replaced whole on reload).
#[derive(Debug)]
struct Definition<D> {
    declared: Arc<D>,
}

impl<D: Scheduled> Definition<D> {
    fn new(declared: D) -> Definition<D> {
        Definition {
            declared: Arc::new(declared),
        }
    }
}

/// One task or watcher in the service. Its counters and its in-flight flag outlive reloads of
/// its definition, so a reload never lets two runs of a task overlap.
#[derive(Debug)]
pub struct Slot<D: Scheduled> {
    definition: std::sync::RwLock<Definition<D>>,
    state: tokio::sync::Mutex<D::State>,
    running: AtomicBool,
    /// Bumped when a run starts or ends and on reload: what was read before is stale.
    generation: std::sync::atomic::AtomicU64,
    stats: Mutex<SlotStats>,
    /// The scheduler's job ticking it.
    job: Mutex<Option<uuid::Uuid>>,
    /// Stops its continuous loop.
    follow_stop: Mutex<Option<watch::Sender<bool>>>,
}

/// A delivery task's slot.
pub type TaskSlot = Slot<Task>;

/// An inventory watcher's slot.
pub type WatcherSlot = Slot<WatchDef>;

impl TaskSlot {
    /// The task as the service runs it now.
    pub fn task(&self) -> Arc<Task> {
        self.declared()
    }

    /// The task's status: read from `store` when the last read is older than [`STATUS_TTL`]
    /// or stale, else the last read with its lag age brought up to now. Concurrent callers
    /// wait for one read instead of each reading.
    pub async fn status(&self, store: &Arc<dyn Store>) -> Result<TaskStatus> {
        let mut cached = self.state.lock().await;
        let generation = self.generation.load(Ordering::SeqCst);
        let fresh = cached
            .as_ref()
            .is_some_and(|c| c.generation == generation && c.read_at.elapsed() < STATUS_TTL);
        let now_ms = chrono::Utc::now().timestamp_millis();
        if !fresh {
            let (store, task) = (Arc::clone(store), self.task());
            let read_at = std::time::Instant::now();
            let status = blocking(move || task_status(store.as_ref(), &task, now_ms)).await?;
            *cached = Some(CachedStatus {
                read_at,
                generation,
                status,
            });
        }
        let Some(cached) = cached.as_ref() else {
            return Err(Error::store("the task status was not read"));
        };
        let mut status = cached.status.clone();
        status.lag_seconds = lag_seconds(status.lag.as_ref(), now_ms);
        status.next_runs = next_runs(&self.task(), now_ms);
        Ok(status)
    }
}

impl<D: Scheduled> Slot<D> {
    fn new(definition: Definition<D>) -> Slot<D> {
        Slot {
            definition: std::sync::RwLock::new(definition),
            state: tokio::sync::Mutex::new(D::State::default()),
            running: AtomicBool::new(false),
            generation: std::sync::atomic::AtomicU64::new(0),
            stats: Mutex::new(SlotStats::default()),
            job: Mutex::new(None),
            follow_stop: Mutex::new(None),
        }
    }

    fn definition(&self) -> std::sync::RwLockReadGuard<'_, Definition<D>> {
        self.definition
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The task or watcher as the service runs it now.
    pub fn declared(&self) -> Arc<D> {
        Arc::clone(&self.definition().declared)
    }

    /// Its name.
    pub fn name(&self) -> String {
        self.definition().declared.name().to_string()
    }

    /// The cron schedule it is ticked on, in its timezone (None: continuous or on request
    /// only).
    pub fn cron(&self) -> Option<Schedule> {
        self.definition().declared.cron().cloned()
    }

    /// Whether the task is continuous (its loop runs for the life of the service).
    pub fn is_continuous(&self) -> bool {
        self.definition().declared.schedule() == Some("continuous")
    }

    /// Whether a run is in flight.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// The next scheduled tick after now (ms since epoch UTC).
    pub fn next_run_ms(&self) -> Option<i64> {
        let next = self
            .definition()
            .declared
            .cron()?
            .next_after(chrono::Utc::now())?;
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

    /// Marks what was read of it from the store stale.
    fn touch(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl WatcherSlot {
    /// Counts one finished pass.
    fn record_pass(&self, outcome: &Result<PassSummary>) {
        self.update(|s| {
            s.running_since_ms = None;
            match outcome {
                Ok(pass) => {
                    s.runs_succeeded += 1;
                    s.rows += pass.rows;
                    s.reports.applied += pass.applied;
                    s.reports.already_imported += pass.already_imported;
                    s.reports.failed += pass.failed;
                    s.reports.waiting = pass.waiting;
                    s.last_error = None;
                }
                Err(e) => {
                    s.runs_failed += 1;
                    s.last_error = Some(e.chain().to_string());
                }
            }
        });
    }
}

impl TaskSlot {
    fn record(&self, outcome: &Result<RunSummary>) {
        self.touch();
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
                    s.last_error = Some(e.chain().to_string());
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

/// What the service runs, as read from the pipelines and schemas folders.
#[derive(Debug, Clone)]
pub struct Declared {
    /// Tasks and watchers.
    pub pipelines: Pipelines,
    /// The table watchers apply inventory reports to.
    pub inventory_table: TableDef,
}

/// Reads the pipelines folder again (for reload); an error leaves the running set as it is.
pub type Loader = Arc<dyn Fn() -> Result<Declared> + Send + Sync>;

/// What a reload changed (tasks and watchers share one namespace of names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// Tasks and watchers that are new.
    pub added: Vec<String>,
    /// Those that are gone (their runs in flight finish).
    pub removed: Vec<String>,
    /// Those whose definition was read again (runs in flight keep the old one).
    pub updated: Vec<String>,
}

/// The map of one kind of slot.
type Slots<D> = std::sync::RwLock<BTreeMap<String, Arc<Slot<D>>>>;

/// The service: task and watcher slots, the runs in flight, the scheduler.
pub struct Service {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    slots: Slots<Task>,
    watchers: Slots<WatchDef>,
    inventory_table: std::sync::RwLock<TableDef>,
    loader: Loader,
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
            .field(
                "watchers",
                &self.watchers().keys().cloned().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// How a kind of slot is started by the service (delivery runs, watcher passes).
trait Start: Scheduled + Sized {
    /// Starts a run of `slot` unless one is in flight.
    fn start(
        service: &Arc<Service>,
        slot: &Arc<Slot<Self>>,
        trigger: Trigger,
    ) -> std::result::Result<(), NotStarted>;
    /// Starts a continuous slot's loop (only tasks can be continuous).
    fn start_continuous(_service: &Arc<Service>, _slot: &Arc<Slot<Self>>) {}
    /// The service's slots of this kind.
    fn slots_of(service: &Service) -> &Slots<Self>;
}

impl Start for Task {
    fn start(
        service: &Arc<Service>,
        slot: &Arc<TaskSlot>,
        trigger: Trigger,
    ) -> std::result::Result<(), NotStarted> {
        service.start_run(slot, trigger)
    }
    fn start_continuous(service: &Arc<Service>, slot: &Arc<TaskSlot>) {
        service.spawn_follow(slot);
    }
    fn slots_of(service: &Service) -> &Slots<Task> {
        &service.slots
    }
}

impl Start for WatchDef {
    fn start(
        service: &Arc<Service>,
        slot: &Arc<WatcherSlot>,
        trigger: Trigger,
    ) -> std::result::Result<(), NotStarted> {
        service.start_pass(slot, trigger)
    }
    fn slots_of(service: &Service) -> &Slots<WatchDef> {
        &service.watchers
    }
}

/// Definitions for the slots of `declared`.
fn new_slots<D: Scheduled>(declared: BTreeMap<String, D>) -> BTreeMap<String, Definition<D>> {
    declared
        .into_iter()
        .map(|(name, d)| (name, Definition::new(d)))
        .collect()
}

fn snapshot<D: Scheduled>(slots: &Slots<D>) -> BTreeMap<String, Arc<Slot<D>>> {
    slots.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// One slot of a kind, by name (without copying the map, as every API request asks).
fn lookup<D: Scheduled>(slots: &Slots<D>, name: &str) -> Option<Arc<Slot<D>>> {
    slots
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned()
}

impl Service {
    /// A service for the tasks and watchers `loader` reads, over `store`; nothing runs until
    /// [`Service::start`].
    pub fn new(store: Arc<dyn Store>, loader: Loader) -> Result<Arc<Service>> {
        let declared = loader()?;
        let slots: BTreeMap<String, Arc<TaskSlot>> = new_slots(declared.pipelines.tasks)
            .into_iter()
            .map(|(name, d)| (name, Arc::new(Slot::new(d))))
            .collect();
        let watchers: BTreeMap<String, Arc<WatcherSlot>> = new_slots(declared.pipelines.watchers)
            .into_iter()
            .map(|(name, d)| (name, Arc::new(Slot::new(d))))
            .collect();
        let metrics = Arc::new(Metrics::new(
            slots.keys().map(String::as_str),
            watchers.keys().map(String::as_str),
        ));
        Ok(Arc::new(Service {
            store,
            metrics,
            slots: std::sync::RwLock::new(slots),
            watchers: std::sync::RwLock::new(watchers),
            inventory_table: std::sync::RwLock::new(declared.inventory_table),
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
        snapshot(&self.slots)
    }

    /// One task's slot.
    pub fn slot(&self, name: &str) -> Option<Arc<TaskSlot>> {
        lookup(&self.slots, name)
    }

    /// Every watcher slot, by name (a snapshot).
    pub fn watchers(&self) -> BTreeMap<String, Arc<WatcherSlot>> {
        snapshot(&self.watchers)
    }

    /// One watcher's slot.
    pub fn watcher(&self, name: &str) -> Option<Arc<WatcherSlot>> {
        lookup(&self.watchers, name)
    }

    /// Starts ticking the cron tasks and watchers and the continuous tasks' loops.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let mut guard = self.scheduler.lock().await;
        let scheduler = JobScheduler::new()
            .await
            .map_err(|e| Error::store_caused("starting the scheduler", e))?;
        for slot in self.slots().values() {
            self.schedule(&scheduler, slot).await?;
        }
        for slot in self.watchers().values() {
            self.schedule(&scheduler, slot).await?;
        }
        scheduler
            .start()
            .await
            .map_err(|e| Error::store_caused("starting the scheduler", e))?;
        *guard = Some(scheduler);
        Ok(())
    }

    /// Starts what drives `slot`: its continuous loop, or a job at its next scheduled tick.
    async fn schedule<D: Start>(
        self: &Arc<Self>,
        scheduler: &JobScheduler,
        slot: &Arc<Slot<D>>,
    ) -> Result<()> {
        if slot.is_continuous() {
            D::start_continuous(self, slot);
            return Ok(());
        }
        let job = {
            let mut current = slot.job.lock().unwrap_or_else(PoisonError::into_inner);
            let job = tick_job(Arc::downgrade(self), slot, chrono::Utc::now())?;
            *current = job.as_ref().map(Job::guid);
            job
        };
        if let Some(job) = job {
            scheduler
                .add(job)
                .await
                .map_err(|e| Error::store_caused(format!("scheduling {}", slot.name()), e))?;
        }
        Ok(())
    }

    /// Stops what drives `slot` (its job, or its continuous loop after the run in flight).
    async fn unschedule<D: Scheduled>(scheduler: &JobScheduler, slot: &Slot<D>) {
        let job = slot
            .job
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(id) = job {
            if let Err(e) = scheduler.remove(&id).await {
                tracing::warn!(name = %slot.name(), "removing its scheduled job: {e}");
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

    /// Reads the pipelines folder again and applies it: new tasks and watchers start, removed
    /// ones stop (their runs in flight finish), the others take their new definition for
    /// their next run. Any problem in any file (or a schedule the scheduler cannot run) is an
    /// error and changes nothing.
    pub async fn reload(self: &Arc<Self>) -> Result<Reloaded> {
        let loader = Arc::clone(&self.loader);
        let declared = crate::store::blocking(move || loader()).await?;
        let tasks = new_slots(declared.pipelines.tasks);
        let watchers = new_slots(declared.pipelines.watchers);
        let guard = self.scheduler.lock().await;
        let Some(scheduler) = guard.as_ref() else {
            return Err(Error::Conflict("the service is not running".into()));
        };
        let mut done = Reloaded::default();
        self.apply(scheduler, tasks, &mut done).await?;
        self.apply(scheduler, watchers, &mut done).await?;
        *self
            .inventory_table
            .write()
            .unwrap_or_else(PoisonError::into_inner) = declared.inventory_table;
        tracing::info!(added = ?done.added, removed = ?done.removed, updated = ?done.updated, "tasks reloaded");
        Ok(done)
    }

    /// Replaces the slots of one kind by `definitions`, keeping the slots of names that stay.
    async fn apply<D: Start>(
        self: &Arc<Self>,
        scheduler: &JobScheduler,
        definitions: BTreeMap<String, Definition<D>>,
        done: &mut Reloaded,
    ) -> Result<()> {
        let current = snapshot(D::slots_of(self));
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
                    slot.touch();
                    done.updated.push(name.clone());
                    Arc::clone(slot)
                }
                None => {
                    done.added.push(name.clone());
                    Arc::new(Slot::new(definition))
                }
            };
            self.schedule(scheduler, &slot).await?;
            next.insert(name, slot);
        }
        *D::slots_of(self)
            .write()
            .unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
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

    /// Starts a pass of watcher `name` now, unless one is in flight.
    pub fn watch_now(self: &Arc<Self>, name: &str) -> std::result::Result<(), NotStarted> {
        let slot = self.watcher(name).ok_or(NotStarted::Unknown)?;
        self.start_pass(&slot, Trigger::Request)
    }

    /// Marks `slot` running for a run that is about to start, unless the service is stopping
    /// or a run is in flight (a scheduled tick is then skipped and counted).
    fn claim<D: Scheduled>(
        &self,
        slot: &Slot<D>,
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
            let name = slot.name();
            if trigger == Trigger::Schedule {
                slot.update(|s| s.skipped_overlaps += 1);
                self.metrics.record_skip(&name);
                tracing::warn!(name = %name, "tick skipped: the previous run is still going");
            }
            return Err(NotStarted::Busy(format!(
                "{name} is running (a run started at {})",
                rfc3339(since)
            )));
        }
        let now = chrono::Utc::now().timestamp_millis();
        slot.update(|s| {
            s.runs_started += 1;
            s.running_since_ms = Some(now);
        });
        slot.touch();
        Ok(())
    }

    fn start_run(
        self: &Arc<Self>,
        slot: &Arc<TaskSlot>,
        trigger: Trigger,
    ) -> std::result::Result<(), NotStarted> {
        self.claim(slot, trigger)?;
        let (store, slot) = (Arc::clone(&self.store), Arc::clone(slot));
        let metrics = Arc::clone(&self.metrics);
        self.track(async move {
            let clock = std::time::Instant::now();
            let task = slot.task();
            let outcome = run_task(store, Arc::clone(&task), Arc::new(Quiet)).await;
            match &outcome {
                // Another worker on the same store runs it (or just did): not a failure.
                Err(Error::Busy(why)) => {
                    metrics.record_skip(&task.name);
                    tracing::info!(task = %task.name, "not run here: {why}");
                }
                _ => {
                    metrics.record_run(&task.name, &outcome, clock.elapsed().as_secs_f64());
                    match &outcome {
                        Ok(run) => tracing::info!("{}", run.line()),
                        Err(e) => tracing::error!(task = %task.name, "run failed: {}", e.chain()),
                    }
                    slot.record(&outcome);
                }
            }
            slot.running.store(false, Ordering::SeqCst);
        });
        Ok(())
    }

    fn start_pass(
        self: &Arc<Self>,
        slot: &Arc<WatcherSlot>,
        trigger: Trigger,
    ) -> std::result::Result<(), NotStarted> {
        self.claim(slot, trigger)?;
        let (store, slot) = (Arc::clone(&self.store), Arc::clone(slot));
        let metrics = Arc::clone(&self.metrics);
        let table = self
            .inventory_table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.track(async move {
            let clock = std::time::Instant::now();
            let def = slot.declared();
            let outcome = {
                let mut state = slot.state.lock().await;
                watch_pass(&def, table, &mut state, &store, &metrics).await
            };
            metrics.record_pass(&def.name, &outcome, clock.elapsed().as_secs_f64());
            if let Err(e) = &outcome {
                tracing::error!(watcher = %def.name, "pass failed: {}", e.chain());
            }
            slot.record_pass(&outcome);
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
            let name = task.name.clone();
            let on_run = |run: &RunSummary| {
                slot.update(|s| s.runs_started += 1);
                let outcome = Ok(run.clone());
                metrics.record_run(&run.record.task, &outcome, run.seconds);
                slot.record(&outcome);
            };
            // A destination that cannot be opened ends the loop as a failure of `follow` does.
            let delivered = match open_destination_for_runs(&store, &task).await {
                Ok(dest) => follow(store, task, dest, Arc::new(Quiet), stop, on_run)
                    .await
                    .map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = delivered {
                tracing::error!(task = %name, "continuous delivery stopped: {}", e.chain());
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
            for slot in self.watchers().values() {
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

/// One pass of watcher `def`, with the watcher kept in `state` (made anew when its target
/// changed in a reload, or on its first pass); counts imports in `metrics` as they happen.
async fn watch_pass(
    def: &WatchDef,
    table: TableDef,
    state: &mut Option<Watcher>,
    store: &Arc<dyn Store>,
    metrics: &Metrics,
) -> Result<PassSummary> {
    if state.as_ref().map(Watcher::target) != Some(&def.target) {
        *state = Some(Watcher::new(def.target.clone(), table)?);
    }
    let Some(watcher) = state.as_mut() else {
        return Err(Error::store("the watcher was not created"));
    };
    let name = def.name.as_str();
    let mut on_event = |event: WatchEvent<'_>| match event {
        WatchEvent::Waiting(url) => {
            tracing::info!(watcher = %name, "waiting for {url} to complete")
        }
        WatchEvent::Imported { outcome, seconds } => {
            metrics.record_import(name, outcome);
            match outcome {
                ImportOutcome::Applied(r) => tracing::info!(
                    watcher = %name,
                    "imported {}: {} rows ({} inserted, {} updated, {} deleted) in {seconds:.2}s",
                    r.manifest_url, r.rows, r.inserted, r.updated, r.deleted
                ),
                ImportOutcome::AlreadyImported(r) => {
                    tracing::info!(watcher = %name, "already imported {}", r.manifest_url)
                }
            }
        }
        WatchEvent::Failed {
            url,
            error,
            skipped,
        } => {
            metrics.record_import_failure(name);
            let then = if skipped {
                "skipped"
            } else {
                "retried next pass"
            };
            tracing::error!(watcher = %name, "report {url} failed ({then}): {}", error.chain());
        }
    };
    watcher.pass(store, &mut on_event).await
}

/// A one-shot job of the scheduler at `slot`'s first tick after `after` (None: it has no
/// schedule, or its schedule no next time). When it fires, it starts a run and arms
/// the job of the next tick ([`tick`]).
fn tick_job<D: Start>(
    service: Weak<Service>,
    slot: &Arc<Slot<D>>,
    after: DateTime<Utc>,
) -> Result<Option<Job>> {
    let Some(due) = slot.cron().and_then(|c| c.next_after(after)) else {
        return Ok(None);
    };
    let due = due.with_timezone(&Utc);
    let tick_slot = Arc::clone(slot);
    let failed = |e: tokio_cron_scheduler::JobSchedulerError| {
        Error::store_caused(format!("scheduling {} at {due}", slot.name()), e)
    };
    let mut job = Job::new_one_shot_async(Duration::ZERO, move |id, scheduler| {
        let (service, slot) = (service.clone(), Arc::clone(&tick_slot));
        Box::pin(tick(service, slot, id, due, scheduler))
    })
    .map_err(failed)?;
    // The job fires at the first of the scheduler's checks (twice a second) at or after
    // `next_tick`, a whole second since epoch; `due` is one.
    let mut data = job.job_data().map_err(failed)?;
    data.next_tick = u64::try_from(due.timestamp())
        .map_err(|_| Error::store(format!("scheduling {}: {due} is before 1970", slot.name())))?;
    job.set_job_data(data).map_err(failed)?;
    Ok(Some(job))
}

/// The job `id` of `slot`'s tick at `due` fired: unless it is no longer the slot's job
/// (removed by a reload or shutdown), arm the next tick's job, then start a run.
async fn tick<D: Start>(
    service: Weak<Service>,
    slot: Arc<Slot<D>>,
    id: uuid::Uuid,
    due: DateTime<Utc>,
    scheduler: JobScheduler,
) {
    let Some(running) = service.upgrade() else {
        return;
    };
    let next = {
        let mut current = slot.job.lock().unwrap_or_else(PoisonError::into_inner);
        if *current != Some(id) {
            return;
        }
        // From the tick, or from now when the tick fired late (missed ticks are not made up).
        let next = tick_job(service, &slot, due.max(Utc::now()));
        *current = next.as_ref().ok().and_then(|j| j.as_ref().map(Job::guid));
        next
    };
    let _ = D::start(&running, &slot, Trigger::Schedule);
    let added = match next {
        Ok(Some(job)) => scheduler
            .add(job)
            .await
            .map(|_| ())
            .map_err(|e| Error::store_caused(format!("scheduling {}", slot.name()), e)),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = added {
        tracing::error!(name = %slot.name(), "its schedule stopped: {}", e.chain());
    }
}

/// `ms` since epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// A loader that declares no task and no watcher (tests of the machinery).
#[cfg(test)]
pub(crate) fn nothing_declared() -> Loader {
    Arc::new(|| {
        let mut tables = crate::model::schema::load_tables(Path::new("no-schemas-here"))?;
        Ok(Declared {
            pipelines: Pipelines::default(),
            inventory_table: tables
                .remove("object_inventory")
                .ok_or_else(|| Error::NotFound("the built-in inventory table".into()))?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finished_runs_are_forgotten_and_shutdown_waits_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(crate::store::SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let service = Service::new(store, nothing_declared()).unwrap();
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
            nothing_declared(),
        )
        .unwrap();
        service.track(tokio::time::sleep(Duration::from_millis(20)));
        assert_eq!(service.shutdown(Duration::from_secs(5)).await, 0);
    }
}
