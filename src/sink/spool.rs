//! Spool files: where an object is encoded before it is uploaded whole.
//!
//! They live in `LAKEPORT_SPOOL_DIR` (default the system temp folder), are named
//! `lakeport-<pid>@<start>-<random><suffix>` (`<start>`: when the process started, in clock
//! ticks since boot, from `/proc/<pid>/stat`) and are removed once uploaded or when their
//! writer is dropped. A process killed mid-run cannot remove its own, so the first run of a
//! process, and then one run every [`SWEEP_INTERVAL`] (a service or a continuous task runs
//! often), removes the spool files of lakeport processes that are no longer running: no
//! process has the PID, or the process that has it started at another time (a PID reused;
//! in a container lakeport is PID 1 after every restart). Names without `@<start>` (older
//! versions) are judged by the PID alone ([`crate::process`]). On systems without `/proc`
//! nothing is removed.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::process;

/// Environment variable naming the folder for spool files.
pub const SPOOL_DIR_ENV: &str = "LAKEPORT_SPOOL_DIR";

/// Start of every spool file's name.
const PREFIX: &str = "lakeport-";

/// The spool folder: `LAKEPORT_SPOOL_DIR` when set, else the system temp folder.
pub fn default_spool_dir() -> PathBuf {
    match std::env::var_os(SPOOL_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::temp_dir(),
    }
}

/// A new spool file in `dir`, named for this process, ending in `suffix`.
pub fn spool_file(dir: &Path, suffix: &str) -> Result<NamedTempFile> {
    let pid = std::process::id();
    let owner = match process::start_ticks(pid) {
        Some(start) => format!("{PREFIX}{pid}@{start}-"),
        None => format!("{PREFIX}{pid}-"),
    };
    tempfile::Builder::new()
        .prefix(&owner)
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|e| Error::io("create spool file in", dir, e))
}

/// How often a long-lived process looks for dead processes' spool files.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// When this process last looked for them.
static LAST_SWEEP: Mutex<Option<Instant>> = Mutex::new(None);

/// Whether a run should look for dead processes' spool files now: true for the process's
/// first run, then once per [`SWEEP_INTERVAL`] (and the answer true is taken: the next
/// caller within the interval gets false).
pub fn sweep_due() -> bool {
    let mut last = LAST_SWEEP.lock().unwrap_or_else(PoisonError::into_inner);
    let due = last.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL);
    if due {
        *last = Some(Instant::now());
    }
    due
}

/// Removes the spool files in `dir` whose process is no longer running and returns how many.
/// Files it cannot read or remove are left alone (a folder shared with other users).
pub fn remove_stale_spool_files(dir: &Path) -> usize {
    if !process::has_proc() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(spool_owner) else {
            continue;
        };
        if process::is_gone(pid, start) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The PID and, when the name has it, the start time of the process in a spool file's name
/// (`lakeport-<pid>[@<start>]-<random>.<kind>.spool`).
fn spool_owner(name: &str) -> Option<(u32, Option<u64>)> {
    if !name.ends_with(".spool") {
        return None;
    }
    let (owner, _) = name.strip_prefix(PREFIX)?.split_once('-')?;
    match owner.split_once('@') {
        Some((pid, start)) => Some((pid.parse().ok()?, Some(start.parse().ok()?))),
        None => Some((owner.parse().ok()?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_is_due_once_per_interval() {
        // Other tests of this process may have swept already: after any call, the next
        // within the interval is not due.
        let _ = sweep_due();
        assert!(!sweep_due());
        *LAST_SWEEP.lock().unwrap() = Some(Instant::now() - SWEEP_INTERVAL);
        assert!(sweep_due());
        assert!(!sweep_due());
    }

    #[test]
    fn owners_are_read_from_spool_names() {
        assert_eq!(
            spool_owner("lakeport-123-abc.parquet.spool"),
            Some((123, None))
        );
        assert_eq!(
            spool_owner("lakeport-123@4567-abc.parquet.spool"),
            Some((123, Some(4567)))
        );
        assert_eq!(spool_owner("lakeport-abc.parquet.spool"), None);
        assert_eq!(spool_owner("lakeport-1@x-abc.parquet.spool"), None);
        assert_eq!(spool_owner("lakeport-123-abc.parquet"), None);
        assert_eq!(spool_owner("other-123-abc.parquet.spool"), None);
    }

    /// A file named for this process's PID but another start time is a PID reused (a
    /// container's PID 1 after a restart): removed. This process's own files are kept.
    #[test]
    fn a_reused_pid_does_not_keep_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let mine = spool_file(dir.path(), ".parquet.spool").unwrap();
        let pid = std::process::id();
        let start = process::start_ticks(pid).unwrap();
        assert!(
            mine.path()
                .to_str()
                .unwrap()
                .contains(&format!("lakeport-{pid}@{start}-")),
            "{:?}",
            mine.path()
        );
        let earlier = dir
            .path()
            .join(format!("lakeport-{pid}@{}-x.parquet.spool", start + 1));
        std::fs::write(&earlier, b"half").unwrap();
        assert_eq!(remove_stale_spool_files(dir.path()), 1);
        assert!(!earlier.exists() && mine.path().exists());
    }

    #[test]
    fn only_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mine = spool_file(dir.path(), ".parquet.spool").unwrap();
        // A child that has exited and been reaped: its PID names no process any more.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!("lakeport-{dead}-x.parquet.spool"));
        std::fs::write(&stale, b"half").unwrap();
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, b"keep").unwrap();
        assert_eq!(remove_stale_spool_files(dir.path()), 1);
        assert!(!stale.exists() && other.exists() && mine.path().exists());
    }
}
