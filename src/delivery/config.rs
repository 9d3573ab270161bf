//! Task files: `pipelines/<task>.yaml`, read as YAML and checked into a [`Task`] before any
//! work starts. Every problem of every file is collected and reported at once, each as
//! `FILE: KEY: message`.
//!
//! Relative paths in a task (`schema:`, and a `destination:` that is a plain path) are resolved
//! against the project folder: the parent of the pipelines folder, which holds `pipelines/` and
//! `schemas/` side by side.
//!
//! Keys (defaults in brackets): `name` (3–16 chars: lowercase letters, digits, hyphens),
//! `source` (a declared table), `destination` (path, `file://`, `s3://`, `gs://`, `az://`),
//! `prefix` [""], `partition_time` {`from`: `write_time` | `column` (+ `column`) | `run_time`,
//! `timezone`: IANA name [UTC]}, `mode` [full], `schema` [auto], `parquet` {`compression`
//! [zstd], `target_file_size` [128MiB], `row_group_rows` [1048576], `encoding`: dictionary |
//! plain [dictionary], `buffer_size`: memory for rows waiting to be encoded, all shards
//! together [256MiB]}, `concurrency` [1], `schedule` (cron with seconds, `@hourly`… or
//! `continuous`; parsed here as `serve` runs it), `deletes` [ignore] or `emit` (adds
//! the lake column `_op`; the schema must carry the key and `_seq`), `dirty`
//! {`keep` [false]}, `catalog` {`dialect` [hive], `table` [the name with `_` for `-`],
//! `database`}, `lease` [60s], `retry` {`initial` [200ms], `max_interval` [15s],
//! `max_elapsed` [120s]}, `max_delay` [60s, at least 1s: continuous mode's longest wait].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::{Mapping, Value as Yaml};

use crate::convert::LakeSchema;
use crate::error::{Error, Result};
use crate::sink::destination::RetryPolicy;
use crate::sink::parquet::{parse_compression, ParquetOptions};
use crate::sink::template::PrefixTemplate;
use crate::store::schema::{is_identifier, yaml_error_text, yaml_files};
use crate::store::{ColumnType, TableDef, SEQ_COLUMN, WRITE_TIME_COLUMN};

/// How rows are assigned their partition time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionTime {
    /// The row's `_write_time` (the default, as Tablestore does).
    WriteTime,
    /// A `timestamp_ms` column of the table (event time).
    Column(String),
    /// The run's start time: every run is its own snapshot partition.
    RunTime,
}

/// Delivery mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A consistent snapshot of the whole table.
    Full,
    /// Every change above the checkpoint.
    Incremental,
    /// Full, then incremental from the snapshot's sequence.
    Differential,
}

impl Mode {
    /// The mode's name as written in task files.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
            Mode::Differential => "differential",
        }
    }
}

/// What a task does with deletes (tombstones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Deletes {
    /// Deletes are not delivered (Tablestore parity).
    Ignore,
    /// Deletes are delivered as rows with `_op = 'delete'`.
    Emit,
}

/// Where a task's DDL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogTarget {
    /// Optional database (schema) name.
    pub database: Option<String>,
    /// Table name in the catalog.
    pub table: String,
}

