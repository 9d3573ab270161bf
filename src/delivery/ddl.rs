//! The catalog statements of a task: its lake columns, partition columns and locations handed
//! to [`catalog`](crate::catalog) for the task's dialect.

use crate::catalog::hive::{add_partition, create_table, HiveColumn, HiveTable};
use crate::delivery::config::Task;

/// `CREATE EXTERNAL TABLE IF NOT EXISTS` for `task`, then one `ALTER TABLE … ADD IF NOT EXISTS
/// PARTITION` per delivered partition (sorted), for a lake rooted at `destination_url`.
pub fn statements(task: &Task, destination_url: &str, partitions: &[String]) -> Vec<String> {
    let columns: Vec<HiveColumn> = task
        .schema
        .columns()
        .iter()
        .map(|c| HiveColumn {
            name: c.name.clone(),
            hive_type: c.ty.hive_type(),
        })
        .collect();
    let partition_columns = task.prefix.partition_columns();
    let fixed = task.prefix.fixed_prefix();
    let location = join_url(destination_url, &fixed);
    let table = HiveTable {
        database: task.catalog.database.as_deref(),
        table: &task.catalog.table,
        columns: &columns,
        partition_columns: &partition_columns,
        location: &location,
    };
    let mut out = vec![create_table(&table)];
    if !partition_columns.is_empty() {
        let mut partitions = partitions.to_vec();
        partitions.sort();
        partitions.dedup();
        for p in partitions {
            let values = task.prefix.partition_values(&p);
            out.push(add_partition(
                &table,
                &values,
                &join_url(destination_url, &p),
            ));
        }
    }
    out
}

fn join_url(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        base.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), rel.trim_matches('/'))
    }
}
