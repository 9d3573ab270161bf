//! Tests of the convert stage: every allowed pair (good values, boundaries, each dirty reason
//! with its detail), NULLs, schema files, `auto`, `row_json` and whole-batch conversion.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use serde_json::json;

use super::text::{RFC3339_MAX_MS, RFC3339_MIN_MS};
use super::*;
use crate::model::schema::OBJECT_INVENTORY_YAML;

const STORE_TYPES: [ColumnType; 6] = [
    ColumnType::String,
    ColumnType::Int64,
    ColumnType::Double,
    ColumnType::Bool,
    ColumnType::Binary,
    ColumnType::TimestampMs,
];

/// A table with key `k` (int64) and one nullable column `v` of type `source`.
fn one_column_table(source: ColumnType) -> TableDef {
    let yaml = format!(
        "table: t\nprimary_key: [k]\ncolumns:\n  - {{ name: k, type: int64 }}\n  - {{ name: v, type: {source} }}\n"
    );
    TableDef::from_yaml(&yaml, "t.yaml").unwrap()
}

/// A store batch of `def` whose declared columns are `columns`, plus `_seq` and `_write_time`.
fn store_batch(def: &TableDef, mut columns: Vec<ArrayRef>) -> RecordBatch {
    let n = columns.first().map_or(0, |c| c.len());
    columns.push(Arc::new(Int64Array::from_iter_values(1..=n as i64)));
    columns.push(Arc::new(
        TimestampMillisecondArray::from_iter_values((0..n as i64).map(|i| 1_700_000_000_000 + i))
            .with_timezone("UTC"),
    ));
    RecordBatch::try_new(def.arrow_schema(), columns).unwrap()
}

/// Converts `values` (of store type `source`) into lake type `target`.
fn run(source: ColumnType, target: &str, values: ArrayRef) -> Converted {
    let def = one_column_table(source);
    let yaml = format!("columns:\n  - {{ source: v, name: out, type: \"{target}\" }}\n");
    let schema = LakeSchema::from_yaml(&yaml, "s.yaml", &def).unwrap();
    let n = values.len();
    let batch = store_batch(
        &def,
        vec![Arc::new(Int64Array::from_iter_values(0..n as i64)), values],
    );
    let c = schema.convert(&batch).unwrap();
    assert_eq!(c.batch.schema(), schema.arrow_schema());
    assert_eq!(c.batch.num_rows() + c.dirty.len(), n);
    c
}

/// The dirty rows as (row, reason, detail).
fn dirt(c: &Converted) -> Vec<(usize, &'static str, String)> {
    c.dirty
        .iter()
        .map(|d| {
            assert_eq!(d.column, "out");
            (d.row, d.reason.as_str(), d.detail.clone())
        })
        .collect()
}

fn d(row: usize, reason: &'static str, detail: &str) -> (usize, &'static str, String) {
    (row, reason, detail.to_string())
}

fn out<T: 'static>(c: &Converted) -> &T {
    c.batch.column(0).as_any().downcast_ref::<T>().unwrap()
}

