//! One shard of a run: reads its rows from the store a batch at a time, converts each batch
//! to the task's lake schema (rows that cannot be converted or placed are dirty: counted, and
//! kept in the run's dirty-row file when the task says so), assigns every row its partition
//! and hands it to the shard's Parquet writer; a shard that fails removes the objects it
//! started. [`super::run`] plans and commits the run; [`super::dispatch`] hands its shards to
//! this process's threads or to other workers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{
    filter, filter_record_batch, is_not_null, sort_to_indices, take_record_batch,
};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use tokio::runtime::Handle;

use crate::convert::row_json;
use crate::delivery::config::{PartitionTime, Task};
use crate::error::{Error, Result};
use crate::model::{DELETED_COLUMN, SEQ_COLUMN, WRITE_TIME_COLUMN};
use crate::objstore::destination::Destination;
use crate::sink::ndjson::NdjsonWriter;
use crate::sink::parquet::{ObjectNaming, PartitionedWriter};
use crate::sink::partition::Partitioner;
use crate::store::shards::this_worker_id;
use crate::store::{RunRecord, ShardReader, ShardResult};

/// Rows per batch read from the store.
const BATCH_ROWS: usize = 65_536;

/// The least memory budget a shard's writer gets, however many shards share the task's.
const MIN_SHARD_BUFFER: usize = 16 << 20;

/// Dirty reason for a row whose partition-time column is NULL.
const NULL_PARTITION_TIME: &str = "null_partition_time";

/// Hears how a run goes (for a progress bar); called from shard threads.
pub trait RunObserver: Send + Sync {
    /// The snapshot is open and holds about `rows` live rows (counted, or for a large
    /// PostgreSQL table the server's estimate: see
    /// [`Snapshot::rows_estimated`](crate::store::Snapshot::rows_estimated)).
    fn planned(&self, _rows: u64) {}
    /// A shard has read `rows` more rows.
    fn delivered(&self, _rows: u64) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl RunObserver for Quiet {}

/// The dirty-row file of run `run_id`'s shard (see [`Shard::deliver`]).
pub(super) fn dirty_file_path(task: &str, run_id: u64, concurrent_id: u32) -> String {
    format!("_dirty/{task}/run-{run_id}_{concurrent_id}.ndjson")
}

/// Whether `rel` is a dirty-row file of run `run_id` of `task`, any shard.
pub(super) fn is_dirty_file(rel: &str, task: &str, run_id: u64) -> bool {
    rel.strip_prefix(&format!("_dirty/{task}/run-{run_id}_"))
        .and_then(|r| r.strip_suffix(".ndjson"))
        .is_some_and(|cid| cid.parse::<u32>().is_ok())
}

/// Everything a shard thread needs.
pub(super) struct Shard {
    pub task: Arc<Task>,
    /// The destination, journaling uploads under the run's folder.
    pub dest: Arc<Destination>,
    /// The id its objects are named with (the shard's, or an attempt's: see `dispatch`).
    pub concurrent_id: u32,
    pub run: RunRecord,
    pub run_time_ms: i64,
    pub runtime: Handle,
    pub observer: Arc<dyn RunObserver>,
    /// When either is set the shard must stop (its claim was lost, its run failed): the read
    /// fails at the next batch.
    pub cancelled: [Arc<AtomicBool>; 2],
}

impl Shard {
    /// Reads the shard and writes its objects. On failure, removes the objects it started.
    pub(super) fn deliver(self, reader: &mut dyn ShardReader) -> Result<ShardResult> {
        let task = &self.task;
        let metadata = vec![
            ("lakeport.task".to_string(), task.name.clone()),
            ("lakeport.run_id".to_string(), self.run.run_id.to_string()),
            ("lakeport.mode".to_string(), self.run.mode.clone()),
            (
                "lakeport.seq_from".to_string(),
                self.run.seq_from.to_string(),
            ),
            ("lakeport.seq_to".to_string(), self.run.seq_to.to_string()),
            (
                "lakeport.concurrent_id".to_string(),
                self.concurrent_id.to_string(),
            ),
            (
                "lakeport.worker".to_string(),
                this_worker_id().0.to_string(),
            ),
        ];
        let naming = ObjectNaming {
            task: task.name.clone(),
            concurrent_id: self.concurrent_id,
            first_seq: self.run.first_object_seq,
        };
        // The task's memory budget is for the whole run: each shard gets its share.
        let mut parquet = task.parquet.clone();
        parquet.buffer_bytes =
            (parquet.buffer_bytes / self.run.shards.max(1) as usize).max(MIN_SHARD_BUFFER);
        let mut writer = PartitionedWriter::new(
            Arc::clone(&self.dest),
            task.schema.arrow_schema(),
            parquet,
            naming,
            metadata,
            self.runtime.clone(),
        )?;
        if let Some(seq) = task
            .schema
            .columns()
            .iter()
            .find(|c| c.source == SEQ_COLUMN)
        {
            writer = writer.with_seq_column(&seq.name);
        }
        let mut dirty_file = if task.dirty_keep {
            let rel = dirty_file_path(&task.name, self.run.run_id, self.concurrent_id);
            Some(NdjsonWriter::new(
                Arc::clone(&self.dest),
                rel,
                self.runtime.clone(),
            )?)
        } else {
            None
        };
        let mut batches = BatchDelivery {
            task,
            partitioner: Partitioner::new(task.prefix.clone(), task.timezone),
            run_time_ms: self.run_time_ms,
            dirty: BTreeMap::new(),
            rows: 0,
        };
        let read = reader.read(BATCH_ROWS, &mut |batch| {
            if self.cancelled.iter().any(|c| c.load(Ordering::SeqCst)) {
                return Err(Error::Busy(format!(
                    "shard {} of run {}: stopped (its claim was lost or its run failed)",
                    self.concurrent_id, self.run.run_id
                )));
            }
            let n = batch.num_rows() as u64;
            batches.deliver(&batch, &mut writer, dirty_file.as_mut())?;
            self.observer.delivered(n);
            Ok(())
        });
        if let Err(e) = read {
            // The dirty-row file is uploaded only when the shard finishes: nothing of it yet.
            for rel in writer.abort() {
                if let Err(de) = self.runtime.block_on(self.dest.delete(&rel)) {
                    tracing::warn!(object = %self.dest.object_url(&rel), error = %de.chain(),
                        "could not remove an object of a failed shard (the run removes it)");
                }
            }
            return Err(e);
        }
        let next_seq = writer.next_seq();
        let objects = writer.finish()?;
        let dirty_object = match dirty_file {
            Some(f) => f.finish()?,
            None => None,
        };
        Ok(ShardResult {
            objects,
            rows: batches.rows,
            next_seq,
            dirty: batches.dirty,
            dirty_object,
            worker: this_worker_id().0.to_string(),
        })
    }
}

/// Per-shard state for turning store batches into partitioned lake rows.
struct BatchDelivery<'a> {
    task: &'a Task,
    partitioner: Partitioner,
    run_time_ms: i64,
    dirty: BTreeMap<String, u64>,
    rows: u64,
}