/// A checked delivery task: everything a run needs, resolved.
#[derive(Debug, Clone)]
pub struct Task {
    /// Task name (3–16 chars: lowercase letters, digits, hyphens).
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// The source table's declaration.
    pub source: TableDef,
    /// Destination URL or absolute local path.
    pub destination: String,
    /// The checked prefix template.
    pub prefix: PrefixTemplate,
    /// How partition time is chosen.
    pub partition_time: PartitionTime,
    /// Timezone partition times are rendered in.
    pub timezone: chrono_tz::Tz,
    /// Delivery mode.
    pub mode: Mode,
    /// Store columns → lake columns.
    pub schema: LakeSchema,
    /// Parquet writer options.
    pub parquet: ParquetOptions,
    /// Full-mode shards written in parallel.
    pub concurrency: usize,
    /// Cron schedule (with seconds) or `continuous`, if any.
    pub schedule: Option<String>,
    /// What happens to deletes.
    pub deletes: Deletes,
    /// Whether dirty rows are written under `<destination>/_dirty/<task>/`.
    pub dirty_keep: bool,
    /// The catalog table the DDL creates.
    pub catalog: CatalogTarget,
    /// How long a run may go unheard before a later run takes it over (it renews its lease
    /// six times as often).
    pub lease: Duration,
    /// How transient object-store failures are retried.
    pub retry: RetryPolicy,
    /// Continuous mode: the longest a committed change waits before a run delivers it.
    pub max_delay: Duration,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "source",
    "destination",
    "prefix",
    "partition_time",
    "mode",
    "schema",
    "parquet",
    "concurrency",
    "schedule",
    "deletes",
    "dirty",
    "catalog",
    "lease",
    "retry",
    "max_delay",
];
const PARTITION_TIME_KEYS: &[&str] = &["from", "column", "timezone"];
const PARQUET_KEYS: &[&str] = &[
    "compression",
    "target_file_size",
    "row_group_rows",
    "encoding",
];
const DIRTY_KEYS: &[&str] = &["keep"];
const CATALOG_KEYS: &[&str] = &["dialect", "table", "database"];
const RETRY_KEYS: &[&str] = &["initial", "max_interval", "max_elapsed"];

/// Reads and checks every task file under `pipelines`, against the declared `tables`.
/// Returns the tasks by name, or every problem found, one per line.
pub fn load_tasks(
    pipelines: &Path,
    tables: &BTreeMap<String, TableDef>,
) -> Result<BTreeMap<String, Task>> {
    let project = project_dir(pipelines);
    let mut tasks: BTreeMap<String, Task> = BTreeMap::new();
    let mut problems = Vec::new();
    for path in yaml_files(pipelines)? {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        let mut file_problems = Problems::new(&path);
        if let Some(task) = check_task(&text, &path, &project, tables, &mut file_problems) {
            if let Some(other) = tasks.get(&task.name) {
                file_problems.push(
                    "name",
                    format!(
                        "{:?} is already used by {}",
                        task.name,
                        other.file.display()
                    ),
                );
            } else if file_problems.is_empty() {
                tasks.insert(task.name.clone(), task);
            }
        }
        problems.extend(file_problems.lines);
    }
    if problems.is_empty() {
        Ok(tasks)
    } else {
        Err(Error::InvalidConfig(problems.join("\n")))
    }
}

