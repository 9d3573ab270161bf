//! The `catalog` stage: the DDL that makes delivered objects queryable.
//!
//! It owns the text of the statements — `CREATE EXTERNAL TABLE` over a task's table location
//! and `ALTER TABLE … ADD PARTITION` for each delivered partition — in the Hive dialect that
//! Hive, Spark SQL (with Hive support) and EMR accept unchanged ([`hive`]). Statements come
//! without a trailing `;`; the caller joins them. It does not know tasks, runs or the store:
//! delivery gives it columns, partition columns, locations and values.

pub mod hive;

pub use hive::{
    add_partition, create_table, hive_type, quote_ident, quote_string, repair_table, HiveColumn,
    HiveTable,
};
