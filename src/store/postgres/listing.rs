//! PLACEHOLDER (branch pg-store only): listing and summarising `object_inventory` in PostgreSQL.

use super::postgres::Transaction;
use super::PostgresStore;
use crate::error::Result;
use crate::store::{ListPage, ListQuery, SummaryBy, SummaryRow, TableDef};

pub(super) fn ensure_index(
    _s: &PostgresStore,
    _tx: &mut Transaction<'_>,
    _def: &TableDef,
) -> Result<()> {
    Ok(())
}
pub(super) fn list_objects(_s: &PostgresStore, _q: &ListQuery) -> Result<ListPage> {
    todo!()
}
pub(super) fn summarize_objects(
    _s: &PostgresStore,
    _bucket: &str,
    _prefix: &str,
    _by: SummaryBy,
) -> Result<Vec<SummaryRow>> {
    todo!()
}
