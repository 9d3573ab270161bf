//! The service's Prometheus metrics (`GET /metrics`, OpenMetrics text format, encoded by the
//! `prometheus-client` crate). Per task (label `task`):
//!
//! - `lakeport_rows_delivered_total`, `lakeport_objects_written_total`,
//!   `lakeport_bytes_written_total`: what succeeded runs delivered since the service started;
//! - `lakeport_dirty_rows_total{reason}`: dirty rows by reason;
//! - `lakeport_runs_total{result="succeeded"|"failed"}` and
//!   `lakeport_run_duration_seconds` (histogram, 10 ms to about 5.5 h);
//! - `lakeport_skipped_overlaps_total`: scheduled ticks skipped because a run was going;
//! - `lakeport_last_success_timestamp_seconds`, `lakeport_lag_seconds`, `lakeport_lag_rows`:
//!   read from the store at each scrape (the last success among the task's last 100 runs; the
//!   age of the oldest undelivered change, 0 when none; the changes behind the checkpoint).

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
}

fn task(name: &str) -> TaskLabel {
    TaskLabel {
        task: name.to_string(),
    }
}

impl Metrics {
    /// The metrics of a service running `tasks`: every per-task series exists from the start
    /// (at 0), so dashboards see a task before its first run.
    pub fn new<'a>(tasks: impl IntoIterator<Item = &'a str>) -> Metrics {
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

    /// Counts a skipped tick of `name`.
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
        encode(&mut out, &self.registry).map_err(|e| Error::Encode(format!("metrics: {e}")))?;
        Ok(out)
    }
}
