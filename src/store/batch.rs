//! Arrow builders of the record batches a snapshot shard yields, shared by the backends: the
//! declared columns in store types, then `_seq`, `_write_time` and, for changes with
//! deletes, `_deleted`. Each backend appends its own rows' values.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::store::{ColumnType, TableDef};

/// The builder of one declared column.
pub(crate) enum ColumnBuilder {
    String(StringBuilder),
    Int64(Int64Builder),
    Double(Float64Builder),
    Bool(BooleanBuilder),
    Binary(BinaryBuilder),
    Timestamp(TimestampMillisecondBuilder),
}

/// Arrow builders of one batch: the declared columns, `_seq`, `_write_time` and, for changes
/// with deletes, `_deleted`.
pub(crate) struct Builders {
    pub(crate) columns: Vec<ColumnBuilder>,
    pub(crate) seq: Int64Builder,
    pub(crate) write_time: TimestampMillisecondBuilder,
    pub(crate) deleted: Option<BooleanBuilder>,
    pub(crate) len: usize,
}

pub(crate) fn timestamp_builder(capacity: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(capacity).with_timezone("UTC")
}

impl Builders {
    /// Builders for `rows` rows of `def`, with a `_deleted` column when `deletes`.
    pub(crate) fn new(def: &TableDef, rows: usize, deletes: bool) -> Builders {
        let columns = def
            .columns
            .iter()
            .map(|c| match c.ty {
                ColumnType::String => ColumnBuilder::String(StringBuilder::with_capacity(
                    rows,
                    rows.saturating_mul(32),
                )),
                ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
                ColumnType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(rows)),
                ColumnType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(rows)),
                ColumnType::Binary => ColumnBuilder::Binary(BinaryBuilder::with_capacity(
                    rows,
                    rows.saturating_mul(16),
                )),
                ColumnType::TimestampMs => ColumnBuilder::Timestamp(timestamp_builder(rows)),
            })
            .collect();
        Builders {
            columns,
            seq: Int64Builder::with_capacity(rows),
            write_time: timestamp_builder(rows),
            deleted: deletes.then(|| BooleanBuilder::with_capacity(rows)),
            len: 0,
        }
    }

    /// The batch built so far, in `schema` (`with_deleted` when there is a `_deleted`
    /// column); the builders start over empty.
    pub(crate) fn finish(
        &mut self,
        schema: &SchemaRef,
        with_deleted: &SchemaRef,
    ) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    ColumnBuilder::String(b) => Arc::new(b.finish()),
                    ColumnBuilder::Int64(b) => Arc::new(b.finish()),
                    ColumnBuilder::Double(b) => Arc::new(b.finish()),
                    ColumnBuilder::Bool(b) => Arc::new(b.finish()),
                    ColumnBuilder::Binary(b) => Arc::new(b.finish()),
                    ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        arrays.push(Arc::new(self.seq.finish()));
        arrays.push(Arc::new(self.write_time.finish()));
        self.len = 0;
        let schema = match &mut self.deleted {
            None => Arc::clone(schema),
            Some(deleted) => {
                arrays.push(Arc::new(deleted.finish()));
                Arc::clone(with_deleted)
            }
        };
        Ok(RecordBatch::try_new(schema, arrays)?)
    }
}

pub(crate) fn append_null(b: &mut ColumnBuilder) {
    match b {
        ColumnBuilder::String(b) => b.append_null(),
        ColumnBuilder::Int64(b) => b.append_null(),
        ColumnBuilder::Double(b) => b.append_null(),
        ColumnBuilder::Bool(b) => b.append_null(),
        ColumnBuilder::Binary(b) => b.append_null(),
        ColumnBuilder::Timestamp(b) => b.append_null(),
    }
}