/// The folder relative task paths are resolved against: the pipelines folder's parent.
fn project_dir(pipelines: &Path) -> PathBuf {
    let absolute = std::path::absolute(pipelines).unwrap_or_else(|_| pipelines.to_path_buf());
    absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Problems of one file, each rendered `FILE: KEY: message`.
struct Problems {
    file: String,
    lines: Vec<String>,
}

impl Problems {
    fn new(path: &Path) -> Self {
        Problems {
            file: path.display().to_string(),
            lines: Vec::new(),
        }
    }
    fn push(&mut self, key: &str, message: impl std::fmt::Display) {
        self.lines.push(format!("{}: {key}: {message}", self.file));
    }
    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Reads a typed field; a wrong type is a problem naming the key. Absent → `None`.
fn field<T: DeserializeOwned>(
    map: &Mapping,
    key: &str,
    path: &str,
    problems: &mut Problems,
) -> Option<T> {
    let value = map.get(key)?;
    if value.is_null() {
        return None;
    }
    match serde_yaml::from_value::<T>(value.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(path, e);
            None
        }
    }
}

/// Reports keys of `map` that are not in `known`.
fn unknown_keys(map: &Mapping, known: &[&str], at: &str, problems: &mut Problems) {
    for key in map.keys() {
        let name = key
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{key:?}"));
        if !known.contains(&name.as_str()) {
            let path = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            problems.push(
                &path,
                format!("unknown key; expected one of {}", known.join(", ")),
            );
        }
    }
}

/// A nested mapping such as `parquet:`; a non-mapping is a problem.
fn section(map: &Mapping, key: &str, known: &[&str], problems: &mut Problems) -> Mapping {
    match map.get(key) {
        None | Some(Yaml::Null) => Mapping::new(),
        Some(Yaml::Mapping(m)) => {
            unknown_keys(m, known, key, problems);
            m.clone()
        }
        Some(_) => {
            problems.push(
                key,
                format!("expected a mapping with keys {}", known.join(", ")),
            );
            Mapping::new()
        }
    }
}

/// Whether `name` is a valid task name.
pub fn is_task_name(name: &str) -> bool {
    (3..=16).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_task(
    text: &str,
    path: &Path,
    project: &Path,
    tables: &BTreeMap<String, TableDef>,
    problems: &mut Problems,
) -> Option<Task> {
    let doc: Yaml = match serde_yaml::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            problems
                .lines
                .push(format!("{}: {}", path.display(), yaml_error_text(&e)));
            return None;
        }
    };
    let Yaml::Mapping(map) = doc else {
        problems.lines.push(format!(
            "{}: expected a mapping of task keys",
            path.display()
        ));
        return None;
    };
    unknown_keys(&map, TOP_KEYS, "", problems);

    let name: Option<String> = field(&map, "name", "name", problems);
    match &name {
        None => problems.push("name", "required"),
        Some(n) if !is_task_name(n) => problems.push(
            "name",
            format!("{n:?}: expected 3–16 characters of lowercase letters, digits and hyphens"),
        ),
        Some(_) => {}
    }

    let source_name: Option<String> = field(&map, "source", "source", problems);
    let source = match &source_name {
        None => {
            problems.push("source", "required");
            None
        }
        Some(s) => match tables.get(s) {
            Some(def) => Some(def.clone()),
            None => {
                problems.push(
                    "source",
                    format!(
                        "table {s:?} is not declared (declared: {})",
                        tables.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
                None
            }
        },
    };

    let destination = match field::<String>(&map, "destination", "destination", problems) {
        None => {
            problems.push("destination", "required");
            None
        }
        Some(d) => match resolve_destination(&d, project) {
            Ok(d) => Some(d),
            Err(msg) => {
                problems.push("destination", msg);
                None
            }
        },
    };

    let prefix_raw: String = field(&map, "prefix", "prefix", problems).unwrap_or_default();
    let prefix = match PrefixTemplate::parse(&prefix_raw) {
        Ok(p) => Some(p),
        Err(errors) => {
            for e in errors {
                problems.push("prefix", e);
            }
            None
        }
    };

    let pt = section(&map, "partition_time", PARTITION_TIME_KEYS, problems);
    let from: String =
        field(&pt, "from", "partition_time.from", problems).unwrap_or_else(|| "write_time".into());
    let column: Option<String> = field(&pt, "column", "partition_time.column", problems);
    let partition_time = match from.as_str() {
        "write_time" | "run_time" if column.is_some() => {
            problems.push(
                "partition_time.column",
                format!("only used with from: column (from is {from})"),
            );
            None
        }
        "write_time" => Some(PartitionTime::WriteTime),
        "run_time" => Some(PartitionTime::RunTime),
        "column" => {
            match (&column, &source) {
                (None, _) => {
                    problems.push("partition_time.column", "required with from: column");
                    None
                }
                (Some(c), Some(def)) => match def.source_type(c) {
                    Some(ColumnType::TimestampMs) if c == WRITE_TIME_COLUMN => {
                        Some(PartitionTime::WriteTime)
                    }
                    Some(ColumnType::TimestampMs) => Some(PartitionTime::Column(c.clone())),
                    Some(other) => {
                        problems.push(
                        "partition_time.column",
                        format!("column {c:?} is {other}; a partition time column must be timestamp_ms"),
                    );
                        None
                    }
                    None => {
                        problems.push(
                            "partition_time.column",
                            format!("column {c:?} is not a column of table {:?}", def.table),
                        );
                        None
                    }
                },
                (Some(_), None) => None,
            }
        }
        other => {
            problems.push(
                "partition_time.from",
                format!("{other:?}: expected write_time, column or run_time"),
            );
            None
        }
    };
    let tz_name: String =
        field(&pt, "timezone", "partition_time.timezone", problems).unwrap_or_else(|| "UTC".into());
    let timezone = match tz_name.parse::<chrono_tz::Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            problems.push(
                "partition_time.timezone",
                format!("{tz_name:?} is not an IANA timezone name (such as UTC or Europe/Berlin)"),
            );
            None
        }
    };

    let mode = field::<Mode>(&map, "mode", "mode", problems).unwrap_or(Mode::Full);
    let schema_ref: String =
        field(&map, "schema", "schema", problems).unwrap_or_else(|| "auto".into());
    let schema = match &source {
        Some(def) if schema_ref == "auto" => Some(LakeSchema::auto(def)),
        Some(def) => {
            let schema_path = resolve_path(&schema_ref, project);
            if !schema_path.is_file() {
                problems.push(
                    "schema",
                    format!(
                        "{} does not exist (expected a schema file or auto)",
                        schema_path.display()
                    ),
                );
                None
            } else {
                match LakeSchema::from_file(&schema_path, def) {
                    Ok(s) => Some(s),
                    Err(errors) => {
                        for e in errors {
                            problems.push("schema", e);
                        }
                        None
                    }
                }
            }
        }
        None => None,
    };

    let pq = section(&map, "parquet", PARQUET_KEYS, problems);
    let mut parquet = ParquetOptions::default();
    if let Some(c) = field::<String>(&pq, "compression", "parquet.compression", problems) {
        match parse_compression(&c) {
            Ok(c) => parquet.compression = c,
            Err(e) => problems.push("parquet.compression", e),
        }
    }
    if let Some(size) = pq.get("target_file_size") {
        match parse_size(size) {
            Ok(bytes) if bytes >= 1 << 20 => parquet.target_file_size = bytes,
            Ok(bytes) => problems.push(
                "parquet.target_file_size",
                format!("{bytes} bytes: expected at least 1MiB"),
            ),
            Err(e) => problems.push("parquet.target_file_size", e),
        }
    }
    if let Some(size) = pq.get("buffer_size") {
        match parse_size(size) {
            Ok(bytes) if bytes >= 16 << 20 => parquet.buffer_bytes = bytes as usize,
            Ok(bytes) => problems.push(
                "parquet.buffer_size",
                format!("{bytes} bytes: expected at least 16MiB"),
            ),
            Err(e) => problems.push("parquet.buffer_size", e),
        }
    }
    if let Some(rows) = field::<usize>(&pq, "row_group_rows", "parquet.row_group_rows", problems) {
        if rows == 0 {
            problems.push("parquet.row_group_rows", "expected at least 1");
        } else {
            parquet.row_group_rows = rows;
        }
    }
    if let Some(enc) = field::<String>(&pq, "encoding", "parquet.encoding", problems) {
        match enc.as_str() {
            "dictionary" => parquet.dictionary = true,
            "plain" => parquet.dictionary = false,
            other => problems.push(
                "parquet.encoding",
                format!("{other:?}: expected dictionary or plain"),
            ),
        }
    }

    if let (Some(prefix), Some(schema)) = (&prefix, &schema) {
        for column in prefix.partition_columns() {
            if schema
                .columns()
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&column))
            {
                problems.push(
                    "prefix",
                    format!("partition column {column:?} is also a lake column; rename one (Hive forbids a partition column that repeats a data column)"),
                );
            }
        }
    }

    let concurrency = field::<usize>(&map, "concurrency", "concurrency", problems).unwrap_or(1);
    if !(1..=64).contains(&concurrency) {
        problems.push("concurrency", format!("{concurrency}: expected 1 to 64"));
    }

    let schedule: Option<String> = field(&map, "schedule", "schedule", problems);
    if let Some(s) = &schedule {
        if let Err(e) = check_schedule(s) {
            problems.push("schedule", e);
        }
    }

    let deletes = field::<Deletes>(&map, "deletes", "deletes", problems).unwrap_or(Deletes::Ignore);
    let schema = match schema {
        Some(schema) if deletes == Deletes::Emit => {
            let carried = |source: &str| schema.columns().iter().any(|c| c.source == source);
            let mut missing: Vec<&str> = source
                .iter()
                .flat_map(|def| def.primary_key.iter().map(String::as_str))
                .chain([SEQ_COLUMN])
                .filter(|c| !carried(c))
                .collect();
            missing.dedup();
            if missing.is_empty() {
                Some(schema.with_op_column())
            } else {
                problems.push(
                    "deletes",
                    format!(
                        "emit: a delete is delivered as its key and _seq, but the lake schema \
                         does not carry {}; add them to the schema file",
                        missing.join(", ")
                    ),
                );
                None
            }
        }
        other => other,
    };
    let dirty = section(&map, "dirty", DIRTY_KEYS, problems);
    let dirty_keep = field::<bool>(&dirty, "keep", "dirty.keep", problems).unwrap_or(false);

    let cat = section(&map, "catalog", CATALOG_KEYS, problems);
    let dialect: String =
        field(&cat, "dialect", "catalog.dialect", problems).unwrap_or_else(|| "hive".into());
    if dialect != "hive" {
        problems.push("catalog.dialect", format!("{dialect:?}: expected hive"));
    }
    let default_table = name.clone().unwrap_or_default().replace('-', "_");
    let catalog_table: String =
        field(&cat, "table", "catalog.table", problems).unwrap_or(default_table);
    let database: Option<String> = field(&cat, "database", "catalog.database", problems);
    for (key, ident) in [
        ("catalog.table", Some(&catalog_table)),
        ("catalog.database", database.as_ref()),
    ] {
        if let Some(ident) = ident {
            if !is_identifier(ident) {
                problems.push(
                    key,
                    format!("{ident:?}: expected lowercase letters, digits and _"),
                );
            }
        }
    }

    let lease = duration_field(&map, "lease", "lease", Duration::from_secs(1), problems)
        .unwrap_or(DEFAULT_LEASE);
    let max_delay = duration_field(
        &map,
        "max_delay",
        "max_delay",
        Duration::from_secs(1),
        problems,
    )
    .unwrap_or(DEFAULT_MAX_DELAY);
    if schedule.as_deref() == Some("continuous") && mode == Mode::Full {
        problems.push(
            "schedule",
            "continuous: needs mode incremental or differential (a full run delivers the \
             whole table each time)",
        );
    }
    let retry_map = section(&map, "retry", RETRY_KEYS, problems);
    let mut retry = RetryPolicy::default();
    let ms = Duration::from_millis(1);
    for (key, slot) in [
        ("initial", &mut retry.initial),
        ("max_interval", &mut retry.max_interval),
        ("max_elapsed", &mut retry.max_elapsed),
    ] {
        if let Some(d) = duration_field(&retry_map, key, &format!("retry.{key}"), ms, problems) {
            *slot = d;
        }
    }
    if retry.initial > retry.max_interval {
        problems.push(
            "retry.initial",
            "is longer than retry.max_interval; expected at most that",
        );
    }

    Some(Task {
        name: name?,
        file: path.to_path_buf(),
        source: source?,
        destination: destination?,
        prefix: prefix?,
        partition_time: partition_time?,
        timezone: timezone?,
        mode,
        schema: schema?,
        parquet,
        concurrency,
        schedule,
        deletes,
        dirty_keep,
        catalog: CatalogTarget {
            database,
            table: catalog_table,
        },
        lease,
        retry,
        max_delay,
    })
}

