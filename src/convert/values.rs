//! Column kernels: one store array in, one lake array out, every value that does not fit
//! reported as a dirty row. Each kernel downcasts once and loops over the typed values;
//! identity pairs hand back the input array itself.
//!
//! A value that does not fit is replaced by a placeholder (zero, `""`, `false`) that is never
//! NULL, so the lake batch stays valid for its schema until the dirty rows are filtered out.

use std::fmt::{self, Write};
use std::sync::Arc;

use arrow::array::BooleanBufferBuilder;
use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, BinaryArray, BooleanArray, Float64Array, Int32Array,
    Int64Array, PrimitiveArray, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType,
};
use serde::Serialize;

use super::text::{self, DecimalError, TimestampError};
use super::types::LakeType;
use crate::error::{Error, Result};
use crate::model::ColumnType;

/// Why a row could not be converted. [`DirtyReason::as_str`] names are stable: they key the
/// per-reason counts of a run record and appear in dirty-data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirtyReason {
    /// Text is not a number of the wanted kind (integer, float, decimal).
    InvalidNumber,
    /// Text is not `true` or `false`.
    InvalidBoolean,
    /// Text is not a `YYYY-MM-DD` calendar day.
    InvalidDate,
    /// Text is not an RFC 3339 timestamp with offset, nor `YYYY-MM-DD HH:MM:SS[.fff]`.
    InvalidTimestamp,
    /// Bytes are not valid UTF-8, so they cannot be a string.
    InvalidUtf8,
    /// A double has a fractional part (or is NaN) where an integer is wanted.
    NotIntegral,
    /// Outside the int32 range.
    Int32Overflow,
    /// Outside the int64 range.
    Int64Overflow,
    /// A finite value beyond the range of the float (or double) type.
    FloatOverflow,
    /// An int64 that a float cannot represent exactly.
    FloatPrecisionLoss,
    /// An int64 beyond ±2^53, where doubles stop holding every integer.
    Int53PrecisionLoss,
    /// NaN or an infinity where a decimal is wanted.
    DecimalNotFinite,
    /// Needs more digits than the decimal's precision at its scale.
    DecimalOverflow,
    /// Decimal text with non-zero digits beyond the scale (decimal text is never rounded).
    DecimalScaleExceeded,
    /// A timestamp outside the target's range (microseconds, or years 0000–9999 as text).
    TimestampOverflow,
    /// Timestamp text with non-zero digits finer than the target unit.
    TimestampPrecisionLoss,
    /// A timestamp whose day is outside the date type's range.
    DateOverflow,
}

impl DirtyReason {
    /// Every reason, in declaration order.
    pub const ALL: [DirtyReason; 17] = [
        DirtyReason::InvalidNumber,
        DirtyReason::InvalidBoolean,
        DirtyReason::InvalidDate,
        DirtyReason::InvalidTimestamp,
        DirtyReason::InvalidUtf8,
        DirtyReason::NotIntegral,
        DirtyReason::Int32Overflow,
        DirtyReason::Int64Overflow,
        DirtyReason::FloatOverflow,
        DirtyReason::FloatPrecisionLoss,
        DirtyReason::Int53PrecisionLoss,
        DirtyReason::DecimalNotFinite,
        DirtyReason::DecimalOverflow,
        DirtyReason::DecimalScaleExceeded,
        DirtyReason::TimestampOverflow,
        DirtyReason::TimestampPrecisionLoss,
        DirtyReason::DateOverflow,
    ];

