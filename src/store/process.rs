//! Which process a run or a shard claim belongs to, and whether that process has ended.
//!
//! A run records its [`RunOwner`] (host, process id and, on Linux, the process's start time
//! in clock ticks since boot, field 22 of `/proc/<pid>/stat`). Another process on the same
//! host can then tell that the owner is gone at once, instead of waiting out the run's lease:
//! the id is free, or it now names a different process or a thread (Linux hands process and
//! thread ids out of one counter, 32,768 of them by default, so an id comes round again
//! within minutes on a busy host, and `/proc/<tid>` answers for a thread too). The start
//! time is what tells the recorded process from a later one with its id. A record without
//! it (written before lakeport recorded it) is judged by the id alone: a reused id looks
//! alive, and the lease decides.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The process a run runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOwner {
    /// The host's name.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// When the process started, in clock ticks since the host booted (Linux); `None` when
    /// not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
}

impl RunOwner {
    /// This process: the host's name, the process id and its start time (`None` when the
    /// host has no name to tell it from others).
    pub fn this_process() -> Option<RunOwner> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())?;
        let host = host.trim();
        let pid = std::process::id();
        (!host.is_empty()).then(|| RunOwner {
            host: host.to_string(),
            pid,
            start_ticks: start_ticks(pid),
        })
    }

    /// Whether this process is known, seen from process `me`, to have ended: it ran on
    /// `me`'s host, is not `me`, and no process has its id now, or the one that has it
    /// started at another time than recorded (a later process, or a thread). A process on
    /// another host is never judged from here.
    pub fn is_gone_seen_from(&self, me: &RunOwner) -> bool {
        if self.host != me.host || self.pid == me.pid || !Path::new("/proc/self").exists() {
            return false;
        }
        match (self.start_ticks, start_ticks(self.pid)) {
            (_, None) => !Path::new(&format!("/proc/{}", self.pid)).exists(),
            (Some(recorded), Some(now)) => recorded != now,
            (None, Some(_)) => false,
        }
    }
}

/// The start time of process (or thread) `pid` in clock ticks since boot: field 22 of
/// `/proc/<pid>/stat`, counted after the command name, which is in parentheses and may hold
/// spaces and parentheses itself. `None` when there is no such process or no `/proc`.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

fn parse_start_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // Fields from the third (state) on; the start time is the 22nd.
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
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
        let me = RunOwner::this_process().expect("this host has a name");
        assert!(me.start_ticks.is_some(), "Linux reports the start time");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let live = RunOwner {
            pid: child.id(),
            start_ticks: start_ticks(child.id()),
            ..me.clone()
        };
        assert!(!live.is_gone_seen_from(&me), "a running child");
        // The same id with another start time: a later process (or a thread) has it now.
        let earlier = RunOwner {
            start_ticks: live.start_ticks.map(|t| t - 1),
            ..live.clone()
        };
        assert!(earlier.is_gone_seen_from(&me));
        // Without a recorded start time a live id is taken as the recorded process.
        let unknown = RunOwner {
            start_ticks: None,
            ..live.clone()
        };
        assert!(!unknown.is_gone_seen_from(&me));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(live.is_gone_seen_from(&me), "ended");
        assert!(
            unknown.is_gone_seen_from(&me),
            "ended, no start time recorded"
        );
        assert!(!me.is_gone_seen_from(&me), "this process");
        let elsewhere = RunOwner {
            host: format!("{}-elsewhere", me.host),
            ..live
        };
        assert!(!elsewhere.is_gone_seen_from(&me), "another host");
    }
}
