//! `lakeport tables`: every table with its live rows, tombstones and highest `_seq`.

use crate::cli::{print, to_json, Context};
use crate::error::Result;
use crate::store::blocking;

/// Arguments of `tables`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let store = ctx.store_to_read().await?;
    let stats = blocking(move || store.table_stats()).await?;
    if args.json {
        return print(&to_json(&stats)?);
    }
    let mut out = format!(
        "{:<32} {:>12} {:>12} {:>12}",
        "TABLE", "ROWS", "TOMBSTONES", "SEQ"
    );
    for s in &stats {
        out.push_str(&format!(
            "\n{:<32} {:>12} {:>12} {:>12}",
            s.table, s.rows, s.tombstones, s.max_seq
        ));
    }
    print(&out)
}
