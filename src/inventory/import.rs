//! Applying one snapshot (an inventory report or a bucket listing) to the store: the report's
//! rows are read ahead on a thread of their own ([`ReadAhead`]) while the store diffs them
//! against the scope in one transaction ([`Store::apply_snapshot`]).

use crate::error::{Error, Result};
use crate::inventory::read_ahead::ReadAhead;
use crate::inventory::report::Report;
use crate::store::{ImportOutcome, ImportRecord, ImportScope, Store};

/// The draft record of a report about to be imported into `table`, for the scope of its
/// source bucket and `scope_prefix`.
pub fn report_draft(report: &Report, table: &str, scope_prefix: &str) -> ImportRecord {
    let info = &report.info;
    ImportRecord::draft(
        table,
        ImportScope {
            bucket: info.source_bucket.clone(),
            prefix: scope_prefix.to_string(),
        },
        &info.manifest_url,
        &info.manifest_md5,
        info.provider.as_str(),
        info.created_ms,
    )
}

/// Imports an opened report as the full state of its scope. Blocks: call from a blocking
/// thread.
pub fn import_report(
    store: &dyn Store,
    report: Report,
    table: &str,
    scope_prefix: &str,
) -> Result<ImportOutcome> {
    let draft = report_draft(&report, table, scope_prefix);
    import_snapshot(
        store,
        &draft,
        ReadAhead::of_iter(move || report.into_changes()),
    )
}

/// Applies the rows `changes` yields as the full state of `draft`'s scope. A failure of the
/// store or of local I/O (a lost server, a full disk) names the snapshot, its manifest or
/// bucket URL; errors in the input name their file and line already.
pub fn import_snapshot(
    store: &dyn Store,
    draft: &ImportRecord,
    mut changes: ReadAhead,
) -> Result<ImportOutcome> {
    store
        .apply_snapshot(draft, &mut changes)
        .map_err(|e| naming_snapshot(&draft.manifest_url, e))
}

/// `e` saying which snapshot failed to import, when it is a store or I/O failure: the
/// snapshot goes in front of its context, its cause stays its source.
fn naming_snapshot(url: &str, e: Error) -> Error {
    match e {
        Error::Store { context, source } => Error::Store {
            context: format!("importing {url}: {context}"),
            source,
        },
        Error::Io { context, source } => Error::Io {
            context: format!("importing {url}: {context}"),
            source,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_io_failures_name_the_snapshot() {
        let url = "s3://inv/b/daily/2024-06-02T01-00Z/manifest.json";
        let closed = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let lost = naming_snapshot(url, Error::store_caused("writing rows", closed));
        assert_eq!(
            lost.to_string(),
            format!("store: importing {url}: writing rows")
        );
        assert_eq!(
            lost.chain().to_string(),
            format!("store: importing {url}: writing rows: connection reset")
        );
        let full = Error::Io {
            context: "sorting rows in a temporary file in /tmp".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        let text = naming_snapshot(url, full).chain().to_string();
        assert!(
            text.starts_with(&format!(
                "importing {url}: sorting rows in a temporary file in /tmp: "
            )),
            "{text}"
        );
        // Input errors already say where (file and line): unchanged.
        let bad = naming_snapshot(
            url,
            Error::InvalidInput("data.csv:3: Size: not a number".into()),
        );
        assert_eq!(bad.to_string(), "data.csv:3: Size: not a number");
    }
}
