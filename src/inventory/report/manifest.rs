//! The `manifest.json` of an inventory report, for each provider: provider detection, the
//! OBS trailing-comma leniency, and the field-by-field parse whose errors name the manifest's
//! URL and the field. Reading the manifest, its checksum and the data files is the parent
//! module's job; mapping `fileSchema` onto a table is `fields`'.

use serde_json::Value as Json;

use super::Provider;
use crate::error::{Error, Result};

/// The data file format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    /// CSV, gzip-compressed when the file key ends in `.gz`.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Apache ORC.
    Orc,
}

impl FileFormat {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "CSV",
            FileFormat::Parquet => "Parquet",
            FileFormat::Orc => "ORC",
        }
    }
}

/// One data file listed in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestFile {
    /// Object key relative to the destination bucket (OBS: already percent-decoded).
    pub(crate) key: String,
    /// Size in bytes (of the compressed file for CSV.gz).
    pub(crate) size: u64,
    /// Hex MD5 of the file's bytes, lowercase (OBS manifests carry none).
    pub(crate) md5: Option<String>,
    /// OBS `inventoriedRecord`: the number of rows the file holds.
    pub(crate) records: Option<u64>,
}

/// A parsed manifest, provider-neutral. Unknown fields are ignored (providers add fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) source_bucket: String,
    pub(crate) version: String,
    /// Creation time in epoch milliseconds.
    pub(crate) created_ms: i64,
    pub(crate) file_format: FileFormat,
    /// The field names of `fileSchema`, in order.
    pub(crate) file_schema: Vec<String>,
    pub(crate) files: Vec<ManifestFile>,
}

/// Parses `manifest.json`'s bytes as JSON. Strict JSON first; when that fails, once more with
/// trailing commas (a `,` followed only by whitespace before `}` or `]`, outside strings)
/// removed. The flag says the leniency was needed: only OBS writes such manifests.
pub(crate) fn parse_json(bytes: &[u8], url: &str) -> Result<(Json, bool)> {
    match serde_json::from_slice::<Json>(bytes) {
        Ok(doc) => Ok((doc, false)),
        Err(strict) => {
            let relaxed = strip_trailing_commas(bytes);
            if relaxed.len() != bytes.len() {
                if let Ok(doc) = serde_json::from_slice::<Json>(&relaxed) {
                    return Ok((doc, true));
                }
            }
            Err(Error::InvalidInput(format!(
                "{url}: not valid JSON: {strict}"
            )))
        }
    }
}

/// Removes every `,` that is followed (after whitespace) by `}` or `]`, outside strings.
fn strip_trailing_commas(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b',' {
            let next = bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
            if matches!(next, Some(b'}') | Some(b']')) {
                continue;
            }
        }
        out.push(b);
    }
    out
}

/// The provider that wrote a manifest, from the manifest itself (rules in the parent module's
/// doc): OBS when the JSON needed the trailing-comma leniency, a file carries
/// `inventoriedRecord` or `version` is OBS's `2019-01-03`; OSS when `version` is
/// `2019-09-01` or `creationTimestamp` is in seconds (fewer than 12 digits); else S3.
pub(crate) fn detect(doc: &Json, lenient: bool) -> Provider {
    let version = doc.get("version").and_then(Json::as_str).unwrap_or("");
    let has_records = doc
        .get("files")
        .and_then(Json::as_array)
        .is_some_and(|files| files.iter().any(|f| f.get("inventoriedRecord").is_some()));
    if lenient || has_records || version == "2019-01-03" {
        return Provider::Obs;
    }
    let seconds = match doc.get("creationTimestamp") {
        Some(Json::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Json::Number(n)) => n.as_i64(),
        _ => None,
    }
    .is_some_and(|t| (0..100_000_000_000).contains(&t));
    if version == "2019-09-01" || seconds {
        return Provider::Oss;
    }
    Provider::S3
}