    /// The stable snake_case name (`int32_overflow`).
    pub fn as_str(&self) -> &'static str {
        match self {
            DirtyReason::InvalidNumber => "invalid_number",
            DirtyReason::InvalidBoolean => "invalid_boolean",
            DirtyReason::InvalidDate => "invalid_date",
            DirtyReason::InvalidTimestamp => "invalid_timestamp",
            DirtyReason::InvalidUtf8 => "invalid_utf8",
            DirtyReason::NotIntegral => "not_integral",
            DirtyReason::Int32Overflow => "int32_overflow",
            DirtyReason::Int64Overflow => "int64_overflow",
            DirtyReason::FloatOverflow => "float_overflow",
            DirtyReason::FloatPrecisionLoss => "float_precision_loss",
            DirtyReason::Int53PrecisionLoss => "int53_precision_loss",
            DirtyReason::DecimalNotFinite => "decimal_not_finite",
            DirtyReason::DecimalOverflow => "decimal_overflow",
            DirtyReason::DecimalScaleExceeded => "decimal_scale_exceeded",
            DirtyReason::TimestampOverflow => "timestamp_overflow",
            DirtyReason::TimestampPrecisionLoss => "timestamp_precision_loss",
            DirtyReason::DateOverflow => "date_overflow",
        }
    }
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row that could not be converted: where, why, and the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirtyRow {
    /// Index of the row in the input (store) batch.
    pub row: usize,
    /// The lake column whose value did not fit (the first such column of the row).
    pub column: String,
    /// Why.
    pub reason: DirtyReason,
    /// The value and the rule, e.g. `3000000000 does not fit int32`.
    pub detail: String,
}

/// A value that did not fit.
pub(super) struct Bad {
    reason: DirtyReason,
    detail: String,
}

fn bad(reason: DirtyReason, detail: String) -> Bad {
    Bad { reason, detail }
}

/// The dirty rows of one batch; a row is recorded once, at its first bad column.
pub(super) struct DirtySet {
    marked: Vec<bool>,
    rows: Vec<DirtyRow>,
}

impl DirtySet {
    pub(super) fn new() -> Self {
        DirtySet {
            marked: Vec::new(),
            rows: Vec::new(),
        }
    }

    fn record(&mut self, len: usize, row: usize, column: &str, b: Bad) {
        if self.marked.is_empty() {
            self.marked = vec![false; len];
        }
        if !self.marked[row] {
            self.marked[row] = true;
            self.rows.push(DirtyRow {
                row,
                column: column.to_string(),
                reason: b.reason,
                detail: b.detail,
            });
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The kept mask (true = clean) and the dirty rows in row order.
    pub(super) fn finish(mut self) -> (BooleanArray, Vec<DirtyRow>) {
        let kept: BooleanArray = self.marked.iter().map(|&m| Some(!m)).collect();
        self.rows.sort_by_key(|r| r.row);
        (kept, self.rows)
    }
}

/// Where a kernel reports values that do not fit: the batch's dirty set and the lake column.
struct Issues<'a> {
    dirty: &'a mut DirtySet,
    column: &'a str,
    len: usize,
}

impl Issues<'_> {
    fn record(&mut self, row: usize, b: Bad) {
        self.dirty.record(self.len, row, self.column, b);
    }
}

/// Converts one store column (`array`, of store type `source`) into lake type `target`,
/// recording every value that does not fit in `dirty` under lake column `column`.
pub(super) fn convert_column(
    array: &ArrayRef,
    source: ColumnType,
    target: &LakeType,
    column: &str,
    dirty: &mut DirtySet,
) -> Result<ArrayRef> {
    use ColumnType as S;
    use LakeType as L;
    let mut issues = Issues {
        dirty,
        column,
        len: array.len(),
    };
    let out: ArrayRef = match (source, target) {
        (S::String, L::String)
        | (S::Int64, L::Int64)
        | (S::Double, L::Double)
        | (S::Bool, L::Boolean)
        | (S::Binary, L::Binary)
        | (S::TimestampMs, L::TimestampMs) => Arc::clone(array),
        (S::String, t) => from_string(downcast::<StringArray>(array)?, t, &mut issues)?,
        (S::Int64, t) => from_int64(downcast::<Int64Array>(array)?, t, &mut issues)?,
        (S::Double, t) => from_double(downcast::<Float64Array>(array)?, t, &mut issues)?,
        (S::Bool, t) => from_bool(downcast::<BooleanArray>(array)?, t)?,
        (S::Binary, L::String) => binary_to_string(downcast::<BinaryArray>(array)?, &mut issues),
        (S::TimestampMs, t) => from_timestamp(
            downcast::<TimestampMillisecondArray>(array)?,
            t,
            &mut issues,
        )?,
        (s, t) => return Err(not_convertible(s, t)),
    };
    Ok(out)
}

