//! `lakeport ddl <task>`: the task's `CREATE EXTERNAL TABLE` and one `ADD PARTITION` per
//! partition it has in the lake, separated by `;` and a newline, ready for Hive or Spark SQL.
//! With `--new-partitions`, only the `ADD PARTITION`s of the partitions one run added (the
//! newest succeeded run, or `--run ID`), as its manifest names them.

use crate::cli::{print, Context};
use crate::delivery::ddl::{live_ddl, partition_statements, terminated};
use crate::error::{Error, Result};
use crate::objstore::destination::Destination;
use crate::store::{blocking, RunStatus};

/// Arguments of `ddl`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task name.
    task: String,
    /// Only the partitions a run added (ADD PARTITION statements; none printed when it added
    /// none).
    #[arg(long)]
    new_partitions: bool,
    /// With --new-partitions: this run instead of the newest succeeded one.
    #[arg(long, requires = "new_partitions")]
    run: Option<u64>,
}

/// How many of a task's newest runs `--new-partitions` looks through for a succeeded one.
const RUNS_SEARCHED: usize = 1000;

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let task = ctx.task(&args.task)?;
    let store = ctx.store_to_read().await?;
    let name = task.name.clone();
    let text: Vec<String> = if args.new_partitions {
        let dest = Destination::parse(&task.destination)?;
        let wanted = args.run;
        let runs = blocking(move || store.runs(Some(&name), RUNS_SEARCHED)).await?;
        let run = runs
            .into_iter()
            .find(|r| match wanted {
                Some(id) => r.run_id == id,
                None => r.status == RunStatus::Succeeded,
            })
            .ok_or_else(|| {
                Error::NotFound(match wanted {
                    Some(id) => format!("task {}: no run {id} among its newest runs", task.name),
                    None => format!("task {}: no succeeded run yet", task.name),
                })
            })?;
        if run.status != RunStatus::Succeeded {
            return Err(Error::Conflict(format!(
                "task {}: run {} did not succeed ({}); its partitions are not in the lake",
                task.name,
                run.run_id,
                run.status.as_str()
            )));
        }
        terminated(partition_statements(&task, dest.url(), &run.new_partitions))
    } else {
        live_ddl(&store, &task).await?
    };
    print(&text.join("\n"))
}
