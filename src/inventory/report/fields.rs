//! How the fields of a report become one row of a table: each provider's field → column
//! mapping, value parsing for CSV (decoded keys, integers, booleans, ISO 8601 dates), value
//! reading for Arrow batches (Parquet, ORC), and the derived `prefix`. No I/O here; the
//! parent module adds `file:line` (or `file: row N`) to the messages.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};

use super::manifest::FileFormat;
use super::Provider;
use crate::error::{Error, Result};
use crate::model::schema::parent_folder;
use crate::model::{ColumnType, TableDef};
use crate::store::Value;

/// S3 Inventory CSV field names and the `object_inventory` columns they fill.
pub const S3_FIELDS: &[(&str, &str)] = &[
    ("Bucket", "bucket"),
    ("Key", "key"),
    ("VersionId", "version_id"),
    ("IsLatest", "is_latest"),
    ("IsDeleteMarker", "is_delete_marker"),
    ("Size", "size"),
    ("LastModifiedDate", "last_modified"),
    ("ETag", "etag"),
    ("StorageClass", "storage_class"),
    ("IsMultipartUploaded", "is_multipart_uploaded"),
    ("ReplicationStatus", "replication_status"),
    ("EncryptionStatus", "encryption_status"),
    ("ObjectLockRetainUntilDate", "object_lock_retain_until_date"),
    ("ObjectLockMode", "object_lock_mode"),
    ("ObjectLockLegalHoldStatus", "object_lock_legal_hold_status"),
    (
        "IntelligentTieringAccessTier",
        "intelligent_tiering_access_tier",
    ),
    ("BucketKeyStatus", "bucket_key_status"),
    ("ChecksumAlgorithm", "checksum_algorithm"),
    ("ObjectAccessControlList", "object_access_control_list"),
    ("ObjectOwner", "object_owner"),
    ("LifecycleExpirationDate", "lifecycle_expiration_date"),
];

/// S3 Inventory Parquet and ORC field names (lower snake case, as in AWS's `fileSchema`
/// examples: `e_tag`, `last_modified_date`) and the columns they fill.
pub const S3_COLUMNAR_FIELDS: &[(&str, &str)] = &[
    ("bucket", "bucket"),
    ("key", "key"),
    ("version_id", "version_id"),
    ("is_latest", "is_latest"),
    ("is_delete_marker", "is_delete_marker"),
    ("size", "size"),
    ("last_modified_date", "last_modified"),
    ("e_tag", "etag"),
    ("storage_class", "storage_class"),
    ("is_multipart_uploaded", "is_multipart_uploaded"),
    ("replication_status", "replication_status"),
    ("encryption_status", "encryption_status"),
    (
        "object_lock_retain_until_date",
        "object_lock_retain_until_date",
    ),
    ("object_lock_mode", "object_lock_mode"),
    (
        "object_lock_legal_hold_status",
        "object_lock_legal_hold_status",
    ),
    (
        "intelligent_tiering_access_tier",
        "intelligent_tiering_access_tier",
    ),
    ("bucket_key_status", "bucket_key_status"),
    ("checksum_algorithm", "checksum_algorithm"),
    ("object_access_control_list", "object_access_control_list"),
    ("object_owner", "object_owner"),
    ("lifecycle_expiration_date", "lifecycle_expiration_date"),
];

/// Alibaba OSS inventory field names and the columns they fill. OSS documents both `Crc64`
/// and `CRC64`, and `TransistionTime` (sic) beside `TransitionTime`: each spelling is accepted.
pub const OSS_FIELDS: &[(&str, &str)] = &[
    ("Bucket", "bucket"),
    ("Key", "key"),
    ("VersionId", "version_id"),
    ("IsLatest", "is_latest"),
    ("IsDeleteMarker", "is_delete_marker"),
    ("Size", "size"),
    ("StorageClass", "storage_class"),
    ("LastModifiedDate", "last_modified"),
    ("TransitionTime", "transition_time"),
    ("TransistionTime", "transition_time"),
    ("ETag", "etag"),
    ("IsMultipartUploaded", "is_multipart_uploaded"),
    ("EncryptionStatus", "encryption_status"),
    ("ObjectAcl", "object_acl"),
    ("TaggingCount", "tagging_count"),
    ("ObjectType", "object_type"),
    ("Crc64", "crc64"),
    ("CRC64", "crc64"),
];