fn not_convertible(source: ColumnType, target: &LakeType) -> Error {
    Error::encode(format!(
        "convert: a {source} column cannot be written as {target}"
    ))
}

fn downcast<T: Array + 'static>(array: &ArrayRef) -> Result<&T> {
    array.as_any().downcast_ref::<T>().ok_or_else(|| {
        Error::encode(format!(
            "convert: unexpected array type {} for its store column",
            array.data_type()
        ))
    })
}

/// Builds a primitive array from `f(i)` for every non-null row, keeping the input's nulls.
fn primitive<O: ArrowPrimitiveType>(
    len: usize,
    nulls: Option<&NullBuffer>,
    issues: &mut Issues<'_>,
    mut f: impl FnMut(usize) -> Result<O::Native, Bad>,
) -> PrimitiveArray<O> {
    let mut values: Vec<O::Native> = Vec::with_capacity(len);
    for i in 0..len {
        if nulls.is_some_and(|n| n.is_null(i)) {
            values.push(O::Native::default());
            continue;
        }
        match f(i) {
            Ok(v) => values.push(v),
            Err(b) => {
                issues.record(i, b);
                values.push(O::Native::default());
            }
        }
    }
    PrimitiveArray::new(ScalarBuffer::from(values), nulls.cloned())
}

/// Builds a boolean array from `f(i)` for every non-null row, keeping the input's nulls.
fn boolean(
    len: usize,
    nulls: Option<&NullBuffer>,
    issues: &mut Issues<'_>,
    mut f: impl FnMut(usize) -> Result<bool, Bad>,
) -> BooleanArray {
    let mut values = BooleanBufferBuilder::new(len);
    for i in 0..len {
        if nulls.is_some_and(|n| n.is_null(i)) {
            values.append(false);
            continue;
        }
        match f(i) {
            Ok(v) => values.append(v),
            Err(b) => {
                issues.record(i, b);
                values.append(false);
            }
        }
    }
    BooleanArray::new(values.finish(), nulls.cloned())
}

/// Builds a string array: `f(i, out)` writes row `i`'s text into `out` (and writes nothing
/// when it returns `Err`). `bytes_hint` sizes the value buffer.
fn string(
    len: usize,
    nulls: Option<&NullBuffer>,
    bytes_hint: usize,
    issues: &mut Issues<'_>,
    mut f: impl FnMut(usize, &mut StringBuilder) -> Result<(), Bad>,
) -> StringArray {
    let mut out = StringBuilder::with_capacity(len, bytes_hint);
    for i in 0..len {
        if nulls.is_some_and(|n| n.is_null(i)) {
            out.append_null();
            continue;
        }
        if let Err(b) = f(i, &mut out) {
            issues.record(i, b);
        }
        // Ends the value written through fmt::Write (or a "" placeholder).
        out.append_value("");
    }
    out.finish()
}

/// Writing into an Arrow string builder cannot fail; this keeps that in one place.
fn put(r: fmt::Result) {
    debug_assert!(r.is_ok(), "writing to a string builder failed");
}

fn decimal_array(values: PrimitiveArray<Decimal128Type>, p: u8, s: i8) -> Result<ArrayRef> {
    Ok(Arc::new(values.with_precision_and_scale(p, s)?))
}

fn utc_ms(values: TimestampMillisecondArray) -> ArrayRef {
    Arc::new(values.with_timezone("UTC"))
}

