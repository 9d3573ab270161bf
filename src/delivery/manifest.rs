//! Run manifests: after a run's objects are complete and before its checkpoint commits, the run
//! writes `<destination>/_lakeport/<task>/runs/<run id>.json`, listing each object it wrote
//! (path, URL, partition, rows, bytes, MD5, `_seq` range) and the partitions it added, so a
//! downstream job can consume exactly the new files of each run, as S3 Inventory's
//! `manifest.json` lets its consumers do.
//!
//! A manifest is one small put: it appears whole or not at all. It is written before the run
//! commits, so a manifest whose run the store does not record as `succeeded` belongs to a run
//! that failed or was interrupted at its very end: the run (or the run that takes it over)
//! removes it with the run's objects, the manifest first (so it never names objects already
//! gone). Consumers that want certainty check the run's status
//! (`lakeport status --json`); everything a manifest of a succeeded run names is in the lake.
//!
//! Retention: a task keeps the manifests of its newest `manifests.keep` runs (default
//! [`DEFAULT_KEEP`]); older ones are deleted by a later succeeded run. The folder is listed by
//! about one run in sixteen ([`prunes_after`]), so a continuous task (a run a second) does
//! not list it every second; between prunes a task holds up to a few dozen more.

use serde::{Deserialize, Serialize};

use crate::store::RunRecord;

/// Version of the manifest format, written as `format_version`.
pub const MANIFEST_FORMAT: u32 = 1;

/// Manifests a task keeps unless it says otherwise (`manifests.keep`).
pub const DEFAULT_KEEP: usize = 1000;

/// The folder of a task's manifests, relative to the destination.
pub fn manifests_folder(task: &str) -> String {
    format!("_lakeport/{task}/runs")
}

/// Whether run `run_id` prunes its task's old manifests: about one run in sixteen, chosen by
/// a multiplicative hash of the id so that no pattern of ids (tasks taking turns) skips a task.
pub fn prunes_after(run_id: u64) -> bool {
    run_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60 == 0
}

/// Of the manifest files `paths` (relative to the destination, as listed), those to delete so
/// that the newest `keep` runs' manifests remain; files that are not `<run id>.json` are left.
pub fn manifests_to_prune(task: &str, paths: &[String], keep: usize) -> Vec<String> {
    let folder = format!("{}/", manifests_folder(task));
    let mut runs: Vec<(u64, &String)> = paths
        .iter()
        .filter_map(|p| {
            let id = p.strip_prefix(&folder)?.strip_suffix(".json")?;
            Some((id.parse::<u64>().ok()?, p))
        })
        .collect();
    runs.sort_unstable();
    let excess = runs.len().saturating_sub(keep);
    runs[..excess].iter().map(|(_, p)| (*p).clone()).collect()
}

/// The manifest's path relative to the destination.
pub fn manifest_path(task: &str, run_id: u64) -> String {
    format!("{}/{run_id}.json", manifests_folder(task))
}

/// The folder (relative to the destination) where `task`'s runs journal their multipart
/// uploads while they are in progress, one subfolder per run (see
/// [`crate::objstore::destination`]).
pub fn uploads_folder(task: &str) -> String {
    format!("_lakeport/{task}/uploads")
}

/// Run `run_id`'s upload journal folder, inside [`uploads_folder`].
pub fn run_uploads_folder(task: &str, run_id: u64) -> String {
    format!("{}/{run_id}", uploads_folder(task))
}

/// A run manifest, as written to the lake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format_version: u32,
    /// Task name.
    pub task: String,
    /// The run's id in the store.
    pub run_id: u64,
    /// `full`, `incremental` or `differential` (a differential task's first snapshot).
    pub mode: String,
    /// The run delivered the changes with `_seq` above this (0 for a snapshot) …
    pub seq_from: u64,
    /// … up to and including this.
    pub seq_to: u64,
    /// The run's start, ms since epoch UTC.
    pub started_ms: i64,
    /// The destination's root URL; object paths are relative to it.
    pub destination: String,
    /// Rows in all objects.
    pub rows: u64,
    /// Bytes of all objects.
    pub bytes: u64,
    /// Every object of the run, sorted by path.
    pub objects: Vec<ManifestObject>,
    /// Partitions the run wrote to, sorted.
    pub partitions: Vec<String>,
    /// Partitions the run added (the task had no live object under them before), sorted.
    pub new_partitions: Vec<String>,
}