/// Huawei OBS inventory field names and the columns they fill.
pub const OBS_FIELDS: &[(&str, &str)] = &[
    ("Bucket", "bucket"),
    ("Key", "key"),
    ("VersionId", "version_id"),
    ("IsLatest", "is_latest"),
    ("IsDeleteMarker", "is_delete_marker"),
    ("Size", "size"),
    ("LastModifiedDate", "last_modified"),
    ("ETag", "etag"),
    ("StorageClass", "storage_class"),
    ("IsMultipartUploaded", "is_multipart_uploaded"),
    ("ReplicationStatus", "replication_status"),
    ("EncryptionStatus", "encryption_status"),
];

/// The field table of a provider's reports in a format.
pub(super) fn known_fields(
    provider: Provider,
    format: FileFormat,
) -> &'static [(&'static str, &'static str)] {
    match (provider, format) {
        (Provider::S3, FileFormat::Csv) => S3_FIELDS,
        (Provider::S3, _) => S3_COLUMNAR_FIELDS,
        (Provider::Oss, _) => OSS_FIELDS,
        (Provider::Obs, _) => OBS_FIELDS,
    }
}

/// Where one column of the output row comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// A report field (see `RowPlan::column_of_field`).
    Field,
    /// The parent folder of the decoded key.
    Prefix,
    /// An empty string (`version_id` when the report is not versioned).
    EmptyString,
    /// NULL: the report does not carry this column.
    Null,
}

/// One report field: its name and the column it fills.
#[derive(Debug, Clone)]
struct FieldPlan {
    name: String,
    ty: ColumnType,
    is_key: bool,
    /// `Bucket` and `Key`: an empty value is an error.
    required: bool,
    /// The key field of a CSV report, form-encoded by every provider.
    form_encoded: bool,
}

/// How a report's fields (in order) become rows of the table.
#[derive(Debug, Clone)]
pub(super) struct RowPlan {
    fields: Vec<FieldPlan>,
    columns: Vec<Source>,
    /// The table column each field fills, in field order.
    column_of_field: Vec<usize>,
    /// The table column of the key.
    key_column: usize,
}

