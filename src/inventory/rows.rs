//! Row files: NDJSON (one JSON object per line) and CSV with a header line, parsed against a
//! table declaration into upserts or deletes ([`read_rows`]) and applied to the store one file
//! per transaction ([`apply_file`]).
//!
//! Values by column type: `string` (text), `int64` (integer, or its decimal text), `double`
//! (number, or its text; `inf`, `-inf`, `Infinity`, `-Infinity` in any case for ±infinity, in
//! JSON as a string since JSON numbers have none), `bool` (`true`/`false`; CSV also `1`/`0`),
//! `binary` (standard base64), `timestamp_ms` (RFC 3339 text such as `2024-01-01T12:00:00Z`,
//! or integer epoch milliseconds). A missing field, JSON `null` or an empty CSV field is NULL;
//! key columns cannot be NULL, and an empty CSV field in a string key column is the empty
//! string. Fields that are not columns of the table are errors (they are usually typos), and
//! so is a JSON object that names a field twice (JSON parsers disagree on which one counts).
//! A CSV file starts with its header line: an empty file is an error, not a file of no rows.
//!
//! NaN and infinity load the same way in both formats and on both backends: ±infinity is
//! stored as ±infinity (SQLite's REAL and PostgreSQL's `double precision` hold it) and
//! delivered as the Parquet double it is; `NaN` (any case or sign) is read, then refused by
//! the store on either backend, and nothing of the file is applied (NaN equals no value, so a
//! change to or from it could not be told, and SQLite would turn it into NULL). Write an empty
//! field or `null` for a value that is missing.
//!
//! A file whose name ends in `.gz` is gzip data (one member or several, as `cat a.gz b.gz`
//! makes), decompressed while it is read; its format is that of the name without `.gz`
//! (`x.ndjson.gz` is NDJSON, `x.csv.gz` CSV). Data that is not valid gzip stops the file with
//! an error that names it.
//!
//! Every error names `file:line: column:` and what was expected. The line is the one a row
//! starts on; it travels with the row's change ([`Row`]), so a value that the store refuses
//! (the NaN above) is reported at its line too ([`apply_file`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use flate2::read::MultiGzDecoder;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use crate::error::{Error, Result};
use crate::model::schema::{parent_folder, DerivedFolder};
use crate::model::{ColumnType, TableDef};
use crate::store::checks::derived_folder_problem;
use crate::store::{ApplyOutcome, Change, Store, Value};

/// The format of a row file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated values with a header line naming the columns.
    Csv,
}

impl RowFormat {
    /// The format a file name implies: `.ndjson`, `.jsonl`, `.json` or `.csv`, each
    /// optionally followed by `.gz`.
    pub fn from_path(path: &Path) -> Option<RowFormat> {
        let name = if is_gzip(path) {
            Path::new(path.file_stem()?)
        } else {
            path
        };
        match name.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(RowFormat::Ndjson),
            "csv" => Some(RowFormat::Csv),
            _ => None,
        }
    }
}

/// Whether a file's name says it is gzip-compressed (ends in `.gz`, any case).
fn is_gzip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Whether a row file upserts rows or deletes keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAction {
    /// Insert or replace whole rows.
    Upsert,
    /// Delete the keys the rows name (other columns are ignored).
    Delete,
}

/// One change read from a row file, with the line its row starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The line of the file the row starts on.
    pub line: u64,
    /// The upsert or delete the row makes.
    pub change: Change,
}

/// Applies one row file to `store` in one transaction ([`Store::apply`]): every row, or on
/// the first error none. The reader's errors name `file:line`; a value the store refuses is
/// reported with the file and the line of the row it came from (the store reports a bad
/// value before it takes the next change).
pub fn apply_file(
    store: &dyn Store,
    path: &Path,
    format: RowFormat,
    table: &TableDef,
    action: RowAction,
) -> Result<ApplyOutcome> {
    let rows = read_rows(path, format, table, action)?;
    // The line of the change the store took last, and whether the reader failed instead.
    let mut taken: Option<u64> = None;
    let mut read_failed = false;
    let mut changes = rows.map(|row| match row {
        Ok(row) => {
            taken = Some(row.line);
            Ok(row.change)
        }
        Err(e) => {
            read_failed = true;
            Err(e)
        }
    });
    let applied = store.apply(&table.table, &mut changes);
    drop(changes);
    applied.map_err(|e| match e {
        Error::InvalidInput(msg) if !read_failed => {
            let file = path.display();
            match taken {
                Some(line) => Error::InvalidInput(format!("{file}:{line}: {msg}")),
                None => Error::InvalidInput(format!("{file}: {msg}")),
            }
        }
        other => other,
    })
}

