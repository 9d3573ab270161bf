//! Row files: NDJSON (one JSON object per line) and CSV with a header line, parsed against a
//! table declaration into upserts or deletes.
//!
//! Values by column type: `string` (text), `int64` (integer, or its decimal text), `double`
//! (number, or text incl. `NaN`, `inf`, `-inf`), `bool` (`true`/`false`; CSV also `1`/`0`),
//! `binary` (standard base64), `timestamp_ms` (RFC 3339 text such as `2024-01-01T12:00:00Z`,
//! or integer epoch milliseconds). A missing field, JSON `null` or an empty CSV field is NULL;
//! key columns cannot be NULL, and an empty CSV field in a string key column is the empty
//! string. Fields that are not columns of the table are errors (they are usually typos).
//! Every error names `file:line: column:` and what was expected.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::store::{Change, ColumnType, TableDef, Value};

/// The format of a row file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated values with a header line naming the columns.
    Csv,
}

impl RowFormat {
    /// The format a file name implies: `.ndjson`, `.jsonl`, `.json` or `.csv`.
    pub fn from_path(path: &Path) -> Option<RowFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(RowFormat::Ndjson),
            "csv" => Some(RowFormat::Csv),
            _ => None,
        }
    }
}

/// Whether a row file upserts rows or deletes keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAction {
    /// Insert or replace whole rows.
    Upsert,
    /// Delete the keys the rows name (other columns are ignored).
    Delete,
}

/// Opens a row file and returns its changes as a stream, one per data line, parsed lazily so
/// that a file of any size is never held in memory. The first bad line yields an error that
/// names `file:line`.
pub fn read_changes<'a>(
    path: &Path,
    format: RowFormat,
    table: &'a TableDef,
    action: RowAction,
) -> Result<Box<dyn Iterator<Item = Result<Change>> + 'a>> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    let parser = RowParser::new(table, action);
    match format {
        RowFormat::Ndjson => Ok(Box::new(NdjsonChanges {
            path: path.to_path_buf(),
            lines: reader,
            line_no: 0,
            buf: String::new(),
            parser,
            failed: false,
        })),
        RowFormat::Csv => CsvChanges::new(path, reader, parser).map(|c| Box::new(c) as Box<_>),
    }
}

/// Turns named text or JSON fields into a [`Change`] for one table.
struct RowParser<'a> {
    table: &'a TableDef,
    action: RowAction,
    key_indexes: Vec<usize>,
}

impl<'a> RowParser<'a> {
    fn new(table: &'a TableDef, action: RowAction) -> Self {
        RowParser {
            table,
            action,
            key_indexes: table.key_indexes(),
        }
    }

    /// Builds the change from per-column values (in table order; `None` = field absent).
    fn change(&self, mut values: Vec<Option<Value>>) -> std::result::Result<Change, String> {
        for &k in &self.key_indexes {
            let found = match &values[k] {
                None => "no value",
                Some(Value::Null) => "null",
                Some(_) => continue,
            };
            let column = &self.table.columns[k];
            return Err(format!(
                "{}: expected a {} value (a key column cannot be null), found {found}",
                column.name, column.ty
            ));
        }
        match self.action {
            RowAction::Upsert => Ok(Change::Upsert(
                values
                    .into_iter()
                    .map(|v| v.unwrap_or(Value::Null))
                    .collect(),
            )),
            RowAction::Delete => Ok(Change::Delete(
                self.key_indexes
                    .iter()
                    .map(|&k| values[k].take().unwrap_or(Value::Null))
                    .collect(),
            )),
        }
    }

