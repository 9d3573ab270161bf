//! `lakeport run <task>`: one delivery run, with a progress bar on a terminal and a one-line
//! summary at the end; or, with `--follow` (the default for a task with `schedule:
//! continuous`), continuous delivery until SIGINT or SIGTERM, one summary line per run that
//! delivered something. The first signal lets a run in flight finish; a second exits at once
//! (exit 130), which is safe: the next run takes the interrupted one over.

use std::sync::Arc;

use indicatif::{HumanCount, ProgressBar, ProgressState, ProgressStyle};

use tokio::sync::watch;

use crate::cli::{print, stop_signal, Context};
use crate::delivery::{follow, open_destination_for_runs, run_task, Quiet, RunObserver, Task};
use crate::error::Result;
use crate::store::Store;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task name (from the pipelines folder).
    task: String,
    /// Keep delivering changes as they come (incremental and differential tasks) until
    /// SIGINT or SIGTERM; the task key max_delay bounds how long a change waits.
    #[arg(long, conflicts_with = "once")]
    follow: bool,
    /// One run even when the task's schedule is continuous.
    #[arg(long)]
    once: bool,
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
struct Bar(ProgressBar);

impl RunObserver for Bar {
    fn planned(&self, rows: u64) {
        self.0.set_length(rows);
    }
    fn delivered(&self, rows: u64) {
        self.0.inc(rows);
        // The planned rows may have been an estimate below what the run reads.
        if self.0.length().is_some_and(|len| self.0.position() > len) {
            self.0.set_length(self.0.position());
        }
    }
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let task = ctx.task(&args.task)?;
    let store = ctx.store_for(&task).await?;
    let continuous = task.schedule.as_deref() == Some("continuous");
    if args.follow || (continuous && !args.once) {
        return follow_task(store, task).await;
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} rows ({rate} rows/s, eta {eta})",
    );
    if let Ok(style) = style {
        let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}", HumanCount(state.per_sec() as u64));
        };
        bar.set_style(style.with_key("rate", rate).progress_chars("=> "));
    }
    bar.set_message(task.name.clone());
    let observer = Arc::new(Bar(bar.clone()));
    let result = run_task(store, task, observer).await;
    bar.finish_and_clear();
    let summary = result?;
    for path in &summary.dirty_objects {
        tracing::warn!("dirty rows written to {path}");
    }
    print(&summary.line())
}

/// `run --follow`: continuous delivery until a signal.
async fn follow_task(store: Arc<dyn Store>, task: Arc<Task>) -> Result<()> {
    let dest = open_destination_for_runs(&store, &task).await?;
    let (stop_tx, stop) = watch::channel(false);
    let signals = tokio::spawn(async move {
        stop_signal().await;
        tracing::warn!(
            "stopping: no new runs; a run in flight finishes first (signal again to stop at once)"
        );
        let _ = stop_tx.send(true);
        stop_signal().await;
        eprintln!("stopped at once; the next run of the task takes this one over");
        std::process::exit(130);
    });
    let outcome = follow(
        store,
        Arc::clone(&task),
        dest,
        Arc::new(Quiet),
        stop,
        |run| {
            if let Err(e) = print(&run.line()) {
                tracing::warn!("cannot print a run summary: {}", e.chain());
            }
        },
    )
    .await;
    signals.abort();
    let summary = outcome?;
    print(&format!(
        "{}: stopped after {} runs: {} rows, {} objects ({} failed runs retried)",
        task.name, summary.runs, summary.rows, summary.objects, summary.failed_runs
    ))
}