fn utc_us(values: TimestampMicrosecondArray) -> ArrayRef {
    Arc::new(values.with_timezone("UTC"))
}

// ---- string → ... ----

fn from_string(a: &StringArray, target: &LakeType, issues: &mut Issues<'_>) -> Result<ArrayRef> {
    let len = a.len();
    let nulls = a.nulls();
    let out: ArrayRef = match *target {
        LakeType::String => Arc::new(a.clone()),
        LakeType::Binary => Arc::new(BinaryArray::from(a.clone())),
        LakeType::Int32 => Arc::new(primitive::<Int32Type>(len, nulls, issues, |i| {
            parse_int::<i32>(a.value(i), "int32", DirtyReason::Int32Overflow)
        })),
        LakeType::Int64 => Arc::new(primitive::<Int64Type>(len, nulls, issues, |i| {
            parse_int::<i64>(a.value(i), "int64", DirtyReason::Int64Overflow)
        })),
        LakeType::Float => Arc::new(primitive::<Float32Type>(len, nulls, issues, |i| {
            parse_float::<f32>(a.value(i), "float")
        })),
        LakeType::Double => Arc::new(primitive::<Float64Type>(len, nulls, issues, |i| {
            parse_float::<f64>(a.value(i), "double")
        })),
        LakeType::Decimal { precision, scale } => {
            let values = primitive::<Decimal128Type>(len, nulls, issues, |i| {
                let s = a.value(i);
                text::parse_decimal(s, precision, scale, false).map_err(|e| {
                    let q = text::quote(s);
                    match e {
                        DecimalError::Invalid => bad(
                            DirtyReason::InvalidNumber,
                            format!("{q} is not a decimal number"),
                        ),
                        DecimalError::Overflow => bad(
                            DirtyReason::DecimalOverflow,
                            format!("{q} does not fit {target}"),
                        ),
                        DecimalError::TooManyFractionDigits => bad(
                            DirtyReason::DecimalScaleExceeded,
                            format!("{q} has more than {scale} fractional digits for {target}"),
                        ),
                    }
                })
            });
            decimal_array(values, precision, scale)?
        }
        LakeType::Boolean => Arc::new(boolean(len, nulls, issues, |i| {
            let s = a.value(i);
            if s.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if s.eq_ignore_ascii_case("false") {
                Ok(false)
            } else {
                Err(bad(
                    DirtyReason::InvalidBoolean,
                    format!("{} is not true or false", text::quote(s)),
                ))
            }
        })),
        LakeType::Date => Arc::new(primitive::<Date32Type>(len, nulls, issues, |i| {
            let s = a.value(i);
            text::parse_date(s).ok_or_else(|| {
                bad(
                    DirtyReason::InvalidDate,
                    format!("{} is not a date (expected YYYY-MM-DD)", text::quote(s)),
                )
            })
        })),
        LakeType::TimestampMs => utc_ms(primitive::<TimestampMillisecondType>(
            len,
            nulls,
            issues,
            |i| parse_timestamp(a.value(i), 3, target),
        )),
        LakeType::TimestampUs => utc_us(primitive::<TimestampMicrosecondType>(
            len,
            nulls,
            issues,
            |i| parse_timestamp(a.value(i), 6, target),
        )),
    };
    Ok(out)
}

fn parse_int<T>(s: &str, type_name: &str, overflow: DirtyReason) -> Result<T, Bad>
where
    T: std::str::FromStr<Err = std::num::ParseIntError>,
{
    use std::num::IntErrorKind;
    s.parse::<T>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => bad(
            overflow,
            format!("{} does not fit {type_name}", number_text(s)),
        ),
        _ => bad(
            DirtyReason::InvalidNumber,
            format!("{} is not an integer", text::quote(s)),
        ),
    })
}

