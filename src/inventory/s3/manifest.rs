//! The `manifest.json` of an S3 Inventory report: parsed field by field so that every error
//! names the manifest's URL and the field. Reading the manifest and its checksum is the parent
//! module's job.

use serde_json::Value as Json;

use crate::error::{Error, Result};

/// One data file listed in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3ManifestFile {
    /// Object key relative to the destination bucket.
    pub key: String,
    /// Size in bytes (of the compressed file for CSV.gz).
    pub size: u64,
    /// Hex MD5 of the file's bytes, lowercase.
    pub md5_checksum: String,
}

/// An S3 Inventory `manifest.json`. Unknown fields are ignored (AWS adds fields over time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Manifest {
    /// `sourceBucket`: the inventoried bucket.
    pub source_bucket: String,
    /// `destinationBucket`: usually an ARN, `arn:aws:s3:::name`.
    pub destination_bucket: String,
    /// `version`, e.g. `2016-11-30` (empty when absent).
    pub version: String,
    /// `creationTimestamp` in epoch milliseconds (a string of digits or a number).
    pub creation_timestamp_ms: i64,
    /// `fileFormat`: `CSV` (Parquet and ORC are refused for now).
    pub file_format: String,
    /// `fileSchema` split at commas and trimmed: the CSV columns in order.
    pub file_schema: Vec<String>,
    /// `files`: the data files.
    pub files: Vec<S3ManifestFile>,
}

impl S3Manifest {
    /// Parses `manifest.json`'s bytes; errors name `url` and the field. Only `CSV` reports are
    /// accepted; `Parquet` and `ORC` are [`Error::InvalidInput`] "not supported yet".
    pub fn parse(bytes: &[u8], url: &str) -> Result<S3Manifest> {
        let bad = |what: String| Error::InvalidInput(format!("{url}: {what}"));
        let doc: Json =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| bad(format!("expected a JSON object, found {}", json_kind(&doc))))?;
        let field = |name: &str| -> Result<&Json> {
            obj.get(name)
                .ok_or_else(|| bad(format!("{name}: missing (required field)")))
        };
        let string = |name: &str| -> Result<String> {
            match field(name)? {
                Json::String(s) => Ok(s.clone()),
                other => Err(bad(format!(
                    "{name}: expected a string, found {}",
                    json_kind(other)
                ))),
            }
        };
        let file_format = string("fileFormat")?;
        match file_format.to_ascii_uppercase().as_str() {
            "CSV" => {}
            "PARQUET" | "ORC" => {
                return Err(bad(format!(
                    "fileFormat: {file_format} reports are not supported yet (only CSV and CSV.gz)"
                )))
            }
            _ => {
                return Err(bad(format!(
                    "fileFormat: expected CSV, Parquet or ORC, found {file_format:?}"
                )))
            }
        }
        let version = match obj.get("version") {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(other) => {
                return Err(bad(format!(
                    "version: expected a string, found {}",
                    json_kind(other)
                )))
            }
        };
        let creation_timestamp_ms = match field("creationTimestamp")? {
            Json::String(s) => s.trim().parse::<i64>().ok(),
            Json::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| {
            bad(format!(
                "creationTimestamp: expected epoch milliseconds (digits), found {}",
                obj.get("creationTimestamp")
                    .map_or("nothing".into(), |v| v.to_string())
            ))
        })?;
        let file_schema: Vec<String> = string("fileSchema")?
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        if file_schema.iter().any(String::is_empty) {
            return Err(bad(
                "fileSchema: expected a comma-separated list of field names, found an empty name"
                    .into(),
            ));
        }
        let files = match field("files")? {
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| manifest_file(item, i).map_err(&bad))
                .collect::<Result<Vec<_>>>()?,
            other => {
                return Err(bad(format!(
                    "files: expected an array, found {}",
                    json_kind(other)
                )))
            }
        };
        Ok(S3Manifest {
            source_bucket: string("sourceBucket")?,
            destination_bucket: string("destinationBucket")?,
            version,
            creation_timestamp_ms,
            file_format,
            file_schema,
            files,
        })
    }
}

fn manifest_file(item: &Json, i: usize) -> std::result::Result<S3ManifestFile, String> {
    let get = |name: &str| {
        item.get(name)
            .ok_or_else(|| format!("files[{i}].{name}: missing (required field)"))
    };
    let key = match get("key")? {
        Json::String(s) if !s.is_empty() => s.clone(),
        other => {
            return Err(format!(
                "files[{i}].key: expected a non-empty string, found {other}"
            ))
        }
    };
    let size = match get("size")? {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "files[{i}].size: expected a byte count, found {}",
            item.get("size").map_or(String::new(), |v| v.to_string())
        )
    })?;
    let md5_checksum = match get("MD5checksum")? {
        Json::String(s) if is_md5_hex(s.trim()) => s.trim().to_ascii_lowercase(),
        other => {
            return Err(format!(
                "files[{i}].MD5checksum: expected 32 hex digits, found {other}"
            ))
        }
    };
    Ok(S3ManifestFile {
        key,
        size,
        md5_checksum,
    })
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
