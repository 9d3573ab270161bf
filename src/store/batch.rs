//! Arrow builders of the record batches a snapshot shard yields, shared by the backends: the
//! declared columns in store types, then `_seq`, `_write_time` and, for changes with
//! deletes, `_deleted`. Each backend appends its own rows' values.
//!
//! Strings are appended as bytes and checked to be UTF-8 once per batch, when it is
//! finished: one pass over a batch's values costs a fraction of a check per value (millions
//! of short strings), and a backend that has already checked a value loses nothing by it.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringArray,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::model::{ColumnType, TableDef};

/// The builder of one declared column.
pub(crate) enum ColumnBuilder {
    /// The bytes of UTF-8 strings, checked when the batch is finished.
    String(BinaryBuilder),
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
    /// The table's name, for errors.
    table: String,
    /// Rows each batch is built for (the capacity builders start with).
    rows: usize,
}

impl ColumnBuilder {
    /// A builder of `ty` for `rows` rows; strings and binaries with room for `value_bytes`
    /// bytes of values (by default 32 a string, 16 a binary value).
    fn with_capacity(ty: ColumnType, rows: usize, value_bytes: Option<usize>) -> ColumnBuilder {
        match ty {
            ColumnType::String => ColumnBuilder::String(BinaryBuilder::with_capacity(
                rows,
                value_bytes.unwrap_or(rows.saturating_mul(32)),
            )),
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(rows)),
            ColumnType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::Binary => ColumnBuilder::Binary(BinaryBuilder::with_capacity(
                rows,
                value_bytes.unwrap_or(rows.saturating_mul(16)),
            )),
            ColumnType::TimestampMs => ColumnBuilder::Timestamp(timestamp_builder(rows)),
        }
    }

    /// The array built so far; the builder starts over with room for `rows` rows and, for
    /// strings and binaries, an eighth more value bytes than this array holds (the next
    /// batch is likely alike). Strings that are not UTF-8 are an error that names the table,
    /// the column and the row in the batch.
    fn finish_and_renew(&mut self, rows: usize, table: &str, column: &str) -> Result<ArrayRef> {
        let (ty, value_bytes) = match self {
            ColumnBuilder::String(b) => (ColumnType::String, Some(b.values_slice().len())),
            ColumnBuilder::Binary(b) => (ColumnType::Binary, Some(b.values_slice().len())),
            ColumnBuilder::Int64(_) => (ColumnType::Int64, None),
            ColumnBuilder::Double(_) => (ColumnType::Double, None),
            ColumnBuilder::Bool(_) => (ColumnType::Bool, None),
            ColumnBuilder::Timestamp(_) => (ColumnType::TimestampMs, None),
        };
        let room = value_bytes.map(|used| used.saturating_add(used / 8).max(64));
        Ok(
            match std::mem::replace(self, ColumnBuilder::with_capacity(ty, rows, room)) {
                ColumnBuilder::String(mut b) => Arc::new(utf8(b.finish(), table, column)?),
                ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
                ColumnBuilder::Double(mut b) => Arc::new(b.finish()),
                ColumnBuilder::Bool(mut b) => Arc::new(b.finish()),
                ColumnBuilder::Binary(mut b) => Arc::new(b.finish()),
                ColumnBuilder::Timestamp(mut b) => Arc::new(b.finish()),
            },
        )
    }
}

