//! `lakeport run <task>`: one delivery run, with a progress bar on a terminal and a one-line
//! summary at the end.

use std::sync::Arc;

use indicatif::{HumanCount, ProgressBar, ProgressState, ProgressStyle};

use crate::cli::{print, Context};
use crate::delivery::{run_task, RunObserver};
use crate::error::Result;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task name (from the pipelines folder).
    task: String,
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
struct Bar(ProgressBar);

impl RunObserver for Bar {
    fn planned(&self, rows: u64) {
        self.0.set_length(rows);
    }
    fn delivered(&self, rows: u64) {
        self.0.inc(rows);
    }
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let task = ctx.task(&args.task)?;
    let store = ctx.store().await?;
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