/// Parses a manifest by `provider`'s rules; `folder` is the name of the folder holding the
/// manifest (`2024-03-06T00-00Z`), which dates an OBS report whose manifest has no
/// `creationTimestamp`. Errors name `url` and the field.
pub(crate) fn parse(
    doc: &Json,
    lenient: bool,
    provider: Provider,
    url: &str,
    folder: Option<&str>,
) -> Result<Manifest> {
    let bad = |what: String| Error::InvalidInput(format!("{url}: {what}"));
    if lenient && provider != Provider::Obs {
        return Err(bad(format!(
            "not valid JSON for a {} manifest: it has a trailing comma (accepted for OBS only)",
            provider.as_str()
        )));
    }
    let obj = doc
        .as_object()
        .ok_or_else(|| bad(format!("expected a JSON object, found {}", json_kind(doc))))?;
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
    let text = string("fileFormat")?;
    let file_format = match text.to_ascii_uppercase().as_str() {
        "CSV" => FileFormat::Csv,
        "PARQUET" => FileFormat::Parquet,
        "ORC" => FileFormat::Orc,
        _ => {
            return Err(bad(format!(
                "fileFormat: expected CSV, Parquet or ORC, found {text:?}"
            )))
        }
    };
    if provider != Provider::S3 && file_format != FileFormat::Csv {
        return Err(bad(format!(
            "fileFormat: {} reports are CSV, found {text:?}",
            provider.as_str()
        )));
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
    let created_ms = creation_ms(obj.get("creationTimestamp"), provider, folder).map_err(bad)?;
    let file_schema = schema_names(&string("fileSchema")?, file_format).map_err(|e| {
        bad(format!(
            "fileSchema: expected {}, {e}",
            match file_format {
                FileFormat::Csv => "a comma-separated list of field names",
                FileFormat::Parquet => "a Parquet message type (message s3.inventory { … })",
                FileFormat::Orc => "an ORC struct (struct<bucket:string,…>)",
            }
        ))
    })?;
    let files = match field("files")? {
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| manifest_file(item, i, provider).map_err(&bad))
            .collect::<Result<Vec<_>>>()?,
        other => {
            return Err(bad(format!(
                "files: expected an array, found {}",
                json_kind(other)
            )))
        }
    };
    let source_bucket = string("sourceBucket")?;
    if source_bucket.is_empty() {
        return Err(bad(
            "sourceBucket: expected a bucket name, found \"\"".into()
        ));
    }
    Ok(Manifest {
        source_bucket,
        version,
        created_ms,
        file_format,
        file_schema,
        files,
    })
}

/// `creationTimestamp` in epoch ms: S3 gives milliseconds, OSS seconds; OBS gives none, so
/// its report is dated by the manifest's folder (`yyyy-MM-dd'T'HH-mm'Z'`).
fn creation_ms(
    value: Option<&Json>,
    provider: Provider,
    folder: Option<&str>,
) -> std::result::Result<i64, String> {
    let unit = if provider == Provider::Oss {
        "seconds"
    } else {
        "milliseconds"
    };
    let number = match value {
        None | Some(Json::Null) if provider == Provider::Obs => {
            let name = folder.unwrap_or("");
            return chrono::NaiveDateTime::parse_from_str(name, "%Y-%m-%dT%H-%MZ")
                .map(|t| t.and_utc().timestamp_millis())
                .map_err(|_| {
                    format!(
                        "creationTimestamp: missing, and the manifest's folder {name:?} is not \
                         a yyyy-MM-dd'T'HH-mm'Z' time to date the report by"
                    )
                });
        }
        None => return Err("creationTimestamp: missing (required field)".into()),
        Some(Json::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Json::Number(n)) => n.as_i64(),
        Some(_) => None,
    };
    let found = value.map_or("nothing".into(), |v| v.to_string());
    let n = number.ok_or_else(|| {
        format!("creationTimestamp: expected epoch {unit} (digits), found {found}")
    })?;
    if provider == Provider::Oss {
        // Seconds have at most 11 digits until the year 5138; more is a millisecond value.
        if !(0..100_000_000_000).contains(&n) {
            return Err(format!(
                "creationTimestamp: expected epoch seconds (OSS), found {found}"
            ));
        }
        Ok(n * 1000)
    } else {
        Ok(n)
    }
}