/// A float type text can be parsed into.
trait ParseFloat: std::str::FromStr + Copy {
    fn is_infinite(self) -> bool;
}

impl ParseFloat for f32 {
    fn is_infinite(self) -> bool {
        f32::is_infinite(self)
    }
}

impl ParseFloat for f64 {
    fn is_infinite(self) -> bool {
        f64::is_infinite(self)
    }
}

/// Parses float text; a finite number too large for the type (it parses as infinity) is
/// `float_overflow`, while the words `inf`/`infinity`/`nan` are values like any other.
fn parse_float<T: ParseFloat>(s: &str, type_name: &str) -> Result<T, Bad> {
    match s.parse::<T>() {
        Ok(v) if v.is_infinite() && !text::is_infinity_literal(s) => Err(bad(
            DirtyReason::FloatOverflow,
            format!("{} does not fit {type_name}", number_text(s)),
        )),
        Ok(v) => Ok(v),
        Err(_) => Err(bad(
            DirtyReason::InvalidNumber,
            format!("{} is not a number", text::quote(s)),
        )),
    }
}

/// Number text for a detail: as written when short, else quoted and cut.
fn number_text(s: &str) -> String {
    if s.len() <= 40 {
        s.to_string()
    } else {
        text::quote(s)
    }
}

fn parse_timestamp(s: &str, digits: u32, target: &LakeType) -> Result<i64, Bad> {
    text::parse_timestamp(s, digits).map_err(|e| match e {
        TimestampError::Invalid => bad(
            DirtyReason::InvalidTimestamp,
            format!(
                "{} is not a timestamp (expected RFC 3339 with offset, or YYYY-MM-DD HH:MM:SS[.fff] in UTC)",
                text::quote(s)
            ),
        ),
        TimestampError::TooPrecise => bad(
            DirtyReason::TimestampPrecisionLoss,
            format!(
                "{} has more than {digits} fractional second digits for {target}",
                text::quote(s)
            ),
        ),
    })
}

// ---- int64 → ... ----

/// 2^53: beyond it doubles no longer hold every integer.
const INT53: u64 = 1 << 53;

fn from_int64(a: &Int64Array, target: &LakeType, issues: &mut Issues<'_>) -> Result<ArrayRef> {
    let len = a.len();
    let nulls = a.nulls();
    let out: ArrayRef = match *target {
        LakeType::Int32 => Arc::new(primitive::<Int32Type>(len, nulls, issues, |i| {
            let v = a.value(i);
            i32::try_from(v).map_err(|_| {
                bad(
                    DirtyReason::Int32Overflow,
                    format!("{v} does not fit int32"),
                )
            })
        })),
        LakeType::Double => Arc::new(primitive::<Float64Type>(len, nulls, issues, |i| {
            let v = a.value(i);
            if v.unsigned_abs() > INT53 {
                Err(bad(
                    DirtyReason::Int53PrecisionLoss,
                    format!("{v} is beyond ±2^53, where a double loses integer precision"),
                ))
            } else {
                Ok(v as f64)
            }
        })),
        LakeType::Float => Arc::new(primitive::<Float32Type>(len, nulls, issues, |i| {
            let v = a.value(i);
            let f = v as f32;
            // Through i128 so that 2^63 (i64::MAX rounded up) is not saturated back.
            if f as i128 == i128::from(v) {
                Ok(f)
            } else {
                Err(bad(
                    DirtyReason::FloatPrecisionLoss,
                    format!("{v} is not exactly representable as float"),
                ))
            }
        })),
        LakeType::Decimal { precision, scale } => {
            let factor = text::pow10(scale as u32);
            let limit = text::pow10(u32::from(precision));
            let values = primitive::<Decimal128Type>(len, nulls, issues, |i| {
                let v = a.value(i);
                i128::from(v)
                    .checked_mul(factor)
                    .filter(|x| x.unsigned_abs() < limit.unsigned_abs())
                    .ok_or_else(|| {
                        bad(
                            DirtyReason::DecimalOverflow,
                            format!("{v} does not fit {target}"),
                        )
                    })
            });
            decimal_array(values, precision, scale)?
        }
        LakeType::String => Arc::new(string(len, nulls, len * 8, issues, |i, out| {
            put(write!(out, "{}", a.value(i)));
            Ok(())
        })),
        ref t => return Err(not_convertible(ColumnType::Int64, t)),
    };
    Ok(out)
}

