//! `lakeport store compact`: purges tombstones every task that delivers deletes has delivered
//! past (see [`crate::delivery::compact`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::{print, to_json, Context};
use crate::delivery::compact::{delivers_deletes, purge_horizons};
use crate::delivery::owner::ensure_owned;
use crate::error::Result;
use crate::store::blocking;

/// Arguments of `store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Purge the tombstones that no task still needs to deliver.
    Compact(CompactArgs),
}

/// Arguments of `store compact`.
#[derive(Debug, clap::Args)]
struct CompactArgs {
    /// Only this table (default: every table).
    #[arg(long)]
    table: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// What compaction did to one table.
#[derive(Debug, Serialize)]
struct Compacted {
    table: String,
    /// Tombstones with `_seq` up to this were purged (null: all of them).
    up_to_seq: Option<u64>,
    /// The task whose checkpoint held the rest back.
    held_by: Option<String>,
    purged: u64,
    tombstones_left: u64,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let Action::Compact(args) = args.action;
    let tasks = ctx.tasks()?;
    let store = ctx.store().await?;
    // The checkpoints that hold tombstones back must be this store's deliveries: a task whose
    // destination another store owns refuses compaction before anything is purged.
    for task in tasks.values().filter(|t| delivers_deletes(t)) {
        let dest = task.open_destination()?;
        ensure_owned(&store, task, &dest).await?;
    }
    let only = args.table.clone();
    let report = blocking(move || {
        let stats = store.table_stats()?;
        if let Some(t) = &only {
            if !stats.iter().any(|s| &s.table == t) {
                return Err(crate::error::Error::NotFound(format!(
                    "no table named {t:?} in the store"
                )));
            }
        }
        let names: Vec<&str> = stats
            .iter()
            .map(|s| s.table.as_str())
            .filter(|t| only.as_deref().is_none_or(|o| o == *t))
            .collect();
        let mut checkpoints = BTreeMap::new();
        for task in tasks.values() {
            let at = store.task_state(&task.name)?.map_or(0, |s| s.checkpoint);
            checkpoints.insert(task.name.clone(), at);
        }
        let horizons = purge_horizons(&tasks, names, |t| checkpoints.get(t).copied().unwrap_or(0));
        let mut out = Vec::new();
        for (table, horizon) in horizons {
            let purged = store.purge_tombstones(&table, horizon.up_to_seq)?;
            // Counted before purging (table_stats counts every table's rows: not again).
            let before = stats
                .iter()
                .find(|s| s.table == table)
                .map_or(0, |s| s.tombstones);
            let left = before.saturating_sub(purged);
            out.push(Compacted {
                table,
                up_to_seq: (horizon.up_to_seq != u64::MAX).then_some(horizon.up_to_seq),
                held_by: horizon.held_by,
                purged,
                tombstones_left: left,
            });
        }
        Ok(out)
    })
    .await?;
    if args.json {
        return print(&to_json(&report)?);
    }
    let lines: Vec<String> = report
        .iter()
        .map(|c| match (&c.held_by, c.up_to_seq) {
            (Some(task), Some(seq)) => format!(
                "{}: purged {} tombstones up to _seq {seq}; {} left, needed by task {task}",
                c.table, c.purged, c.tombstones_left
            ),
            _ => format!(
                "{}: purged {} tombstones (no task delivers its deletes)",
                c.table, c.purged
            ),
        })
        .collect();
    print(&lines.join("\n"))
}