fn strings(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn ints(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

fn doubles(v: &[Option<f64>]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

fn times(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(v.to_vec()).with_timezone("UTC"))
}

fn opt_values<'a, A, T>(a: &'a A) -> Vec<Option<T>>
where
    &'a A: IntoIterator<Item = Option<T>>,
{
    a.into_iter().collect()
}

// ---------- identity pairs ----------

#[test]
fn identity_pairs_reuse_the_input_array() {
    let cases: Vec<(ColumnType, ArrayRef)> = vec![
        (ColumnType::String, strings(&[Some("a"), None])),
        (ColumnType::Int64, ints(&[Some(1), None])),
        (ColumnType::Double, doubles(&[Some(1.5), None])),
        (
            ColumnType::Bool,
            Arc::new(BooleanArray::from(vec![Some(true), None])),
        ),
        (
            ColumnType::Binary,
            Arc::new(BinaryArray::from(vec![Some(&b"\xff"[..]), None])),
        ),
        (ColumnType::TimestampMs, times(&[Some(-1), None])),
    ];
    for (source, values) in cases {
        let target = LakeType::for_store_type(source).name();
        let c = run(source, &target, Arc::clone(&values));
        assert!(c.dirty.is_empty() && c.kept.is_none());
        assert!(Arc::ptr_eq(c.batch.column(0), &values), "{source}");
    }
}

#[test]
fn nulls_convert_to_nulls_for_every_allowed_pair() {
    let shapes = [
        "string",
        "int32",
        "int64",
        "float",
        "double",
        "boolean",
        "binary",
        "date",
        "timestamp_ms",
        "timestamp_us",
        "decimal(9,3)",
    ];
    let mut pairs = 0;
    for source in STORE_TYPES {
        for target in shapes {
            let ty = LakeType::parse(target).unwrap();
            if !can_hold(source, &ty) {
                continue;
            }
            pairs += 1;
            let c = run(source, target, new_null_array(&source.arrow_type(), 3));
            assert!(c.dirty.is_empty(), "{source} -> {target}");
            let col = c.batch.column(0);
            assert_eq!(col.data_type(), &ty.arrow_type(), "{source} -> {target}");
            assert_eq!(col.len(), 3);
            assert_eq!(col.null_count(), 3, "{source} -> {target}");
        }
    }
    assert_eq!(pairs, 11 + 6 + 6 + 4 + 2 + 5);
}

// ---------- string → ... ----------

#[test]
fn string_to_int32() {
    let c = run(
        ColumnType::String,
        "int32",
        strings(&[
            Some("12"),
            Some("-2147483648"),
            Some("2147483647"),
            None,
            Some("+7"),
            Some("2147483648"),
            Some("abc"),
            Some("1.0"),
            Some(""),
            Some(" 1"),
        ]),
    );
    assert_eq!(
        opt_values(out::<Int32Array>(&c)),
        [Some(12), Some(i32::MIN), Some(i32::MAX), None, Some(7)]
    );
    assert_eq!(
        dirt(&c),
        [
            d(5, "int32_overflow", "2147483648 does not fit int32"),
            d(6, "invalid_number", "\"abc\" is not an integer"),
            d(7, "invalid_number", "\"1.0\" is not an integer"),
            d(8, "invalid_number", "\"\" is not an integer"),
            d(9, "invalid_number", "\" 1\" is not an integer"),
        ]
    );
}

#[test]
fn string_to_int64() {
    let c = run(
        ColumnType::String,
        "int64",
        strings(&[
            Some("-9223372036854775808"),
            Some("9223372036854775807"),
            Some("9223372036854775808"),
            Some("-9223372036854775809"),
            Some("1e3"),
        ]),
    );
    assert_eq!(
        opt_values(out::<Int64Array>(&c)),
        [Some(i64::MIN), Some(i64::MAX)]
    );
    assert_eq!(
        dirt(&c),
        [
            d(
                2,
                "int64_overflow",
                "9223372036854775808 does not fit int64"
            ),
            d(
                3,
                "int64_overflow",
                "-9223372036854775809 does not fit int64"
            ),
            d(4, "invalid_number", "\"1e3\" is not an integer"),
        ]
    );
}

#[test]
fn string_to_float() {
    let c = run(
        ColumnType::String,
        "float",
        strings(&[
            Some("1.5"),
            Some("3.4028235e38"),
            Some("1e-50"),
            Some("-inf"),
            Some("NaN"),
            Some("1e39"),
            Some("-1e39"),
            Some("one"),
        ]),
    );
    let f = out::<Float32Array>(&c);
    assert_eq!(f.len(), 5);
    assert_eq!(f.value(0), 1.5);
    assert_eq!(f.value(1), f32::MAX);
    assert_eq!(f.value(2), 0.0);
    assert_eq!(f.value(3), f32::NEG_INFINITY);
    assert!(f.value(4).is_nan());
    assert_eq!(
        dirt(&c),
        [
            d(5, "float_overflow", "1e39 does not fit float"),
            d(6, "float_overflow", "-1e39 does not fit float"),
            d(7, "invalid_number", "\"one\" is not a number"),
        ]
    );
}

#[test]
fn string_to_double() {
    let c = run(
        ColumnType::String,
        "double",
        strings(&[
            Some("0.1"),
            Some("-0"),
            Some("Infinity"),
            Some("1e400"),
            Some("0x1"),
        ]),
    );
    let f = out::<Float64Array>(&c);
    assert_eq!(f.value(0), 0.1);
    assert!(f.value(1) == 0.0 && f.value(1).is_sign_negative());
    assert_eq!(f.value(2), f64::INFINITY);
    assert_eq!(
        dirt(&c),
        [
            d(3, "float_overflow", "1e400 does not fit double"),
            d(4, "invalid_number", "\"0x1\" is not a number"),
        ]
    );
}

#[test]
fn string_to_decimal_is_exact() {
    let c = run(
        ColumnType::String,
        "decimal(5,2)",
        strings(&[
            Some("123.45"),
            Some("-0.5"),
            Some("1.230"),
            Some("-999.99"),
            None,
            Some("1000"),
            Some("1.234"),
            Some("12,5"),
            Some("NaN"),
        ]),
    );
    let a = out::<Decimal128Array>(&c);
    assert_eq!((a.precision(), a.scale()), (5, 2));
    assert_eq!(
        opt_values(a),
        [Some(12_345), Some(-50), Some(123), Some(-99_999), None]
    );
    assert_eq!(
        dirt(&c),
        [
            d(5, "decimal_overflow", "\"1000\" does not fit decimal(5,2)"),
            d(
                6,
                "decimal_scale_exceeded",
                "\"1.234\" has more than 2 fractional digits for decimal(5,2)"
            ),
            d(7, "invalid_number", "\"12,5\" is not a decimal number"),
            d(8, "invalid_number", "\"NaN\" is not a decimal number"),
        ]
    );
}

#[test]
fn string_to_boolean() {
    let c = run(
        ColumnType::String,
        "boolean",
        strings(&[
            Some("true"),
            Some("FALSE"),
            Some("True"),
            None,
            Some("yes"),
            Some("1"),
        ]),
    );
    assert_eq!(
        opt_values(out::<BooleanArray>(&c)),
        [Some(true), Some(false), Some(true), None]
    );
    assert_eq!(
        dirt(&c),
        [
            d(4, "invalid_boolean", "\"yes\" is not true or false"),
            d(5, "invalid_boolean", "\"1\" is not true or false"),
        ]
    );
}

#[test]
fn string_to_date() {
    let c = run(
        ColumnType::String,
        "date",
        strings(&[
            Some("2024-02-29"),
            Some("1969-12-31"),
            Some("2023-02-29"),
            Some("2024-01-01T00:00:00Z"),
        ]),
    );
    assert_eq!(opt_values(out::<Date32Array>(&c)), [Some(19_782), Some(-1)]);
    assert_eq!(
        dirt(&c),
        [
            d(
                2,
                "invalid_date",
                "\"2023-02-29\" is not a date (expected YYYY-MM-DD)"
            ),
            d(
                3,
                "invalid_date",
                "\"2024-01-01T00:00:00Z\" is not a date (expected YYYY-MM-DD)"
            ),
        ]
    );
}

#[test]
fn string_to_timestamp_ms() {
    let c = run(
        ColumnType::String,
        "timestamp_ms",
        strings(&[
            Some("2024-05-01T12:00:00Z"),
            Some("2024-05-01 12:00:00.5"),
            Some("2024-05-01T14:00:00.120+02:00"),
            Some("1969-12-31T23:59:59.999Z"),
            Some("2024-05-01T12:00:00"),
            Some("2024-05-01T12:00:00.0001Z"),
        ]),
    );
    let a = out::<TimestampMillisecondArray>(&c);
    assert_eq!(a.timezone(), Some("UTC"));
    assert_eq!(
        opt_values(a),
        [
            Some(1_714_564_800_000),
            Some(1_714_564_800_500),
            Some(1_714_564_800_120),
            Some(-1)
        ]
    );
    assert_eq!(
        dirt(&c),
        [
            d(
                4,
                "invalid_timestamp",
                "\"2024-05-01T12:00:00\" is not a timestamp (expected RFC 3339 with offset, or YYYY-MM-DD HH:MM:SS[.fff] in UTC)"
            ),
            d(
                5,
                "timestamp_precision_loss",
                "\"2024-05-01T12:00:00.0001Z\" has more than 3 fractional second digits for timestamp_ms"
            ),
        ]
    );
}

#[test]
fn string_to_timestamp_us() {
    let c = run(
        ColumnType::String,
        "timestamp_us",
        strings(&[
            Some("2024-05-01T12:00:00.123456+00:00"),
            Some("0000-01-01 00:00:00"),
            Some("2024-05-01T12:00:00.1234567Z"),
        ]),
    );
    let a = out::<TimestampMicrosecondArray>(&c);
    assert_eq!(a.timezone(), Some("UTC"));
    assert_eq!(
        opt_values(a),
        [Some(1_714_564_800_123_456), Some(RFC3339_MIN_MS * 1000)]
    );
    assert_eq!(
        dirt(&c),
        [d(
            2,
            "timestamp_precision_loss",
            "\"2024-05-01T12:00:00.1234567Z\" has more than 6 fractional second digits for timestamp_us"
        )]
    );
}

#[test]
fn string_to_binary() {
    let c = run(
        ColumnType::String,
        "binary",
        strings(&[Some("héllo"), None, Some("")]),
    );
    assert_eq!(
        opt_values(out::<BinaryArray>(&c)),
        [Some("héllo".as_bytes()), None, Some(&b""[..])]
    );
}

// ---------- int64 → ... ----------

#[test]
fn int64_to_int32() {
    let c = run(
        ColumnType::Int64,
        "int32",
        ints(&[
            Some(0),
            Some(i32::MAX as i64),
            Some(i32::MIN as i64),
            None,
            Some(3_000_000_000),
            Some(i32::MIN as i64 - 1),
            Some(i64::MIN),
        ]),
    );
    assert_eq!(
        opt_values(out::<Int32Array>(&c)),
        [Some(0), Some(i32::MAX), Some(i32::MIN), None]
    );
    assert_eq!(
        dirt(&c),
        [
            d(4, "int32_overflow", "3000000000 does not fit int32"),
            d(5, "int32_overflow", "-2147483649 does not fit int32"),
            d(
                6,
                "int32_overflow",
                "-9223372036854775808 does not fit int32"
            ),
        ]
    );
    assert_eq!(
        c.kept.as_ref().map(opt_values),
        Some(vec![
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            Some(false),
            Some(false),
            Some(false)
        ])
    );
}

#[test]
fn int64_to_double() {
    let two53 = 1i64 << 53;
    let c = run(
        ColumnType::Int64,
        "double",
        ints(&[
            Some(two53),
            Some(-two53),
            Some(-7),
            Some(two53 + 1),
            Some(i64::MIN),
        ]),
    );
    assert_eq!(
        opt_values(out::<Float64Array>(&c)),
        [Some(two53 as f64), Some(-two53 as f64), Some(-7.0)]
    );
    assert_eq!(
        dirt(&c),
        [
            d(
                3,
                "int53_precision_loss",
                "9007199254740993 is beyond ±2^53, where a double loses integer precision"
            ),
            d(
                4,
                "int53_precision_loss",
                "-9223372036854775808 is beyond ±2^53, where a double loses integer precision"
            ),
        ]
    );
}

#[test]
fn int64_to_float() {
    let c = run(
        ColumnType::Int64,
        "float",
        ints(&[
            Some(16_777_216),
            Some(1 << 40),
            Some(i64::MIN),
            Some(16_777_217),
            Some(i64::MAX),
        ]),
    );
    assert_eq!(
        opt_values(out::<Float32Array>(&c)),
        [
            Some(16_777_216.0),
            Some((1u64 << 40) as f32),
            Some(-(2f32.powi(63)))
        ]
    );
    assert_eq!(
        dirt(&c),
        [
            d(
                4 - 1,
                "float_precision_loss",
                "16777217 is not exactly representable as float"
            ),
            d(
                4,
                "float_precision_loss",
                "9223372036854775807 is not exactly representable as float"
            ),
        ]
    );
}

#[test]
fn int64_to_decimal() {
    let c = run(
        ColumnType::Int64,
        "decimal(5,2)",
        ints(&[Some(999), Some(-999), Some(0), Some(1000), Some(i64::MIN)]),
    );
    assert_eq!(
        opt_values(out::<Decimal128Array>(&c)),
        [Some(99_900), Some(-99_900), Some(0)]
    );
    assert_eq!(
        dirt(&c),
        [
            d(3, "decimal_overflow", "1000 does not fit decimal(5,2)"),
            d(
                4,
                "decimal_overflow",
                "-9223372036854775808 does not fit decimal(5,2)"
            ),
        ]
    );
    // The widest decimals: i64 fits decimal(38,0) (and 19 digits); 10^20 scale overflows i128.
    let c = run(
        ColumnType::Int64,
        "decimal(19,0)",
        ints(&[Some(i64::MAX), Some(i64::MIN)]),
    );
    assert!(c.dirty.is_empty());
    let c = run(
        ColumnType::Int64,
        "decimal(38,20)",
        ints(&[Some(1), Some(i64::MAX)]),
    );
    assert_eq!(
        opt_values(out::<Decimal128Array>(&c)),
        [Some(10i128.pow(20))]
    );
    assert_eq!(dirt(&c)[0].1, "decimal_overflow");
}

#[test]
fn int64_to_string() {
    let c = run(
        ColumnType::Int64,
        "string",
        ints(&[Some(0), Some(-5), None, Some(i64::MIN)]),
    );
    assert_eq!(
        opt_values(out::<StringArray>(&c)),
        [Some("0"), Some("-5"), None, Some("-9223372036854775808")]
    );
}

// ---------- double → ... ----------

#[test]
fn double_to_float() {
    let c = run(
        ColumnType::Double,
        "float",
        doubles(&[
            Some(1.5),
            Some(0.1),
            Some(3.4028234e38),
            Some(1e-50),
            Some(f64::NAN),
            Some(f64::NEG_INFINITY),
            Some(f64::MAX),
            Some(-3.5e38),
        ]),
    );
    let f = out::<Float32Array>(&c);
    assert_eq!(f.len(), 6);
    assert_eq!(f.value(0), 1.5);
    assert_eq!(f.value(1), 0.1f32); // rounding to nearest is the type's nature
    assert_eq!(f.value(2), f32::MAX);
    assert_eq!(f.value(3), 0.0);
    assert!(f.value(4).is_nan());
    assert_eq!(f.value(5), f32::NEG_INFINITY);
    assert_eq!(
        dirt(&c),
        [
            d(
                6,
                "float_overflow",
                "1.7976931348623157e308 does not fit float"
            ),
            d(7, "float_overflow", "-3.5e38 does not fit float"),
        ]
    );
}

#[test]
fn double_to_decimal_rounds_half_to_even() {
    let c = run(
        ColumnType::Double,
        "decimal(5,2)",
        doubles(&[
            Some(2.675),
            Some(1.005),
            Some(-1.5),
            Some(123.0),
            Some(1e-300),
            Some(0.125),
            Some(999.994),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(999.995),
            Some(1e300),
        ]),
    );
    assert_eq!(
        opt_values(out::<Decimal128Array>(&c)),
        [
            Some(268),
            Some(100),
            Some(-150),
            Some(12_300),
            Some(0),
            Some(12),
            Some(99_999)
        ]
    );
    assert_eq!(
        dirt(&c),
        [
            d(7, "decimal_not_finite", "NaN does not fit decimal(5,2)"),
            d(
                8,
                "decimal_not_finite",
                "Infinity does not fit decimal(5,2)"
            ),
            d(9, "decimal_overflow", "999.995 does not fit decimal(5,2)"),
            d(10, "decimal_overflow", "1e300 does not fit decimal(5,2)"),
        ]
    );
    // Integral fast path overflows too.
    let c = run(
        ColumnType::Double,
        "decimal(3,0)",
        doubles(&[Some(999.0), Some(1000.0)]),
    );
    assert_eq!(opt_values(out::<Decimal128Array>(&c)), [Some(999)]);
    assert_eq!(
        dirt(&c),
        [d(1, "decimal_overflow", "1000.0 does not fit decimal(3,0)")]
    );
}

#[test]
fn double_to_int32() {
    let c = run(
        ColumnType::Double,
        "int32",
        doubles(&[
            Some(1.0),
            Some(-2147483648.0),
            Some(2147483647.0),
            Some(-0.0),
            Some(2147483648.0),
            Some(1.5),
            Some(f64::NAN),
            Some(f64::INFINITY),
        ]),
    );
    assert_eq!(
        opt_values(out::<Int32Array>(&c)),
        [Some(1), Some(i32::MIN), Some(i32::MAX), Some(0)]
    );
    assert_eq!(
        dirt(&c),
        [
            d(4, "int32_overflow", "2147483648.0 does not fit int32"),
            d(5, "not_integral", "1.5 is not an integer"),
            d(6, "not_integral", "NaN is not an integer"),
            d(7, "int32_overflow", "Infinity does not fit int32"),
        ]
    );
}

#[test]
fn double_to_int64() {
    let c = run(
        ColumnType::Double,
        "int64",
        doubles(&[
            Some(9_007_199_254_740_992.0),
            Some(-9_223_372_036_854_775_808.0),
            Some(9_223_372_036_854_775_808.0),
            Some(0.5),
        ]),
    );
    assert_eq!(
        opt_values(out::<Int64Array>(&c)),
        [Some(1 << 53), Some(i64::MIN)]
    );
    assert_eq!(
        dirt(&c),
        [
            d(
                2,
                "int64_overflow",
                "9.223372036854776e18 does not fit int64"
            ),
            d(3, "not_integral", "0.5 is not an integer"),
        ]
    );
}

#[test]
fn double_to_string() {
    let c = run(
        ColumnType::Double,
        "string",
        doubles(&[
            Some(0.1),
            Some(3.0),
            Some(1e16),
            None,
            Some(f64::NAN),
            Some(f64::NEG_INFINITY),
        ]),
    );
    assert_eq!(
        opt_values(out::<StringArray>(&c)),
        [
            Some("0.1"),
            Some("3.0"),
            Some("1e16"),
            None,
            Some("NaN"),
            Some("-Infinity")
        ]
    );
}

// ---------- bool → ... ----------

#[test]
fn bool_pairs() {
    let values: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]));
    let c = run(ColumnType::Bool, "string", Arc::clone(&values));
    assert_eq!(
        opt_values(out::<StringArray>(&c)),
        [Some("true"), None, Some("false")]
    );
    let c = run(ColumnType::Bool, "int32", Arc::clone(&values));
    assert_eq!(opt_values(out::<Int32Array>(&c)), [Some(1), None, Some(0)]);
    let c = run(ColumnType::Bool, "int64", values);
    assert_eq!(opt_values(out::<Int64Array>(&c)), [Some(1), None, Some(0)]);
}

