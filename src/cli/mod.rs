//! The command line: global options, one file per subcommand (each with its `Args` and `run`),
//! and the shared context they use. Commands only drive the library's stages; they hold no
//! pipeline logic of their own.

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
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::delivery::{load_tasks, Task};
use crate::error::{Error, Result};
use crate::sink::storage::StorageOptions;
use crate::store::schema::load_tables;
use crate::store::{blocking, open_store, Store, TableDef};

/// lakeport: keep object-storage metadata in a store and deliver it to a data lake as Parquet.
#[derive(Debug, Parser)]
#[command(name = "lakeport", version, about, propagate_version = true)]
pub struct Cli {
    /// Metadata store: sqlite:PATH (embedded) or postgres://… (server).
    #[arg(
        long,
        global = true,
        env = "LAKEPORT_STORE",
        default_value = "sqlite:lakeport.db"
    )]
    pub store: String,
    /// Folder of delivery tasks (*.yaml).
    #[arg(long, global = true, default_value = "pipelines")]
    pub pipelines: PathBuf,
    /// Folder of table declarations and delivery schemas (*.yaml).
    #[arg(long, global = true, default_value = "schemas")]
    pub schemas: PathBuf,
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
    /// Run every task on its schedule and serve the HTTP API until SIGTERM/SIGINT.
    Serve(serve::Args),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    if let Some(slots) = cli.shard_slots {
        crate::delivery::shared::set_shard_slots(usize::from(slots));
    }
    let ctx = Context {
        store_url: cli.store,
        pipelines: cli.pipelines,
        schemas: cli.schemas,
    };
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
        Command::Serve(args) => serve::run(&ctx, args).await,
    }
}

/// What every command may need: where the store, tasks and schemas are.
pub(crate) struct Context {
    store_url: String,
    pipelines: PathBuf,
    schemas: PathBuf,
}

impl Context {
    /// The declared tables (schemas folder plus the built-in inventory table).
    fn tables(&self) -> Result<BTreeMap<String, TableDef>> {
        load_tables(&self.schemas)
    }

    /// Every task, checked; any problem in any file is an error.
    fn tasks(&self) -> Result<BTreeMap<String, Task>> {
        load_tasks(&self.pipelines, &self.tables()?)
    }

    /// One task by name.
    fn task(&self, name: &str) -> Result<Arc<Task>> {
        let mut tasks = self.tasks()?;
        tasks.remove(name).map(Arc::new).ok_or_else(|| {
            Error::NotFound(format!(
                "no task named {name:?} in {} (tasks: {})",
                self.pipelines.display(),
                tasks.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Opens the store and makes sure every declared table exists in it.
    async fn store(&self) -> Result<Arc<dyn Store>> {
        let tables = self.tables()?;
        let url = self.store_url.clone();
        blocking(move || {
            let store = open_store(&url)?;
            for def in tables.values() {
                store.ensure_table(def)?;
            }
            Ok(store)
        })
        .await
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
    serde_json::to_string_pretty(value).map_err(|e| Error::Encode(format!("JSON output: {e}")))
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
