//! The command line: global options, one file per subcommand (each with its `Args` and `run`),
//! and the shared context they use. Commands only drive the library's stages; they hold no
//! pipeline logic of their own.

mod claim;
mod ddl;
mod du;
mod inventory;
mod load;
mod ls;
mod run;
mod serve;
mod snapshot;
mod status;
mod store;
mod tables;
mod validate;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::project_dir;
use crate::delivery::{load_tasks, Task};
use crate::error::{Error, Result};
use crate::model::schema::{load_tables, read_tables};
use crate::model::TableDef;
use crate::objstore::storage::StorageOptions;
use crate::pipelines::load_task;
use crate::store::{blocking, open_store_with, sqlite_path, Access, Store};

/// lakeport: keep object-storage metadata in a store and deliver it to a data lake as Parquet.
#[derive(Debug, Parser)]
#[command(name = "lakeport", version, about, propagate_version = true)]
pub struct Cli {
    /// Metadata store: sqlite:PATH (embedded) or postgres://… (server) [default:
    /// sqlite:lakeport.db in the project folder, the parent of the pipelines folder].
    #[arg(long, global = true, env = "LAKEPORT_STORE")]
    pub store: Option<String>,
    /// Folder of delivery tasks (*.yaml); its parent is the project folder [default:
    /// pipelines].
    #[arg(long, global = true)]
    pub pipelines: Option<PathBuf>,
    /// Folder of table declarations and delivery schemas (*.yaml) [default: schemas in the
    /// project folder].
    #[arg(long, global = true)]
    pub schemas: Option<PathBuf>,
    /// Shards this process delivers at once when the store shares them between processes
    /// (PostgreSQL): its own runs' and other workers' together [default: the CPUs it may use].
    #[arg(long, global = true, env = "LAKEPORT_SHARD_SLOTS",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub shard_slots: Option<u16>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// lakeport's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every task and schema file and report all errors.
    Validate(validate::Args),
    /// List tables with row counts and current _seq.
    Tables(tables::Args),
    /// Upsert rows from NDJSON or CSV files (or delete their keys).
    Load(load::Args),
    /// Run one delivery of a task.
    Run(run::Args),
    /// Print the Hive DDL of a task: CREATE EXTERNAL TABLE and its partitions.
    Ddl(ddl::Args),
    /// Show the last run, live objects, rows and dirty rows of tasks.
    Status(status::Args),
    /// Apply inventory reports to the object_inventory table.
    Inventory(inventory::Args),
    /// List a bucket directly into the object_inventory table.
    Snapshot(snapshot::Args),
    /// List a bucket's current objects from the inventory table, like `aws s3 ls`.
    Ls(ls::Args),
    /// Count a bucket's current objects and bytes from the inventory table, grouped.
    Du(du::Args),
    /// Maintain the metadata store (`store compact`: purge delivered tombstones).
    Store(store::Args),
    /// Make this store the owner of a task's destination (move a task between stores).
    Claim(claim::Args),
    /// Run every task on its schedule and serve the HTTP API until SIGTERM/SIGINT.
    Serve(serve::Args),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    if let Some(slots) = cli.shard_slots {
        crate::delivery::dispatch::set_shard_slots(usize::from(slots));
    }
    let ctx = Context::new(cli.store, cli.pipelines, cli.schemas);
    match cli.command {
        Command::Validate(args) => validate::run(&ctx, args),
        Command::Tables(args) => tables::run(&ctx, args).await,
        Command::Load(args) => load::run(&ctx, args).await,
        Command::Run(args) => run::run(&ctx, args).await,
        Command::Ddl(args) => ddl::run(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Inventory(args) => inventory::run(&ctx, args).await,
        Command::Snapshot(args) => snapshot::run(&ctx, args).await,
        Command::Ls(args) => ls::run(&ctx, args).await,
        Command::Du(args) => du::run(&ctx, args).await,
        Command::Store(args) => store::run(&ctx, args).await,
        Command::Claim(args) => claim::run(&ctx, args).await,
        Command::Serve(args) => serve::run(&ctx, args).await,
    }
}

/// What every command may need: where the store, tasks and schemas are.
///
/// The project folder is the parent of the pipelines folder (relative paths in task files
/// resolve against it too). Without `--store` the store is `lakeport.db` there, so a command
/// run from a subfolder with `--pipelines ../pipelines` finds the same store; without
/// `--schemas` the schemas folder is `schemas` there.
pub(crate) struct Context {
    store_url: String,
    /// `--store` (or LAKEPORT_STORE) was not given: the store is the project's default one.
    default_store: bool,
    pipelines: PathBuf,
    schemas: PathBuf,
    /// `--schemas` was given (a missing folder is then an error; the default one may be
    /// absent: only the built-in table is declared).
    schemas_given: bool,
}

impl Context {
    fn new(store: Option<String>, pipelines: Option<PathBuf>, schemas: Option<PathBuf>) -> Self {
        let pipelines = pipelines.unwrap_or_else(|| PathBuf::from("pipelines"));
        let project = project_dir(&pipelines);
        let schemas_given = schemas.is_some();
        let schemas = schemas.unwrap_or_else(|| project.join("schemas"));
        let default_store = store.is_none();
        let store_url =
            store.unwrap_or_else(|| format!("sqlite:{}", project.join(DEFAULT_STORE).display()));
        Context {
            store_url,
            default_store,
            pipelines,
            schemas,
            schemas_given,
        }
    }

