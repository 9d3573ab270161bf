//! `lakeport inventory import <manifest-url>` and `lakeport inventory watch <root-url>`: apply
//! inventory reports to the `object_inventory` table as full snapshots of their scope.

use std::time::Instant;

use crate::cli::{print, to_json, Context};
use crate::error::{Error, Result};
use crate::inventory::import::import_s3_report;
use crate::inventory::s3::read_s3_report_on;
use crate::store::{blocking, ImportOutcome, ImportRecord, TableDef};

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
    /// Apply one inventory report (S3) as the full state of its bucket.
    Import(ImportArgs),
}

/// Arguments of `inventory import`.
#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// URL of the report's manifest.json (a path, file://, s3://, gs://, az://).
    manifest_url: String,
    /// Report format, when the manifest should not decide: s3.
    #[arg(long)]
    format: Option<String>,
    /// The key prefix the report's inventory rule covers (objects outside it are kept).
    #[arg(long, default_value = "")]
    scope_prefix: String,
    /// Print the import record as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    match args.command {
        InventoryCommand::Import(args) => import(ctx, args).await,
    }
}

/// The declared inventory table.
pub(crate) fn inventory_table(ctx: &Context) -> Result<TableDef> {
    ctx.tables()?.remove(INVENTORY_TABLE).ok_or_else(|| {
        Error::NotFound(format!("table {INVENTORY_TABLE} is not declared"))
    })
}

async fn import(ctx: &Context, args: ImportArgs) -> Result<()> {
    if let Some(format) = &args.format {
        if format != "s3" {
            return Err(Error::InvalidConfig(format!(
                "--format: expected s3, found {format:?}"
            )));
        }
    }
    let table = inventory_table(ctx)?;
    let store = ctx.store().await?;
    let started = Instant::now();
    let handle = tokio::runtime::Handle::current();
    let url = args.manifest_url.clone();
    let scope_prefix = args.scope_prefix.clone();
    let outcome = blocking(move || {
        let report = read_s3_report_on(handle, &url, &table)?;
        import_s3_report(store.as_ref(), report, &table.table, &scope_prefix)
    })
    .await?;
    report_outcome(&outcome, started, args.json)
}

/// Prints what an import did: one line, or the record as JSON with an `outcome` field
/// (`applied` or `already_imported`).
pub(crate) fn report_outcome(outcome: &ImportOutcome, started: Instant, json: bool) -> Result<()> {
    let (record, applied) = match outcome {
        ImportOutcome::Applied(r) => (r, true),
        ImportOutcome::AlreadyImported(r) => (r, false),
    };
    if json {
        let mut value = serde_json::to_value(record)
            .map_err(|e| Error::Encode(format!("JSON output: {e}")))?;
        if let Some(map) = value.as_object_mut() {
            let said = if applied { "applied" } else { "already_imported" };
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
    let secs = started.elapsed().as_secs_f64();
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
        format!("bucket {} prefix {:?}", record.scope_bucket, record.scope_prefix)
    }
}

/// An epoch-ms time as `2024-03-05T10:20:30Z`.
pub(crate) fn show_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}
