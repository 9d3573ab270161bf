//! Applying one snapshot (an inventory report or a bucket listing) to the store: the report's
//! rows are read ahead on a thread of their own ([`ReadAhead`]) while the store diffs them
//! against the scope in one transaction ([`Store::apply_snapshot`]).

use crate::error::Result;
use crate::inventory::read_ahead::{Producer, ReadAhead};
use crate::inventory::s3::S3Report;
use crate::store::{ImportOutcome, ImportRecord, Store};

/// The draft record of an S3 report about to be imported into `table`, for the scope of its
/// source bucket and `scope_prefix`.
pub fn s3_draft(report: &S3Report, table: &str, scope_prefix: &str) -> ImportRecord {
    ImportRecord {
        import_id: 0,
        table: table.to_string(),
        scope_bucket: report.scope_bucket.clone(),
        scope_prefix: scope_prefix.to_string(),
        manifest_url: report.manifest_url.clone(),
        manifest_md5: report.manifest_md5.clone(),
        provider: "s3".into(),
        created_ms: report.manifest.creation_timestamp_ms,
        imported_ms: 0,
        rows: 0,
        inserted: 0,
        updated: 0,
        deleted: 0,
        unchanged: 0,
        duration_ms: 0,
        seq: 0,
    }
}

/// Imports an opened S3 report as the full state of its scope. Blocks: call from a blocking
/// thread.
pub fn import_s3_report(
    store: &dyn Store,
    report: S3Report,
    table: &str,
    scope_prefix: &str,
) -> Result<ImportOutcome> {
    let draft = s3_draft(&report, table, scope_prefix);
    let producer: Producer = Box::new(move |emit| {
        let mut report = report;
        for change in report.changes() {
            if !emit(change) {
                break;
            }
        }
    });
    import_snapshot(store, &draft, ReadAhead::new(producer))
}

/// Applies the rows `changes` yields as the full state of `draft`'s scope.
pub fn import_snapshot(
    store: &dyn Store,
    draft: &ImportRecord,
    mut changes: ReadAhead,
) -> Result<ImportOutcome> {
    store.apply_snapshot(draft, &mut changes)
}
