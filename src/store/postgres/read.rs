//! PLACEHOLDER
use super::PostgresStore;
use crate::error::Result;
use crate::store::Snapshot;
pub(super) fn snapshot(_s: &PostgresStore, _t: &str, _n: usize) -> Result<Snapshot> {
    todo!()
}
pub(super) fn changes(_s: &PostgresStore, _t: &str, _a: u64, _n: usize, _d: bool) -> Result<Snapshot> {
    todo!()
}
