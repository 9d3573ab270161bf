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
use serde_yaml::{Mapping, Value as Yaml};

use crate::config::schedule::{parse_zone, Schedule};
use crate::config::{
    duration_field, field, name_field, project_dir, read_pipeline_files, resolve_destination,
    resolve_path, section, storage_section, unknown_keys, Kind, PipelineFile, Problems,
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

const TOP_KEYS: &[&str] = &[
    "kind",
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
    "schedule_timezone",
    "deletes",
    "dirty",
    "catalog",
    "lease",
    "retry",
    "max_delay",
    "manifests",
    "storage",
];
const PARTITION_TIME_KEYS: &[&str] = &["from", "column", "timezone"];
const PARQUET_KEYS: &[&str] = &[
    "compression",
    "target_file_size",
    "row_group_rows",
    "encoding",
    "buffer_size",
];
const DIRTY_KEYS: &[&str] = &["keep"];
const CATALOG_KEYS: &[&str] = &["dialect", "table", "database"];
const RETRY_KEYS: &[&str] = &["initial", "max_interval", "max_elapsed"];
const MANIFEST_KEYS: &[&str] = &["keep"];

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

fn check_task(
    map: &Mapping,
    path: &Path,
    project: &Path,
    tables: &BTreeMap<String, TableDef>,
    problems: &mut Problems,
) -> Option<Task> {
    unknown_keys(map, TOP_KEYS, "", problems);
    let name = name_field(map, problems);

    let source_name: Option<String> = field(map, "source", "source", problems);
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

    let destination = match field::<String>(map, "destination", "destination", problems) {
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

    let storage = storage_section(map, destination.as_deref(), problems);

    let prefix_raw: String = field(map, "prefix", "prefix", problems).unwrap_or_default();
    let prefix = match PrefixTemplate::parse(&prefix_raw) {
        Ok(p) => Some(p),
        Err(errors) => {
            for e in errors {
                problems.push("prefix", e);
            }
            None
        }
    };

    let pt = section(map, "partition_time", PARTITION_TIME_KEYS, problems);
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
    let timezone = match parse_zone(&tz_name) {
        Ok(tz) => Some(tz),
        Err(e) => {
            problems.push("partition_time.timezone", e);
            None
        }
    };

    let mode = field::<Mode>(map, "mode", "mode", problems).unwrap_or(Mode::Full);
    let schema_ref: String =
        field(map, "schema", "schema", problems).unwrap_or_else(|| "auto".into());
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

    let pq = section(map, "parquet", PARQUET_KEYS, problems);
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

    let concurrency = field::<usize>(map, "concurrency", "concurrency", problems).unwrap_or(1);
    if !(1..=64).contains(&concurrency) {
        problems.push("concurrency", format!("{concurrency}: expected 1 to 64"));
    }

    let schedule: Option<String> = field(map, "schedule", "schedule", problems);
    let schedule_zone = field::<String>(map, "schedule_timezone", "schedule_timezone", problems);
    let cron = schedule_cron(schedule.as_deref(), schedule_zone, timezone, problems);

    let deletes = field::<Deletes>(map, "deletes", "deletes", problems).unwrap_or(Deletes::Ignore);
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
    let dirty = section(map, "dirty", DIRTY_KEYS, problems);
    let dirty_keep = field::<bool>(&dirty, "keep", "dirty.keep", problems).unwrap_or(false);

    let cat = section(map, "catalog", CATALOG_KEYS, problems);
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

    let lease = duration_field(map, "lease", "lease", Duration::from_secs(1), problems)
        .unwrap_or(DEFAULT_LEASE);
    let max_delay = duration_field(
        map,
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
    let retry_map = section(map, "retry", RETRY_KEYS, problems);
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

    let manifests = section(map, "manifests", MANIFEST_KEYS, problems);
    let manifests_keep =
        field::<usize>(&manifests, "keep", "manifests.keep", problems).unwrap_or(DEFAULT_KEEP);
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
        schedule,
        cron,
        deletes,
        dirty_keep,
        catalog: CatalogTarget {
            database,
            table: catalog_table,
        },
        lease,
        retry,
        max_delay,
        manifests_keep,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&Yaml::String("128MiB".into())), Ok(128 << 20));
        assert_eq!(parse_size(&Yaml::String("64MB".into())), Ok(64_000_000));
        assert_eq!(parse_size(&Yaml::Number(1024.into())), Ok(1024));
        assert!(parse_size(&Yaml::String("big".into())).is_err());
    }
}