    /// The pipelines folder, which must exist.
    fn pipelines(&self) -> Result<&Path> {
        if self.pipelines.is_dir() {
            return Ok(&self.pipelines);
        }
        Err(Error::InvalidConfig(format!(
            "--pipelines {}: no such folder{}; expected the folder of task files (*.yaml)",
            self.pipelines.display(),
            from_here(&self.pipelines)
        )))
    }

    /// The schemas folder, which must exist when `--schemas` named it.
    fn schemas(&self) -> Result<&Path> {
        if self.schemas_given && !self.schemas.is_dir() {
            return Err(Error::InvalidConfig(format!(
                "--schemas {}: no such folder{}; expected the folder of table declarations \
                 and delivery schemas (*.yaml)",
                self.schemas.display(),
                from_here(&self.schemas)
            )));
        }
        Ok(&self.schemas)
    }

    /// The declared tables (schemas folder plus the built-in inventory table).
    fn tables(&self) -> Result<BTreeMap<String, TableDef>> {
        load_tables(self.schemas()?)
    }

    /// Every task, checked; any problem in any file is an error.
    fn tasks(&self) -> Result<BTreeMap<String, Task>> {
        load_tasks(self.pipelines()?, &self.tables()?)
    }

    /// One task by name, needing only its own file and what it uses (see
    /// [`crate::pipelines::load_task`]); problems of other files are logged as warnings.
    fn task(&self, name: &str) -> Result<Arc<Task>> {
        let (tables, table_problems) = read_tables(self.schemas()?)?;
        let (task, warnings) = load_task(self.pipelines()?, &tables, &table_problems, name)?;
        for warning in warnings {
            tracing::warn!("ignored (task {name} does not need it): {warning}");
        }
        Ok(Arc::new(task))
    }

    /// Opens the store for a command that writes, and makes sure every declared table exists
    /// in it (a SQLite file is created when missing).
    async fn store(&self) -> Result<Arc<dyn Store>> {
        self.store_declaring(self.tables()?.into_values().collect())
            .await
    }

    /// Opens the store for a command that works on `task` alone (`run`, `claim`), making
    /// sure only the task's source table exists in it: other table files may be broken
    /// (see [`Context::task`]).
    async fn store_for(&self, task: &Task) -> Result<Arc<dyn Store>> {
        self.store_declaring(vec![task.source.clone()]).await
    }

    /// Opens the store for a one-shot command that imports a snapshot (`inventory import`,
    /// `snapshot`), and makes sure every declared table exists in it: a large import into an
    /// empty scope may hold a SQLite store alone while it writes ([`Access::ReadWriteAlone`]).
    async fn store_to_import(&self) -> Result<Arc<dyn Store>> {
        self.store_with(
            Access::ReadWriteAlone,
            self.tables()?.into_values().collect(),
        )
        .await
    }

