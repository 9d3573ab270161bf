//! `lakeport claim <task> [--force]`: makes this store the owner of the task's destination,
//! the deliberate way to move a task to another store (see [`crate::delivery::owner`]). Without
//! `--force` it claims only a destination no store has claimed; with it, it takes one from the
//! store that owns it, recording that store in the new marker's `moved_from`.

use crate::cli::{print, to_json, Context};
use crate::delivery::owner::claim;
use crate::error::Result;

/// Arguments of `claim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task name.
    task: String,
    /// Take the destination from the store that owns it (stop that store's runs first).
    #[arg(long)]
    force: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let task = ctx.task(&args.task)?;
    let store = ctx.store_for(&task).await?;
    let dest = task.open_destination()?;
    let claimed = claim(&store, &task, &dest, args.force).await?;
    if args.json {
        return print(&to_json(&claimed)?);
    }
    let m = &claimed.marker;
    if claimed.already_owned {
        return print(&format!(
            "{}: {} already belongs to this store ({}, store {})",
            claimed.task,
            dest.url(),
            m.store,
            m.store_id
        ));
    }
    let mut text = format!(
        "{}: {} now belongs to this store ({}, store {})",
        claimed.task,
        dest.url(),
        m.store,
        m.store_id
    );
    if let Some(previous) = &m.moved_from {
        text.push_str(&format!(
            "; it belonged to store {} ({})",
            previous.store_id, previous.store
        ));
    }
    if claimed.adopted_objects > 0 || claimed.moved_manifests > 0 {
        text.push_str(&format!(
            "\n{} objects found there are this store's until its next run of the task, which \
             delivers everything the store holds and then removes them; {} run manifests \
             moved under _lakeport/{}/previous/",
            claimed.adopted_objects, claimed.moved_manifests, claimed.task
        ));
    }
    print(&text)
}
