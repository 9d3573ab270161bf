//! Table declarations: `schemas/<table>.yaml` files that name a table, its ordered primary key
//! and its typed columns. The built-in `object_inventory` table is compiled in from
//! `schemas/object_inventory.yaml`, so it exists even without a schemas folder.
//!
//! A file under `schemas/` is a table declaration when it has a top-level `table:` key; other
//! YAML files there (delivery schemas, which map store columns to lake columns) are left to
//! `convert`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{DELETED_COLUMN, SEQ_COLUMN, WRITE_TIME_COLUMN};

/// The YAML of the built-in object-inventory table.
pub const OBJECT_INVENTORY_YAML: &str = include_str!("../../schemas/object_inventory.yaml");
/// Name of the built-in object-inventory table.
pub const OBJECT_INVENTORY: &str = "object_inventory";

/// The type of a store column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Double,
    /// Boolean.
    Bool,
    /// Bytes.
    Binary,
    /// Milliseconds since the Unix epoch, UTC.
    TimestampMs,
}

impl ColumnType {
    /// The name used in schema files.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int64 => "int64",
            ColumnType::Double => "double",
            ColumnType::Bool => "bool",
            ColumnType::Binary => "binary",
            ColumnType::TimestampMs => "timestamp_ms",
        }
    }

    /// The Arrow type a snapshot uses for this column.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Binary => DataType::Binary,
            ColumnType::TimestampMs => {
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            }
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    /// Column name: lowercase letters, digits and `_`, starting with a letter.
    pub name: String,
    /// Store type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// A declared table: name, ordered primary key, columns. Primary-key columns are never NULL;
/// every other column may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    /// Table name: lowercase letters, digits and `_`, starting with a letter.
    pub table: String,
    /// Primary-key column names, in key order.
    pub primary_key: Vec<String>,
    /// Columns in table order.
    pub columns: Vec<ColumnDef>,
}

impl TableDef {
    /// Parses and checks one table declaration; `origin` names the file in messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self> {
        let def: TableDef = serde_yaml::from_str(text)
            .map_err(|e| Error::InvalidConfig(format!("{origin}: {}", yaml_error_text(&e))))?;
        let problems = def.problems();
        if problems.is_empty() {
            Ok(def)
        } else {
            Err(Error::InvalidConfig(
                problems
                    .iter()
                    .map(|p| format!("{origin}: {p}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ))
        }
    }

    /// Every problem of the declaration (empty when it is valid).
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !is_identifier(&self.table) {
            problems.push(format!(
                "table: {:?} is not a valid name (lowercase letters, digits and _, starting with a letter)",
                self.table
            ));
        }
        if self.columns.is_empty() {
            problems.push("columns: at least one column is required".into());
        }
        let mut seen = HashSet::new();
        for (i, c) in self.columns.iter().enumerate() {
            if !is_identifier(&c.name) {
                problems.push(format!(
                    "columns[{i}].name: {:?} is not a valid name",
                    c.name
                ));
            } else if c.name.starts_with('_') {
                problems.push(format!(
                    "columns[{i}].name: {:?}: names starting with _ are reserved",
                    c.name
                ));
            }
            if !seen.insert(c.name.as_str()) {
                problems.push(format!("columns[{i}].name: {:?} is declared twice", c.name));
            }
        }
        if self.primary_key.is_empty() {
            problems.push("primary_key: at least one key column is required".into());
        }
        let mut key_seen = HashSet::new();
        for (i, k) in self.primary_key.iter().enumerate() {
            if self.column_index(k).is_none() {
                problems.push(format!("primary_key[{i}]: {k:?} is not a declared column"));
            }
            if !key_seen.insert(k.as_str()) {
                problems.push(format!("primary_key[{i}]: {k:?} is listed twice"));
            }
        }
        problems
    }

    /// Index of column `name` in [`TableDef::columns`].
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Column indexes of the primary key, in key order.
    pub fn key_indexes(&self) -> Vec<usize> {
        self.primary_key
            .iter()
            .filter_map(|k| self.column_index(k))
            .collect()
    }

    /// Whether column `name` is part of the primary key.
    pub fn is_key(&self, name: &str) -> bool {
        self.primary_key.iter().any(|k| k == name)
    }

    /// The Arrow schema of snapshot batches: every column in table order (key columns not
    /// nullable), then `_seq` (Int64) and `_write_time` (Timestamp ms UTC).
    pub fn arrow_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow_type(), !self.is_key(&c.name)))
            .collect();
        fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
        fields.push(Field::new(
            WRITE_TIME_COLUMN,
            ColumnType::TimestampMs.arrow_type(),
            false,
        ));
        Arc::new(Schema::new(fields))
    }

    /// The Arrow schema of batches of changes with deletes: [`TableDef::arrow_schema`], then
    /// a non-null Boolean [`DELETED_COLUMN`].
    pub fn arrow_schema_with_deleted(&self) -> SchemaRef {
        let plain = self.arrow_schema();
        let mut fields: Vec<FieldRef> = plain.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            DELETED_COLUMN,
            DataType::Boolean,
            false,
        )));
        Arc::new(Schema::new(fields))
    }

    /// The type of a column a delivery may read: a declared column or `_seq`/`_write_time`.
    pub fn source_type(&self, name: &str) -> Option<ColumnType> {
        match name {
            SEQ_COLUMN => Some(ColumnType::Int64),
            WRITE_TIME_COLUMN => Some(ColumnType::TimestampMs),
            _ => self.column(name).map(|c| c.ty),
        }
    }
}

