//! A large import into an empty scope, written with a rollback journal while the process holds
//! the store alone.
//!
//! In WAL mode every page a transaction writes goes to the `-wal` file first, and the
//! checkpoint at commit copies it into the store: a first import of 10M objects wrote its
//! 2.1 GB twice, and the store's folder needed room for both. A rollback journal keeps instead
//! the original of each page the transaction changes, and a page past the store's end at the
//! start of the transaction has no original. An import into an empty scope adds almost all of
//! its pages, so its journal stays small and each page is written once (10M objects, measured
//! 2026-12-08: 49.5 s through the WAL, 44.4 s with the journal; `docs/store.md`).
//!
//! The price is sharing. SQLite leaves WAL mode only when no other connection has the store
//! open, and while a rollback-journal transaction writes, no other connection can read. So
//! only a store opened for a one-shot command ([`Access::ReadWriteAlone`]: `inventory import`,
//! `snapshot`) writes this way, and only when the switch succeeds at once. A store that
//! `serve`, `inventory watch` or any other process has open is written through the WAL as
//! before. A process that opens the store while the import writes waits up to the busy timeout
//! (30 s), then fails naming the store; the marker file beside the store
//! ([`marker_path`]) lets its message say which process holds the store and since when.
//!
//! After the commit, or a failure, the store goes back to WAL mode. A kill meanwhile leaves a
//! hot journal (`-journal` beside the store): the next connection rolls it back, so the store
//! is as before the import, and the next [`SqliteStore::open`](super::SqliteStore::open)
//! switches it back to WAL mode.
//!
//! [`Access::ReadWriteAlone`]: crate::store::Access::ReadWriteAlone

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{db, BUSY_TIMEOUT};
use crate::error::{Error, Result};

/// The file beside the store that says which process holds it for a large import: its
/// process id and the time it took the store, one line. Written before the switch, removed
/// after the switch back; one left by a killed process is stale and only read in messages.
pub(super) fn marker_path(store: &Path) -> PathBuf {
    beside(store, "-lakeport-import")
}

/// The rollback journal SQLite keeps beside `store` while a transaction in rollback mode writes.
pub(super) fn journal_path(store: &Path) -> PathBuf {
    beside(store, "-journal")
}

/// The file named as `store` with `suffix` appended, in the same folder.
fn beside(store: &Path, suffix: &str) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Rolls back the journal an import killed while it held `store` alone left beside it, if
/// there is one, before a read-only open: SQLite rolls a hot journal back on the first read of
/// a connection that may write, and a read-only one refuses to read past it. A journal that
/// a running import still writes is not hot: the read waits for that import like any other
/// (and fails, naming it, after the busy timeout). A store lakeport cannot write is refused
/// with what to do.
pub(super) fn roll_back_if_left(store: &Path) -> Result<()> {
    let journal = journal_path(store);
    if !journal.exists() {
        return Ok(());
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let rolled_back = Connection::open_with_flags(store, flags).and_then(|conn| {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
    });
    match rolled_back {
        Ok(_) => Ok(()),
        Err(e) if is_busy(&e) => Err(super::waited_in_vain(store, "opening", " for reading", e)),
        Err(e) => Err(Error::store_caused(
            format!(
                "store {}: an import that held the store alone was interrupted, and its \
                 rollback journal {} must be rolled back before the store can be read; run any \
                 lakeport command that writes the store (e.g. `lakeport store compact`) where \
                 the store and its folder are writable",
                store.display(),
                journal.display()
            ),
            e,
        )),
    }
}

/// Switches `conn`, the store's write connection, from WAL mode to a rollback journal when no
/// other connection has the store open; `true` when it did. The switch is tried once, without
/// waiting: a store in use is written through the WAL.
pub(super) fn take_alone(conn: &Connection, store: &Path) -> Result<bool> {
    let marker = marker_path(store);
    let holder = format!(
        "process {} since {}",
        std::process::id(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    );
    // The marker is only a courtesy to other processes' messages: without it they still wait
    // and fail, so a folder that refuses it does not stop the import.
    let _ = std::fs::write(&marker, holder);
    conn.busy_timeout(Duration::ZERO)
        .map_err(db("setting the busy timeout"))?;
    let switched = conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get::<_, String>(0));
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db("setting the busy timeout"))?;
    let alone = match switched {
        Ok(mode) => mode.eq_ignore_ascii_case("delete"),
        Err(e) if is_busy(&e) => false,
        Err(e) => {
            let _ = std::fs::remove_file(&marker);
            return Err(db("leaving WAL mode for a large import")(e));
        }
    };
    if !alone {
        let _ = std::fs::remove_file(&marker);
        return Ok(false);
    }
    // The journal is the only copy of the pages the import changes: sync it before them.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db("setting synchronous=FULL for a large import"))?;
    Ok(true)
}

/// Switches `conn` back to WAL mode after [`take_alone`], waiting for readers that got in
/// meanwhile, and removes the marker.
pub(super) fn give_back(conn: &Connection, store: &Path) -> Result<()> {
    let back = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .map_err(db("going back to WAL mode after a large import"))
        .and_then(|_| {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(db("setting synchronous=NORMAL"))
        });
    let _ = std::fs::remove_file(marker_path(store));
    back
}

/// What the marker beside `store` says of the process that holds it (`process N since T`),
/// when there is one: for the message of a connection that waited in vain.
pub(super) fn holder(store: &Path) -> Option<String> {
    let text = std::fs::read_to_string(marker_path(store)).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// Whether `e` is SQLite's "busy" or "locked": another connection holds what was asked for.
pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}