/// `bytes` as strings, checked in one pass; a value that is not UTF-8 is an
/// [`Error::Store`] naming `table`, `column` and its row in the batch.
fn utf8(bytes: arrow::array::BinaryArray, table: &str, column: &str) -> Result<StringArray> {
    match StringArray::try_from_binary(bytes.clone()) {
        Ok(strings) => Ok(strings),
        Err(e) => {
            let row = bytes
                .iter()
                .position(|v| v.is_some_and(|v| std::str::from_utf8(v).is_err()));
            Err(match row {
                Some(row) => Error::store(format!(
                    "table {table}: column {column}: expected string: the value in row {row} \
                     of a batch is not UTF-8: {}",
                    String::from_utf8_lossy(bytes.value(row))
                )),
                None => Error::store_caused(
                    format!("table {table}: column {column}: expected string"),
                    e,
                ),
            })
        }
    }
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
            .map(|c| ColumnBuilder::with_capacity(c.ty, rows, None))
            .collect();
        Builders {
            columns,
            seq: Int64Builder::with_capacity(rows),
            write_time: timestamp_builder(rows),
            deleted: deletes.then(|| BooleanBuilder::with_capacity(rows)),
            len: 0,
            table: def.table.clone(),
            rows,
        }
    }

    /// The batch built so far, in `schema` (`with_deleted` when there is a `_deleted`
    /// column); the builders start over empty, with room for as many rows as they were made
    /// for (arrow's own `finish` leaves a builder without capacity, and refilling it would
    /// grow every buffer by doubling and copying, batch after batch).
    pub(crate) fn finish(
        &mut self,
        schema: &SchemaRef,
        with_deleted: &SchemaRef,
    ) -> Result<RecordBatch> {
        let rows = self.rows;
        // Every builder starts over, even when a column turns out to be bad.
        let columns: Vec<Result<ArrayRef>> = self
            .columns
            .iter_mut()
            .zip(schema.fields())
            .map(|(b, field)| b.finish_and_renew(rows, &self.table, field.name()))
            .collect();
        let seq = std::mem::replace(&mut self.seq, Int64Builder::with_capacity(rows));
        let write_time = std::mem::replace(&mut self.write_time, timestamp_builder(rows));
        let deleted = self
            .deleted
            .as_mut()
            .map(|d| std::mem::replace(d, BooleanBuilder::with_capacity(rows)));
        self.len = 0;
        let mut arrays = columns.into_iter().collect::<Result<Vec<ArrayRef>>>()?;
        arrays.push(Arc::new({ seq }.finish()));
        arrays.push(Arc::new({ write_time }.finish()));
        let schema = match deleted {
            None => Arc::clone(schema),
            Some(deleted) => {
                arrays.push(Arc::new({ deleted }.finish()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;

    #[test]
    fn batches_after_the_first_are_built_alike() {
        let def = TableDef::from_yaml(
            "table: t\nprimary_key: [k]\ncolumns:\n  - { name: k, type: string }\n  \
             - { name: n, type: int64 }\n  - { name: b, type: binary }\n",
            "t.yaml",
        )
        .unwrap();
        let (schema, with_deleted) = (def.arrow_schema(), def.arrow_schema_with_deleted());
        let mut b = Builders::new(&def, 3, false);
        let mut batches = Vec::new();
        for round in 0..3i64 {
            for i in 0..3 {
                let v = round * 3 + i;
                let ColumnBuilder::String(k) = &mut b.columns[0] else {
                    panic!("k is a string")
                };
                // the second round's values are longer than the first's
                k.append_value("x".repeat(1 + v as usize * 40));
                match &mut b.columns[1] {
                    ColumnBuilder::Int64(n) if v % 2 == 0 => n.append_null(),
                    ColumnBuilder::Int64(n) => n.append_value(v),
                    _ => panic!("n is an int64"),
                }
                append_null(&mut b.columns[2]);
                b.seq.append_value(v);
                b.write_time.append_value(v * 1000);
                b.len += 1;
            }
            batches.push(b.finish(&schema, &with_deleted).unwrap());
        }
        for (round, batch) in batches.iter().enumerate() {
            let round = round as i64;
            let keys: Vec<usize> = batch
                .column(0)
                .as_string::<i32>()
                .iter()
                .map(|k| k.unwrap().len())
                .collect();
            let expected: Vec<usize> = (0..3).map(|i| 1 + (round * 3 + i) as usize * 40).collect();
            assert_eq!(keys, expected, "round {round}");
            let n = batch.column(1).as_primitive::<Int64Type>();
            let expected: Int64Array = (0..3)
                .map(|i| round * 3 + i)
                .map(|v| (v % 2 != 0).then_some(v))
                .collect();
            assert_eq!(n, &expected, "round {round}");
            assert_eq!(batch.column(2).null_count(), 3);
            assert_eq!(
                batch.column(3).as_primitive::<Int64Type>().value(0),
                round * 3
            );
            assert_eq!(batch.schema(), schema);
        }
    }

    #[test]
    fn strings_are_checked_to_be_utf8_when_the_batch_is_finished() {
        let def = TableDef::from_yaml(
            "table: t\nprimary_key: [k]\ncolumns:\n  - { name: k, type: string }\n  \
             - { name: note, type: string }\n",
            "t.yaml",
        )
        .unwrap();
        let (schema, with_deleted) = (def.arrow_schema(), def.arrow_schema_with_deleted());
        let mut b = Builders::new(&def, 4, false);
        let rows: [(&[u8], Option<&[u8]>); 3] = [
            (b"a", Some("h\u{e9}".as_bytes())),
            (b"b", None),
            // a lone continuation byte, then a character cut short
            (b"c", Some(b"ok \x80 \xe2\x82")),
        ];
        for (round, expect_error) in [(0, true), (1, false)] {
            for (i, (k, note)) in rows.iter().enumerate() {
                let [ColumnBuilder::String(kb), ColumnBuilder::String(nb)] = &mut b.columns[..]
                else {
                    panic!("two string columns")
                };
                kb.append_value(k);
                // The second round leaves the bad value out.
                nb.append_option(if round == 1 && i == 2 { None } else { *note });
                b.seq.append_value(i as i64);
                b.write_time.append_value(0);
                b.len += 1;
            }
            let finished = b.finish(&schema, &with_deleted);
            if expect_error {
                let message = finished.unwrap_err().to_string();
                assert!(
                    message.contains("table t: column note: expected string: the value in row 2")
                        && message.contains("not UTF-8"),
                    "{message}"
                );
            } else {
                let batch = finished.unwrap();
                let notes: Vec<Option<&str>> = batch.column(1).as_string::<i32>().iter().collect();
                assert_eq!(notes, [Some("h\u{e9}"), None, None]);
            }
        }
    }
}
