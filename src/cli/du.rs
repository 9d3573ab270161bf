//! `lakeport du <bucket>`: counts and bytes of a bucket's current objects, grouped by storage
//! class, first folder, size bucket or month, answered from the `object_inventory` table
//! (semantics in `store::listing`).

use bytesize::ByteSize;

use crate::cli::{print, to_json, Context};
use crate::error::Result;
use crate::store::blocking;
use crate::store::listing::{SummaryBy, SummaryRow};

/// How `du` groups objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "snake_case")]
enum By {
    /// Storage class ("(none)" when the report had none).
    StorageClass,
    /// First folder below --prefix, plus "(files at this level)".
    Prefix,
    /// 0 B, 1 B..1 KiB, 1 KiB..1 MiB, 1..16 MiB, 16..128 MiB, 128 MiB..1 GiB, 1..5 GiB, >= 5 GiB.
    SizeBucket,
    /// Month of last_modified, UTC (yyyy-MM).
    Month,
}

impl From<By> for SummaryBy {
    fn from(by: By) -> SummaryBy {
        match by {
            By::StorageClass => SummaryBy::StorageClass,
            By::Prefix => SummaryBy::Prefix,
            By::SizeBucket => SummaryBy::SizeBucket,
            By::Month => SummaryBy::Month,
        }
    }
}

/// Arguments of `du`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bucket name as in the table's `bucket` column.
    bucket: String,
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Grouping.
    #[arg(long, value_enum, default_value = "storage_class")]
    by: By,
    /// Print the groups as a JSON list of {"group", "objects", "bytes"}.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let store = ctx.store_to_read().await?;
    let by = SummaryBy::from(args.by);
    let (bucket, prefix) = (args.bucket.clone(), args.prefix.clone());
    let rows = blocking(move || store.summarize_objects(&bucket, &prefix, by)).await?;
    if args.json {
        return print(&to_json(&rows)?);
    }
    print(&table(&rows, by))
}

/// An aligned table: group, objects, human size, exact bytes; then a TOTAL line.
fn table(rows: &[SummaryRow], by: SummaryBy) -> String {
    let total = SummaryRow {
        group: "TOTAL".into(),
        objects: rows.iter().map(|r| r.objects).sum(),
        bytes: rows.iter().map(|r| r.bytes).sum(),
    };
    let header = by.as_str().to_uppercase();
    let width = rows
        .iter()
        .map(|r| r.group.chars().count())
        .chain([header.len(), total.group.len()])
        .max()
        .unwrap_or(0);
    let line = |group: &str, objects: &str, size: &str, bytes: &str| {
        let pad = width - group.chars().count().min(width);
        format!("{group}{:pad$}  {objects:>12}  {size:>10}  {bytes:>20}", "")
    };
    let human = |b: u64| ByteSize(b).display().iec().to_string();
    let mut out = vec![line(&header, "OBJECTS", "SIZE", "BYTES")];
    for r in rows.iter().chain([&total]) {
        out.push(line(
            &r.group,
            &r.objects.to_string(),
            &human(r.bytes),
            &r.bytes.to_string(),
        ));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned_with_a_total() {
        let rows = vec![
            SummaryRow {
                group: "été/日本/".into(),
                objects: 2,
                bytes: 1536,
            },
            SummaryRow {
                group: "(files at this level)".into(),
                objects: 1,
                bytes: 5 * 1024 * 1024 * 1024,
            },
        ];
        let t = table(&rows, SummaryBy::Prefix);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("PREFIX "), "{t}");
        assert!(
            lines[1].ends_with("2     1.5 KiB                  1536"),
            "{t}"
        );
        assert!(lines[2].contains("5.0 GiB"), "{t}");
        assert!(lines[3].starts_with("TOTAL "), "{t}");
        assert!(lines[3].ends_with(&format!("{:>20}", 5 * 1024 * 1024 * 1024_u64 + 1536)));
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{widths:?}\n{t}");
        assert_eq!(table(&[], SummaryBy::Month).lines().count(), 2);
    }
}