    /// Opens the store for writing and declares `tables` in it.
    async fn store_declaring(&self, tables: Vec<TableDef>) -> Result<Arc<dyn Store>> {
        self.store_with(Access::ReadWrite, tables).await
    }

    /// Opens the store with `access` (one that writes) and declares `tables` in it.
    async fn store_with(&self, access: Access, tables: Vec<TableDef>) -> Result<Arc<dyn Store>> {
        let url = self.store_url.clone();
        blocking(move || {
            let store = open_store_with(&url, access)?;
            for def in &tables {
                store.ensure_table(def)?;
            }
            Ok(store)
        })
        .await
    }

    /// Opens the store for a command that only reads: nothing is created (no file, no table);
    /// a SQLite store on a read-only file or folder opens. A missing store is an
    /// [`Error::NotFound`] naming where it was looked for.
    async fn store_to_read(&self) -> Result<Arc<dyn Store>> {
        if let Some(path) = sqlite_path(&self.store_url)? {
            if !path.exists() {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
                let which = if self.default_store {
                    let missing = if self.pipelines.is_dir() {
                        ""
                    } else {
                        ", which does not exist"
                    };
                    format!(
                        " (the default store: {DEFAULT_STORE} in the project folder, the parent \
                         of the pipelines folder {}{missing}); give --store (or \
                         LAKEPORT_STORE), or run lakeport from the folder that holds \
                         pipelines/ (or name it with --pipelines)",
                        self.pipelines.display()
                    )
                } else {
                    String::new()
                };
                return Err(Error::NotFound(format!(
                    "no store at {}{which}",
                    absolute.display()
                )));
            }
        }
        let url = self.store_url.clone();
        blocking(move || open_store_with(&url, Access::ReadOnly)).await
    }
}

/// The store file's name in the project folder when `--store` is not given.
const DEFAULT_STORE: &str = "lakeport.db";

/// ` (from /current/folder)` for a relative path, so that a message says where it was looked
/// for; nothing for an absolute one.
fn from_here(path: &Path) -> String {
    match std::env::current_dir() {
        Ok(dir) if path.is_relative() => format!(" (looked for from {})", dir.display()),
        _ => String::new(),
    }
}

/// Where the store of an `s3://`, `gs://` or `az://` URL is, for the commands that read one
/// (`inventory import`, `inventory watch`, `snapshot`): the command-line form of a file's
/// `storage:` section, checked the same way. Credentials come from the environment (`AWS_*`,
/// `GOOGLE_*`, `AZURE_*`), as do the settings not given here.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct StoreArgs {
    /// The store's endpoint, e.g. http://127.0.0.1:9000 for an S3-compatible server (default:
    /// AWS_ENDPOINT_URL, else the cloud's own).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The S3 region (default: AWS_REGION or AWS_DEFAULT_REGION).
    #[arg(long)]
    region: Option<String>,
    /// S3: address the bucket in the path (http://host/bucket/key), as most S3-compatible
    /// servers want (object_store's default too).
    #[arg(long)]
    path_style: bool,
    /// Allow a plain http:// endpoint (requests and credentials travel unencrypted).
    #[arg(long)]
    allow_http: bool,
}

impl StoreArgs {
    /// The store options these flags give for `url`, or every problem with the flag named.
    pub(crate) fn options(&self, url: &str) -> Result<StorageOptions> {
        let options = StorageOptions {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style.then_some(true),
            allow_http: self.allow_http.then_some(true),
            ..StorageOptions::default()
        };
        let problems: Vec<String> = options
            .problems(Some(url))
            .into_iter()
            .map(|(key, message)| format!("--{}: {message}", key.replace('_', "-")))
            .collect();
        if problems.is_empty() {
            Ok(options)
        } else {
            Err(Error::InvalidConfig(problems.join("\n")))
        }
    }
}

/// Writes command output to stdout; a closed pipe surfaces as an `Io` error of kind
/// `BrokenPipe`, which `main` treats as success.
fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| Error::Io {
            context: "writing to stdout".into(),
            source: e,
        })
}

/// Pretty JSON of a serializable value.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::encode_caused("JSON output", e))
}

/// Resolves at the first SIGTERM or SIGINT.
pub(crate) async fn stop_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
