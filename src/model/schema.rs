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
use crate::model::{DELETED_COLUMN, SEQ_COLUMN, WRITE_TIME_COLUMN};

/// The YAML of the built-in object-inventory table.
pub const OBJECT_INVENTORY_YAML: &str = include_str!("../../schemas/object_inventory.yaml");
/// Name of the built-in object-inventory table.
pub const OBJECT_INVENTORY: &str = "object_inventory";

/// A column derived from the key: `column` holds the [`parent_folder`] of column `key`
/// (indexes into [`TableDef::columns`]); see [`TableDef::derived_folder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivedFolder {
    /// The derived column.
    pub column: usize,
    /// The key column it is derived from.
    pub key: usize,
}

/// The key's parent folder including the trailing `/`; `""` for a top-level key.
pub fn parent_folder(key: &str) -> &str {
    match key.rfind('/') {
        Some(i) => &key[..=i],
        None => "",
    }
}

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

    /// The column whose value the store derives rather than keeps: the built-in
    /// `object_inventory`'s `prefix`, the [`parent_folder`] of its `key` (both text). A row
    /// must hold exactly that value there (the inventory readers and `load` fill it in), and a
    /// SQLite store computes it on read instead of storing it (see `docs/store.md`).
    pub fn derived_folder(&self) -> Option<DerivedFolder> {
        if self.table != OBJECT_INVENTORY {
            return None;
        }
        let text = |name: &str| {
            self.column_index(name)
                .filter(|&i| self.columns[i].ty == ColumnType::String && !self.is_key(name))
        };
        let key = self
            .column_index("key")
            .filter(|&i| self.columns[i].ty == ColumnType::String)?;
        Some(DerivedFolder {
            column: text("prefix")?,
            key,
        })
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
///
/// A syntax error whose cause is an unterminated quoted string or flow collection is reported
/// where that starts, with what is unterminated and where the parser gave up, e.g.
/// `line 4 column 9: quoted string is not closed (found unexpected end of stream at line 6
/// column 1)`: libyaml finds the missing quote, `}` or `]` only where the file ends or the
/// next key begins, which by itself points at the wrong line. Other errors are reported where
/// the parser stopped, with libyaml's context (`while scanning …`) and its place kept.
pub fn yaml_error_text(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    let Some(loc) = e.location() else {
        return text;
    };
    let stopped = (loc.line(), loc.column());
    // libyaml's syntax errors read "<problem> at line L column C, while <context>[ at line L2
    // column C2]"; serde_yaml's own errors "<message> at line L column C".
    let (problem, context) = match text.rsplit_once(", while ") {
        Some((problem, context)) if is_libyaml_context(context) => (problem, Some(context)),
        _ => (text.as_str(), None),
    };
    let problem = problem
        .strip_suffix(&format!(" at {}", line_column(stopped)))
        .unwrap_or(problem);
    let Some(context) = context else {
        return format!("{}: {problem}", line_column(stopped));
    };
    let (context, started) = match context.rsplit_once(" at line ") {
        Some((context, mark)) => (context, parse_line_column(mark)),
        None => (context, None),
    };
    let unterminated = match (context, problem) {
        (
            "scanning a quoted scalar",
            "found unexpected end of stream" | "found unexpected document indicator",
        ) => Some("quoted string"),
        ("parsing a flow mapping", "did not find expected ',' or '}'") => Some("flow mapping '{'"),
        ("parsing a flow sequence", "did not find expected ',' or ']'") => {
            Some("flow sequence '['")
        }
        _ => None,
    };
    match unterminated {
        // libyaml leaves out a context's place when it is the file's first character (or the
        // problem's own place, which a quoted string or flow never starts at).
        Some(what) => format!(
            "{}: {what} is not closed ({problem} at {})",
            line_column(started.unwrap_or((1, 1))),
            line_column(stopped)
        ),
        None => match started {
            Some(at) => format!(
                "{}: {problem}, while {context} at {}",
                line_column(stopped),
                line_column(at)
            ),
            None => format!("{}: {problem}, while {context}", line_column(stopped)),
        },
    }
}

/// Whether `s` reads as the rest of a libyaml context: words (`scanning a %TAG directive`),
/// then perhaps ` at line L column C`.
fn is_libyaml_context(s: &str) -> bool {
    let words = match s.rsplit_once(" at line ") {
        Some((words, mark)) if parse_line_column(mark).is_some() => words,
        Some(_) => return false,
        None => s,
    };
    !words.is_empty()
        && words
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '%')
}

fn line_column((line, column): (usize, usize)) -> String {
    format!("line {line} column {column}")
}

