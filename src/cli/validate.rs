//! `lakeport validate`: check every table declaration, delivery schema, task file and watcher
//! file, and
//! report every problem at once (exit 2), or a one-line summary.

use crate::cli::{print, Context};
use crate::config::load_pipelines;
use crate::error::{Error, Result};
use crate::store::schema::read_tables;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub(crate) fn run(ctx: &Context, _args: Args) -> Result<()> {
    let (tables, mut problems) = read_tables(ctx.schemas()?)?;
    let declared = match load_pipelines(ctx.pipelines()?, &tables) {
        Ok(declared) => Some(declared),
        Err(Error::InvalidConfig(text)) => {
            problems.extend(text.lines().map(str::to_string));
            None
        }
        Err(e) => return Err(e),
    };
    match declared {
        Some(declared) if problems.is_empty() => print(&format!(
            "ok: {} tasks, {} watchers, {} tables",
            declared.tasks.len(),
            declared.watchers.len(),
            tables.len()
        )),
        _ => Err(Error::InvalidConfig(problems.join("\n"))),
    }
}