impl BatchDelivery<'_> {
    fn deliver(
        &mut self,
        batch: &RecordBatch,
        writer: &mut PartitionedWriter,
        mut dirty_file: Option<&mut NdjsonWriter>,
    ) -> Result<()> {
        // Rows without a partition time cannot be placed: dirty.
        let time_column = match &self.task.partition_time {
            PartitionTime::WriteTime => Some(WRITE_TIME_COLUMN),
            PartitionTime::Column(c) => Some(c.as_str()),
            PartitionTime::RunTime => None,
        };
        let mut batch = batch.clone();
        if self.task.schema.has_op_column() && column_of(&batch, DELETED_COLUMN).is_none() {
            // A snapshot holds no deletes: every row is an upsert.
            batch = with_column(
                &batch,
                DELETED_COLUMN,
                Arc::new(BooleanArray::from(vec![false; batch.num_rows()])),
            )?;
        }
        if let Some(name) = time_column {
            let times = partition_times(&batch, name)?;
            if times.null_count() > 0 {
                for row in (0..batch.num_rows()).filter(|&r| times.is_null(r)) {
                    let detail = format!("partition time column {name} is NULL");
                    self.record_dirty(
                        &batch,
                        row,
                        NULL_PARTITION_TIME,
                        name,
                        &detail,
                        dirty_file.as_deref_mut(),
                    )?;
                }
                let mask = is_not_null(times.as_ref())?;
                batch = filter_record_batch(&batch, &mask)?;
            }
        }

        let converted = self.task.schema.convert(&batch)?;
        for d in &converted.dirty {
            self.record_dirty(
                &batch,
                d.row,
                d.reason.as_str(),
                &d.column,
                &d.detail,
                dirty_file.as_deref_mut(),
            )?;
        }
        let clean = converted.batch;
        if clean.num_rows() == 0 {
            return Ok(());
        }
        self.rows += clean.num_rows() as u64;

        let ids = match time_column {
            None => {
                let id = self.partitioner.for_instant(self.run_time_ms)?;
                return writer.write_owned(self.partitioner.prefix(id), clean);
            }
            Some(name) => {
                let times = partition_times(&batch, name)?;
                let times = match &converted.kept {
                    Some(mask) => filter(times.as_ref(), mask)?,
                    None => times,
                };
                self.partitioner
                    .assign(times.as_primitive::<TimestampMillisecondType>())?
            }
        };
        write_partitioned(&self.partitioner, writer, clean, &ids)
    }

    fn record_dirty(
        &mut self,
        batch: &RecordBatch,
        row: usize,
        reason: &str,
        column: &str,
        detail: &str,
        dirty_file: Option<&mut NdjsonWriter>,
    ) -> Result<()> {
        *self.dirty.entry(reason.to_string()).or_default() += 1;
        if let Some(file) = dirty_file {
            let seq = column_of(batch, SEQ_COLUMN)
                .map(|c| c.as_primitive::<Int64Type>().value(row))
                .unwrap_or_default();
            let line = serde_json::json!({
                "reason": reason,
                "column": column,
                "detail": detail,
                "_seq": seq,
                "row": row_json(batch, row),
            });
            file.write(&line)?;
        }
        Ok(())
    }
}

