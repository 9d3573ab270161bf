//! `lakeport validate`: check every table declaration, delivery schema, task file and watcher
//! file, and
//! report every problem at once (exit 2), or a one-line summary.

use crate::cli::{print, Context};
use crate::error::Result;
use crate::pipelines::load_project;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub(crate) fn run(ctx: &Context, _args: Args) -> Result<()> {
    let (tables, declared) = load_project(ctx.pipelines()?, ctx.schemas()?)?;
    print(&format!(
        "ok: {} tasks, {} watchers, {} tables",
        declared.tasks.len(),
        declared.watchers.len(),
        tables.len()
    ))
}