    fn column_index(&self, name: &str) -> std::result::Result<usize, String> {
        self.table.column_index(name).ok_or_else(|| {
            format!(
                "{name}: not a column of table {} (columns: {})",
                self.table.table,
                self.table
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
}

struct NdjsonChanges<'a> {
    path: PathBuf,
    lines: BufReader<File>,
    line_no: u64,
    buf: String,
    parser: RowParser<'a>,
    failed: bool,
}

impl NdjsonChanges<'_> {
    fn parse_line(&self, line: &str) -> std::result::Result<Change, String> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| format!("expected one JSON object per line: {e}"))?;
        let table = self.parser.table;
        let mut values: Vec<Option<Value>> = vec![None; table.columns.len()];
        for (name, json) in &object {
            let i = self.parser.column_index(name)?;
            let column = &table.columns[i];
            let value = json_value(column.ty, json).map_err(|e| format!("{name}: {e}"))?;
            values[i] = Some(value);
        }
        self.parser.change(values)
    }
}

impl Iterator for NdjsonChanges<'_> {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            self.line_no += 1;
            match self.lines.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err(Error::InvalidInput(format!(
                        "{}:{}: cannot read line: {e}",
                        self.path.display(),
                        self.line_no
                    ))));
                }
            }
            let line = self.buf.trim();
            if line.is_empty() {
                continue;
            }
            let parsed = self.parse_line(line).map_err(|msg| {
                Error::InvalidInput(format!("{}:{}: {msg}", self.path.display(), self.line_no))
            });
            self.failed = parsed.is_err();
            return Some(parsed);
        }
    }
}

struct CsvChanges<'a> {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    /// Table column index of each CSV field.
    field_columns: Vec<usize>,
    record: csv::StringRecord,
    parser: RowParser<'a>,
    failed: bool,
}

impl<'a> CsvChanges<'a> {
    fn new(path: &Path, input: BufReader<File>, parser: RowParser<'a>) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(input);
        let bad = |msg: String| Error::InvalidInput(format!("{}:1: {msg}", path.display()));
        let headers = reader
            .headers()
            .map_err(|e| bad(format!("expected a header line naming the columns: {e}")))?
            .clone();
        let mut field_columns = Vec::with_capacity(headers.len());
        for name in headers.iter() {
            let i = parser.column_index(name.trim()).map_err(bad)?;
            if field_columns.contains(&i) {
                return Err(bad(format!("{name}: column named twice in the header")));
            }
            field_columns.push(i);
        }
        for &k in &parser.key_indexes {
            if !field_columns.contains(&k) {
                let name = &parser.table.columns[k].name;
                return Err(bad(format!("{name}: key column missing from the header")));
            }
        }
        Ok(CsvChanges {
            path: path.to_path_buf(),
            reader,
            field_columns,
            record: csv::StringRecord::new(),
            parser,
            failed: false,
        })
    }

    fn parse_record(&self) -> std::result::Result<Change, String> {
        let table = self.parser.table;
        if self.record.len() != self.field_columns.len() {
            return Err(format!(
                "expected {} fields as in the header, found {}",
                self.field_columns.len(),
                self.record.len()
            ));
        }
        let mut values: Vec<Option<Value>> = vec![None; table.columns.len()];
        for (field, &i) in self.record.iter().zip(&self.field_columns) {
            let column = &table.columns[i];
            let value = if field.is_empty() {
                if table.is_key(&column.name) && column.ty == ColumnType::String {
                    Value::String(String::new())
                } else {
                    Value::Null
                }
            } else {
                text_value(column.ty, field).map_err(|e| format!("{}: {e}", column.name))?
            };
            values[i] = Some(value);
        }
        self.parser.change(values)
    }
}

impl Iterator for CsvChanges<'_> {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let line_before = self.reader.position().line();
        match self.reader.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map_or(line_before, |p| p.line());
                let parsed = self.parse_record().map_err(|msg| {
                    Error::InvalidInput(format!("{}:{line}: {msg}", self.path.display()))
                });
                self.failed = parsed.is_err();
                Some(parsed)
            }
            Err(e) => {
                self.failed = true;
                let line = e.position().map_or(line_before, |p| p.line());
                Some(Err(Error::InvalidInput(format!(
                    "{}:{line}: expected a CSV record: {e}",
                    self.path.display()
                ))))
            }
        }
    }
}

