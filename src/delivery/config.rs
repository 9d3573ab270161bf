//! Task files: `pipelines/<task>.yaml`, read as YAML and checked into a [`Task`] before any
//! work starts. serde reads the keys into typed structs (`TaskKeys` and one struct per
//! section, unknown keys refused: [`crate::config::keys`]); [`check_task`] then checks what
//! they mean together. Every problem of every file is collected and reported at once, each as
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
//! [zstd], `target_file_size` [128MiB], `row_group_rows` [1048576], `encoding`: dictionary
//! (but PLAIN for columns whose values are nearly all distinct, see
//! [`PartitionedWriter`](crate::sink::PartitionedWriter)) | plain [dictionary], `buffer_size`: memory for rows waiting to be encoded, all shards
//! together [256MiB]}, `concurrency` [1], `schedule` (cron with seconds, `@hourly`… or
//! `continuous`; parsed here as `serve` runs it), `schedule_timezone` [the
//! `partition_time.timezone`: the IANA zone a cron schedule's times are read in, DST-correct
//! as [`crate::config::schedule`] says], `deletes` [ignore] or `emit` (adds
//! the lake column `_op`; the schema must carry the key and `_seq`), `dirty`
//! {`keep` [false]}, `catalog` {`dialect` [hive], `table` [the name with `_` for `-`],
//! `database`}, `lease` [60s], `retry` {`initial` [200ms], `max_interval` [15s],
//! `max_elapsed` [120s]}, `max_delay` [60s, at least 1s: continuous mode's longest wait],
//! `manifests` {`keep` [1000]: run manifests kept in the lake, at least 1},
//! `storage` {`endpoint`, `region`, `path_style`, `allow_http`, `access_key_id_env`,
//! `secret_access_key_env`, `session_token_env`, …: the destination store's options,
//! credentials only as names of environment variables; see [`crate::config`]}.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Mapping;

use crate::config::keys::{read_mapping, NumberOrText, Section};
use crate::config::schedule::{parse_zone, Schedule};
use crate::config::{
    checked_name, duration, project_dir, read_pipeline_files, resolve_destination, resolve_path,
    storage_section, Kind, PipelineFile, Problems, StorageKeys,
};
use crate::convert::LakeSchema;
use crate::delivery::manifest::DEFAULT_KEEP;
use crate::error::{Error, Result};
use crate::model::schema::is_identifier;
use crate::model::{ColumnType, TableDef, SEQ_COLUMN, WRITE_TIME_COLUMN};
use crate::objstore::destination::{Destination, RetryPolicy};
use crate::objstore::storage::StorageOptions;
use crate::sink::parquet::{parse_compression, ParquetOptions};
use crate::sink::template::PrefixTemplate;

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
    /// The destination store's options (`storage:`).
    pub storage: StorageOptions,
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
    /// Cron schedule (with seconds) or `continuous`, if any, as written.
    pub schedule: Option<String>,
    /// The cron schedule in its timezone (None: `continuous`, or no schedule).
    pub cron: Option<Schedule>,
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
    /// Run manifests kept in the lake (the newest runs').
    pub manifests_keep: usize,
}

/// A task file as written: every key typed, unknown keys refused; what the keys mean together
/// is checked by [`check_task`]. Sections are read key by key when they are checked
/// ([`Section`]), so every problem of a file is reported at once.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskKeys {
    /// Told apart by [`crate::config::read_pipeline_files`]; a known key here.
    #[allow(dead_code)]
    kind: Option<String>,
    name: Option<String>,
    source: Option<String>,
    destination: Option<String>,
    prefix: Option<String>,
    #[serde(default)]
    partition_time: Section<PartitionTimeKeys>,
    mode: Option<Mode>,
    schema: Option<String>,
    #[serde(default)]
    parquet: Section<ParquetKeys>,
    concurrency: Option<usize>,
    schedule: Option<String>,
    schedule_timezone: Option<String>,
    deletes: Option<Deletes>,
    #[serde(default)]
    dirty: Section<DirtyKeys>,
    #[serde(default)]
    catalog: Section<CatalogKeys>,
    lease: Option<NumberOrText>,
    #[serde(default)]
    retry: Section<RetryKeys>,
    max_delay: Option<NumberOrText>,
    #[serde(default)]
    manifests: Section<ManifestKeys>,
    #[serde(default)]
    storage: Section<StorageKeys>,
}