// ---------- binary → string ----------

#[test]
fn binary_to_string_valid_reuses_buffers() {
    let values = BinaryArray::from(vec![Some(&b"ok"[..]), None, Some("é".as_bytes())]);
    let buffer = values.values().as_ptr();
    let c = run(ColumnType::Binary, "string", Arc::new(values));
    let s = out::<StringArray>(&c);
    assert_eq!(opt_values(s), [Some("ok"), None, Some("é")]);
    assert_eq!(s.values().as_ptr(), buffer);
}

#[test]
fn binary_to_string_invalid_utf8() {
    let c = run(
        ColumnType::Binary,
        "string",
        Arc::new(BinaryArray::from(vec![
            Some(&b"ok"[..]),
            Some(&[0x66, 0xff][..]),
            None,
            Some(&[0xc3][..]),
            Some("ü".as_bytes()),
        ])),
    );
    assert_eq!(
        opt_values(out::<StringArray>(&c)),
        [Some("ok"), None, Some("ü")]
    );
    assert_eq!(
        dirt(&c),
        [
            d(
                1,
                "invalid_utf8",
                "2 bytes are not valid UTF-8 (invalid byte at offset 1)"
            ),
            d(
                3,
                "invalid_utf8",
                "1 bytes are not valid UTF-8 (invalid byte at offset 0)"
            ),
        ]
    );
}