/// A JSON value as a value of column type `ty`.
fn json_value(ty: ColumnType, json: &serde_json::Value) -> std::result::Result<Value, String> {
    use serde_json::Value as J;
    let found = || match json {
        J::Null => "null".to_string(),
        J::Bool(b) => format!("boolean {b}"),
        J::Number(n) => format!("number {n}"),
        J::String(s) => format!("string {s:?}"),
        J::Array(_) => "an array".to_string(),
        J::Object(_) => "an object".to_string(),
    };
    let expected = |what: &str| format!("expected {what}, found {}", found());
    match (ty, json) {
        (_, J::Null) => Ok(Value::Null),
        (ColumnType::String, J::String(s)) => Ok(Value::String(s.clone())),
        (ColumnType::String, _) => Err(expected("a string")),
        (ColumnType::Int64, J::Number(n)) => n
            .as_i64()
            .map(Value::Int64)
            .ok_or_else(|| expected("a 64-bit integer")),
        (ColumnType::Int64, J::String(s)) => parse_int(s).map_err(|_| expected("a 64-bit integer")),
        (ColumnType::Double, J::Number(n)) => n
            .as_f64()
            .map(Value::Double)
            .ok_or_else(|| expected("a number")),
        (ColumnType::Double, J::String(s)) => parse_double(s).map_err(|_| expected("a number")),
        (ColumnType::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
        (ColumnType::Bool, _) => Err(expected("true or false")),
        (ColumnType::Binary, J::String(s)) => parse_base64(s).map_err(|_| expected("base64 text")),
        (ColumnType::TimestampMs, J::String(s)) => {
            parse_timestamp(s).map_err(|_| expected("an RFC 3339 timestamp or epoch milliseconds"))
        }
        (ColumnType::TimestampMs, J::Number(n)) => n
            .as_i64()
            .map(Value::TimestampMs)
            .ok_or_else(|| expected("an RFC 3339 timestamp or integer epoch milliseconds")),
        (ColumnType::Int64, _) => Err(expected("a 64-bit integer")),
        (ColumnType::Double, _) => Err(expected("a number")),
        (ColumnType::Binary, _) => Err(expected("base64 text")),
        (ColumnType::TimestampMs, _) => Err(expected(
            "an RFC 3339 timestamp or integer epoch milliseconds",
        )),
    }
}

/// A CSV field (non-empty) as a value of column type `ty`.
fn text_value(ty: ColumnType, text: &str) -> std::result::Result<Value, String> {
    let expected = |what: &str| format!("expected {what}, found {text:?}");
    match ty {
        ColumnType::String => Ok(Value::String(text.to_string())),
        ColumnType::Int64 => parse_int(text).map_err(|_| expected("a 64-bit integer")),
        ColumnType::Double => parse_double(text).map_err(|_| expected("a number")),
        ColumnType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(expected("true, false, 1 or 0")),
        },
        ColumnType::Binary => parse_base64(text).map_err(|_| expected("base64 text")),
        ColumnType::TimestampMs => parse_timestamp(text)
            .map_err(|_| expected("an RFC 3339 timestamp or integer epoch milliseconds")),
    }
}

fn parse_int(s: &str) -> std::result::Result<Value, ()> {
    s.trim().parse::<i64>().map(Value::Int64).map_err(|_| ())
}

fn parse_double(s: &str) -> std::result::Result<Value, ()> {
    let t = s.trim();
    let v = match t.to_ascii_lowercase().as_str() {
        "nan" => f64::NAN,
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => t.parse::<f64>().map_err(|_| ())?,
    };
    Ok(Value::Double(v))
}

fn parse_base64(s: &str) -> std::result::Result<Value, ()> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map(Value::Binary)
        .map_err(|_| ())
}

/// RFC 3339 text (any offset) or integer epoch milliseconds, as UTC milliseconds.
fn parse_timestamp(s: &str) -> std::result::Result<Value, ()> {
    let t = s.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(Value::TimestampMs(ms));
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|dt| Value::TimestampMs(dt.timestamp_millis()))
        .map_err(|_| ())
}

#[cfg(test)]
mod tests;