/// `partition_time:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionTimeKeys {
    from: Option<String>,
    column: Option<String>,
    timezone: Option<String>,
}

/// `parquet:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParquetKeys {
    compression: Option<String>,
    target_file_size: Option<NumberOrText>,
    row_group_rows: Option<usize>,
    encoding: Option<String>,
    buffer_size: Option<NumberOrText>,
}

/// `dirty:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirtyKeys {
    keep: Option<bool>,
}

/// `catalog:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogKeys {
    dialect: Option<String>,
    table: Option<String>,
    database: Option<String>,
}

/// `retry:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryKeys {
    initial: Option<NumberOrText>,
    max_interval: Option<NumberOrText>,
    max_elapsed: Option<NumberOrText>,
}

/// `manifests:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestKeys {
    keep: Option<usize>,
}

/// Reads and checks every task file under `pipelines` (files of another kind are left to
/// their own checker), against the declared `tables`. Returns the tasks by name, or every
/// problem found, one per line.
pub fn load_tasks(
    pipelines: &Path,
    tables: &BTreeMap<String, TableDef>,
) -> Result<BTreeMap<String, Task>> {
    let (files, mut problems) = read_pipeline_files(pipelines)?;
    let tasks = check_tasks(&files, &project_dir(pipelines), tables, &mut problems);
    if problems.is_empty() {
        Ok(tasks)
    } else {
        Err(Error::InvalidConfig(problems.join("\n")))
    }
}