/// `L column C` (the rest of a libyaml mark after "line ") as (L, C).
fn parse_line_column(mark: &str) -> Option<(usize, usize)> {
    let (line, column) = mark.split_once(" column ")?;
    Some((line.parse().ok()?, column.parse().ok()?))
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
            Err(e) => problems.push(e.chain().to_string()),
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
        let derived = def.derived_folder().expect("prefix is derived from key");
        assert_eq!(def.columns[derived.column].name, "prefix");
        assert_eq!(def.columns[derived.key].name, "key");
    }

    #[test]
    fn only_the_inventory_tables_prefix_is_derived() {
        let other = OBJECT_INVENTORY_YAML.replace("table: object_inventory", "table: listing");
        let other = TableDef::from_yaml(&other, "other").unwrap();
        assert_eq!(other.derived_folder(), None);
    }

    #[test]
    fn a_folder_is_everything_up_to_the_last_slash() {
        assert_eq!(parent_folder("a/b/c"), "a/b/");
        assert_eq!(parent_folder("a/"), "a/");
        assert_eq!(parent_folder("x//y"), "x//");
        assert_eq!(parent_folder("a/é/ü x"), "a/é/");
        assert_eq!(parent_folder("top"), "");
    }

    /// A task file's syntax error, as `config` reads task files (a YAML value first).
    fn task_file_error(text: &str) -> String {
        yaml_error_text(&serde_yaml::from_str::<serde_yaml::Value>(text).unwrap_err())
    }

    #[test]
    fn unterminated_quotes_and_flows_are_reported_where_they_start() {
        let task = |line4: &str| {
            format!("name: daily\nsource: object_inventory\ndestination: lake/daily\n{line4}\nmode: full\n")
        };
        assert_eq!(
            task_file_error(&task("prefix: \"dt=$yyyy-$MM-$dd")),
            "line 4 column 9: quoted string is not closed \
             (found unexpected end of stream at line 6 column 1)"
        );
        assert_eq!(
            task_file_error(&task("prefix: 'dt=$yyyy-$MM-$dd")),
            "line 4 column 9: quoted string is not closed \
             (found unexpected end of stream at line 6 column 1)"
        );
        assert_eq!(
            task_file_error(&task("parquet: { compression: zstd")),
            "line 4 column 10: flow mapping '{' is not closed \
             (did not find expected ',' or '}' at line 5 column 5)"
        );
        assert_eq!(
            task_file_error(&task("catalog: [hive, daily")),
            "line 4 column 10: flow sequence '[' is not closed \
             (did not find expected ',' or ']' at line 5 column 5)"
        );
        // A table declaration: the same, behind its file name.
        let table = |columns: &str| {
            TableDef::from_yaml(
                &format!("table: t\nprimary_key: [id]\ncolumns:\n{columns}"),
                "schemas/t.yaml",
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            table("  - { name: id, type: int64 }\n  - { name: \"n, type: string }\n"),
            "schemas/t.yaml: line 5 column 13: quoted string is not closed \
             (found unexpected end of stream at line 6 column 1)"
        );
        assert_eq!(
            table("  - { name: 'id, type: int64 }\n  - { name: n, type: string }\n"),
            "schemas/t.yaml: line 4 column 13: quoted string is not closed \
             (found unexpected end of stream at line 6 column 1)"
        );
        assert_eq!(
            table("  - { name: n, type: string }\n  - { name: id, type: int64\n"),
            "schemas/t.yaml: line 5 column 5: flow mapping '{' is not closed \
             (did not find expected ',' or '}' at line 6 column 1)"
        );
        assert_eq!(
            TableDef::from_yaml("table: t\nprimary_key: [id\ncolumns: []\n", "t.yaml")
                .unwrap_err()
                .to_string(),
            "t.yaml: line 2 column 14: flow sequence '[' is not closed \
             (did not find expected ',' or ']' at line 3 column 8)"
        );
        // libyaml gives no place for a context that starts the file.
        assert_eq!(
            task_file_error("\"name: daily\n"),
            "line 1 column 1: quoted string is not closed \
             (found unexpected end of stream at line 2 column 1)"
        );
    }

    #[test]
    fn other_yaml_errors_keep_their_place_and_context() {
        assert_eq!(
            task_file_error("name: daily\n\tmode: full\n"),
            "line 2 column 1: found a tab character that violates indentation, \
             while scanning a plain scalar at line 1 column 7"
        );
        assert_eq!(
            task_file_error("name: daily\n  mode: full\n"),
            "line 2 column 7: mapping values are not allowed in this context"
        );
        let err = TableDef::from_yaml("table: t\nprimary_key: [id]\ncolums: []\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.yaml: line 3 column 1: unknown field `colums`"),
            "{err}"
        );
        assert!(!err.ends_with("column 1"), "{err}");
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
