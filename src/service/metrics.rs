//! The service's Prometheus metrics (`GET /metrics`, OpenMetrics text format, encoded by the
//! `prometheus-client` crate). Per task (label `task`):
//!
//! - `lakeport_rows_delivered_total`, `lakeport_objects_written_total`,
//!   `lakeport_bytes_written_total`: what succeeded runs delivered since the service started;
//! - `lakeport_dirty_rows_total{reason}`: dirty rows by reason;
//! - `lakeport_runs_total{result="succeeded"|"failed"}` and
//!   `lakeport_run_duration_seconds` (histogram, 10 ms to about 5.5 h);
//! - `lakeport_skipped_overlaps_total`: ticks skipped because a run was going, in this process
//!   or, with several workers on one store, in another one (which holds the task's lease);
//! - `lakeport_last_success_timestamp_seconds`, `lakeport_lag_seconds`, `lakeport_lag_rows`:
//!   read from the store at each scrape (the last success among the task's last 100 runs; the
//!   age of the oldest undelivered change, 0 when none; the changes behind the checkpoint).
//!
//! Per inventory watcher (label `watcher`):
//!
//! - `lakeport_inventory_imports_total{outcome="applied"|"already_imported"|"failed"}`:
//!   reports its passes handled;
//! - `lakeport_inventory_rows_total`: rows of the reports it applied;
//! - `lakeport_inventory_passes_total{result}` and `lakeport_inventory_pass_duration_seconds`;
//! - `lakeport_inventory_reports_waiting`: reports seen but not complete at the last pass;
//! - `lakeport_inventory_last_import_timestamp_seconds`: when it last applied a report.
//!
//! Skipped ticks of watchers count in `lakeport_skipped_overlaps_total` under their name
//! (tasks and watchers share one namespace of names).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::delivery::status::TaskStatus;
use crate::delivery::RunSummary;
use crate::error::{Error, Result};
use crate::inventory::watch::PassSummary;
use crate::store::ImportOutcome;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirtyLabel {
    task: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    task: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatcherLabel {
    watcher: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ImportLabel {
    watcher: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PassLabel {
    watcher: String,
    result: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 21))
}

/// Every metric of the service.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rows: Family<TaskLabel, Counter>,
    objects: Family<TaskLabel, Counter>,
    bytes: Family<TaskLabel, Counter>,
    dirty: Family<DirtyLabel, Counter>,
    runs: Family<ResultLabel, Counter>,
    duration: Family<TaskLabel, Histogram, fn() -> Histogram>,
    skipped: Family<TaskLabel, Counter>,
    last_success: Family<TaskLabel, FloatGauge>,
    lag_seconds: Family<TaskLabel, FloatGauge>,
    lag_rows: Family<TaskLabel, Gauge>,
    imports: Family<ImportLabel, Counter>,
    import_rows: Family<WatcherLabel, Counter>,
    passes: Family<PassLabel, Counter>,
    pass_duration: Family<WatcherLabel, Histogram, fn() -> Histogram>,
    waiting: Family<WatcherLabel, Gauge>,
    last_import: Family<WatcherLabel, FloatGauge>,
}

fn watcher(name: &str) -> WatcherLabel {
    WatcherLabel {
        watcher: name.to_string(),
    }
}

fn import_label(name: &str, outcome: &str) -> ImportLabel {
    ImportLabel {
        watcher: name.to_string(),
        outcome: outcome.to_string(),
    }
}

fn pass_label(name: &str, result: &str) -> PassLabel {
    PassLabel {
        watcher: name.to_string(),
        result: result.to_string(),
    }
}

fn task(name: &str) -> TaskLabel {
    TaskLabel {
        task: name.to_string(),
    }
}

