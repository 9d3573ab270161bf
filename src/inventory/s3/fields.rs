//! How the fields of an S3 Inventory CSV record become one row of a table: the S3 field →
//! column mapping, value parsing (form-decoded keys, integers, booleans, ISO 8601 dates) and
//! the derived `prefix`. No I/O here; the parent module adds `file:line` to the messages.

use crate::error::{Error, Result};
use crate::store::{ColumnType, TableDef, Value};

/// S3 Inventory field names and the `object_inventory` columns they fill.
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

/// Where one column of the output row comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The CSV field at this index.
    Field(usize),
    /// The parent folder of the decoded key.
    Prefix,
    /// An empty string (`version_id` when the report is not versioned).
    EmptyString,
    /// NULL: the report does not carry this column.
    Null,
}

/// One CSV field: its S3 name and the type of the column it fills.
#[derive(Debug, Clone)]
struct FieldPlan {
    name: String,
    ty: ColumnType,
    is_key: bool,
    /// `Bucket` and `Key`: an empty value is an error.
    required: bool,
    form_encoded: bool,
}

/// How a CSV record becomes a row of the table.
#[derive(Debug, Clone)]
pub(super) struct RowPlan {
    fields: Vec<FieldPlan>,
    columns: Vec<Source>,
    key_field: usize,
}

impl RowPlan {
    pub(super) fn new(schema: &[String], table: &TableDef, url: &str) -> Result<RowPlan> {
        let bad = |what: String| Error::InvalidInput(format!("{url}: fileSchema: {what}"));
        let mut fields = Vec::with_capacity(schema.len());
        let mut field_of_column = vec![None; table.columns.len()];
        for (i, name) in schema.iter().enumerate() {
            let column = S3_FIELDS
                .iter()
                .find(|(f, _)| f == name)
                .map(|(_, c)| *c)
                .ok_or_else(|| {
                    bad(format!(
                        "unknown field {name:?} (known: {})",
                        S3_FIELDS
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
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
                    "field {name} fills column {column} of type {ty}, which S3 reports cannot fill"
                )));
            }
            fields.push(FieldPlan {
                name: name.clone(),
                ty,
                is_key: table.is_key(column),
                required: name == "Bucket" || name == "Key",
                form_encoded: name == "Key",
            });
        }
        let field_named = |name: &str| schema.iter().position(|f| f == name);
        let key_field = field_named("Key").ok_or_else(|| bad("Key is missing".into()))?;
        if field_named("Bucket").is_none() {
            return Err(bad("Bucket is missing".into()));
        }
        let mut columns = Vec::with_capacity(table.columns.len());
        for (index, column) in table.columns.iter().enumerate() {
            columns.push(match field_of_column[index] {
                Some(i) => Source::Field(i),
                None if column.name == "prefix" => Source::Prefix,
                None if table.is_key(&column.name) && column.ty == ColumnType::String => {
                    Source::EmptyString
                }
                None if table.is_key(&column.name) => {
                    return Err(bad(format!(
                        "key column {} of table {} has no field in fileSchema",
                        column.name, table.table
                    )))
                }
                None => Source::Null,
            });
        }
        Ok(RowPlan {
            fields,
            columns,
            key_field,
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
        let mut values: Vec<Value> = Vec::with_capacity(self.fields.len());
        for (plan, text) in self.fields.iter().zip(record.iter()) {
            values.push(parse_value(plan, text).map_err(|e| format!("{}: {e}", plan.name))?);
        }
        let prefix = match &values[self.key_field] {
            Value::String(k) => Value::String(parent_folder(k).to_string()),
            _ => Value::Null,
        };
        Ok(self
            .columns
            .iter()
            .map(|s| match *s {
                Source::Field(i) => std::mem::replace(&mut values[i], Value::Null),
                Source::Prefix => prefix.clone(),
                Source::EmptyString => Value::String(String::new()),
                Source::Null => Value::Null,
            })
            .collect())
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
        ColumnType::TimestampMs => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| Value::TimestampMs(t.timestamp_millis()))
            .map_err(|_| {
                format!("expected an ISO 8601 date like 2024-03-05T10:20:30.000Z, found {text:?}")
            }),
        other => Err(format!("cannot fill a {other} column")),
    }
}

/// Decodes an `application/x-www-form-urlencoded` key: `+` is a space, `%XX` a byte, and the
/// bytes must be UTF-8.
pub fn form_decode(text: &str) -> std::result::Result<String, String> {
    let spaced = text.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    String::from_utf8(bytes).map_err(|_| {
        format!("expected form-encoded UTF-8, found {text:?} (not UTF-8 once decoded)")
    })
}

/// The key's parent folder including the trailing `/`; `""` for a top-level key.
pub fn parent_folder(key: &str) -> &str {
    match key.rfind('/') {
        Some(i) => &key[..=i],
        None => "",
    }
}
