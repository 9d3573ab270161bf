//! Lake (Parquet) column types: their names in schema files, their Arrow and Hive types, and
//! which store types each one can hold (the conversion matrix).

use std::fmt;

use arrow::datatypes::{DataType, TimeUnit};

use crate::model::ColumnType;

/// Highest precision of a [`LakeType::Decimal`] (what a 128-bit decimal holds).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// The spellings [`LakeType::parse`] accepts, as listed in error messages.
pub(crate) const EXPECTED_TYPES: &str = "string, int32, int64, float, double, boolean, binary, \
     date, timestamp_ms, timestamp_us, decimal(p,s)";

/// The type of one lake (Parquet) column.
///
/// Build one with [`LakeType::parse`] (or [`LakeType::for_store_type`]); a hand-built
/// `Decimal` must keep `1 <= precision <= 38` and `0 <= scale <= precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LakeType {
    /// UTF-8 text (Parquet BYTE_ARRAY, STRING).
    String,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit IEEE float.
    Float,
    /// 64-bit IEEE float.
    Double,
    /// Boolean.
    Boolean,
    /// Raw bytes.
    Binary,
    /// Calendar day (days since 1970-01-01).
    Date,
    /// Milliseconds since the Unix epoch, UTC.
    TimestampMs,
    /// Microseconds since the Unix epoch, UTC.
    TimestampUs,
    /// Exact decimal with `precision` digits, `scale` of them after the point.
    Decimal {
        /// Total number of digits, 1 to 38.
        precision: u8,
        /// Digits after the point, 0 to `precision`.
        scale: i8,
    },
}

impl LakeType {
    /// Parses a type name of a schema file: `string`, `int32`, `int64`, `float`, `double`,
    /// `boolean` (or `bool`), `binary`, `date`, `timestamp_ms` (or `timestamp`), `timestamp_us`,
    /// `decimal(p,s)` (spaces allowed, `1 <= p <= 38`, `0 <= s <= p`; `decimal(p)` is
    /// `decimal(p,0)`). ASCII case is ignored. `None` for anything else.
    pub fn parse(s: &str) -> Option<LakeType> {
        Self::parse_detailed(s).ok()
    }

    /// Like [`LakeType::parse`], with a message that says what is wrong.
    pub(crate) fn parse_detailed(s: &str) -> Result<LakeType, String> {
        let t = s.trim().to_ascii_lowercase();
        let ty = match t.as_str() {
            "string" => LakeType::String,
            "int32" => LakeType::Int32,
            "int64" => LakeType::Int64,
            "float" => LakeType::Float,
            "double" => LakeType::Double,
            "boolean" | "bool" => LakeType::Boolean,
            "binary" => LakeType::Binary,
            "date" => LakeType::Date,
            "timestamp_ms" | "timestamp" => LakeType::TimestampMs,
            "timestamp_us" => LakeType::TimestampUs,
            _ => match t.strip_prefix("decimal") {
                Some(rest) => return parse_decimal_args(s, rest),
                None => {
                    return Err(format!(
                        "{s:?} is not a lake type; expected one of {EXPECTED_TYPES}"
                    ))
                }
            },
        };
        Ok(ty)
    }

    /// The canonical spelling, as [`LakeType::parse`] reads it (`decimal(10,2)`).
    pub fn name(&self) -> String {
        match self {
            LakeType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            other => other.simple_name().to_string(),
        }
    }