// ---- double → ... ----

fn from_double(a: &Float64Array, target: &LakeType, issues: &mut Issues<'_>) -> Result<ArrayRef> {
    let len = a.len();
    let nulls = a.nulls();
    let out: ArrayRef = match *target {
        LakeType::Float => Arc::new(primitive::<Float32Type>(len, nulls, issues, |i| {
            let v = a.value(i);
            let f = v as f32;
            if f.is_infinite() && v.is_finite() {
                Err(bad(
                    DirtyReason::FloatOverflow,
                    format!("{} does not fit float", double_text(v)),
                ))
            } else {
                Ok(f)
            }
        })),
        LakeType::Int32 => Arc::new(primitive::<Int32Type>(len, nulls, issues, |i| {
            let v = a.value(i);
            integral(v, 2f64.powi(31), "int32", DirtyReason::Int32Overflow).map(|x| x as i32)
        })),
        LakeType::Int64 => Arc::new(primitive::<Int64Type>(len, nulls, issues, |i| {
            let v = a.value(i);
            integral(v, 2f64.powi(63), "int64", DirtyReason::Int64Overflow).map(|x| x as i64)
        })),
        LakeType::Decimal { precision, scale } => {
            let mut buf = String::with_capacity(32);
            let factor = text::pow10(scale as u32);
            let limit = text::pow10(u32::from(precision));
            let values = primitive::<Decimal128Type>(len, nulls, issues, |i| {
                let v = a.value(i);
                if !v.is_finite() {
                    return Err(bad(
                        DirtyReason::DecimalNotFinite,
                        format!("{} does not fit {target}", double_text(v)),
                    ));
                }
                let overflow = || {
                    bad(
                        DirtyReason::DecimalOverflow,
                        format!("{} does not fit {target}", double_text(v)),
                    )
                };
                // Integral values below 2^53 need no rounding: skip the text.
                if v.fract() == 0.0 && v.abs() < INT53 as f64 {
                    return (v as i128)
                        .checked_mul(factor)
                        .filter(|x| x.unsigned_abs() < limit.unsigned_abs())
                        .ok_or_else(overflow);
                }
                // Round the double's shortest round-trip text (what it prints as).
                buf.clear();
                put(write!(buf, "{v:e}"));
                text::parse_decimal(&buf, precision, scale, true).map_err(|_| overflow())
            });
            decimal_array(values, precision, scale)?
        }
        LakeType::String => Arc::new(string(len, nulls, len * 12, issues, |i, out| {
            put(text::write_double(out, a.value(i)));
            Ok(())
        })),
        ref t => return Err(not_convertible(ColumnType::Double, t)),
    };
    Ok(out)
}

/// `v` if it is an integer in the two's-complement range `[-bound, bound)` (`bound` = 2^31
/// or 2^63, both exact in f64).
fn integral(v: f64, bound: f64, type_name: &str, overflow: DirtyReason) -> Result<f64, Bad> {
    if v.is_nan() {
        return Err(bad(
            DirtyReason::NotIntegral,
            "NaN is not an integer".into(),
        ));
    }
    if v.is_finite() && v.fract() != 0.0 {
        return Err(bad(
            DirtyReason::NotIntegral,
            format!("{} is not an integer", double_text(v)),
        ));
    }
    if v >= -bound && v < bound {
        Ok(v)
    } else {
        Err(bad(
            overflow,
            format!("{} does not fit {type_name}", double_text(v)),
        ))
    }
}