impl Metrics {
    /// The metrics of a service running `tasks` and `watchers`: every per-task and
    /// per-watcher series exists from the start (at 0), so dashboards see them before their
    /// first run.
    pub fn new<'a>(
        tasks: impl IntoIterator<Item = &'a str>,
        watchers: impl IntoIterator<Item = &'a str>,
    ) -> Metrics {
        let m = Metrics {
            rows: Family::default(),
            objects: Family::default(),
            bytes: Family::default(),
            dirty: Family::default(),
            runs: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            skipped: Family::default(),
            last_success: Family::default(),
            lag_seconds: Family::default(),
            lag_rows: Family::default(),
            imports: Family::default(),
            import_rows: Family::default(),
            passes: Family::default(),
            pass_duration: Family::new_with_constructor(duration_histogram),
            waiting: Family::default(),
            last_import: Family::default(),
            registry: Registry::default(),
        };
        let mut registry = Registry::default();
        registry.register(
            "lakeport_rows_delivered",
            "Rows delivered by succeeded runs",
            m.rows.clone(),
        );
        registry.register(
            "lakeport_objects_written",
            "Objects written by succeeded runs",
            m.objects.clone(),
        );
        registry.register(
            "lakeport_bytes_written",
            "Bytes written by succeeded runs",
            m.bytes.clone(),
        );
        registry.register(
            "lakeport_dirty_rows",
            "Rows not delivered because a value did not fit, by reason",
            m.dirty.clone(),
        );
        registry.register("lakeport_runs", "Runs by result", m.runs.clone());
        registry.register(
            "lakeport_run_duration_seconds",
            "Wall time of runs",
            m.duration.clone(),
        );
        registry.register(
            "lakeport_skipped_overlaps",
            "Scheduled ticks skipped because the task's previous run was still going",
            m.skipped.clone(),
        );
        registry.register(
            "lakeport_last_success_timestamp_seconds",
            "When the task's last succeeded run ended (Unix time)",
            m.last_success.clone(),
        );
        registry.register(
            "lakeport_lag_seconds",
            "Age of the oldest change not yet delivered (0 when none)",
            m.lag_seconds.clone(),
        );
        registry.register(
            "lakeport_lag_rows",
            "Changes behind the task's checkpoint",
            m.lag_rows.clone(),
        );
        registry.register(
            "lakeport_inventory_imports",
            "Inventory reports handled by watchers, by outcome",
            m.imports.clone(),
        );
        registry.register(
            "lakeport_inventory_rows",
            "Rows of the inventory reports watchers applied",
            m.import_rows.clone(),
        );
        registry.register(
            "lakeport_inventory_passes",
            "Watcher passes by result",
            m.passes.clone(),
        );
        registry.register(
            "lakeport_inventory_pass_duration_seconds",
            "Wall time of watcher passes",
            m.pass_duration.clone(),
        );
        registry.register(
            "lakeport_inventory_reports_waiting",
            "Reports seen but not complete yet at the watcher's last pass",
            m.waiting.clone(),
        );
        registry.register(
            "lakeport_inventory_last_import_timestamp_seconds",
            "When the watcher last applied a report (Unix time)",
            m.last_import.clone(),
        );
        for name in watchers {
            let w = watcher(name);
            drop(m.import_rows.get_or_create(&w));
            drop(m.waiting.get_or_create(&w));
            drop(m.pass_duration.get_or_create(&w));
            drop(m.skipped.get_or_create(&task(name)));
            for outcome in ["applied", "already_imported", "failed"] {
                drop(m.imports.get_or_create(&import_label(name, outcome)));
            }
            for result in ["succeeded", "failed"] {
                drop(m.passes.get_or_create(&pass_label(name, result)));
            }
        }
        for name in tasks {
            let t = task(name);
            // Creating a series is all that is wanted here (the guard is dropped at once).
            drop(m.rows.get_or_create(&t));
            drop(m.objects.get_or_create(&t));
            drop(m.bytes.get_or_create(&t));
            drop(m.skipped.get_or_create(&t));
            drop(m.duration.get_or_create(&t));
            for result in ["succeeded", "failed"] {
                drop(m.runs.get_or_create(&ResultLabel {
                    task: name.to_string(),
                    result: result.to_string(),
                }));
            }
        }
        Metrics { registry, ..m }
    }

    /// Counts one finished run of `name` that took `seconds`.
    pub fn record_run(&self, name: &str, outcome: &Result<RunSummary>, seconds: f64) {
        let t = task(name);
        self.duration.get_or_create(&t).observe(seconds);
        let result = if outcome.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        self.runs
            .get_or_create(&ResultLabel {
                task: name.to_string(),
                result: result.to_string(),
            })
            .inc();
        if let Ok(run) = outcome {
            let r = &run.record;
            self.rows.get_or_create(&t).inc_by(r.rows);
            self.objects
                .get_or_create(&t)
                .inc_by(r.objects.len() as u64);
            self.bytes.get_or_create(&t).inc_by(r.bytes);
            for (reason, n) in &r.dirty {
                self.dirty
                    .get_or_create(&DirtyLabel {
                        task: name.to_string(),
                        reason: reason.clone(),
                    })
                    .inc_by(*n);
            }
        }
    }

    /// Counts one report a pass of watcher `name` handled.
    pub fn record_import(&self, name: &str, outcome: &ImportOutcome) {
        match outcome {
            ImportOutcome::Applied(r) => {
                self.imports
                    .get_or_create(&import_label(name, "applied"))
                    .inc();
                self.import_rows
                    .get_or_create(&watcher(name))
                    .inc_by(r.rows);
                self.last_import
                    .get_or_create(&watcher(name))
                    .set(r.imported_ms as f64 / 1000.0);
            }
            ImportOutcome::AlreadyImported(_) => {
                self.imports
                    .get_or_create(&import_label(name, "already_imported"))
                    .inc();
            }
        }
    }

    /// Counts one report of watcher `name` that failed.
    pub fn record_import_failure(&self, name: &str) {
        self.imports
            .get_or_create(&import_label(name, "failed"))
            .inc();
    }

    /// Counts one finished pass of watcher `name` that took `seconds`.
    pub fn record_pass(&self, name: &str, outcome: &Result<PassSummary>, seconds: f64) {
        self.pass_duration
            .get_or_create(&watcher(name))
            .observe(seconds);
        let result = if outcome.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        self.passes.get_or_create(&pass_label(name, result)).inc();
        if let Ok(pass) = outcome {
            self.waiting
                .get_or_create(&watcher(name))
                .set(i64::try_from(pass.waiting).unwrap_or(i64::MAX));
        }
    }

    /// Counts a skipped tick of `name` (a task or a watcher).
    pub fn record_skip(&self, name: &str) {
        self.skipped.get_or_create(&task(name)).inc();
    }

    /// Sets the gauges read from the store for one task.
    pub fn set_status(&self, status: &TaskStatus) {
        let t = task(&status.task);
        if let Some(ms) = status.last_success_ms {
            self.last_success.get_or_create(&t).set(ms as f64 / 1000.0);
        }
        self.lag_seconds
            .get_or_create(&t)
            .set(status.lag_seconds.unwrap_or(0.0));
        let behind = status.lag.map_or(0, |l| l.rows_behind);
        self.lag_rows
            .get_or_create(&t)
            .set(i64::try_from(behind).unwrap_or(i64::MAX));
    }

    /// The metrics as OpenMetrics text.
    pub fn render(&self) -> Result<String> {
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(|e| Error::encode_caused("metrics", e))?;
        Ok(out)
    }
}