/// One object of a run manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// Path relative to the destination.
    pub path: String,
    /// Full URL.
    pub url: String,
    /// The rendered partition prefix (may be empty).
    pub partition: String,
    /// Rows.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// MD5 of the object's bytes, lowercase hex.
    pub md5: Option<String>,
    /// Lowest `_seq` of its rows (null when the lake schema does not carry `_seq`).
    pub seq_min: Option<u64>,
    /// Highest `_seq` of its rows (null likewise).
    pub seq_max: Option<u64>,
}

impl Manifest {
    /// The manifest of a run about to commit, whose objects are under `destination_url`.
    pub fn of(run: &RunRecord, destination_url: &str) -> Manifest {
        let root = destination_url.trim_end_matches('/');
        Manifest {
            format_version: MANIFEST_FORMAT,
            task: run.task.clone(),
            run_id: run.run_id,
            mode: run.mode.clone(),
            seq_from: run.seq_from,
            seq_to: run.seq_to,
            started_ms: run.started_ms,
            destination: root.to_string(),
            rows: run.rows,
            bytes: run.bytes,
            objects: run
                .objects
                .iter()
                .map(|o| ManifestObject {
                    path: o.path.clone(),
                    url: format!("{root}/{}", o.path),
                    partition: o.partition.clone(),
                    rows: o.rows,
                    bytes: o.bytes,
                    md5: o.md5.clone(),
                    seq_min: o.seq_range.map(|r| r.0),
                    seq_max: o.seq_range.map(|r| r.1),
                })
                .collect(),
            partitions: run.partitions(),
            new_partitions: run.new_partitions.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_runs_manifests() {
        let paths: Vec<String> = [12u64, 3, 40, 7, 100]
            .iter()
            .map(|id| manifest_path("t1", *id))
            .chain(["_lakeport/t1/runs/notes.txt".to_string()])
            .collect();
        assert_eq!(
            manifests_to_prune("t1", &paths, 3),
            [manifest_path("t1", 3), manifest_path("t1", 7)]
        );
        assert!(manifests_to_prune("t1", &paths, 5).is_empty());
        assert_eq!(manifests_to_prune("t1", &paths, 1).len(), 4);
        // About one run in sixteen prunes, whatever the ids' pattern.
        for (start, step) in [(1u64, 1u64), (2, 2), (1, 2), (5, 3), (7, 16)] {
            let n = (0..16_000)
                .filter(|i| prunes_after(start + i * step))
                .count();
            assert!((800..1200).contains(&n), "start {start} step {step}: {n}");
        }
    }
    use crate::model::DeliveredObject;
    use crate::store::RunStatus;
    use std::collections::BTreeMap;

    #[test]
    fn manifest_names_every_object_with_its_url_and_range() {
        let run = RunRecord {
            run_id: 7,
            task: "daily".into(),
            status: RunStatus::Running,
            mode: "incremental".into(),
            started_ms: 1,
            ended_ms: None,
            seq_from: 10,
            seq_to: 20,
            first_object_seq: 3,
            next_object_seq: 5,
            shards: 1,
            rows: 5,
            bytes: 300,
            objects: vec![
                DeliveredObject {
                    path: "dt=2024-01-01/daily_0_3.parquet".into(),
                    partition: "dt=2024-01-01".into(),
                    rows: 2,
                    bytes: 100,
                    md5: Some("ab".into()),
                    seq_range: Some((11, 14)),
                },
                DeliveredObject {
                    path: "dt=2024-01-02/daily_0_4.parquet".into(),
                    partition: "dt=2024-01-02".into(),
                    rows: 3,
                    bytes: 200,
                    md5: None,
                    seq_range: None,
                },
            ],
            dirty: BTreeMap::new(),
            error: None,
            heartbeat_ms: None,
            new_partitions: vec!["dt=2024-01-02".into()],
            owner: None,
        };
        let m = Manifest::of(&run, "s3://b/lake/");
        assert_eq!(manifest_path("daily", 7), "_lakeport/daily/runs/7.json");
        assert_eq!(m.destination, "s3://b/lake");
        assert_eq!(
            m.objects[0].url,
            "s3://b/lake/dt=2024-01-01/daily_0_3.parquet"
        );
        assert_eq!(
            (m.objects[0].seq_min, m.objects[0].seq_max),
            (Some(11), Some(14))
        );
        assert_eq!(
            (m.objects[1].seq_min, m.objects[1].md5.as_deref()),
            (None, None)
        );
        assert_eq!(m.partitions, ["dt=2024-01-01", "dt=2024-01-02"]);
        assert_eq!(m.new_partitions, ["dt=2024-01-02"]);
        assert_eq!((m.seq_from, m.seq_to, m.rows, m.bytes), (10, 20, 5, 300));
    }
}