// ---------- timestamp_ms → ... ----------

#[test]
fn timestamp_to_timestamp_us() {
    let c = run(
        ColumnType::TimestampMs,
        "timestamp_us",
        times(&[
            Some(1),
            Some(-1),
            Some(i64::MAX / 1000),
            Some(i64::MAX / 1000 + 1),
        ]),
    );
    let a = out::<TimestampMicrosecondArray>(&c);
    assert_eq!(a.timezone(), Some("UTC"));
    assert_eq!(
        opt_values(a),
        [Some(1000), Some(-1000), Some(i64::MAX / 1000 * 1000)]
    );
    assert_eq!(
        dirt(&c),
        [d(
            3,
            "timestamp_overflow",
            "9223372036854776 ms does not fit timestamp_us"
        )]
    );
}

#[test]
fn timestamp_to_date_floors() {
    let day = 86_400_000;
    let c = run(
        ColumnType::TimestampMs,
        "date",
        times(&[
            Some(0),
            Some(day - 1),
            Some(day),
            Some(-1),
            Some(-day),
            Some(-day - 1),
            Some(i64::MAX),
        ]),
    );
    assert_eq!(
        opt_values(out::<Date32Array>(&c)),
        [Some(0), Some(0), Some(1), Some(-1), Some(-1), Some(-2)]
    );
    assert_eq!(
        dirt(&c),
        [d(
            6,
            "date_overflow",
            "9223372036854775807 ms is outside the date range"
        )]
    );
}

