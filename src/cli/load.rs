//! `lakeport load <table> <file>...`: upsert rows from NDJSON or CSV files, or delete the keys
//! they name. Each file is one transaction: it applies whole or not at all; files before a bad
//! one stay applied, files after it are not read. Reading and value rules:
//! [`crate::inventory::rows`].

use std::path::PathBuf;

use crate::cli::{print, Context};
use crate::error::{Error, Result};
use crate::inventory::rows::{apply_file, RowAction, RowFormat};
use crate::store::blocking;

/// Arguments of `load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Table to load into.
    table: String,
    /// Row files (NDJSON: .ndjson/.jsonl/.json; CSV with a header: .csv; each also gzipped,
    /// as .ndjson.gz, .csv.gz, ...).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// File format, when the extension does not say.
    #[arg(long, value_enum)]
    format: Option<RowFormat>,
    /// Delete the keys the rows name instead of upserting them.
    #[arg(long)]
    delete: bool,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let tables = ctx.tables()?;
    let table = tables.get(&args.table).cloned().ok_or_else(|| {
        Error::NotFound(format!(
            "table {:?} is not declared (declared: {})",
            args.table,
            tables.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let mut formats = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let format = args.format.or_else(|| RowFormat::from_path(file)).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "{}: cannot tell the format from the extension; expected .ndjson, .jsonl, .json or .csv (each optionally followed by .gz), or pass --format",
                file.display()
            ))
        })?;
        formats.push(format);
    }
    let action = if args.delete {
        RowAction::Delete
    } else {
        RowAction::Upsert
    };
    let store = ctx.store().await?;
    for (file, format) in args.files.into_iter().zip(formats) {
        let store = store.clone();
        let table = table.clone();
        let path = file.clone();
        let outcome =
            blocking(move || apply_file(store.as_ref(), &path, format, &table, action)).await?;
        print(&format!(
            "loaded {}: {} inserted, {} updated, {} deleted, {} unchanged (seq {})",
            file.display(),
            outcome.inserted,
            outcome.updated,
            outcome.deleted,
            outcome.unchanged,
            outcome.seq
        ))?;
    }
    Ok(())
}
