//! Delivery: tasks (what to deliver where), and runs that deliver a table to the lake.
//!
//! This stage owns task files (`pipelines/*.yaml` → a checked [`Task`]), the run plan and its
//! record in the store, and the orchestration of a run: it reads a consistent snapshot from the
//! [`store`](crate::store), hands each shard's batches through [`convert`](crate::convert) to
//! the [`sink`](crate::sink), and commits the run only after every object is complete. It does
//! not encode Parquet, render prefixes or talk to object storage itself.

pub mod compact;
pub mod config;
pub mod ddl;
pub mod dispatch;
pub mod follow;
pub mod manifest;
pub mod owner;
pub mod run;
pub mod shard;
pub mod status;

pub use config::{load_tasks, Deletes, Mode, PartitionTime, Task};
pub use follow::{follow, FollowSummary};
pub use run::{open_destination_for_runs, run_task, run_task_with, RunSummary};
pub use shard::{Quiet, RunObserver};