#[test]
fn timestamp_to_string() {
    let c = run(
        ColumnType::TimestampMs,
        "string",
        times(&[
            Some(0),
            Some(-1),
            Some(RFC3339_MAX_MS),
            Some(RFC3339_MIN_MS),
            None,
            Some(RFC3339_MAX_MS + 1),
        ]),
    );
    assert_eq!(
        opt_values(out::<StringArray>(&c)),
        [
            Some("1970-01-01T00:00:00.000Z"),
            Some("1969-12-31T23:59:59.999Z"),
            Some("9999-12-31T23:59:59.999Z"),
            Some("0000-01-01T00:00:00.000Z"),
            None
        ]
    );
    assert_eq!(
        dirt(&c),
        [d(
            5,
            "timestamp_overflow",
            "253402300800000 ms is outside years 0000-9999 that RFC 3339 text can hold"
        )]
    );
}

#[test]
fn timestamp_to_int64_is_epoch_ms() {
    let values =
        TimestampMillisecondArray::from(vec![Some(-5), None, Some(i64::MAX)]).with_timezone("UTC");
    let buffer = values.values().inner().as_ptr();
    let c = run(ColumnType::TimestampMs, "int64", Arc::new(values));
    let a = out::<Int64Array>(&c);
    assert_eq!(opt_values(a), [Some(-5), None, Some(i64::MAX)]);
    assert_eq!(a.values().inner().as_ptr(), buffer);
}

// ---------- whole batches ----------

fn mixed_table() -> TableDef {
    TableDef::from_yaml(
        "table: m\nprimary_key: [id]\ncolumns:\n  - { name: id, type: string }\n  - { name: n, type: int64 }\n  - { name: x, type: double }\n  - { name: note, type: string }\n",
        "m.yaml",
    )
    .unwrap()
}

#[test]
fn converts_a_mixed_batch() {
    let def = mixed_table();
    let schema = LakeSchema::from_yaml(
        "columns:\n  - { source: id, name: id, type: int32 }\n  - { source: n, name: small, type: int32 }\n  - { source: x, name: price, type: \"decimal(6,2)\" }\n  - { source: note, name: note }\n  - { source: _seq, name: seq }\n",
        "mixed.yaml",
        &def,
    )
    .unwrap();
    let batch = store_batch(
        &def,
        vec![
            strings(&[Some("1"), Some("2"), Some("x3"), Some("4"), Some("5")]),
            ints(&[
                Some(10),
                Some(5_000_000_000),
                Some(7_000_000_000),
                None,
                Some(-1),
            ]),
            doubles(&[Some(1.005), Some(2.0), Some(3.0), Some(f64::NAN), None]),
            strings(&[Some("a"), Some("b"), Some("c"), Some("d"), None]),
        ],
    );
    let c = schema.convert(&batch).unwrap();
    // Row 2 is bad in `id` and `small`: reported once, at `id`.
    let got: Vec<_> = c
        .dirty
        .iter()
        .map(|d| (d.row, d.column.as_str(), d.reason))
        .collect();
    assert_eq!(
        got,
        [
            (1, "small", DirtyReason::Int32Overflow),
            (2, "id", DirtyReason::InvalidNumber),
            (3, "price", DirtyReason::DecimalNotFinite),
        ]
    );
    assert_eq!(
        opt_values(c.kept.as_ref().unwrap()),
        [
            Some(true),
            Some(false),
            Some(false),
            Some(false),
            Some(true)
        ]
    );
    assert_eq!(c.batch.schema(), schema.arrow_schema());
    assert_eq!(c.batch.num_rows(), 2);
    let col = |name: &str| c.batch.column_by_name(name).unwrap().clone();
    let id = col("id");
    assert_eq!(
        opt_values(id.as_any().downcast_ref::<Int32Array>().unwrap()),
        [Some(1), Some(5)]
    );
    let small = col("small");
    assert_eq!(
        opt_values(small.as_any().downcast_ref::<Int32Array>().unwrap()),
        [Some(10), Some(-1)]
    );
    let price = col("price");
    assert_eq!(
        opt_values(price.as_any().downcast_ref::<Decimal128Array>().unwrap()),
        [Some(100), None]
    );
    let note = col("note");
    assert_eq!(
        opt_values(note.as_any().downcast_ref::<StringArray>().unwrap()),
        [Some("a"), None]
    );
    let seq = col("seq");
    assert_eq!(
        opt_values(seq.as_any().downcast_ref::<Int64Array>().unwrap()),
        [Some(1), Some(5)]
    );
    // The key column keeps its non-nullable field even though a dirty row sat in it.
    let fields = schema.arrow_schema();
    assert!(!fields.field(0).is_nullable());
    assert!(fields.field(1).is_nullable());
    assert!(!fields.field(4).is_nullable());
}

#[test]
fn clean_batch_has_no_mask_and_empty_batch_converts() {
    let def = mixed_table();
    let schema = LakeSchema::auto(&def);
    let batch = store_batch(
        &def,
        vec![
            strings(&[Some("1")]),
            ints(&[Some(1)]),
            doubles(&[Some(1.0)]),
            strings(&[None]),
        ],
    );
    let c = schema.convert(&batch).unwrap();
    assert!(c.kept.is_none() && c.dirty.is_empty());
    assert_eq!(c.batch.num_rows(), 1);
    let empty = RecordBatch::new_empty(def.arrow_schema());
    let c = schema.convert(&empty).unwrap();
    assert_eq!(c.batch.num_rows(), 0);
    assert_eq!(c.batch.num_columns(), 6);
}