/// A duration key (`60s`, `5m`, `500ms`, a number of seconds) of at least `at_least`; `None`
/// when absent or wrong (then a problem says why).
fn duration_field(
    map: &Mapping,
    key: &str,
    path: &str,
    at_least: Duration,
    problems: &mut Problems,
) -> Option<Duration> {
    let value = field::<Yaml>(map, key, path, problems)?;
    let text = match &value {
        Yaml::String(t) => t.clone(),
        Yaml::Number(n) => n.to_string(),
        _ => String::new(),
    };
    match parse_duration(&text) {
        Ok(d) if d >= at_least => Some(d),
        Ok(_) => {
            problems.push(path, format!("{text:?}: expected at least {at_least:?}"));
            None
        }
        Err(e) => {
            problems.push(path, e);
            None
        }
    }
}

/// Continuous mode's longest wait for a committed change, unless the task says otherwise
/// (`max_delay`).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

/// How long a run may go unheard before a later run of its task takes it over, unless the
/// task says otherwise (`lease`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Parses `60s`, `5m`, `1h`, `500ms` or a plain number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration such as 60s, 5m, 1h or 500ms, found {text:?}"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "expected a unit of ms, s, m or h, found {unit:?} in {text:?}"
            ))
        }
    };
    if !(0.01..=86_400.0 * 7.0).contains(&seconds) {
        return Err(format!("expected between 10ms and 7 days, found {text:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A path relative to the project folder, or as given when absolute.
fn resolve_path(p: &str, project: &Path) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        project.join(path)
    }
}

/// A destination as a URL: object-store URLs and `file://` as given, plain paths made absolute.
fn resolve_destination(d: &str, project: &Path) -> std::result::Result<String, String> {
    let d = d.trim_end_matches('/');
    if d.is_empty() {
        return Err("expected a path or URL".into());
    }
    match d.split_once("://") {
        Some((scheme, _)) => match scheme {
            "file" | "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" | "adl" | "azure" | "memory" => {
                Ok(d.to_string())
            }
            other => Err(format!(
                "{other}:// is not supported; expected a path, file://, s3://, gs:// or az://"
            )),
        },
        None => Ok(resolve_path(d, project).display().to_string()),
    }
}

/// A byte size: an integer (bytes) or text such as `128MiB`, `64MB`, `1GiB`.
fn parse_size(v: &Yaml) -> std::result::Result<u64, String> {
    match v {
        Yaml::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{n}: expected a positive byte count")),
        Yaml::String(s) => s
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|_| format!("{s:?}: expected a size such as 128MiB, 64MB or a byte count")),
        other => Err(format!("{other:?}: expected a size such as 128MiB")),
    }
}

