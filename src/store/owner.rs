//! Which process a run belongs to ([`RunOwner`]), so that another process on the same host
//! can tell at once that it has ended instead of waiting out the run's lease (how a process is
//! told from a later one with its id: [`crate::process`]).

use serde::{Deserialize, Serialize};

use crate::process;

/// The process a run runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOwner {
    /// The host's name.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// When the process started, in clock ticks since the host booted (Linux); `None` when
    /// not known (records made before lakeport kept it).
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
            start_ticks: process::start_ticks(pid),
        })
    }

    /// Whether this process is known, seen from process `me`, to have ended: it ran on
    /// `me`'s host, is not `me`, and [`process::is_gone`]. A process on another host is never
    /// judged from here.
    pub fn is_gone_seen_from(&self, me: &RunOwner) -> bool {
        self.host == me.host
            && self.pid != me.pid
            && process::has_proc()
            && process::is_gone(self.pid, self.start_ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_process_on_this_host_is_judged() {
        let me = RunOwner::this_process().expect("this host has a name");
        assert!(me.start_ticks.is_some(), "Linux reports the start time");
        assert!(!me.is_gone_seen_from(&me), "this process");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let ended = RunOwner {
            pid: child.id(),
            ..me.clone()
        };
        child.wait().unwrap();
        assert!(ended.is_gone_seen_from(&me));
        let elsewhere = RunOwner {
            host: format!("{}-elsewhere", me.host),
            ..ended
        };
        assert!(!elsewhere.is_gone_seen_from(&me), "another host");
    }
}