#[test]
fn refuses_a_batch_of_another_schema() {
    let def = mixed_table();
    let schema = LakeSchema::auto(&def);
    let other = one_column_table(ColumnType::Int64);
    let batch = store_batch(&other, vec![ints(&[Some(1)]), ints(&[Some(2)])]);
    let err = schema.convert(&batch).unwrap_err().to_string();
    assert!(err.contains("has 4 columns, expected 6"), "{err}");
    let other = TableDef::from_yaml(
        "table: m\nprimary_key: [id]\ncolumns:\n  - { name: id, type: string }\n  - { name: n, type: string }\n  - { name: x, type: double }\n  - { name: note, type: string }\n",
        "m.yaml",
    )
    .unwrap();
    let batch = store_batch(
        &other,
        vec![
            strings(&[Some("1")]),
            strings(&[Some("1")]),
            doubles(&[Some(1.0)]),
            strings(&[None]),
        ],
    );
    let err = schema.convert(&batch).unwrap_err().to_string();
    assert!(
        err.contains("column 1 of a batch of table m is n Utf8, expected n Int64"),
        "{err}"
    );
}

// ---------- auto ----------

#[test]
fn auto_schema_of_the_inventory_table() {
    let def = TableDef::from_yaml(OBJECT_INVENTORY_YAML, "builtin").unwrap();
    let schema = LakeSchema::auto(&def);
    assert_eq!(schema.table(), "object_inventory");
    let cols = schema.columns();
    assert_eq!(cols.len(), def.columns.len() + 2);
    for (c, d) in cols.iter().zip(&def.columns) {
        assert_eq!(
            (c.source.as_str(), c.name.as_str()),
            (d.name.as_str(), d.name.as_str())
        );
        assert_eq!(c.ty, LakeType::for_store_type(d.ty));
        assert_eq!(c.nullable, !def.is_key(&d.name));
    }
    let seq = &cols[cols.len() - 2];
    assert_eq!(
        (seq.name.as_str(), seq.ty, seq.nullable),
        ("_seq", LakeType::Int64, false)
    );
    let wt = &cols[cols.len() - 1];
    assert_eq!(
        (wt.name.as_str(), wt.ty, wt.nullable),
        ("_write_time", LakeType::TimestampMs, false)
    );
    // The auto lake schema is the store schema: every column is an identity.
    assert_eq!(schema.arrow_schema(), def.arrow_schema());
}

// ---------- schema files ----------

#[test]
fn reads_a_schema_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory_lake.yaml");
    std::fs::write(
        &path,
        "columns:\n  - { source: key, name: object_key, type: string }\n  - { source: size, name: size, type: int64 }\n  - { source: last_modified, name: last_modified, type: timestamp_ms }\n  - { source: _write_time, name: day, type: date }\n  - { source: etag }\n",
    )
    .unwrap();
    let def = TableDef::from_yaml(OBJECT_INVENTORY_YAML, "builtin").unwrap();
    let schema = LakeSchema::from_file(&path, &def).unwrap();
    let got: Vec<_> = schema
        .columns()
        .iter()
        .map(|c| (c.source.as_str(), c.name.as_str(), c.ty.name(), c.nullable))
        .collect();
    assert_eq!(
        got,
        [
            ("key", "object_key", "string".to_string(), false),
            ("size", "size", "int64".to_string(), true),
            (
                "last_modified",
                "last_modified",
                "timestamp_ms".to_string(),
                true
            ),
            ("_write_time", "day", "date".to_string(), false),
            ("etag", "etag", "string".to_string(), true),
        ]
    );
    let arrow = schema.arrow_schema();
    assert_eq!(arrow.field(3).data_type(), &DataType::Date32);
    assert!(!arrow.field(3).is_nullable());
}

#[test]
fn reports_every_schema_problem_with_path_and_key() {
    let def = TableDef::from_yaml(OBJECT_INVENTORY_YAML, "builtin").unwrap();
    let yaml = "columns:\n  - { source: sise, name: sise, type: int64 }\n  - { source: size, name: Size, type: int64 }\n  - { source: size, name: size, type: int64 }\n  - { source: etag, name: e, type: integer }\n  - { source: size, name: when, type: date }\n  - { source: key, name: 1key, type: string }\n  - { source: key, name: k2, type: \"decimal(40,2)\" }\n  - { source: _seq, name: seq, type: bool }\n";
    let problems = LakeSchema::from_yaml(yaml, "schemas/bad.yaml", &def).unwrap_err();
    let expected = [
        "schemas/bad.yaml: columns[0].source: \"sise\" is not a column of table object_inventory (nor _seq or _write_time)",
        "schemas/bad.yaml: columns[2].name: lake column \"size\" is already used by columns[1] (names are case-insensitive)",
        "schemas/bad.yaml: columns[3].type: \"integer\" is not a lake type; expected one of string, int32, int64, float, double, boolean, binary, date, timestamp_ms, timestamp_us, decimal(p,s)",
        "schemas/bad.yaml: columns[4].type: int64 column size cannot be written as date (int64 can be written as string, int32, int64, float, double, decimal(p,s))",
        "schemas/bad.yaml: columns[5].name: \"1key\" is not a valid lake column name (letters, digits and _, not starting with a digit)",
        "schemas/bad.yaml: columns[6].type: \"decimal(40,2)\": decimal precision must be 1 to 38",
        "schemas/bad.yaml: columns[7].type: int64 column _seq cannot be written as boolean (int64 can be written as string, int32, int64, float, double, decimal(p,s))",
    ];
    assert_eq!(problems, expected);
}

