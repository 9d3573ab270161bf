//! `lakeport validate`: check every table declaration, delivery schema and task file, and
//! report every problem at once (exit 2), or a one-line summary.

use crate::cli::{print, Context};
use crate::delivery::load_tasks;
use crate::error::{Error, Result};
use crate::store::schema::read_tables;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub(crate) fn run(ctx: &Context, _args: Args) -> Result<()> {
    let (tables, mut problems) = read_tables(&ctx.schemas)?;
    let tasks = match load_tasks(&ctx.pipelines, &tables) {
        Ok(tasks) => Some(tasks),
        Err(Error::InvalidConfig(text)) => {
            problems.extend(text.lines().map(str::to_string));
            None
        }
        Err(e) => return Err(e),
    };
    match tasks {
        Some(tasks) if problems.is_empty() => print(&format!(
            "ok: {} tasks, {} tables",
            tasks.len(),
            tables.len()
        )),
        _ => Err(Error::InvalidConfig(problems.join("\n"))),
    }
}