fn double_text(v: f64) -> String {
    let mut s = String::new();
    put(text::write_double(&mut s, v));
    s
}

// ---- bool → ... ----

fn from_bool(a: &BooleanArray, target: &LakeType) -> Result<ArrayRef> {
    let nulls = a.nulls().cloned();
    let out: ArrayRef = match *target {
        LakeType::String => {
            let mut out = StringBuilder::with_capacity(a.len(), a.len() * 5);
            for i in 0..a.len() {
                if a.is_null(i) {
                    out.append_null();
                } else {
                    out.append_value(if a.value(i) { "true" } else { "false" });
                }
            }
            Arc::new(out.finish())
        }
        LakeType::Int32 => {
            let values: Vec<i32> = (0..a.len()).map(|i| i32::from(a.value(i))).collect();
            Arc::new(Int32Array::new(values.into(), nulls))
        }
        LakeType::Int64 => {
            let values: Vec<i64> = (0..a.len()).map(|i| i64::from(a.value(i))).collect();
            Arc::new(Int64Array::new(values.into(), nulls))
        }
        ref t => return Err(not_convertible(ColumnType::Bool, t)),
    };
    Ok(out)
}

// ---- binary → string ----

fn binary_to_string(a: &BinaryArray, issues: &mut Issues<'_>) -> ArrayRef {
    // Fast path: every byte valid, reuse the buffers (Arrow validates the UTF-8 once).
    if let Ok(s) = StringArray::try_new(a.offsets().clone(), a.values().clone(), a.nulls().cloned())
    {
        return Arc::new(s);
    }
    Arc::new(string(
        a.len(),
        a.nulls(),
        a.values().len(),
        issues,
        |i, out| {
            let bytes = a.value(i);
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    put(out.write_str(s));
                    Ok(())
                }
                Err(e) => Err(bad(
                    DirtyReason::InvalidUtf8,
                    format!(
                        "{} bytes are not valid UTF-8 (invalid byte at offset {})",
                        bytes.len(),
                        e.valid_up_to()
                    ),
                )),
            }
        },
    ))
}

// ---- timestamp_ms → ... ----

fn from_timestamp(
    a: &TimestampMillisecondArray,
    target: &LakeType,
    issues: &mut Issues<'_>,
) -> Result<ArrayRef> {
    let len = a.len();
    let nulls = a.nulls();
    let out: ArrayRef = match *target {
        LakeType::TimestampUs => utc_us(primitive::<TimestampMicrosecondType>(
            len,
            nulls,
            issues,
            |i| {
                let v = a.value(i);
                v.checked_mul(1000).ok_or_else(|| {
                    bad(
                        DirtyReason::TimestampOverflow,
                        format!("{v} ms does not fit timestamp_us"),
                    )
                })
            },
        )),
        LakeType::Date => Arc::new(primitive::<Date32Type>(len, nulls, issues, |i| {
            let v = a.value(i);
            i32::try_from(v.div_euclid(text::MS_PER_DAY)).map_err(|_| {
                bad(
                    DirtyReason::DateOverflow,
                    format!("{v} ms is outside the date range"),
                )
            })
        })),
        LakeType::String => Arc::new(string(len, nulls, len * 24, issues, |i, out| {
            let v = a.value(i);
            if (text::RFC3339_MIN_MS..=text::RFC3339_MAX_MS).contains(&v) {
                put(text::write_timestamp_ms(out, v));
                Ok(())
            } else {
                Err(bad(
                    DirtyReason::TimestampOverflow,
                    format!("{v} ms is outside years 0000-9999 that RFC 3339 text can hold"),
                ))
            }
        })),
        LakeType::Int64 => Arc::new(Int64Array::new(a.values().clone(), a.nulls().cloned())),
        ref t => return Err(not_convertible(ColumnType::TimestampMs, t)),
    };
    Ok(out)
}