#[test]
fn schema_yaml_errors_name_line_and_column() {
    let def = mixed_table();
    let problems = LakeSchema::from_yaml(
        "columns:\n  - { source: id, name: id, type: string }\n  - { source: n, nmae: n, type: int64 }\n",
        "s.yaml",
        &def,
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("s.yaml: line 3 column "),
        "{problems:?}"
    );
    assert!(problems[0].contains("unknown field `nmae`"), "{problems:?}");

    let problems = LakeSchema::from_yaml("table: m\ncolumns: []\n", "s.yaml", &def).unwrap_err();
    assert!(
        problems[0].contains("unknown field `table`"),
        "{problems:?}"
    );

    // Unterminated quotes and flows are reported where they start.
    let problems = LakeSchema::from_yaml("columns: [{ source: id }\n", "s.yaml", &def).unwrap_err();
    assert_eq!(
        problems,
        ["s.yaml: line 1 column 10: flow sequence '[' is not closed \
          (did not find expected ',' or ']' at line 2 column 1)"]
    );
    let problems = LakeSchema::from_yaml(
        "columns:\n  - { source: id, name: 'id, type: string }\n",
        "s.yaml",
        &def,
    )
    .unwrap_err();
    assert_eq!(
        problems,
        ["s.yaml: line 2 column 25: quoted string is not closed \
          (found unexpected end of stream at line 3 column 1)"]
    );
    let problems = LakeSchema::from_yaml(
        "columns:\n  - { source: n }\n  - { source: id, name: id\n",
        "s.yaml",
        &def,
    )
    .unwrap_err();
    assert_eq!(
        problems,
        ["s.yaml: line 3 column 5: flow mapping '{' is not closed \
          (did not find expected ',' or '}' at line 4 column 1)"]
    );

    let problems = LakeSchema::from_yaml("columns: []\n", "s.yaml", &def).unwrap_err();
    assert_eq!(
        problems,
        ["s.yaml: columns: at least one column is required"]
    );

    let missing = std::path::Path::new("/nonexistent/lake.yaml");
    let problems = LakeSchema::from_file(missing, &def).unwrap_err();
    assert!(
        problems[0].starts_with("/nonexistent/lake.yaml: cannot read"),
        "{problems:?}"
    );
}

// ---------- row_json ----------

#[test]
fn row_json_writes_store_values() {
    let def = TableDef::from_yaml(
        "table: j\nprimary_key: [s]\ncolumns:\n  - { name: s, type: string }\n  - { name: i, type: int64 }\n  - { name: d, type: double }\n  - { name: b, type: bool }\n  - { name: bin, type: binary }\n  - { name: t, type: timestamp_ms }\n",
        "j.yaml",
    )
    .unwrap();
    let batch = store_batch(
        &def,
        vec![
            strings(&[Some("a\"b"), Some("x"), Some("y")]),
            ints(&[Some(i64::MIN), None, Some(1)]),
            doubles(&[Some(1.5), Some(f64::NAN), Some(f64::NEG_INFINITY)]),
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            Arc::new(BinaryArray::from(vec![
                Some(&[0xff, 0x00, 0x61][..]),
                None,
                Some(&b""[..]),
            ])),
            times(&[Some(1_714_564_800_123), None, Some(-1)]),
        ],
    );
    assert_eq!(
        serde_json::Value::Object(row_json(&batch, 0)),
        json!({
            "s": "a\"b", "i": i64::MIN, "d": 1.5, "b": true, "bin": "/wBh",
            "t": "2024-05-01T12:00:00.123Z", "_seq": 1, "_write_time": "2023-11-14T22:13:20.000Z"
        })
    );
    assert_eq!(
        serde_json::Value::Object(row_json(&batch, 1)),
        json!({
            "s": "x", "i": null, "d": "NaN", "b": null, "bin": null, "t": null,
            "_seq": 2, "_write_time": "2023-11-14T22:13:20.001Z"
        })
    );
    let row = row_json(&batch, 2);
    assert_eq!(row["d"], json!("-Infinity"));
    assert_eq!(row["bin"], json!(""));
    assert_eq!(row["t"], json!("1969-12-31T23:59:59.999Z"));
    assert_eq!(row.len(), 8);
}

#[test]
fn row_json_writes_lake_values() {
    let def = mixed_table();
    let schema = LakeSchema::from_yaml(
        "columns:\n  - { source: x, name: price, type: \"decimal(6,2)\" }\n  - { source: _write_time, name: day, type: date }\n  - { source: _write_time, name: us, type: timestamp_us }\n  - { source: n, name: small, type: int32 }\n  - { source: x, name: f, type: float }\n",
        "s.yaml",
        &def,
    )
    .unwrap();
    let batch = store_batch(
        &def,
        vec![
            strings(&[Some("1")]),
            ints(&[Some(3)]),
            doubles(&[Some(-1.25)]),
            strings(&[None]),
        ],
    );
    let c = schema.convert(&batch).unwrap();
    assert_eq!(
        serde_json::Value::Object(row_json(&c.batch, 0)),
        json!({
            "price": "-1.25", "day": "2023-11-14", "us": "2023-11-14T22:13:20.000000Z",
            "small": 3, "f": -1.25
        })
    );
}

// ---------- properties ----------

fn int64_column(values: &[i64], target: &str) -> Converted {
    run(
        ColumnType::Int64,
        target,
        Arc::new(Int64Array::from(values.to_vec())),
    )
}

/// Interesting int64s: small, near the int32 and 2^53 edges, and anything.
fn any_int64() -> impl Strategy<Value = i64> {
    prop_oneof![
        -1000i64..1000,
        (i32::MIN as i64 - 5)..(i32::MIN as i64 + 5),
        (i32::MAX as i64 - 5)..(i32::MAX as i64 + 5),
        ((1i64 << 53) - 5)..((1i64 << 53) + 5),
        any::<i64>(),
    ]
}

