//! `lakeport inventory import <manifest-url>` and `lakeport inventory watch <root-url>`: apply
//! inventory reports to the `object_inventory` table as full snapshots of their scope.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::cli::{print, to_json, Context};
use crate::delivery::config::parse_duration;
use crate::error::{Error, Result};
use crate::inventory::import::import_report;
use crate::inventory::report::{open_report, Provider, Report};
use crate::inventory::watch::scan;
use crate::sink::destination::Destination;
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
    let store = ctx.store().await?;
    let started = Instant::now();
    let url = args.manifest_url.clone();
    let scope_prefix = args.options.scope_prefix.clone();
    let format = args.options.format;
    let outcome = blocking(move || {
        let report = open_report(&url, format, &table)?;
        import_report(store.as_ref(), report, &table.table, &scope_prefix)
    })
    .await?;
    report_outcome(&outcome, started, args.options.json)
}

/// Prints what an import did: one line, or the record as JSON with an `outcome` field
/// (`applied` or `already_imported`).
pub(crate) fn report_outcome(outcome: &ImportOutcome, started: Instant, json: bool) -> Result<()> {
    let (record, applied) = match outcome {
        ImportOutcome::Applied(r) => (r, true),
        ImportOutcome::AlreadyImported(r) => (r, false),
    };
    if json {
        let mut value =
            serde_json::to_value(record).map_err(|e| Error::Encode(format!("JSON output: {e}")))?;
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

/// Scans the root every interval and imports complete reports not handled yet, oldest first.
/// A report that fails for a reason retrying cannot fix (bad input, older than the store's) is
/// reported and skipped for the rest of the process; other failures are retried next scan.
async fn watch(ctx: &Context, args: WatchArgs) -> Result<()> {
    let table = inventory_table(ctx)?;
    if !args.root_url.contains("://") && !std::path::Path::new(&args.root_url).is_dir() {
        return Err(Error::NotFound(format!(
            "report root {}: no such folder",
            args.root_url
        )));
    }
    let root = Destination::parse(&args.root_url)?;
    let store = ctx.store().await?;
    let mut handled: HashSet<String> = HashSet::new();
    let mut announced: HashSet<String> = HashSet::new();
    loop {
        let mut failed = 0usize;
        match scan(&root, args.options.format == Some(Provider::Obs)).await {
            Err(e) if !args.once => eprintln!("error: scanning {}: {e}", root.url()),
            Err(e) => return Err(e),
            Ok(found) => {
                for url in &found.waiting {
                    if announced.insert(url.clone()) {
                        eprintln!("waiting for {url} to complete (no manifest.checksum yet)");
                    }
                }
                let new: Vec<String> = found
                    .complete
                    .into_iter()
                    .filter(|u| !handled.contains(u))
                    .collect();
                let opened = {
                    let table = table.clone();
                    let format = args.options.format;
                    blocking(move || {
                        Ok(new
                            .into_iter()
                            .map(|url| {
                                let report = open_report(&url, format, &table);
                                (url, report)
                            })
                            .collect::<Vec<_>>())
                    })
                    .await?
                };
                let mut reports: Vec<Report> = Vec::new();
                for (url, report) in opened {
                    match report {
                        Ok(r) => reports.push(r),
                        Err(e) => {
                            failed += 1;
                            skip_or_retry(&mut handled, &url, &e);
                        }
                    }
                }
                reports.sort_by(|a, b| {
                    (a.info.created_ms, &a.info.manifest_url)
                        .cmp(&(b.info.created_ms, &b.info.manifest_url))
                });
                for report in reports {
                    let url = report.info.manifest_url.clone();
                    let (store, table_name, prefix) = (
                        store.clone(),
                        table.table.clone(),
                        args.options.scope_prefix.clone(),
                    );
                    let started = Instant::now();
                    let outcome = blocking(move || {
                        import_report(store.as_ref(), report, &table_name, &prefix)
                    })
                    .await;
                    match outcome {
                        Ok(outcome) => {
                            handled.insert(url);
                            report_outcome(&outcome, started, args.options.json)?;
                        }
                        Err(e) => {
                            failed += 1;
                            skip_or_retry(&mut handled, &url, &e);
                        }
                    }
                }
            }
        }
        if args.once {
            return if failed == 0 {
                Ok(())
            } else {
                Err(Error::InvalidInput(format!(
                    "{failed} report(s) under {} failed (see above); the others were imported",
                    root.url()
                )))
            };
        }
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Reports a failed report on stderr; remembers it as handled unless a retry could succeed.
fn skip_or_retry(handled: &mut HashSet<String>, url: &str, e: &Error) {
    let permanent = matches!(
        e,
        Error::InvalidInput(_) | Error::Conflict(_) | Error::InvalidConfig(_) | Error::NotFound(_)
    );
    if permanent {
        handled.insert(url.to_string());
        eprintln!("error: {e} (report skipped)");
    } else {
        eprintln!("error: {e} (will retry on the next scan)");
    }
}
