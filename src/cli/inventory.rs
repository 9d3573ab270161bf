//! `lakeport inventory import <manifest-url>` and `lakeport inventory watch <root-url>`: apply
//! inventory reports to the `object_inventory` table as full snapshots of their scope.

use std::time::{Duration, Instant};

use crate::cli::{print, to_json, Context, StoreArgs};
use crate::config::parse_duration;
use crate::error::{Error, Result};
use crate::inventory::import::import_report;
use crate::inventory::report::{open_report_with, Provider};
use crate::inventory::watch::{is_missing_folder, WatchEvent, WatchTarget, Watcher};
use crate::model::TableDef;
use crate::store::{blocking, ImportOutcome, ImportRecord};

/// The table reports and listings go to.
pub(crate) const INVENTORY_TABLE: &str = "object_inventory";

/// Arguments of `inventory`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: InventoryCommand,
}

#[derive(Debug, clap::Subcommand)]
enum InventoryCommand {
    /// Apply one inventory report (S3, OSS, OBS) as the full state of its bucket.
    Import(ImportArgs),
    /// Import new reports under a report root as they complete, in creation order.
    Watch(WatchArgs),
}

/// Arguments of `inventory watch`.
#[derive(Debug, clap::Args)]
struct WatchArgs {
    /// The report root: a folder or URL under which reports (manifest.json) appear.
    root_url: String,
    /// Time between scans: 60s, 5m, 1h, 500ms (a plain number is seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    interval: Duration,
    /// Scan once, import what is complete, and exit (1 when a report failed).
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    options: ReportOptions,
}

/// Arguments of `inventory import`.
#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// URL of the report's manifest.json (a path, file://, s3://, gs://, az://).
    manifest_url: String,
    #[command(flatten)]
    options: ReportOptions,
}

/// How reports are read and applied (`import` and `watch`).
#[derive(Debug, clap::Args)]
struct ReportOptions {
    /// Report format, when the manifest should not decide (obs: with `watch`, every manifest
    /// counts as complete).
    #[arg(long, value_enum)]
    format: Option<Provider>,
    /// The key prefix the reports' inventory rule covers (objects outside it are kept).
    #[arg(long, default_value = "")]
    scope_prefix: String,
    /// Print each import record as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    match args.command {
        InventoryCommand::Import(args) => import(ctx, args).await,
        InventoryCommand::Watch(args) => watch(ctx, args).await,
    }
}

/// The declared inventory table.
pub(crate) fn inventory_table(ctx: &Context) -> Result<TableDef> {
    ctx.tables()?
        .remove(INVENTORY_TABLE)
        .ok_or_else(|| Error::NotFound(format!("table {INVENTORY_TABLE} is not declared")))
}

async fn import(ctx: &Context, args: ImportArgs) -> Result<()> {
    let table = inventory_table(ctx)?;
    let storage = args.options.store.options(&args.manifest_url)?;
    let store = ctx.store_to_import().await?;
    let started = Instant::now();
    let url = args.manifest_url.clone();
    let scope_prefix = args.options.scope_prefix.clone();
    let format = args.options.format;
    let outcome = blocking(move || {
        let report = open_report_with(&url, format, &table, &storage)?;
        import_report(store.as_ref(), report, &table.table, &scope_prefix)
    })
    .await?;
    report_outcome(&outcome, started.elapsed().as_secs_f64(), args.options.json)
}

/// Prints what an import did: one line, or the record as JSON with an `outcome` field
/// (`applied` or `already_imported`).
pub(crate) fn report_outcome(outcome: &ImportOutcome, seconds: f64, json: bool) -> Result<()> {
    let (record, applied) = match outcome {
        ImportOutcome::Applied(r) => (r, true),
        ImportOutcome::AlreadyImported(r) => (r, false),
    };
    if json {
        let mut value =
            serde_json::to_value(record).map_err(|e| Error::encode_caused("JSON output", e))?;
        if let Some(map) = value.as_object_mut() {
            let said = if applied {
                "applied"
            } else {
                "already_imported"
            };
            map.insert("outcome".into(), said.into());
        }
        return print(&to_json(&value)?);
    }
    if !applied {
        return print(&format!(
            "already imported {} (import {} at {}, {} rows, scope {}): nothing to do",
            record.manifest_url,
            record.import_id,
            show_ms(record.imported_ms),
            record.rows,
            scope(record)
        ));
    }
    let secs = seconds;
    print(&format!(
        "imported {}: {}: {} rows ({} inserted, {} updated, {} deleted, {} unchanged) in {secs:.2}s ({:.0} rows/s)",
        record.manifest_url,
        scope(record),
        record.rows,
        record.inserted,
        record.updated,
        record.deleted,
        record.unchanged,
        record.rows as f64 / secs.max(1e-9)
    ))
}

/// `bucket B` or `bucket B prefix "P"`.
pub(crate) fn scope(record: &ImportRecord) -> String {
    if record.scope_prefix.is_empty() {
        format!("bucket {}", record.scope_bucket)
    } else {
        format!(
            "bucket {} prefix {:?}",
            record.scope_bucket, record.scope_prefix
        )
    }
}

/// An epoch-ms time as `2024-03-05T10:20:30Z`.
pub(crate) fn show_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Scans the root every interval and imports complete reports not handled yet, oldest first
/// (a [`Watcher`] pass), printing what each pass did.
async fn watch(ctx: &Context, args: WatchArgs) -> Result<()> {
    let table = inventory_table(ctx)?;
    if is_missing_folder(&args.root_url) {
        return Err(Error::NotFound(format!(
            "report root {}: no such folder",
            args.root_url
        )));
    }
    let target = WatchTarget {
        root: args.root_url.clone(),
        format: args.options.format,
        scope_prefix: args.options.scope_prefix.clone(),
        storage: args.options.store.options(&args.root_url)?,
    };
    let mut watcher = Watcher::new(target, table)?;
    let store = ctx.store().await?;
    let json = args.options.json;
    loop {
        let mut printed = Ok(());
        let mut on_event = |event: WatchEvent<'_>| match event {
            WatchEvent::Waiting(url) => {
                eprintln!("waiting for {url} to complete (no manifest.checksum yet)")
            }
            WatchEvent::Imported { outcome, seconds } => {
                if printed.is_ok() {
                    printed = report_outcome(outcome, seconds, json);
                }
            }
            WatchEvent::Failed { error, skipped, .. } if skipped => {
                eprintln!("error: {} (report skipped)", error.chain())
            }
            WatchEvent::Failed { error, .. } => {
                eprintln!("error: {} (will retry on the next scan)", error.chain())
            }
        };
        let pass = watcher.pass(&store, &mut on_event).await;
        printed?;
        match pass {
            Err(e) if args.once => return Err(e),
            Err(e) => eprintln!("error: scanning {}: {}", args.root_url, e.chain()),
            Ok(summary) if args.once && summary.failed > 0 => {
                return Err(Error::InvalidInput(format!(
                    "{} report(s) under {} failed (see above); the others were imported",
                    summary.failed, args.root_url
                )))
            }
            Ok(_) if args.once => return Ok(()),
            Ok(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