proptest! {
    #[test]
    fn int64_to_int32_keeps_exactly_the_in_range_values(values in prop::collection::vec(any_int64(), 0..50)) {
        let c = int64_column(&values, "int32");
        let expected: Vec<i32> = values.iter().filter_map(|&v| i32::try_from(v).ok()).collect();
        let got: Vec<i32> = out::<Int32Array>(&c).values().to_vec();
        prop_assert_eq!(got, expected);
        let dirty_rows: Vec<usize> = c.dirty.iter().map(|d| d.row).collect();
        let expected_rows: Vec<usize> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| i32::try_from(**v).is_err())
            .map(|(i, _)| i)
            .collect();
        prop_assert_eq!(dirty_rows, expected_rows);
        prop_assert!(c.dirty.iter().all(|d| d.reason == DirtyReason::Int32Overflow));
    }

    #[test]
    fn int64_to_double_keeps_values_within_2_pow_53(values in prop::collection::vec(any_int64(), 0..50)) {
        let c = int64_column(&values, "double");
        let kept: Vec<i64> = values.iter().copied().filter(|v| v.unsigned_abs() <= 1 << 53).collect();
        let got: Vec<f64> = out::<Float64Array>(&c).values().to_vec();
        prop_assert_eq!(got.len(), kept.len());
        for (g, k) in got.iter().zip(&kept) {
            prop_assert_eq!(*g as i64, *k);
        }
    }

    #[test]
    fn int64_to_string_and_back(values in prop::collection::vec(any::<i64>(), 0..50)) {
        let c = int64_column(&values, "string");
        let back = run(ColumnType::String, "int64", Arc::clone(c.batch.column(0)));
        prop_assert!(back.dirty.is_empty());
        prop_assert_eq!(out::<Int64Array>(&back).values().to_vec(), values);
    }

    #[test]
    fn double_to_int64_keeps_integral_in_range_values(
        values in prop::collection::vec(prop_oneof![any::<f64>(), (-1e6f64..1e6).prop_map(f64::round), -1e19f64..1e19], 0..50)
    ) {
        let c = run(ColumnType::Double, "int64", Arc::new(Float64Array::from(values.clone())));
        let expected: Vec<i64> = values
            .iter()
            .copied()
            .filter(|v| v.fract() == 0.0 && *v >= -(2f64.powi(63)) && *v < 2f64.powi(63))
            .map(|v| v as i64)
            .collect();
        prop_assert_eq!(out::<Int64Array>(&c).values().to_vec(), expected);
    }

    #[test]
    fn double_to_decimal_is_within_half_a_unit(values in prop::collection::vec(-1e9f64..1e9, 0..50)) {
        let c = run(ColumnType::Double, "decimal(18,4)", Arc::new(Float64Array::from(values.clone())));
        prop_assert!(c.dirty.is_empty());
        let got = out::<Decimal128Array>(&c);
        for (i, v) in values.iter().enumerate() {
            let r = got.value(i) as f64 / 1e4;
            prop_assert!((r - v).abs() <= 0.5e-4 + v.abs() * 1e-15, "{} -> {}", v, r);
        }
    }

    #[test]
    fn timestamp_text_round_trips_through_convert(values in prop::collection::vec(RFC3339_MIN_MS..=RFC3339_MAX_MS, 0..50)) {
        let c = run(ColumnType::TimestampMs, "string", times(&values.iter().map(|&v| Some(v)).collect::<Vec<_>>()));
        prop_assert!(c.dirty.is_empty());
        let back = run(ColumnType::String, "timestamp_ms", Arc::clone(c.batch.column(0)));
        prop_assert!(back.dirty.is_empty());
        prop_assert_eq!(out::<TimestampMillisecondArray>(&back).values().to_vec(), values);
    }

    #[test]
    fn every_row_is_kept_or_reported_once(texts in prop::collection::vec("[-+0-9.a ]{0,6}", 0..50)) {
        let def = mixed_table();
        let schema = LakeSchema::from_yaml(
            "columns:\n  - { source: id, name: a, type: int32 }\n  - { source: note, name: b, type: \"decimal(4,1)\" }\n",
            "s.yaml",
            &def,
        )
        .unwrap();
        let n = texts.len();
        let s: Vec<Option<&str>> = texts.iter().map(|t| Some(t.as_str())).collect();
        let batch = store_batch(
            &def,
            vec![strings(&s), ints(&vec![None; n]), doubles(&vec![None; n]), strings(&s)],
        );
        let c = schema.convert(&batch).unwrap();
        prop_assert_eq!(c.batch.num_rows() + c.dirty.len(), n);
        let rows: Vec<usize> = c.dirty.iter().map(|d| d.row).collect();
        prop_assert!(rows.windows(2).all(|w| w[0] < w[1]));
        if let Some(kept) = &c.kept {
            prop_assert_eq!(kept.true_count(), c.batch.num_rows());
            for r in &rows {
                prop_assert!(!kept.value(*r));
            }
        } else {
            prop_assert!(c.dirty.is_empty());
        }
        for d in &c.dirty {
            let bad_a = texts[d.row].parse::<i32>().is_err();
            prop_assert_eq!(d.column.as_str(), if bad_a { "a" } else { "b" });
        }
    }
}

#[test]
fn dirty_reason_names_are_unique_snake_case_and_serialized_as_such() {
    let mut names: Vec<&str> = DirtyReason::ALL.iter().map(|r| r.as_str()).collect();
    for (r, name) in DirtyReason::ALL.iter().zip(&names) {
        assert_eq!(serde_json::to_value(r).unwrap(), json!(name));
        assert_eq!(r.to_string(), *name);
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), DirtyReason::ALL.len());
}

#[test]
fn long_values_are_cut_in_details() {
    let long_digits = "9".repeat(100);
    let long_word = "x".repeat(100);
    let c = run(
        ColumnType::String,
        "int64",
        strings(&[Some(&long_digits), Some(&long_word)]),
    );
    let details: Vec<String> = c.dirty.iter().map(|d| d.detail.clone()).collect();
    assert_eq!(
        details,
        [
            format!("\"{}\"… does not fit int64", "9".repeat(64)),
            format!("\"{}\"… is not an integer", "x".repeat(64)),
        ]
    );
}

#[test]
fn double_to_int32_lower_bound() {
    let c = run(
        ColumnType::Double,
        "int32",
        doubles(&[
            Some(-2147483648.0),
            Some(-2147483649.0),
            Some(f64::NEG_INFINITY),
        ]),
    );
    assert_eq!(opt_values(out::<Int32Array>(&c)), [Some(i32::MIN)]);
    assert_eq!(
        dirt(&c),
        [
            d(1, "int32_overflow", "-2147483649.0 does not fit int32"),
            d(2, "int32_overflow", "-Infinity does not fit int32"),
        ]
    );
}

#[test]
fn schema_defaults_name_and_type_from_the_source() {
    let def = mixed_table();
    let schema = LakeSchema::from_yaml(
        "columns:\n  - { source: x }\n  - { source: n, type: string }\n  - { source: _write_time }\n",
        "s.yaml",
        &def,
    )
    .unwrap();
    let got: Vec<_> = schema
        .columns()
        .iter()
        .map(|c| (c.name.as_str(), c.ty))
        .collect();
    assert_eq!(
        got,
        [
            ("x", LakeType::Double),
            ("n", LakeType::String),
            ("_write_time", LakeType::TimestampMs)
        ]
    );
    // An unknown source without a name is reported once.
    let problems =
        LakeSchema::from_yaml("columns:\n  - { source: Nope }\n", "s.yaml", &def).unwrap_err();
    assert_eq!(
        problems,
        ["s.yaml: columns[0].source: \"Nope\" is not a column of table m (nor _seq or _write_time)"]
    );
}
