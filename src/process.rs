//! Processes on this host: when one started, and whether the process a record names has
//! ended. Shared by the store (which process runs a run, or holds a shard) and the sink (which
//! process owns a spool file).
//!
//! Linux hands process and thread ids out of one counter (32,768 of them by default), so an id
//! comes round again within minutes on a busy host, and `/proc/<id>` answers for a thread as
//! well as for a process. A process is therefore recorded with its start time, in clock ticks
//! since boot (field 22 of `/proc/<pid>/stat`): the same id with another start time is a later
//! process (or a thread), and the recorded one has ended. A record without a start time (made
//! by an older lakeport) is judged by the id alone, so a reused id looks alive.

use std::path::Path;

/// When process (or thread) `pid` started, in clock ticks since boot, or `None` when there is
/// no such process (or no `/proc`).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

/// Field 22 of a `/proc/<pid>/stat` line, counted after the command name, which is in
/// parentheses and may hold spaces and parentheses itself.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // Fields from the third (the state) on: the start time is the 22nd.
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether the process recorded as `pid` (started at `start_ticks`, when known) has ended.
/// Only meaningful where `/proc` exists ([`has_proc`]).
pub fn is_gone(pid: u32, start_ticks: Option<u64>) -> bool {
    match start_ticks {
        Some(start) => self::start_ticks(pid) != Some(start),
        None => !Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// Whether this system has `/proc` to judge processes by.
pub fn has_proc() -> bool {
    Path::new("/proc/self").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_after_the_command_name() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 97 0 0 0 0 0 0 0 20 0 1 0 \
                    123456 2400000 200 18446744073709551615";
        assert_eq!(parse_start_ticks(stat), Some(123_456));
        assert_eq!(parse_start_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_start_ticks("no name"), None);
    }

    #[test]
    fn an_ended_process_or_a_later_one_with_its_id_is_gone_and_a_live_one_is_not() {
        assert!(has_proc());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let started = start_ticks(pid);
        assert!(started.is_some(), "Linux reports the start time");
        assert!(!is_gone(pid, started), "a running child");
        assert!(!is_gone(pid, None), "without a start time, the id decides");
        // The same id with another start time: a later process (or a thread) has it now.
        assert!(is_gone(pid, started.map(|t| t - 1)));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(is_gone(pid, started), "ended");
        assert!(is_gone(pid, None), "ended, no start time recorded");
    }
}
