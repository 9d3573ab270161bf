//! What the service shows of its tasks and watchers: a task's status from the store with
//! the slot's state and counters ([`TaskView`]), a watcher's settings and counters
//! ([`WatcherView`]). The JSON API ([`super::http`]) returns them and the status page
//! ([`super::page`]) renders them, so both always say the same.

use std::sync::Arc;

use serde::Serialize;

use crate::config::schedule::rfc3339_local;
use crate::delivery::status::{TaskStatus, NEXT_RUNS};
use crate::error::Error;
use crate::service::{rfc3339, ReportCounts, Service, SlotStats, TaskSlot, WatcherSlot};

/// One task as the API shows it (and the status page renders it).
#[derive(Debug, Serialize)]
pub(crate) struct TaskView {
    #[serde(flatten)]
    pub(crate) status: TaskStatus,
    /// `idle`, `running` or `failing` (the last run failed).
    pub(crate) state: &'static str,
    /// The error of the last run, when it failed.
    pub(crate) error: Option<String>,
    pub(crate) running: bool,
    pub(crate) continuous: bool,
    pub(crate) next_run: Option<String>,
    pub(crate) next_run_ms: Option<i64>,
    pub(crate) last_success: Option<String>,
    /// Counters since the service started.
    pub(crate) service: SlotStats,
}

/// `slot`'s task as the API shows it: the store's status plus the slot's state and counters.
pub(crate) async fn view(service: &Arc<Service>, slot: &Arc<TaskSlot>) -> Result<TaskView, Error> {
    let status = slot.status(service.store()).await?;
    let stats = slot.stats();
    let running = !slot.is_continuous() && slot.is_running();
    let last_failed = status
        .last_run
        .as_ref()
        .is_some_and(|r| r.status == crate::store::RunStatus::Failed);
    let error = status
        .last_run
        .as_ref()
        .filter(|_| last_failed)
        .and_then(|r| r.error.clone())
        .or_else(|| stats.last_error.clone());
    let state = if running {
        "running"
    } else if error.is_some() {
        "failing"
    } else {
        "idle"
    };
    let next_run_ms = slot.next_run_ms();
    Ok(TaskView {
        state,
        error,
        running,
        continuous: slot.is_continuous(),
        next_run: next_run_ms.map(rfc3339),
        next_run_ms,
        last_success: status.last_success_ms.map(rfc3339),
        status,
        service: stats,
    })
}

/// One watcher as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct WatcherView {
    pub(crate) watcher: String,
    pub(crate) root: String,
    pub(crate) format: Option<&'static str>,
    pub(crate) scope_prefix: String,
    pub(crate) schedule: String,
    /// The IANA timezone its schedule is read in.
    pub(crate) schedule_timezone: String,
    /// Its next passes, RFC 3339 in that zone.
    pub(crate) next_runs: Vec<String>,
    /// `idle`, `running` or `failing` (the last pass failed).
    pub(crate) state: &'static str,
    pub(crate) error: Option<String>,
    pub(crate) running: bool,
    pub(crate) next_run: Option<String>,
    pub(crate) next_run_ms: Option<i64>,
    /// What its passes did with reports since the service started.
    pub(crate) reports: ReportCounts,
    /// Counters since the service started (`runs_*` count passes, `rows` the rows of the
    /// reports applied).
    pub(crate) service: SlotStats,
}

pub(crate) fn watcher_view(slot: &WatcherSlot) -> WatcherView {
    let def = slot.declared();
    let stats = slot.stats();
    let running = slot.is_running();
    let state = if running {
        "running"
    } else if stats.last_error.is_some() {
        "failing"
    } else {
        "idle"
    };
    WatcherView {
        watcher: def.name.clone(),
        root: def.target.root.clone(),
        format: def.target.format.map(|f| f.as_str()),
        scope_prefix: def.target.scope_prefix.clone(),
        schedule: def.schedule.clone(),
        schedule_timezone: def.cron.zone().name().to_string(),
        next_runs: def
            .cron
            .next_times(chrono::Utc::now(), NEXT_RUNS)
            .iter()
            .map(rfc3339_local)
            .collect(),
        state,
        error: stats.last_error.clone(),
        running,
        next_run: slot.next_run_ms().map(rfc3339),
        next_run_ms: slot.next_run_ms(),
        reports: stats.reports,
        service: stats,
    }
}