/// The field names of a `fileSchema`, in order.
fn schema_names(text: &str, format: FileFormat) -> std::result::Result<Vec<String>, String> {
    let names: Vec<String> = match format {
        FileFormat::Csv => text.split(',').map(|s| s.trim().to_string()).collect(),
        FileFormat::Parquet => {
            let body = text
                .trim()
                .strip_prefix("message")
                .and_then(|rest| rest.split_once('{'))
                .and_then(|(_, rest)| rest.trim_end().strip_suffix('}'))
                .ok_or_else(|| format!("found {text:?}"))?;
            let mut names = Vec::new();
            for item in body.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let tokens: Vec<&str> = item.split_whitespace().collect();
                match tokens.as_slice() {
                    [rep, _ty, name, ..]
                        if matches!(*rep, "required" | "optional" | "repeated")
                            && !item.contains('{') =>
                    {
                        names.push(name.to_string())
                    }
                    _ => return Err(format!("found the field {item:?}")),
                }
            }
            names
        }
        FileFormat::Orc => {
            let body = text
                .trim()
                .strip_prefix("struct<")
                .and_then(|rest| rest.strip_suffix('>'))
                .ok_or_else(|| format!("found {text:?}"))?;
            let mut names = Vec::new();
            for item in body.split(',').map(str::trim) {
                match item.split_once(':') {
                    Some((name, ty)) if !name.trim().is_empty() && !ty.contains('<') => {
                        names.push(name.trim().to_string())
                    }
                    _ => return Err(format!("found the field {item:?}")),
                }
            }
            names
        }
    };
    if names.is_empty() || names.iter().any(String::is_empty) {
        return Err("found an empty field name".into());
    }
    Ok(names)
}

fn manifest_file(
    item: &Json,
    i: usize,
    provider: Provider,
) -> std::result::Result<ManifestFile, String> {
    let get = |name: &str| {
        item.get(name)
            .ok_or_else(|| format!("files[{i}].{name}: missing (required field)"))
    };
    let count = |name: &str| -> std::result::Result<u64, String> {
        match get(name)? {
            Json::Number(n) => n.as_u64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "files[{i}].{name}: expected a count, found {}",
                item.get(name).map_or(String::new(), |v| v.to_string())
            )
        })
    };
    let key = match get("key")? {
        Json::String(s) if !s.is_empty() => s.clone(),
        other => {
            return Err(format!(
                "files[{i}].key: expected a non-empty string, found {other}"
            ))
        }
    };
    // OBS percent-encodes the whole key (`inventory%2Fsrc%2F…`); decode to find the object.
    let key = if provider == Provider::Obs {
        percent_encoding::percent_decode_str(&key)
            .decode_utf8()
            .map_err(|_| format!("files[{i}].key: expected percent-encoded UTF-8, found {key:?}"))?
            .into_owned()
    } else {
        key
    };
    let size = count("size").map_err(|e| e.replace("a count", "a byte count"))?;
    let md5 = match (item.get("MD5checksum"), provider) {
        (None, Provider::Obs) => None,
        (Some(Json::String(s)), _) if is_md5_hex(s.trim()) => Some(s.trim().to_ascii_lowercase()),
        (None, _) => return Err(format!("files[{i}].MD5checksum: missing (required field)")),
        (Some(other), _) => {
            return Err(format!(
                "files[{i}].MD5checksum: expected 32 hex digits, found {other}"
            ))
        }
    };
    let records = if provider == Provider::Obs {
        Some(count("inventoriedRecord")?)
    } else {
        None
    };
    Ok(ManifestFile {
        key,
        size,
        md5,
        records,
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
