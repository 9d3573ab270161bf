//! Delivery schema files (`schemas/*.yaml` without a `table:` key): which store columns go to
//! the lake, under which names, as which lake types. Every problem of a file is reported at
//! once, each as `PATH: columns[i].KEY: message` (or `PATH: line L column C: message` when
//! the YAML itself is wrong).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::types::{can_hold, holdable_names, LakeType};
use super::LakeSchema;
use crate::model::schema::yaml_error_text;
use crate::model::{TableDef, SEQ_COLUMN, WRITE_TIME_COLUMN};

/// Longest lake column name (Hive's metastore limit is 128).
const MAX_NAME_LEN: usize = 128;

/// A delivery schema as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    /// Lake columns in lake order.
    columns: Vec<RawColumn>,
}

/// One lake column as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    /// Store column it reads: a declared column, `_seq` or `_write_time`.
    source: String,
    /// Lake column name; defaults to `source`.
    name: Option<String>,
    /// Lake type (see [`LakeType::parse`]); defaults to the `auto` type of the source.
    #[serde(rename = "type")]
    ty: Option<String>,
}

impl LakeSchema {
    /// Reads and checks the delivery schema file at `path` against `table`. On failure returns
    /// every problem, each `PATH: columns[i].KEY: message` (`PATH: line L column C: message`
    /// for YAML syntax errors and unknown keys).
    pub fn from_file(path: &Path, table: &TableDef) -> Result<LakeSchema, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
        Self::from_yaml(&text, &path.display().to_string(), table)
    }

    /// Like [`LakeSchema::from_file`], for YAML text; `origin` names it in messages.
    ///
    /// ```yaml
    /// columns:
    ///   - { source: key, name: object_key, type: string }
    ///   - { source: size }            # name defaults to the source, type to its auto type
    /// ```
    pub fn from_yaml(
        text: &str,
        origin: &str,
        table: &TableDef,
    ) -> Result<LakeSchema, Vec<String>> {
        let raw: RawSchema = serde_yaml::from_str(text)
            .map_err(|e| vec![format!("{origin}: {}", yaml_error_text(&e))])?;
        let mut problems = Vec::new();
        if raw.columns.is_empty() {
            problems.push(format!(
                "{origin}: columns: at least one column is required"
            ));
        }
        let mut columns = Vec::with_capacity(raw.columns.len());
        // Lowercased name → first index: Hive resolves column names case-insensitively.
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, c) in raw.columns.iter().enumerate() {
            let at = |key: &str, msg: String| format!("{origin}: columns[{i}].{key}: {msg}");
            let source_type = table.source_type(&c.source);
            if source_type.is_none() {
                problems.push(at(
                    "source",
                    format!(
                        "{:?} is not a column of table {} (nor {SEQ_COLUMN} or {WRITE_TIME_COLUMN})",
                        c.source, table.table
                    ),
                ));
            }
            let name = c.name.clone().unwrap_or_else(|| c.source.clone());
            let name_key = if c.name.is_some() { "name" } else { "source" };
            if c.name.is_none() && source_type.is_none() {
                // Already reported as an unknown source.
            } else if let Some(msg) = name_problem(&name) {
                problems.push(at(name_key, msg));
            } else if let Some(first) = seen.get(&name.to_ascii_lowercase()) {
                problems.push(at(
                    name_key,
                    format!(
                        "lake column {name:?} is already used by columns[{first}] (names are case-insensitive)"
                    ),
                ));
            } else {
                seen.insert(name.to_ascii_lowercase(), i);
            }
            let ty = match (&c.ty, source_type) {
                (Some(t), _) => match LakeType::parse_detailed(t) {
                    Ok(ty) => Some(ty),
                    Err(msg) => {
                        problems.push(at("type", msg));
                        None
                    }
                },
                (None, Some(st)) => Some(LakeType::for_store_type(st)),
                (None, None) => None,
            };
            if let (Some(st), Some(ty)) = (source_type, ty) {
                if !can_hold(st, &ty) {
                    problems.push(at(
                        "type",
                        format!(
                            "{st} column {} cannot be written as {ty} ({st} can be written as {})",
                            c.source,
                            holdable_names(st)
                        ),
                    ));
                }
            }
            if let Some(ty) = ty {
                columns.push((c.source.clone(), name, ty));
            }
        }
        if problems.is_empty() {
            Ok(LakeSchema::build(table, columns))
        } else {
            Err(problems)
        }
    }
}

/// Why `name` is not a lake column name, if it is not.
fn name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        Some(format!(
            "{name:?} is not a valid lake column name (letters, digits and _, not starting with a digit)"
        ))
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("{name:?} is longer than {MAX_NAME_LEN} characters"))
    } else {
        None
    }
}
