//! `lakeport ddl <task>`: the task's `CREATE EXTERNAL TABLE` and one `ADD PARTITION` per
//! partition it has in the lake, separated by `;` and a newline, ready for Hive or Spark SQL.

use crate::cli::{print, Context};
use crate::delivery::ddl::statements;
use crate::error::Result;
use crate::sink::destination::Destination;
use crate::store::blocking;

/// Arguments of `ddl`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task name.
    task: String,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let task = ctx.task(&args.task)?;
    let store = ctx.store().await?;
    let name = task.name.clone();
    let state = blocking(move || store.task_state(&name)).await?;
    let partitions: Vec<String> = state
        .map(|s| s.live_objects.into_iter().map(|o| o.partition).collect())
        .unwrap_or_default();
    let dest = Destination::parse(&task.destination)?;
    let text: Vec<String> = statements(&task, dest.url(), &partitions)
        .into_iter()
        .map(|s| format!("{s};"))
        .collect();
    print(&text.join("\n"))
}
