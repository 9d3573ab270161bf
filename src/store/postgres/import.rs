//! PLACEHOLDER
use super::PostgresStore;
use crate::error::Result;
use crate::store::{Change, ImportOutcome, ImportRecord};
pub(super) const CREATE_IMPORTS: &str = "";
pub(super) fn apply_snapshot(
    _s: &PostgresStore,
    _d: &ImportRecord,
    _c: &mut dyn Iterator<Item = Result<Change>>,
) -> Result<ImportOutcome> {
    todo!()
}
pub(super) fn imports(_s: &PostgresStore, _l: usize) -> Result<Vec<ImportRecord>> {
    todo!()
}
