//! `lakeport snapshot <bucket-url> [--prefix P]`: list a bucket (or local folder) directly
//! into the `object_inventory` table, as the full state of the bucket or prefix.

use std::time::Instant;

use crate::cli::inventory::{inventory_table, report_outcome};
use crate::cli::{Context, StoreArgs};
use crate::error::Result;
use crate::inventory::bucket::open_bucket;
use crate::inventory::import::import_snapshot;
use crate::store::blocking;

/// Arguments of `snapshot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bucket: s3://bucket, gs://bucket, az://container, file:///folder or a folder path.
    bucket_url: String,
    /// Only keys that start with this prefix (rows outside it are kept as they are).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Print the import record as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let table = inventory_table(ctx)?;
    let storage = args.store.options(&args.bucket_url)?;
    let listing = open_bucket(&args.bucket_url, &args.prefix, &table, &storage)?;
    let store = ctx.store_to_import().await?;
    let started = Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let handle = tokio::runtime::Handle::current();
    let outcome = blocking(move || {
        let draft = listing.draft(&table.table, now_ms);
        import_snapshot(store.as_ref(), &draft, listing.into_changes(handle))
    })
    .await?;
    report_outcome(&outcome, started.elapsed().as_secs_f64(), args.json)
}