impl RowPlan {
    /// Maps the field names `schema` (in order) onto `table` using `known` (a provider's field
    /// table); `what` names the schema in messages (`url: fileSchema`). `decode_keys` marks the
    /// key field as form-encoded (CSV reports).
    pub(super) fn new(
        schema: &[String],
        known: &[(&str, &str)],
        table: &TableDef,
        what: &str,
        decode_keys: bool,
    ) -> Result<RowPlan> {
        let bad = |m: String| Error::InvalidInput(format!("{what}: {m}"));
        let column_of = |name: &str| known.iter().find(|(f, _)| *f == name).map(|(_, c)| *c);
        // Every field table starts with the bucket field, then the key field.
        let bucket_field = known.first().map_or("Bucket", |(f, _)| *f);
        let key_name = known.get(1).map_or("Key", |(f, _)| *f);
        let mut fields = Vec::with_capacity(schema.len());
        let mut field_of_column = vec![None; table.columns.len()];
        for (i, name) in schema.iter().enumerate() {
            let column = column_of(name).ok_or_else(|| {
                bad(format!(
                    "unknown field {name:?} (known: {})",
                    known.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let index = table.column_index(column).ok_or_else(|| {
                bad(format!(
                    "field {name} needs column {column}, which table {} does not have",
                    table.table
                ))
            })?;
            if field_of_column[index].is_some() {
                return Err(bad(format!("field {name} is listed twice")));
            }
            field_of_column[index] = Some(i);
            let ty = table.columns[index].ty;
            if !matches!(
                ty,
                ColumnType::String | ColumnType::Int64 | ColumnType::Bool | ColumnType::TimestampMs
            ) {
                return Err(bad(format!(
                    "field {name} fills column {column} of type {ty}, which reports cannot fill"
                )));
            }
            fields.push(FieldPlan {
                name: name.clone(),
                ty,
                is_key: table.is_key(column),
                required: name == bucket_field || name == key_name,
                form_encoded: decode_keys && name == key_name,
            });
        }
        let field_named = |name: &str| schema.iter().position(|f| f == name);
        let key_field =
            field_named(key_name).ok_or_else(|| bad(format!("{key_name} is missing")))?;
        if field_named(bucket_field).is_none() {
            return Err(bad(format!("{bucket_field} is missing")));
        }
        let mut columns = Vec::with_capacity(table.columns.len());
        for (index, column) in table.columns.iter().enumerate() {
            columns.push(match field_of_column[index] {
                Some(_) => Source::Field,
                None if column.name == "prefix" => Source::Prefix,
                None if table.is_key(&column.name) && column.ty == ColumnType::String => {
                    Source::EmptyString
                }
                None if table.is_key(&column.name) => {
                    return Err(bad(format!(
                        "key column {} of table {} has no field in the report",
                        column.name, table.table
                    )))
                }
                None => Source::Null,
            });
        }
        let mut column_of_field = vec![0; fields.len()];
        for (c, f) in field_of_column.iter().enumerate() {
            if let Some(i) = f {
                column_of_field[*i] = c;
            }
        }
        Ok(RowPlan {
            fields,
            columns,
            key_column: column_of_field[key_field],
            column_of_field,
        })
    }

    /// The row of one CSV record; errors are `Field: expected …, found …`.
    pub(super) fn row(
        &self,
        record: &csv::StringRecord,
    ) -> std::result::Result<Vec<Value>, String> {
        if record.len() != self.fields.len() {
            return Err(format!(
                "expected {} fields (fileSchema), found {}",
                self.fields.len(),
                record.len()
            ));
        }
        let mut row = self.blank_row();
        for ((plan, text), &c) in self
            .fields
            .iter()
            .zip(record.iter())
            .zip(&self.column_of_field)
        {
            row[c] = parse_value(plan, text).map_err(|e| format!("{}: {e}", plan.name))?;
        }
        self.complete(&mut row);
        Ok(row)
    }

    /// A table row with every column NULL, for the fields to fill.
    fn blank_row(&self) -> Vec<Value> {
        vec![Value::Null; self.columns.len()]
    }

    /// Fills the columns no field fills (the key's parent folder, empty key strings) once the
    /// fields are in place.
    fn complete(&self, row: &mut [Value]) {
        for (c, source) in self.columns.iter().enumerate() {
            match source {
                Source::Prefix => {
                    row[c] = match &row[self.key_column] {
                        Value::String(k) => Value::String(parent_folder(k).to_string()),
                        _ => Value::Null,
                    }
                }
                Source::EmptyString => row[c] = Value::String(String::new()),
                Source::Field | Source::Null => {}
            }
        }
    }
}

fn parse_value(plan: &FieldPlan, text: &str) -> std::result::Result<Value, String> {
    if text.is_empty() && plan.required {
        return Err("expected a non-empty value, found \"\"".into());
    }
    if text.is_empty() {
        return Ok(if plan.is_key && plan.ty == ColumnType::String {
            Value::String(String::new())
        } else if plan.is_key {
            return Err(format!("expected a {} value (key), found \"\"", plan.ty));
        } else {
            Value::Null
        });
    }
    match plan.ty {
        ColumnType::String if plan.form_encoded => form_decode(text).map(Value::String),
        ColumnType::String => Ok(Value::String(text.to_string())),
        ColumnType::Int64 => text
            .parse::<i64>()
            .map(Value::Int64)
            .map_err(|_| format!("expected an integer, found {text:?}")),
        ColumnType::Bool => match text {
            "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, found {text:?}")),
        },
        ColumnType::TimestampMs => {
            parse_report_time(text)
                .map(Value::TimestampMs)
                .ok_or_else(|| {
                    format!(
                        "expected an ISO 8601 date like 2024-03-05T10:20:30.000Z (or OSS's \
                 2024-03-05T10-20-30Z), found {text:?}"
                    )
                })
        }
        other => Err(format!("cannot fill a {other} column")),
    }
}

/// A report date in epoch ms: RFC 3339 (`2024-03-05T10:20:30.000Z`, as S3 and OBS write it),
/// or the form OSS documents for its CSV reports, with `-` between the time fields
/// (`2024-03-05T10-20-30Z`, UTC).
fn parse_report_time(text: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H-%M-%S%.fZ")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// An Arrow batch (from a Parquet or ORC file) whose columns have been checked and cast to
/// the column types; rows are read from it one at a time.
pub(super) struct PlannedBatch {
    plan: RowPlan,
    arrays: Vec<ArrayRef>,
    rows: usize,
}

impl PlannedBatch {
    /// Checks `batch`'s columns by name against `known` and casts each to its column's type.
    /// `what` names the file in messages.
    pub(super) fn new(
        batch: &RecordBatch,
        known: &[(&str, &str)],
        table: &TableDef,
        what: &str,
    ) -> Result<PlannedBatch> {
        let schema = batch.schema();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let plan = RowPlan::new(&names, known, table, what, false)?;
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let mut arrays = Vec::with_capacity(names.len());
        for (field, column) in plan.fields.iter().zip(batch.columns()) {
            let target = match field.ty {
                ColumnType::String => DataType::Utf8,
                ColumnType::Int64 => DataType::Int64,
                ColumnType::Bool => DataType::Boolean,
                _ => DataType::Timestamp(TimeUnit::Millisecond, None),
            };
            let source = match column.data_type() {
                // A zone only labels the instant: drop it so the cast keeps the epoch value.
                DataType::Timestamp(unit, Some(_)) => {
                    cast_with_options(column, &DataType::Timestamp(*unit, None), &options).ok()
                }
                _ => None,
            };
            let cast = cast_with_options(source.as_ref().unwrap_or(column), &target, &options)
                .map_err(|e| {
                    Error::InvalidInput(format!(
                        "{what}: {}: expected values for a {} column, found {} ({e})",
                        field.name,
                        field.ty,
                        column.data_type()
                    ))
                })?;
            arrays.push(cast);
        }
        Ok(PlannedBatch {
            plan,
            arrays,
            rows: batch.num_rows(),
        })
    }

    /// Rows in the batch.
    pub(super) fn len(&self) -> usize {
        self.rows
    }

    /// The table row at `i`; errors are `Field: expected …, found …`.
    pub(super) fn row(&self, i: usize) -> std::result::Result<Vec<Value>, String> {
        let mut row = self.plan.blank_row();
        for ((field, array), &c) in self
            .plan
            .fields
            .iter()
            .zip(&self.arrays)
            .zip(&self.plan.column_of_field)
        {
            let value = if array.is_null(i) {
                Value::Null
            } else {
                match field.ty {
                    ColumnType::String => Value::String(array.as_string::<i32>().value(i).into()),
                    ColumnType::Int64 => {
                        Value::Int64(array.as_primitive::<arrow::datatypes::Int64Type>().value(i))
                    }
                    ColumnType::Bool => Value::Bool(array.as_boolean().value(i)),
                    _ => Value::TimestampMs(
                        array.as_primitive::<TimestampMillisecondType>().value(i),
                    ),
                }
            };
            let value = match value {
                Value::Null | Value::String(_) if field.required => match value {
                    Value::String(s) if !s.is_empty() => Value::String(s),
                    other => {
                        return Err(format!(
                            "{}: expected a non-empty value, found {}",
                            field.name,
                            if other == Value::Null { "null" } else { "\"\"" }
                        ))
                    }
                },
                Value::Null if field.is_key && field.ty == ColumnType::String => {
                    Value::String(String::new())
                }
                Value::Null if field.is_key => {
                    return Err(format!(
                        "{}: expected a {} value (key), found null",
                        field.name, field.ty
                    ))
                }
                other => other,
            };
            row[c] = value;
        }
        self.plan.complete(&mut row);
        Ok(row)
    }
}

/// Decodes an `application/x-www-form-urlencoded` key: `+` is a space, `%XX` a byte, and the
/// bytes must be UTF-8.
pub fn form_decode(text: &str) -> std::result::Result<String, String> {
    if !text.contains(['+', '%']) {
        return Ok(text.to_string());
    }
    let mut bytes = Vec::with_capacity(text.len());
    for (i, part) in text.split('+').enumerate() {
        if i > 0 {
            bytes.push(b' ');
        }
        bytes.extend(percent_encoding::percent_decode_str(part));
    }
    String::from_utf8(bytes).map_err(|_| {
        format!("expected form-encoded UTF-8, found {text:?} (not UTF-8 once decoded)")
    })
}

#[cfg(test)]
mod tests {
    use super::parse_report_time;

    #[test]
    fn report_times_in_iso_and_oss_forms() {
        let want = Some(1_709_634_030_000);
        assert_eq!(parse_report_time("2024-03-05T10:20:30.000Z"), want);
        assert_eq!(parse_report_time("2024-03-05T10:20:30Z"), want);
        assert_eq!(parse_report_time("2024-03-05T10-20-30Z"), want);
        assert_eq!(
            parse_report_time("2024-03-05T10-20-30.250Z"),
            Some(1_709_634_030_250)
        );
        assert_eq!(parse_report_time("2024-03-05T10-20-30"), None);
        assert_eq!(parse_report_time("2024-03-05 10:20"), None);
    }
}
