//! The catalog statements of a task: its lake columns, partition columns and locations handed
//! to [`catalog`](crate::catalog) for the task's dialect.

use std::sync::Arc;

use crate::catalog::hive::{add_partition, create_table, HiveColumn, HiveTable};
use crate::delivery::config::Task;
use crate::error::Result;
use crate::objstore::destination::Destination;
use crate::store::{blocking, Store};

/// A task's DDL as its lake stands: [`statements`] for every partition of its live set, each
/// statement ending in `;` (what `lakeport ddl <task>` prints and `/api/tasks/{name}/ddl`
/// returns).
pub async fn live_ddl(store: &Arc<dyn Store>, task: &Task) -> Result<Vec<String>> {
    let dest = Destination::parse(&task.destination)?;
    let store = Arc::clone(store);
    let name = task.name.clone();
    let partitions: Vec<String> = blocking(move || store.live_partitions(&name))
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    Ok(terminated(statements(task, dest.url(), &partitions)))
}

/// Each statement with its closing `;`.
pub fn terminated(statements: Vec<String>) -> Vec<String> {
    statements.into_iter().map(|s| format!("{s};")).collect()
}

/// `CREATE EXTERNAL TABLE IF NOT EXISTS` for `task`, then one `ALTER TABLE … ADD IF NOT EXISTS
/// PARTITION` per delivered partition (sorted), for a lake rooted at `destination_url`.
pub fn statements(task: &Task, destination_url: &str, partitions: &[String]) -> Vec<String> {
    let mut out = vec![create_table(&hive_table(task, destination_url).table())];
    out.extend(partition_statements(task, destination_url, partitions));
    out
}

/// One `ALTER TABLE … ADD IF NOT EXISTS PARTITION` per partition (sorted, once each); none
/// when the task's prefix has no partition columns.
pub fn partition_statements(
    task: &Task,
    destination_url: &str,
    partitions: &[String],
) -> Vec<String> {
    let parts = hive_table(task, destination_url);
    if parts.partition_columns.is_empty() {
        return Vec::new();
    }
    let table = parts.table();
    let mut partitions = partitions.to_vec();
    partitions.sort();
    partitions.dedup();
    partitions
        .iter()
        .map(|p| {
            let values = task.prefix.partition_values(p);
            add_partition(&table, &values, &join_url(destination_url, p))
        })
        .collect()
}

/// What a task's [`HiveTable`] borrows.
struct TableParts<'a> {
    task: &'a Task,
    columns: Vec<HiveColumn>,
    partition_columns: Vec<String>,
    location: String,
}

impl TableParts<'_> {
    fn table(&self) -> HiveTable<'_> {
        HiveTable {
            database: self.task.catalog.database.as_deref(),
            table: &self.task.catalog.table,
            columns: &self.columns,
            partition_columns: &self.partition_columns,
            location: &self.location,
        }
    }
}

fn hive_table<'a>(task: &'a Task, destination_url: &str) -> TableParts<'a> {
    let columns: Vec<HiveColumn> = task
        .schema
        .columns()
        .iter()
        .map(|c| HiveColumn {
            name: c.name.clone(),
            hive_type: c.ty.hive_type(),
        })
        .collect();
    TableParts {
        task,
        columns,
        partition_columns: task.prefix.partition_columns(),
        location: join_url(destination_url, &task.prefix.fixed_prefix()),
    }
}

fn join_url(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        base.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), rel.trim_matches('/'))
    }
}
