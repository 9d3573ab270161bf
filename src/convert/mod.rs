//! The `convert` stage: maps store columns to lake (Parquet) columns and turns snapshot
//! batches into lake batches, with exact per-row dirty detection.
//!
//! It owns the lake types ([`LakeType`]) and the matrix of which store type each can hold
//! ([`can_hold`]), delivery schema files ([`LakeSchema::from_file`]) and the `auto` schema
//! ([`LakeSchema::auto`]), the conversion of a batch ([`LakeSchema::convert`]) and the JSON form
//! of a rejected row ([`row_json`]). It does not partition, write files, count dirty rows per
//! run or know about tasks: delivery does that with what [`Converted`] hands back.
//!
//! Rules of conversion:
//! - Never silently coerce: a value that does not fit its lake column makes its row dirty. A
//!   row is dirty once, at its first bad column in lake column order, and is left out of the
//!   lake batch. NULL converts to NULL for every pair.
//! - Text is parsed strictly (no trimming): integers as decimal digits with an optional sign;
//!   floats as Rust reads them (`1.5`, `1e3`, `inf`, `NaN`); decimals exactly, trailing zeros
//!   allowed but never rounded; booleans as `true`/`false` (any case); dates as `YYYY-MM-DD`;
//!   timestamps as RFC 3339 with an offset, or `YYYY-MM-DD HH:MM:SS[.fff]` taken as UTC, with
//!   no non-zero digits finer than the target unit.
//! - Doubles into decimals are rounded half to even from their shortest round-trip text (2.675
//!   becomes 2.68 at scale 2, as it prints); doubles into floats round to nearest, finite values
//!   beyond the float range are dirty; int64 into double is dirty beyond ±2^53, into float when
//!   not exactly representable.
//! - Values written as text: int64 in decimal, doubles as their shortest round-trip text
//!   (`3.0`, `1e16`, `NaN`, `Infinity`), booleans as `true`/`false`, timestamps as RFC 3339
//!   UTC with milliseconds (years 0000–9999, else dirty).
//!
//! Identity pairs (same Arrow type) reuse the input array; the other pairs loop once over the
//! typed values of each column.

mod json;
mod schema_file;
mod text;
mod types;
mod values;

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::error::{Error, Result};
use crate::model::{ColumnType, TableDef, DELETED_COLUMN, SEQ_COLUMN, WRITE_TIME_COLUMN};

pub use json::row_json;
pub use types::{can_hold, LakeType, MAX_DECIMAL_PRECISION};
pub use values::{DirtyReason, DirtyRow};

/// One column of the lake table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeColumn {
    /// The store column it reads: a declared column, `_seq` or `_write_time`.
    pub source: String,
    /// The lake column name.
    pub name: String,
    /// The lake type.
    pub ty: LakeType,
    /// Whether it may be NULL: as its source (key columns, `_seq` and `_write_time` are not).
    pub nullable: bool,
}

/// Name of the lake column of a task that delivers deletes: `upsert` or `delete`.
pub const OP_COLUMN: &str = "_op";

/// Where a lake column's values come from in a store batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Source {
    /// Column index in [`TableDef::arrow_schema`] (or, for `_op`, of `_deleted` in
    /// [`TableDef::arrow_schema_with_deleted`]).
    index: usize,
    /// Store type of that column.
    ty: ColumnType,
    /// Whether this is `_op`, spelled out from the `_deleted` flag.
    op: bool,
}

/// The lake columns of a delivery and how to fill them from store batches. Build it with
/// [`LakeSchema::auto`] or [`LakeSchema::from_file`]; then [`LakeSchema::convert`] each
/// snapshot batch.
#[derive(Debug, Clone)]
pub struct LakeSchema {
    table: String,
    columns: Vec<LakeColumn>,
    sources: Vec<Source>,
    /// The store batch schema this converts from ([`TableDef::arrow_schema`]).
    input: SchemaRef,
    /// The lake batch schema.
    schema: SchemaRef,
}

/// The result of converting one store batch.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The clean rows in the lake schema, in input order.
    pub batch: RecordBatch,
    /// `None` when every row is clean; else one entry per input row, true when it was kept.
    pub kept: Option<BooleanArray>,
    /// The dirty rows, in input row order.
    pub dirty: Vec<DirtyRow>,
}