/// Checks the delivery files among `files`; their problems are added to `problems`.
pub(crate) fn check_tasks(
    files: &[PipelineFile],
    project: &Path,
    tables: &BTreeMap<String, TableDef>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Task> {
    let mut tasks: BTreeMap<String, Task> = BTreeMap::new();
    for file in files.iter().filter(|f| f.kind == Kind::Delivery) {
        let mut file_problems = Problems::new(&file.path);
        if let Some(task) = check_task(&file.map, &file.path, project, tables, &mut file_problems) {
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
    tasks
}

/// Reads a task file's keys and checks what they mean together (the source table and its
/// columns, the schema file, the prefix against the lake columns, the schedule against the
/// mode …). `None` when the file has a problem.
fn check_task(
    map: &Mapping,
    path: &Path,
    project: &Path,
    tables: &BTreeMap<String, TableDef>,
    problems: &mut Problems,
) -> Option<Task> {
    let keys: TaskKeys = read_mapping(map, "", problems);
    let name = checked_name(keys.name, problems);

    let source = match &keys.source {
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

    let destination = match &keys.destination {
        None => {
            problems.push("destination", "required");
            None
        }
        Some(d) => match resolve_destination(d, project) {
            Ok(d) => Some(d),
            Err(msg) => {
                problems.push("destination", msg);
                None
            }
        },
    };

    let storage = storage_section(&keys.storage, destination.as_deref(), problems);

    let prefix = match PrefixTemplate::parse(keys.prefix.as_deref().unwrap_or_default()) {
        Ok(p) => Some(p),
        Err(errors) => {
            for e in errors {
                problems.push("prefix", e);
            }
            None
        }
    };

    let pt = keys.partition_time.read("partition_time", problems);
    let partition_time = partition_time(&pt, source.as_ref(), problems);
    let timezone = match parse_zone(pt.timezone.as_deref().unwrap_or("UTC")) {
        Ok(tz) => Some(tz),
        Err(e) => {
            problems.push("partition_time.timezone", e);
            None
        }
    };

    let mode = keys.mode.unwrap_or(Mode::Full);
    let schema_ref = keys.schema.as_deref().unwrap_or("auto");
    let schema = match &source {
        Some(def) if schema_ref == "auto" => Some(LakeSchema::auto(def)),
        Some(def) => {
            let schema_path = resolve_path(schema_ref, project);
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

    let parquet = parquet_options(&keys.parquet.read("parquet", problems), problems);

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

    let concurrency = keys.concurrency.unwrap_or(1);
    if !(1..=64).contains(&concurrency) {
        problems.push("concurrency", format!("{concurrency}: expected 1 to 64"));
    }

    let cron = schedule_cron(
        keys.schedule.as_deref(),
        keys.schedule_timezone,
        timezone,
        problems,
    );

    let deletes = keys.deletes.unwrap_or(Deletes::Ignore);
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
    let dirty_keep = keys.dirty.read("dirty", problems).keep.unwrap_or(false);

    let cat = keys.catalog.read("catalog", problems);
    let dialect = cat.dialect.as_deref().unwrap_or("hive");
    if dialect != "hive" {
        problems.push("catalog.dialect", format!("{dialect:?}: expected hive"));
    }
    let catalog_table = cat
        .table
        .unwrap_or_else(|| name.clone().unwrap_or_default().replace('-', "_"));
    for (key, ident) in [
        ("catalog.table", Some(&catalog_table)),
        ("catalog.database", cat.database.as_ref()),
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

    let second = Duration::from_secs(1);
    let lease = duration(keys.lease.as_ref(), "lease", second, problems).unwrap_or(DEFAULT_LEASE);
    let max_delay = duration(keys.max_delay.as_ref(), "max_delay", second, problems)
        .unwrap_or(DEFAULT_MAX_DELAY);
    if keys.schedule.as_deref() == Some("continuous") && mode == Mode::Full {
        problems.push(
            "schedule",
            "continuous: needs mode incremental or differential (a full run delivers the \
             whole table each time)",
        );
    }
    let retry = retry_policy(&keys.retry.read("retry", problems), problems);

    let manifests_keep = keys
        .manifests
        .read("manifests", problems)
        .keep
        .unwrap_or(DEFAULT_KEEP);
    if manifests_keep == 0 {
        problems.push(
            "manifests.keep",
            "0: expected at least 1 (a run's manifest is written before it commits)",
        );
    }

    Some(Task {
        name: name?,
        file: path.to_path_buf(),
        source: source?,
        destination: destination?,
        storage,
        prefix: prefix?,
        partition_time: partition_time?,
        timezone: timezone?,
        mode,
        schema: schema?,
        parquet,
        concurrency,
        schedule: keys.schedule,
        cron,
        deletes,
        dirty_keep,
        catalog: CatalogTarget {
            database: cat.database,
            table: catalog_table,
        },
        lease,
        retry,
        max_delay,
        manifests_keep,
    })
}

/// `partition_time.from` (and `column`) against the source table's columns.
fn partition_time(
    keys: &PartitionTimeKeys,
    source: Option<&TableDef>,
    problems: &mut Problems,
) -> Option<PartitionTime> {
    let from = keys.from.as_deref().unwrap_or("write_time");
    match (from, &keys.column) {
        ("write_time" | "run_time", Some(_)) => {
            problems.push(
                "partition_time.column",
                format!("only used with from: column (from is {from})"),
            );
            None
        }
        ("write_time", None) => Some(PartitionTime::WriteTime),
        ("run_time", None) => Some(PartitionTime::RunTime),
        ("column", None) => {
            problems.push("partition_time.column", "required with from: column");
            None
        }
        ("column", Some(c)) => match source?.source_type(c) {
            Some(ColumnType::TimestampMs) if c == WRITE_TIME_COLUMN => {
                Some(PartitionTime::WriteTime)
            }
            Some(ColumnType::TimestampMs) => Some(PartitionTime::Column(c.clone())),
            Some(other) => {
                problems.push(
                    "partition_time.column",
                    format!(
                        "column {c:?} is {other}; a partition time column must be timestamp_ms"
                    ),
                );
                None
            }
            None => {
                problems.push(
                    "partition_time.column",
                    format!("column {c:?} is not a column of table {:?}", source?.table),
                );
                None
            }
        },
        (other, _) => {
            problems.push(
                "partition_time.from",
                format!("{other:?}: expected write_time, column or run_time"),
            );
            None
        }
    }
}

/// The Parquet writer options of a `parquet:` section, each checked against its range.
fn parquet_options(keys: &ParquetKeys, problems: &mut Problems) -> ParquetOptions {
    let mut parquet = ParquetOptions::default();
    if let Some(c) = &keys.compression {
        match parse_compression(c) {
            Ok(c) => parquet.compression = c,
            Err(e) => problems.push("parquet.compression", e),
        }
    }
    if let Some(size) = &keys.target_file_size {
        match parse_size(&size.0) {
            Ok(bytes) if bytes >= 1 << 20 => parquet.target_file_size = bytes,
            Ok(bytes) => problems.push(
                "parquet.target_file_size",
                format!("{bytes} bytes: expected at least 1MiB"),
            ),
            Err(e) => problems.push("parquet.target_file_size", e),
        }
    }
    if let Some(size) = &keys.buffer_size {
        match parse_size(&size.0) {
            Ok(bytes) if bytes >= 16 << 20 => parquet.buffer_bytes = bytes as usize,
            Ok(bytes) => problems.push(
                "parquet.buffer_size",
                format!("{bytes} bytes: expected at least 16MiB"),
            ),
            Err(e) => problems.push("parquet.buffer_size", e),
        }
    }
    match keys.row_group_rows {
        Some(0) => problems.push("parquet.row_group_rows", "expected at least 1"),
        Some(rows) => parquet.row_group_rows = rows,
        None => {}
    }
    match keys.encoding.as_deref() {
        None => {}
        Some("dictionary") => parquet.dictionary = true,
        Some("plain") => parquet.dictionary = false,
        Some(other) => problems.push(
            "parquet.encoding",
            format!("{other:?}: expected dictionary or plain"),
        ),
    }
    parquet
}

/// The retry policy of a `retry:` section (durations of at least 1ms; the first wait no
/// longer than the longest).
fn retry_policy(keys: &RetryKeys, problems: &mut Problems) -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    let ms = Duration::from_millis(1);
    for (key, value, slot) in [
        ("retry.initial", &keys.initial, &mut retry.initial),
        (
            "retry.max_interval",
            &keys.max_interval,
            &mut retry.max_interval,
        ),
        (
            "retry.max_elapsed",
            &keys.max_elapsed,
            &mut retry.max_elapsed,
        ),
    ] {
        if let Some(d) = duration(value.as_ref(), key, ms, problems) {
            *slot = d;
        }
    }
    if retry.initial > retry.max_interval {
        problems.push(
            "retry.initial",
            "is longer than retry.max_interval; expected at most that",
        );
    }
    retry
}

/// The task's cron `schedule` in its zone: `schedule_timezone` when given (`zone_name`), else
/// the partition time's `timezone` (UTC if that is not valid: its problem is reported apart).
fn schedule_cron(
    schedule: Option<&str>,
    zone_name: Option<String>,
    timezone: Option<chrono_tz::Tz>,
    problems: &mut Problems,
) -> Option<Schedule> {
    let given = zone_name.is_some();
    let zone = match zone_name {
        None => timezone.unwrap_or(chrono_tz::UTC),
        Some(name) => match parse_zone(&name) {
            Ok(zone) => zone,
            Err(e) => {
                problems.push("schedule_timezone", e);
                chrono_tz::UTC
            }
        },
    };
    let unused = |problems: &mut Problems, why: &str| {
        if given {
            problems.push(
                "schedule_timezone",
                format!("only used with a cron schedule ({why})"),
            );
        }
    };
    let Some(text) = schedule else {
        unused(problems, "the task has no schedule");
        return None;
    };
    match Schedule::new(text, zone) {
        Ok(Some(cron)) => Some(cron),
        Ok(None) => {
            unused(problems, "schedule is continuous");
            None
        }
        Err(e) => {
            problems.push("schedule", e);
            None
        }
    }
}

impl Task {
    /// Opens the task's destination with its store options and retry policy (nothing is
    /// contacted yet; an unset credential variable is an [`Error::Permanent`] naming it).
    pub fn open_destination(&self) -> Result<Destination> {
        Ok(Destination::open(&self.destination, &self.storage)?.with_retry(self.retry))
    }
}

/// Continuous mode's longest wait for a committed change, unless the task says otherwise
/// (`max_delay`).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

/// How long a run may go unheard before a later run of its task takes it over, unless the
/// task says otherwise (`lease`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// A byte size: an integer (bytes) or text such as `128MiB`, `64MB`, `1GiB`.
fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    if let Ok(bytes) = text.parse::<u64>() {
        return Ok(bytes);
    }
    text.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("{text:?}: expected a size such as 128MiB, 64MB or a byte count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("big").is_err());
        assert!(parse_size("-5").is_err());
    }

    /// The tasks of a pipelines folder of its own holding one file, `t.yaml`, with the builtin
    /// table.
    fn load_one(yaml: &str) -> Result<BTreeMap<String, Task>> {
        let dir = tempfile::tempdir().unwrap();
        let pipelines = dir.path().join("pipelines");
        std::fs::create_dir_all(&pipelines).unwrap();
        std::fs::write(pipelines.join("t.yaml"), yaml).unwrap();
        let tables = crate::model::schema::load_tables(&dir.path().join("schemas")).unwrap();
        load_tasks(&pipelines, &tables)
    }

    /// The problems of `t.yaml` (see [`load_one`]), each without its file name.
    fn problems_of(yaml: &str) -> Vec<String> {
        match load_one(yaml) {
            Ok(tasks) => panic!("no problem found; read {tasks:?}"),
            Err(Error::InvalidConfig(text)) => text
                .lines()
                .map(|l| l.split_once("t.yaml: ").map_or(l, |(_, p)| p).to_string())
                .collect(),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn every_problem_of_every_section_is_reported_with_its_key() {
        let problems = problems_of(
            "name: daily\nsource: object_inventory\ndestination: /lake/daily\ncolour: blue\n\
             mode: fast\nlease: [1]\nconcurrency: 0\n\
             parquet: {compression: brotli, page_size: 1, row_group_rows: many}\n\
             retry: {initial: 10s, max_interval: 1s}\ncatalog: {table: Daily}\n\
             partition_time: {from: column}\nmanifests: 3\n",
        );
        assert_eq!(
            problems,
            [
                "colour: unknown key; expected one of kind, name, source, destination, prefix, \
                 partition_time, mode, schema, parquet, concurrency, schedule, \
                 schedule_timezone, deletes, dirty, catalog, lease, retry, max_delay, \
                 manifests, storage",
                "mode: unknown variant `fast`, expected one of `full`, `incremental`, \
                 `differential`",
                "lease: invalid type: sequence, expected a number or text",
                "partition_time.column: required with from: column",
                "parquet.page_size: unknown key; expected one of compression, \
                 target_file_size, row_group_rows, encoding, buffer_size",
                "parquet.row_group_rows: invalid type: string \"many\", expected usize",
                &problems[6],
                "concurrency: 0: expected 1 to 64",
                "catalog.table: \"Daily\": expected lowercase letters, digits and _",
                "retry.initial: is longer than retry.max_interval; expected at most that",
                "manifests: expected a mapping with keys keep",
            ],
        );
        assert!(
            problems[6].starts_with("parquet.compression: "),
            "{problems:?}"
        );
    }

    #[test]
    fn null_keys_and_sections_are_absent_and_take_their_defaults() {
        let tasks = load_one(
            "name: daily\nsource: object_inventory\ndestination: /lake/daily\nmode: ~\n\
             parquet: ~\nretry: {initial: ~}\nlease: 90\n",
        )
        .unwrap();
        let task = &tasks["daily"];
        assert_eq!(task.mode, Mode::Full);
        assert_eq!(task.retry, RetryPolicy::default());
        assert_eq!(task.lease, Duration::from_secs(90));
        assert_eq!(task.catalog.table, "daily");
    }
}
