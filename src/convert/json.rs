//! One row of a batch as a JSON object, for dirty-data files: the store's values as they
//! were, in a form a person (or `jq`) can read and a loader can read back.

use arrow::array::{
    Array, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array,
    Int64Array, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::text;

/// Row `row` of `batch` as a JSON object keyed by column name (key order is serde_json's
/// `Map` order: sorted, unless its `preserve_order` feature is on):
/// strings as strings; int64 as numbers; finite doubles as numbers and NaN / ±infinity as the
/// strings `"NaN"`, `"Infinity"`, `"-Infinity"`; booleans as booleans; binary as standard
/// base64 (with padding); timestamps as RFC 3339 UTC with milliseconds
/// (`2024-05-01T12:00:00.000Z`; years beyond 0000–9999 in ISO 8601 expanded form); NULL as
/// `null`. Lake types are written too (dates as `YYYY-MM-DD`, decimals as exact text, µs
/// timestamps with 6 digits); any other type as Arrow's display text.
///
/// `row` must be below `batch.num_rows()`; a row past the end gives every column `null`.
pub fn row_json(batch: &RecordBatch, row: usize) -> Map<String, Value> {
    let schema = batch.schema_ref();
    let mut out = Map::with_capacity(schema.fields().len());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let value = if row >= array.len() || array.is_null(row) {
            Value::Null
        } else {
            value_json(array.as_ref(), row)
        };
        out.insert(field.name().clone(), value);
    }
    out
}

fn value_json(array: &dyn Array, row: usize) -> Value {
    let any = array.as_any();
    match array.data_type() {
        DataType::Utf8 => {
            if let Some(a) = any.downcast_ref::<StringArray>() {
                return Value::String(a.value(row).to_string());
            }
        }
        DataType::Int64 => {
            if let Some(a) = any.downcast_ref::<Int64Array>() {
                return Value::from(a.value(row));
            }
        }
        DataType::Int32 => {
            if let Some(a) = any.downcast_ref::<Int32Array>() {
                return Value::from(a.value(row));
            }
        }
        DataType::Float64 => {
            if let Some(a) = any.downcast_ref::<Float64Array>() {
                return double_json(a.value(row));
            }
        }
        DataType::Float32 => {
            if let Some(a) = any.downcast_ref::<Float32Array>() {
                return double_json(f64::from(a.value(row)));
            }
        }
        DataType::Boolean => {
            if let Some(a) = any.downcast_ref::<BooleanArray>() {
                return Value::Bool(a.value(row));
            }
        }
        DataType::Binary => {
            if let Some(a) = any.downcast_ref::<BinaryArray>() {
                let b64 = base64::engine::general_purpose::STANDARD.encode(a.value(row));
                return Value::String(b64);
            }
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            if let Some(a) = any.downcast_ref::<TimestampMillisecondArray>() {
                let mut s = String::with_capacity(24);
                if text::write_timestamp_ms(&mut s, a.value(row)).is_ok() {
                    return Value::String(s);
                }
            }
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
                return Value::String(timestamp_us_text(a.value(row)));
            }
        }
        DataType::Date32 => {
            if let Some(a) = any.downcast_ref::<Date32Array>() {
                let (y, m, d) = text::civil_from_days(i64::from(a.value(row)));
                return Value::String(format!("{y:04}-{m:02}-{d:02}"));
            }
        }
        _ => {}
    }
    display_json(array, row)
}

fn double_json(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None => {
            let mut s = String::new();
            // Writing to a String cannot fail.
            let _ = text::write_double(&mut s, v);
            Value::String(s)
        }
    }
}

/// A µs timestamp as RFC 3339 UTC with six fractional digits.
fn timestamp_us_text(us: i64) -> String {
    let mut s = String::with_capacity(27);
    let ms = us.div_euclid(1000);
    let _ = text::write_timestamp_ms(&mut s, ms);
    // Turn `.mmmZ` into `.mmmuuuZ`.
    s.pop();
    s.push_str(&format!("{:03}Z", us.rem_euclid(1000)));
    s
}

/// Arrow's own display text of a value (decimals and anything without a JSON form).
fn display_json(array: &dyn Array, row: usize) -> Value {
    let options = FormatOptions::default();
    match ArrayFormatter::try_new(array, &options) {
        Ok(f) => Value::String(f.value(row).to_string()),
        Err(_) => Value::String(format!("<{} value>", array.data_type())),
    }
}