/// Whether `s` is a valid table or column name.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

/// The text of a serde_yaml error with its line and column, as `line L column C: message`.
pub fn yaml_error_text(e: &serde_yaml::Error) -> String {
    match e.location() {
        Some(loc) => {
            let msg = e.to_string();
            // serde_yaml appends " at line L column C"; keep one copy, in front.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            format!("line {} column {}: {msg}", loc.line(), loc.column())
        }
        None => e.to_string(),
    }
}

/// Every table declared under `dir` (files with a top-level `table:` key), plus the built-in
/// `object_inventory` unless the folder declares it itself. A missing folder yields only the
/// built-in. Every problem of every file is reported at once.
pub fn load_tables(dir: &Path) -> Result<BTreeMap<String, TableDef>> {
    let (tables, problems) = read_tables(dir)?;
    if problems.is_empty() {
        Ok(tables)
    } else {
        Err(Error::InvalidConfig(problems.join("\n")))
    }
}

/// Like [`load_tables`], but returns the tables that are valid together with the problems of
/// the others (for `validate`, which reports everything it can check at once).
pub fn read_tables(dir: &Path) -> Result<(BTreeMap<String, TableDef>, Vec<String>)> {
    let mut tables = BTreeMap::new();
    let mut problems = Vec::new();
    let mut origins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in yaml_files(dir)? {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        if !declares_table(&text) {
            continue;
        }
        match TableDef::from_yaml(&text, &path.display().to_string()) {
            Ok(def) => {
                if let Some(first) = origins.get(&def.table) {
                    problems.push(format!(
                        "{}: table: {:?} is already declared in {}",
                        path.display(),
                        def.table,
                        first.display()
                    ));
                    continue;
                }
                origins.insert(def.table.clone(), path.clone());
                tables.insert(def.table.clone(), def);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !tables.contains_key(OBJECT_INVENTORY) {
        let def = TableDef::from_yaml(OBJECT_INVENTORY_YAML, "built-in object_inventory")?;
        tables.insert(def.table.clone(), def);
    }
    Ok((tables, problems))
}

/// Whether a YAML text has a top-level `table:` key (a table declaration).
fn declares_table(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("table:"))
}

/// `*.yaml` and `*.yml` files directly under `dir`, sorted; none when `dir` does not exist.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io("listing", dir, e))?.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_inventory_table_is_valid() {
        let def = TableDef::from_yaml(OBJECT_INVENTORY_YAML, "builtin").unwrap();
        assert_eq!(def.table, OBJECT_INVENTORY);
        assert_eq!(def.primary_key, ["bucket", "key", "version_id"]);
        assert!(def.column("last_modified").is_some());
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let yaml = "table: T\nprimary_key: [id, nope]\ncolumns:\n  - { name: id, type: int64 }\n  - { name: id, type: string }\n";
        let err = TableDef::from_yaml(yaml, "schemas/t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("schemas/t.yaml: table: \"T\" is not a valid name"),
            "{err}"
        );
        assert!(
            err.contains("columns[1].name: \"id\" is declared twice"),
            "{err}"
        );
        assert!(
            err.contains("primary_key[1]: \"nope\" is not a declared column"),
            "{err}"
        );
    }

    #[test]
    fn unknown_type_names_line() {
        let yaml = "table: t\nprimary_key: [id]\ncolumns:\n  - { name: id, type: integer }\n";
        let err = TableDef::from_yaml(yaml, "t.yaml").unwrap_err().to_string();
        assert!(err.starts_with("t.yaml: line 4"), "{err}");
        assert!(err.contains("integer"), "{err}");
    }
}