/// Opens a row file and returns its rows as a stream, parsed lazily so that a file of any
/// size (compressed or not) is never held in memory. The first bad line yields an error that
/// names `file:line`, and the stream ends there.
pub fn read_rows<'a>(
    path: &Path,
    format: RowFormat,
    table: &'a TableDef,
    action: RowAction,
) -> Result<Box<dyn Iterator<Item = Result<Row>> + 'a>> {
    let input = open(path)?;
    let parser = RowParser::new(table, action);
    match format {
        RowFormat::Ndjson => Ok(Box::new(NdjsonRows {
            path: path.to_path_buf(),
            lines: input,
            line_no: 0,
            buf: String::new(),
            parser,
            failed: false,
        })),
        RowFormat::Csv => CsvRows::new(path, input, parser).map(|c| Box::new(c) as Box<_>),
    }
}

/// A row file's bytes, decompressed when its name ends in `.gz`.
fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    if is_gzip(path) {
        let gunzip = Gunzip(MultiGzDecoder::new(reader));
        Ok(Box::new(BufReader::with_capacity(1 << 20, gunzip)))
    } else {
        Ok(Box::new(reader))
    }
}

/// A gzip decoder whose read errors say that the gzip data is at fault (they reach the user
/// as the error of the line or record being read).
struct Gunzip<R: BufRead>(MultiGzDecoder<R>);

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("not valid gzip data ({e})")))
    }
}

/// Turns named text or JSON fields into a [`Change`] for one table.
struct RowParser<'a> {
    table: &'a TableDef,
    action: RowAction,
    key_indexes: Vec<usize>,
    derived: Option<DerivedFolder>,
}

impl<'a> RowParser<'a> {
    fn new(table: &'a TableDef, action: RowAction) -> Self {
        RowParser {
            table,
            action,
            key_indexes: table.key_indexes(),
            derived: table.derived_folder(),
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
            RowAction::Upsert => {
                let mut values: Vec<Value> = values
                    .into_iter()
                    .map(|v| v.unwrap_or(Value::Null))
                    .collect();
                // A derived column left out (or null) takes its value from the key; one given
                // must equal it (the store checks it too, but here the error names the line).
                if let Some(derived) = self.derived {
                    if let (Value::Null, Value::String(key)) =
                        (&values[derived.column], &values[derived.key])
                    {
                        values[derived.column] = Value::String(parent_folder(key).to_string());
                    }
                    if let Some(problem) = derived_folder_problem(self.table, derived, &values) {
                        return Err(problem);
                    }
                }
                Ok(Change::Upsert(values))
            }
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

struct NdjsonRows<'a> {
    path: PathBuf,
    lines: Box<dyn BufRead>,
    line_no: u64,
    buf: String,
    parser: RowParser<'a>,
    failed: bool,
}

/// The fields of one JSON object in their order, a repeated name kept twice (serde_json's
/// `Map` keeps only the last value of a repeated name, which would hide it).
struct Fields(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Fields, D::Error> {
        struct ObjectFields;
        impl<'de> Visitor<'de> for ObjectFields {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Fields, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(ObjectFields)
    }
}

impl NdjsonRows<'_> {
    fn parse_line(&self, line: &str) -> std::result::Result<Change, String> {
        let Fields(fields) = serde_json::from_str(line)
            .map_err(|e| format!("expected one JSON object per line: {e}"))?;
        let table = self.parser.table;
        let mut values: Vec<Option<Value>> = vec![None; table.columns.len()];
        for (name, json) in &fields {
            let i = self.parser.column_index(name)?;
            if values[i].is_some() {
                return Err(format!(
                    "{name}: the object names this field twice; expected each field once"
                ));
            }
            let column = &table.columns[i];
            let value = json_value(column.ty, json).map_err(|e| format!("{name}: {e}"))?;
            values[i] = Some(value);
        }
        self.parser.change(values)
    }
}

impl Iterator for NdjsonRows<'_> {
    type Item = Result<Row>;

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
            let parsed = self
                .parse_line(line)
                .map(|change| Row {
                    line: self.line_no,
                    change,
                })
                .map_err(|msg| {
                    Error::InvalidInput(format!("{}:{}: {msg}", self.path.display(), self.line_no))
                });
            self.failed = parsed.is_err();
            return Some(parsed);
        }
    }
}

struct CsvRows<'a> {
    path: PathBuf,
    reader: csv::Reader<LineStarts<Box<dyn BufRead>>>,
    /// Table column index of each CSV field.
    field_columns: Vec<usize>,
    record: csv::StringRecord,
    parser: RowParser<'a>,
    failed: bool,
}

