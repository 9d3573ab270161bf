//! `lakeport status [task]`: per task, its schedule with the timezone it is read in and its
//! next three runs, the last run (status, rows, objects, bytes, dirty rows by reason, error),
//! what is live in the lake and the lag (checkpoint, the source table's newest `_seq`, rows
//! behind, age of the oldest undelivered change); without a task, also the newest inventory
//! imports (reports and bucket listings).

use std::sync::Arc;

use serde::Serialize;

use crate::cli::inventory::{scope, show_ms};
use crate::cli::{print, to_json, Context};
use crate::delivery::status::{task_status, TaskStatus};
use crate::delivery::Task;
use crate::error::Result;
use crate::store::blocking;
use crate::store::ImportRecord;

/// Import records `status` shows (newest first).
const IMPORTS_SHOWN: usize = 20;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this task.
    task: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct StatusReport {
    tasks: Vec<TaskStatus>,
    imports: Vec<ImportRecord>,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let selected: Vec<Arc<Task>> = match &args.task {
        Some(name) => vec![ctx.task(name)?],
        None => ctx.tasks()?.into_values().map(Arc::new).collect(),
    };
    let store = ctx.store_to_read().await?;
    let imports = if args.task.is_none() {
        let store = store.clone();
        blocking(move || store.imports(IMPORTS_SHOWN)).await?
    } else {
        Vec::new()
    };
    let mut report = StatusReport {
        tasks: Vec::new(),
        imports,
    };
    let now = chrono::Utc::now().timestamp_millis();
    for task in selected {
        let (store, task) = (store.clone(), task.clone());
        report
            .tasks
            .push(blocking(move || task_status(store.as_ref(), &task, now)).await?);
    }
    if args.json {
        return print(&to_json(&report)?);
    }
    let mut lines = Vec::new();
    for t in &report.tasks {
        lines.push(format!("{} ({})", t.task, t.mode));
        lines.push(match (&t.schedule, &t.schedule_timezone) {
            (None, _) => "  schedule: none (runs when asked)".to_string(),
            (Some(s), None) => format!("  schedule: {s}"),
            (Some(s), Some(zone)) if t.next_runs.is_empty() => {
                format!("  schedule: {s} in {zone}, no next run")
            }
            (Some(s), Some(zone)) => format!(
                "  schedule: {s} in {zone}, next runs {}",
                t.next_runs.join(", ")
            ),
        });
        match &t.last_run {
            None => lines.push("  never ran".to_string()),
            Some(r) => {
                let status = r.status.as_str();
                let when = show_ms(r.started_ms);
                let secs = r
                    .ended_ms
                    .map(|e| (e - r.started_ms) as f64 / 1000.0)
                    .unwrap_or(0.0);
                lines.push(format!(
                    "  last run {} {status} at {when} in {secs:.2}s: {} rows, {} objects, {} bytes, {} partitions, seq {}",
                    r.run_id,
                    r.rows,
                    r.objects.len(),
                    r.bytes,
                    r.partitions().len(),
                    r.seq_to
                ));
                if !r.dirty.is_empty() {
                    let reasons: Vec<String> =
                        r.dirty.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    lines.push(format!(
                        "  dirty rows: {} ({})",
                        r.dirty_rows(),
                        reasons.join(", ")
                    ));
                }
                if let Some(e) = &r.error {
                    lines.push(format!("  error: {e}"));
                }
            }
        }
        lines.push(format!(
            "  live: {} objects in {} partitions",
            t.live_objects, t.live_partitions
        ));
        lines.push(match (&t.lag, t.lag_seconds) {
            (None, _) => format!(
                "  lag: checkpoint seq {}, source table not in the store yet",
                t.checkpoint
            ),
            (Some(l), Some(age)) => format!(
                "  lag: checkpoint seq {}, table at seq {}, {} rows behind, oldest undelivered change {age:.1}s old",
                t.checkpoint, l.newest_seq, l.rows_behind
            ),
            (Some(l), None) => format!(
                "  lag: checkpoint seq {}, table at seq {}, up to date",
                t.checkpoint, l.newest_seq
            ),
        });
    }
    if !report.imports.is_empty() {
        lines.push(format!("imports (newest {} at most)", IMPORTS_SHOWN));
        for r in &report.imports {
            lines.push(format!(
                "  import {} at {}: {} {} ({}, created {}): {} rows, {} inserted, {} updated, {} deleted, {} unchanged in {:.2}s, seq {}",
                r.import_id,
                show_ms(r.imported_ms),
                r.provider,
                r.manifest_url,
                scope(r),
                show_ms(r.created_ms),
                r.rows,
                r.inserted,
                r.updated,
                r.deleted,
                r.unchanged,
                r.duration_ms as f64 / 1000.0,
                r.seq
            ));
        }
    }
    print(&lines.join("\n"))
}