    fn simple_name(&self) -> &'static str {
        match self {
            LakeType::String => "string",
            LakeType::Int32 => "int32",
            LakeType::Int64 => "int64",
            LakeType::Float => "float",
            LakeType::Double => "double",
            LakeType::Boolean => "boolean",
            LakeType::Binary => "binary",
            LakeType::Date => "date",
            LakeType::TimestampMs => "timestamp_ms",
            LakeType::TimestampUs => "timestamp_us",
            LakeType::Decimal { .. } => "decimal",
        }
    }

    /// The Arrow type of the column in lake batches (and so in Parquet).
    pub fn arrow_type(&self) -> DataType {
        match self {
            LakeType::String => DataType::Utf8,
            LakeType::Int32 => DataType::Int32,
            LakeType::Int64 => DataType::Int64,
            LakeType::Float => DataType::Float32,
            LakeType::Double => DataType::Float64,
            LakeType::Boolean => DataType::Boolean,
            LakeType::Binary => DataType::Binary,
            LakeType::Date => DataType::Date32,
            LakeType::TimestampMs => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            LakeType::TimestampUs => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            LakeType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        }
    }

    /// The Hive column type (`STRING`, `INT`, `BIGINT`, `FLOAT`, `DOUBLE`, `BOOLEAN`,
    /// `BINARY`, `DATE`, `TIMESTAMP`, `DECIMAL(p,s)`).
    pub fn hive_type(&self) -> String {
        match self {
            LakeType::String => "STRING".into(),
            LakeType::Int32 => "INT".into(),
            LakeType::Int64 => "BIGINT".into(),
            LakeType::Float => "FLOAT".into(),
            LakeType::Double => "DOUBLE".into(),
            LakeType::Boolean => "BOOLEAN".into(),
            LakeType::Binary => "BINARY".into(),
            LakeType::Date => "DATE".into(),
            LakeType::TimestampMs | LakeType::TimestampUs => "TIMESTAMP".into(),
            LakeType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        }
    }

    /// The lake type `auto` schemas use for a store type: string → string, int64 → int64,
    /// double → double, bool → boolean, binary → binary, timestamp_ms → timestamp_ms.
    pub fn for_store_type(t: ColumnType) -> LakeType {
        match t {
            ColumnType::String => LakeType::String,
            ColumnType::Int64 => LakeType::Int64,
            ColumnType::Double => LakeType::Double,
            ColumnType::Bool => LakeType::Boolean,
            ColumnType::Binary => LakeType::Binary,
            ColumnType::TimestampMs => LakeType::TimestampMs,
        }
    }
}

impl fmt::Display for LakeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            other => f.write_str(other.simple_name()),
        }
    }
}

