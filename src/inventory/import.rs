//! Applying one snapshot (an inventory report or a bucket listing) to the store: the report's
//! rows are read ahead on a thread of their own ([`ReadAhead`]) while the store diffs them
//! against the scope in one transaction ([`Store::apply_snapshot`]).

use crate::error::Result;
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

/// Applies the rows `changes` yields as the full state of `draft`'s scope.
pub fn import_snapshot(
    store: &dyn Store,
    draft: &ImportRecord,
    mut changes: ReadAhead,
) -> Result<ImportOutcome> {
    store.apply_snapshot(draft, &mut changes)
}