impl<'a> CsvRows<'a> {
    fn new(path: &Path, input: Box<dyn BufRead>, parser: RowParser<'a>) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(LineStarts::new(input));
        let headers = reader.headers().cloned();
        let line = match &headers {
            Ok(names) if names.is_empty() => 1,
            _ => reader.get_mut().line_at(0),
        };
        let bad = |msg: String| Error::InvalidInput(format!("{}:{line}: {msg}", path.display()));
        let headers = headers.map_err(|e| {
            bad(match e.kind() {
                csv::ErrorKind::Io(e) => format!("cannot read: {e}"),
                _ => format!("expected a header line naming the columns: {e}"),
            })
        })?;
        if headers.is_empty() {
            let keys = parser.table.primary_key.join(", ");
            return Err(bad(format!(
                "empty file, no header: expected a header line naming the columns (at least the key columns: {keys})"
            )));
        }
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
        Ok(CsvRows {
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

    /// What a CSV reading error means here: a field that is not UTF-8 names its column.
    fn read_error(&self, e: &csv::Error) -> String {
        match e.kind() {
            csv::ErrorKind::Io(e) => format!("cannot read: {e}"),
            csv::ErrorKind::Utf8 { err, .. } => match self.field_columns.get(err.field()) {
                Some(&i) => format!(
                    "{}: expected UTF-8 text, found bytes that are not (at byte {} of the field)",
                    self.parser.table.columns[i].name,
                    err.valid_up_to()
                ),
                None => format!("expected a CSV record: {e}"),
            },
            _ => format!("expected a CSV record: {e}"),
        }
    }
}

impl Iterator for CsvRows<'_> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let before = self.reader.position().byte();
        let read = self.reader.read_record(&mut self.record);
        let (at, parsed) = match read {
            Ok(false) => return None,
            Ok(true) => {
                let at = self.record.position().map_or(before, |p| p.byte());
                (at, self.parse_record())
            }
            Err(e) => (
                e.position().map_or(before, |p| p.byte()),
                Err(self.read_error(&e)),
            ),
        };
        let line = self.reader.get_mut().line_at(at);
        let parsed = parsed
            .map(|change| Row { line, change })
            .map_err(|msg| Error::InvalidInput(format!("{}:{line}: {msg}", self.path.display())));
        self.failed = parsed.is_err();
        Some(parsed)
    }
}

/// Passes bytes through to the CSV reader and notes where each line that is not blank
/// starts, so that a record's line is known: the csv crate's own `Position::line` is one
/// too low after a blank line (BurntSushi/rust-csv#208) and on every record of a file with
/// CRLF line ends (#395). Line breaks are `\n`, `\r\n` and a lone `\r`, as for the CSV
/// reader. The notes kept are those of the bytes read ahead of the parser (its buffer).
struct LineStarts<R> {
    inner: R,
    /// Offset of the next byte read.
    offset: u64,
    /// Line of the next byte read (1-based).
    line: u64,
    /// The next byte read starts a line.
    at_start: bool,
    /// The last byte read was `\r` (a `\n` next ends the same line).
    after_cr: bool,
    /// (offset, line) of each line start that is not blank, from the oldest the reader may
    /// still ask about.
    starts: VecDeque<(u64, u64)>,
}

impl<R> LineStarts<R> {
    fn new(inner: R) -> Self {
        LineStarts {
            inner,
            offset: 0,
            line: 1,
            at_start: true,
            after_cr: false,
            starts: VecDeque::new(),
        }
    }

    /// The line of the record whose parse began at byte `at` (where the previous record's
    /// first terminator byte ended): the first line at or after it that is not blank. Notes
    /// before `at` are dropped, so `at` must not decrease from one call to the next.
    fn line_at(&mut self, at: u64) -> u64 {
        while self.starts.front().is_some_and(|&(offset, _)| offset < at) {
            self.starts.pop_front();
        }
        self.starts.front().map_or(self.line, |&(_, line)| line)
    }

    fn note(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\r' => {
                    self.line += 1;
                    self.at_start = true;
                    self.after_cr = true;
                }
                b'\n' => {
                    if !self.after_cr {
                        self.line += 1;
                    }
                    self.at_start = true;
                    self.after_cr = false;
                }
                _ => {
                    if self.at_start {
                        self.starts.push_back((self.offset, self.line));
                        self.at_start = false;
                    }
                    self.after_cr = false;
                }
            }
            self.offset += 1;
        }
    }
}

impl<R: Read> Read for LineStarts<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.note(&buf[..n]);
        Ok(n)
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