/// Parses the `(p,s)` after `decimal`; `original` is the whole text, for messages.
fn parse_decimal_args(original: &str, rest: &str) -> Result<LakeType, String> {
    let shape = || format!("{original:?} is not a valid decimal type; expected decimal(p,s)");
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(shape)?;
    let mut parts = inner.split(',').map(str::trim);
    let number = |p: Option<&str>| -> Option<u32> {
        let p = p?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let precision = number(parts.next()).ok_or_else(shape)?;
    let scale = match parts.next() {
        None => 0,
        Some(s) => number(Some(s)).ok_or_else(shape)?,
    };
    if parts.next().is_some() {
        return Err(shape());
    }
    if precision == 0 || precision > u32::from(MAX_DECIMAL_PRECISION) {
        return Err(format!(
            "{original:?}: decimal precision must be 1 to {MAX_DECIMAL_PRECISION}"
        ));
    }
    if scale > precision {
        return Err(format!(
            "{original:?}: decimal scale must be 0 to the precision ({precision})"
        ));
    }
    // Both are at most 38 here.
    Ok(LakeType::Decimal {
        precision: precision as u8,
        scale: scale as i8,
    })
}

/// Whether a lake column of type `target` can hold values of store type `source` (the
/// conversion matrix). Values that do not fit still make their row dirty at run time; a pair
/// this refuses is a configuration error.
///
/// | store type | lake types |
/// |---|---|
/// | string | every lake type (parsed from the text) |
/// | int64 | int64, int32, double, float, decimal, string |
/// | double | double, float, decimal, int32, int64, string |
/// | bool | boolean, string, int32, int64 |
/// | binary | binary, string |
/// | timestamp_ms | timestamp_ms, timestamp_us, date, string, int64 |
pub fn can_hold(source: ColumnType, target: &LakeType) -> bool {
    use LakeType as L;
    match source {
        ColumnType::String => true,
        ColumnType::Int64 => matches!(
            target,
            L::Int64 | L::Int32 | L::Double | L::Float | L::Decimal { .. } | L::String
        ),
        ColumnType::Double => matches!(
            target,
            L::Double | L::Float | L::Decimal { .. } | L::Int32 | L::Int64 | L::String
        ),
        ColumnType::Bool => matches!(target, L::Boolean | L::String | L::Int32 | L::Int64),
        ColumnType::Binary => matches!(target, L::Binary | L::String),
        ColumnType::TimestampMs => matches!(
            target,
            L::TimestampMs | L::TimestampUs | L::Date | L::String | L::Int64
        ),
    }
}

/// The lake types `source` can be written as, for messages (`int64, int32, ...`).
pub(crate) fn holdable_names(source: ColumnType) -> String {
    ALL_SHAPES
        .iter()
        .filter(|t| can_hold(source, t))
        .map(|t| match t {
            LakeType::Decimal { .. } => "decimal(p,s)".to_string(),
            t => t.name(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One of each lake type (the decimal stands for every decimal).
const ALL_SHAPES: [LakeType; 11] = [
    LakeType::String,
    LakeType::Int32,
    LakeType::Int64,
    LakeType::Float,
    LakeType::Double,
    LakeType::Boolean,
    LakeType::Binary,
    LakeType::Date,
    LakeType::TimestampMs,
    LakeType::TimestampUs,
    LakeType::Decimal {
        precision: 38,
        scale: 0,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    const STORE_TYPES: [ColumnType; 6] = [
        ColumnType::String,
        ColumnType::Int64,
        ColumnType::Double,
        ColumnType::Bool,
        ColumnType::Binary,
        ColumnType::TimestampMs,
    ];

    #[test]
    fn parses_every_canonical_name_back() {
        for t in ALL_SHAPES {
            assert_eq!(LakeType::parse(&t.name()), Some(t), "{t}");
            assert_eq!(t.to_string(), t.name());
        }
    }

    #[test]
    fn parses_aliases_spaces_and_case() {
        assert_eq!(LakeType::parse("timestamp"), Some(LakeType::TimestampMs));
        assert_eq!(LakeType::parse("bool"), Some(LakeType::Boolean));
        assert_eq!(LakeType::parse(" Int64 "), Some(LakeType::Int64));
        let d = LakeType::Decimal {
            precision: 10,
            scale: 2,
        };
        assert_eq!(LakeType::parse("decimal(10,2)"), Some(d));
        assert_eq!(LakeType::parse("decimal( 10 , 2 )"), Some(d));
        assert_eq!(LakeType::parse("DECIMAL (10,2)"), Some(d));
        assert_eq!(
            LakeType::parse("decimal(7)"),
            Some(LakeType::Decimal {
                precision: 7,
                scale: 0
            })
        );
        assert_eq!(d.name(), "decimal(10,2)");
    }

    #[test]
    fn decimal_bounds() {
        assert!(LakeType::parse("decimal(1,0)").is_some());
        assert!(LakeType::parse("decimal(38,38)").is_some());
        assert!(LakeType::parse("decimal(0,0)").is_none());
        assert!(LakeType::parse("decimal(39,0)").is_none());
        assert!(LakeType::parse("decimal(5,6)").is_none());
        assert!(LakeType::parse("decimal(5,-1)").is_none());
        assert!(LakeType::parse("decimal").is_none());
        assert!(LakeType::parse("decimal(5,2,1)").is_none());
        assert!(LakeType::parse("decimal(,2)").is_none());
        assert!(LakeType::parse("decimal(5,2").is_none());
    }

    #[test]
    fn rejects_unknown_names_with_the_list() {
        for bad in ["integer", "int", "str", "", "timestamp_ns", "varchar(10)"] {
            assert!(LakeType::parse(bad).is_none(), "{bad}");
        }
        let msg = LakeType::parse_detailed("integer").unwrap_err();
        assert!(msg.contains("\"integer\" is not a lake type"), "{msg}");
        assert!(msg.contains("timestamp_us, decimal(p,s)"), "{msg}");
        let msg = LakeType::parse_detailed("decimal(40,1)").unwrap_err();
        assert!(msg.contains("precision must be 1 to 38"), "{msg}");
        let msg = LakeType::parse_detailed("decimal(4,5)").unwrap_err();
        assert!(
            msg.contains("scale must be 0 to the precision (4)"),
            "{msg}"
        );
    }

    #[test]
    fn arrow_and_hive_types() {
        let cases = [
            (LakeType::String, DataType::Utf8, "STRING"),
            (LakeType::Int32, DataType::Int32, "INT"),
            (LakeType::Int64, DataType::Int64, "BIGINT"),
            (LakeType::Float, DataType::Float32, "FLOAT"),
            (LakeType::Double, DataType::Float64, "DOUBLE"),
            (LakeType::Boolean, DataType::Boolean, "BOOLEAN"),
            (LakeType::Binary, DataType::Binary, "BINARY"),
            (LakeType::Date, DataType::Date32, "DATE"),
            (
                LakeType::TimestampMs,
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                "TIMESTAMP",
            ),
            (
                LakeType::TimestampUs,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "TIMESTAMP",
            ),
            (
                LakeType::Decimal {
                    precision: 12,
                    scale: 3,
                },
                DataType::Decimal128(12, 3),
                "DECIMAL(12,3)",
            ),
        ];
        for (t, arrow, hive) in cases {
            assert_eq!(t.arrow_type(), arrow, "{t}");
            assert_eq!(t.hive_type(), hive, "{t}");
        }
    }

    #[test]
    fn auto_mapping_keeps_the_arrow_type() {
        for t in STORE_TYPES {
            let lake = LakeType::for_store_type(t);
            assert_eq!(lake.arrow_type(), t.arrow_type(), "{t}");
            assert!(can_hold(t, &lake), "{t}");
        }
    }

    #[test]
    fn conversion_matrix() {
        use ColumnType as S;
        let allowed: &[(ColumnType, &[&str])] = &[
            (
                S::String,
                &[
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
                    "decimal(38,0)",
                ],
            ),
            (
                S::Int64,
                &[
                    "int64",
                    "int32",
                    "double",
                    "float",
                    "decimal(38,0)",
                    "string",
                ],
            ),
            (
                S::Double,
                &[
                    "double",
                    "float",
                    "decimal(38,0)",
                    "int32",
                    "int64",
                    "string",
                ],
            ),
            (S::Bool, &["boolean", "string", "int32", "int64"]),
            (S::Binary, &["binary", "string"]),
            (
                S::TimestampMs,
                &["timestamp_ms", "timestamp_us", "date", "string", "int64"],
            ),
        ];
        for (source, targets) in allowed {
            for t in ALL_SHAPES {
                let expected = targets.contains(&t.name().as_str());
                assert_eq!(can_hold(*source, &t), expected, "{source} -> {t}");
            }
        }
        // A few disallowed pairs spelled out.
        assert!(!can_hold(S::Int64, &LakeType::Date));
        assert!(!can_hold(S::Int64, &LakeType::TimestampMs));
        assert!(!can_hold(S::Int64, &LakeType::Boolean));
        assert!(!can_hold(S::Double, &LakeType::Boolean));
        assert!(!can_hold(S::Bool, &LakeType::Double));
        assert!(!can_hold(S::Binary, &LakeType::Int64));
        assert!(!can_hold(S::TimestampMs, &LakeType::Int32));
        assert!(!can_hold(S::TimestampMs, &LakeType::Double));
    }

    #[test]
    fn holdable_names_lists_the_row() {
        assert_eq!(
            holdable_names(ColumnType::Int64),
            "string, int32, int64, float, double, decimal(p,s)"
        );
        assert_eq!(holdable_names(ColumnType::Binary), "string, binary");
    }
}
