//! Tombstone compaction: how far each table's tombstones may be purged.
//!
//! A tombstone is needed only by tasks that deliver deletes (`deletes: emit`) and read changes
//! (incremental or differential mode) — until each of them has delivered past it. So a table's
//! purge horizon is the lowest checkpoint among those tasks; a table no such task reads keeps
//! no tombstone for delivery. Tasks are the ones in the pipelines folder: a task removed from
//! it no longer holds tombstones back.

use std::collections::BTreeMap;

use crate::delivery::config::{Deletes, Mode, Task};

/// How far one table's tombstones may be purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeHorizon {
    /// Tombstones with `_seq` up to this may go (`u64::MAX`: every one).
    pub up_to_seq: u64,
    /// The task whose checkpoint sets the horizon, if a task holds it back.
    pub held_by: Option<String>,
}

/// Whether a task delivers the deletes of its table (and so needs its tombstones).
pub fn delivers_deletes(task: &Task) -> bool {
    task.deletes == Deletes::Emit && task.mode != Mode::Full
}

/// The purge horizon of `table`, given the tasks and each task's checkpoint (0 for a task that
/// has not delivered yet).
pub fn purge_horizon<'a>(
    tasks: impl IntoIterator<Item = &'a Task>,
    table: &str,
    checkpoint: impl Fn(&str) -> u64,
) -> PurgeHorizon {
    let mut horizon = PurgeHorizon {
        up_to_seq: u64::MAX,
        held_by: None,
    };
    for task in tasks {
        if task.source.table != table || !delivers_deletes(task) {
            continue;
        }
        let at = checkpoint(&task.name);
        if at < horizon.up_to_seq {
            horizon = PurgeHorizon {
                up_to_seq: at,
                held_by: Some(task.name.clone()),
            };
        }
    }
    horizon
}

/// The purge horizon of every table in `tables`.
pub fn purge_horizons<'a>(
    tasks: &BTreeMap<String, Task>,
    tables: impl IntoIterator<Item = &'a str>,
    checkpoint: impl Fn(&str) -> u64,
) -> BTreeMap<String, PurgeHorizon> {
    tables
        .into_iter()
        .map(|t| (t.to_string(), purge_horizon(tasks.values(), t, &checkpoint)))
        .collect()
}