/// The partition times of a batch's rows: column `name`, except for deletes (rows flagged in
/// [`DELETED_COLUMN`]), which have no values but their key and are placed by the time they were
/// deleted (`_write_time`).
fn partition_times(batch: &RecordBatch, name: &str) -> Result<arrow::array::ArrayRef> {
    let times = column(batch, name)?;
    let Some(deleted) = column_of(batch, DELETED_COLUMN) else {
        return Ok(times);
    };
    if name == WRITE_TIME_COLUMN || deleted.as_boolean().true_count() == 0 {
        return Ok(times);
    }
    let write_times = column(batch, WRITE_TIME_COLUMN)?;
    Ok(zip(deleted.as_boolean(), &write_times, &times)?)
}

/// `batch` with one more column, last.
fn with_column(
    batch: &RecordBatch,
    name: &str,
    values: arrow::array::ArrayRef,
) -> Result<RecordBatch> {
    let mut fields: Vec<arrow::datatypes::FieldRef> =
        batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(arrow::datatypes::Field::new(
        name,
        values.data_type().clone(),
        false,
    )));
    let mut columns = batch.columns().to_vec();
    columns.push(values);
    Ok(RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )?)
}

fn column_of(batch: &RecordBatch, name: &str) -> Option<arrow::array::ArrayRef> {
    batch.column_by_name(name).cloned()
}

fn column(batch: &RecordBatch, name: &str) -> Result<arrow::array::ArrayRef> {
    column_of(batch, name)
        .ok_or_else(|| Error::store(format!("snapshot batch has no column {name}")))
}

/// Writes `batch` to the writer, one batch per partition: rows are grouped by partition id
/// with one sort per batch, and each partition's rows are gathered into a batch of their own
/// (so the writer can keep it without holding the whole input alive).
fn write_partitioned(
    partitioner: &Partitioner,
    writer: &mut PartitionedWriter,
    batch: RecordBatch,
    ids: &UInt32Array,
) -> Result<()> {
    let first = ids.value(0);
    if ids.values().iter().all(|&id| id == first) {
        return writer.write_owned(partitioner.prefix(first), batch);
    }
    let order = sort_to_indices(ids, None, None)?;
    let order = order.values();
    let mut start = 0;
    while start < order.len() {
        let id = ids.value(order[start] as usize);
        let mut end = start + 1;
        while end < order.len() && ids.value(order[end] as usize) == id {
            end += 1;
        }
        let rows = UInt32Array::from(order[start..end].to_vec());
        writer.write_owned(partitioner.prefix(id), take_record_batch(&batch, &rows)?)?;
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_files_of_a_run_are_found_by_name() {
        let path = dirty_file_path("daily", 12, 3);
        assert!(is_dirty_file(&path, "daily", 12));
        assert!(!is_dirty_file(&path, "daily", 1));
        assert!(!is_dirty_file(&path, "dail", 12));
        assert!(!is_dirty_file("_dirty/daily/run-12_x.ndjson", "daily", 12));
    }
}