impl LakeSchema {
    /// The `auto` schema of `table`: every declared column under its own name and
    /// [`LakeType::for_store_type`], then `_seq` (int64) and `_write_time` (timestamp_ms).
    pub fn auto(table: &TableDef) -> LakeSchema {
        let columns = table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.ty))
            .chain([
                (SEQ_COLUMN.to_string(), ColumnType::Int64),
                (WRITE_TIME_COLUMN.to_string(), ColumnType::TimestampMs),
            ])
            .map(|(name, ty)| (name.clone(), name, LakeType::for_store_type(ty)))
            .collect();
        LakeSchema::build(table, columns)
    }

    /// Builds the schema from checked `(source, name, type)` triples. Sources that `table`
    /// does not have are skipped (callers check them first).
    fn build(table: &TableDef, specs: Vec<(String, String, LakeType)>) -> LakeSchema {
        let input = table.arrow_schema();
        let mut columns = Vec::with_capacity(specs.len());
        let mut sources = Vec::with_capacity(specs.len());
        let mut fields = Vec::with_capacity(specs.len());
        for (source, name, ty) in specs {
            let (Some(index), Some(store_ty)) =
                (source_index(table, &source), table.source_type(&source))
            else {
                continue;
            };
            let nullable = input.field(index).is_nullable();
            fields.push(Field::new(&name, ty.arrow_type(), nullable));
            sources.push(Source {
                index,
                ty: store_ty,
                op: false,
            });
            columns.push(LakeColumn {
                source,
                name,
                ty,
                nullable,
            });
        }
        LakeSchema {
            table: table.table.clone(),
            columns,
            sources,
            input,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// This schema with a last lake column [`OP_COLUMN`] (string, never NULL): `delete` for
    /// a row of a store batch whose [`DELETED_COLUMN`] is true (a tombstone: its key, `_seq`
    /// and `_write_time`, every other column NULL), else `upsert`. It converts batches of
    /// [`TableDef::arrow_schema_with_deleted`] (changes with deletes).
    pub fn with_op_column(&self) -> LakeSchema {
        let mut out = self.clone();
        let deleted_index = self.input.fields().len();
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(OP_COLUMN, LakeType::String.arrow_type(), false));
        let mut input: Vec<Field> = self
            .input
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        input.push(Field::new(
            DELETED_COLUMN,
            arrow::datatypes::DataType::Boolean,
            false,
        ));
        out.columns.push(LakeColumn {
            source: DELETED_COLUMN.to_string(),
            name: OP_COLUMN.to_string(),
            ty: LakeType::String,
            nullable: false,
        });
        out.sources.push(Source {
            index: deleted_index,
            ty: ColumnType::Bool,
            op: true,
        });
        out.input = Arc::new(Schema::new(input));
        out.schema = Arc::new(Schema::new(fields));
        out
    }

    /// Whether batches it converts carry [`DELETED_COLUMN`] (see [`LakeSchema::with_op_column`]).
    pub fn has_op_column(&self) -> bool {
        self.sources.iter().any(|s| s.op)
    }

    /// The store table this schema reads.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The lake columns, in lake order.
    pub fn columns(&self) -> &[LakeColumn] {
        &self.columns
    }

    /// The Arrow schema of lake batches (field nullability as [`LakeColumn::nullable`]).
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Converts one store batch (schema [`TableDef::arrow_schema`] of this schema's table)
    /// into the lake schema. Rows with a value that does not fit are left out and reported in
    /// [`Converted::dirty`]; the clean rows keep their order. Fails only when the batch does
    /// not have the table's schema, or Arrow refuses to build the result.
    pub fn convert(&self, batch: &RecordBatch) -> Result<Converted> {
        self.check_input(batch)?;
        let rows = batch.num_rows();
        let mut dirty = values::DirtySet::new();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (column, source) in self.columns.iter().zip(&self.sources) {
            if source.op {
                arrays.push(op_array(batch.column(source.index))?);
                continue;
            }
            arrays.push(values::convert_column(
                batch.column(source.index),
                source.ty,
                &column.ty,
                &column.name,
                &mut dirty,
            )?);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let converted = RecordBatch::try_new_with_options(self.arrow_schema(), arrays, &options)?;
        if dirty.is_empty() {
            return Ok(Converted {
                batch: converted,
                kept: None,
                dirty: Vec::new(),
            });
        }
        let (kept, dirty) = dirty.finish();
        let batch = filter_record_batch(&converted, &kept)?;
        Ok(Converted {
            batch,
            kept: Some(kept),
            dirty,
        })
    }

    /// Checks that `batch` has the store schema this converts from.
    fn check_input(&self, batch: &RecordBatch) -> Result<()> {
        let got = batch.schema_ref();
        if Arc::ptr_eq(got, &self.input) {
            return Ok(());
        }
        let want = self.input.fields();
        if got.fields().len() != want.len() {
            return Err(Error::encode(format!(
                "convert: a batch of table {} has {} columns, expected {}",
                self.table,
                got.fields().len(),
                want.len()
            )));
        }
        for (i, (g, w)) in got.fields().iter().zip(want.iter()).enumerate() {
            if g.name() != w.name() || g.data_type() != w.data_type() {
                return Err(Error::encode(format!(
                    "convert: column {i} of a batch of table {} is {} {}, expected {} {}",
                    self.table,
                    g.name(),
                    g.data_type(),
                    w.name(),
                    w.data_type()
                )));
            }
        }
        Ok(())
    }
}

/// `delete` where the `_deleted` flags are true, else `upsert`.
fn op_array(deleted: &ArrayRef) -> Result<ArrayRef> {
    let flags = deleted
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| Error::encode(format!("convert: {DELETED_COLUMN} is not Boolean")))?;
    let ops: StringArray = flags
        .iter()
        .map(|d| Some(if d == Some(true) { "delete" } else { "upsert" }))
        .collect();
    Ok(Arc::new(ops))
}

/// Index of store column `name` (declared, `_seq` or `_write_time`) in
/// [`TableDef::arrow_schema`].
fn source_index(table: &TableDef, name: &str) -> Option<usize> {
    match name {
        SEQ_COLUMN => Some(table.columns.len()),
        WRITE_TIME_COLUMN => Some(table.columns.len() + 1),
        _ => table.column_index(name),
    }
}

#[cfg(test)]
mod tests;