/// The 6-field cron expression (seconds first) of a schedule, as the service's scheduler
/// (tokio-cron-scheduler) runs it: `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`,
/// `@yearly`/`@annually` become their cron forms; `None` for `continuous`. An expression the
/// scheduler cannot parse is an error saying what was expected.
pub fn cron_expression(s: &str) -> std::result::Result<Option<String>, String> {
    let expr = match s.trim() {
        "continuous" => return Ok(None),
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * SUN",
        "@daily" | "@midnight" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        other => other,
    };
    let fields = expr.split_whitespace().count();
    if fields != 6 || parse_cron(expr).is_err() {
        return Err(format!(
            "{s:?}: expected cron with seconds (6 fields: sec min hour day month weekday, e.g. \
             \"0 0 2 * * *\"), @hourly, @daily, @weekly, @monthly, @yearly or continuous"
        ));
    }
    Ok(Some(expr.to_string()))
}

/// A 6-field cron expression (seconds first) parsed the way tokio-cron-scheduler parses it
/// (croner, seconds required, day of month and weekday both to match).
pub fn parse_cron(expr: &str) -> std::result::Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?}: {e}"))
}

fn check_schedule(s: &str) -> std::result::Result<(), String> {
    cron_expression(s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names() {
        assert!(is_task_name("inventory-daily"));
        assert!(is_task_name("abc"));
        assert!(!is_task_name("ab"));
        assert!(!is_task_name("Inventory"));
        assert!(!is_task_name("a_b_c"));
        assert!(!is_task_name("seventeen-chars-x"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&Yaml::String("128MiB".into())), Ok(128 << 20));
        assert_eq!(parse_size(&Yaml::String("64MB".into())), Ok(64_000_000));
        assert_eq!(parse_size(&Yaml::Number(1024.into())), Ok(1024));
        assert!(parse_size(&Yaml::String("big".into())).is_err());
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        for bad in ["", "s", "1d", "-1s", "8h0", "30 days"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn schedules() {
        assert!(check_schedule("0 0 2 * * *").is_ok());
        assert!(check_schedule("*/5 * * * * *").is_ok());
        assert_eq!(cron_expression("@hourly"), Ok(Some("0 0 * * * *".into())));
        assert_eq!(cron_expression("@daily"), Ok(Some("0 0 0 * * *".into())));
        assert_eq!(cron_expression("continuous"), Ok(None));
        for bad in [
            "0 2 * * *",
            "0 0 2 * * * 2030",
            "61 * * * * *",
            "@often",
            "every hour",
        ] {
            assert!(check_schedule(bad).is_err(), "{bad}");
        }
    }
}
