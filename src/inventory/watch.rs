//! Watching a report root for inventory reports: the trigger a cloud function gives the
//! managed pipelines, done by listing. [`scan`] finds the reports; a [`Watcher`] imports the
//! complete ones it has not handled yet, oldest first, one pass at a time. `lakeport inventory
//! watch` runs passes on an interval; `lakeport serve` runs the watchers declared in the
//! pipelines folder ([`WatchDef`], `kind: inventory-watch`) on their schedules.
//!
//! A watcher file's keys: `kind: inventory-watch`, `name` (3–16 chars: lowercase letters,
//! digits, hyphens; unique among tasks and watchers), `root` (the report root: a path, relative
//! to the project folder, or a `file://`, `s3://`, `gs://`, `az://` URL), `schedule` (cron with
//! seconds, or `@hourly`, `@daily`…), `schedule_timezone` [UTC] (the IANA zone the schedule's
//! times are read in; see [`crate::config::schedule`]), `format` [from each manifest] (`s3`,
//! `oss`, `obs`; with `obs` every manifest counts as complete), `scope_prefix` [""] (the key
//! prefix the reports' inventory rule covers; objects outside it are kept), `storage` (the
//! report root's store options, as in a task file: endpoint, region, path style, plain http,
//! credentials by the names of environment variables; see [`crate::config`]). The reports'
//! manifests and data files are read with the same options.
//!
//! A report is a `manifest.json` anywhere under the root. It is **complete** when:
//! - a `manifest.checksum` sits beside it (S3 and OSS write the checksum after the manifest,
//!   which they write after every data file), or
//! - its folder holds a `files/` folder (the OBS layout, data files inside the report's own
//!   timestamp folder; OBS writes no checksum and writes the manifest last), or
//! - the caller says every manifest is complete (`--format obs`).
//!
//! Anything else is **waiting**: seen, not imported yet, looked at again on the next scan.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use crate::config::keys::{read_mapping, Section};
use crate::config::schedule::{parse_zone, Schedule};
use crate::config::{
    checked_name, resolve_destination, storage_section, Kind, PipelineFile, Problems, StorageKeys,
};
use crate::error::{Error, Result};
use crate::inventory::import::import_report;
use crate::inventory::report::{open_report_with, Provider, Report};
use crate::model::TableDef;
use crate::objstore::destination::Destination;
use crate::objstore::storage::StorageOptions;
use crate::store::{blocking, ImportOutcome, Store};

/// An inventory watcher declared in the pipelines folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchDef {
    /// Watcher name.
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// What it watches and how reports are applied.
    pub target: WatchTarget,
    /// Cron schedule (with seconds) of its passes, as written.
    pub schedule: String,
    /// The schedule in its timezone.
    pub cron: Schedule,
}

/// A report root and how its reports are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTarget {
    /// The report root: a URL, or an absolute local path.
    pub root: String,
    /// The report format, when the manifests should not decide (`obs`: every manifest is
    /// complete).
    pub format: Option<Provider>,
    /// The key prefix the reports' inventory rule covers.
    pub scope_prefix: String,
    /// The report root's store options (also used for every report's files).
    pub storage: StorageOptions,
}

/// A watcher file as written: every key typed, unknown keys refused; [`check_watcher`]
/// checks what they mean.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchKeys {
    /// Told apart by [`crate::config::read_pipeline_files`]; a known key here.
    #[allow(dead_code)]
    kind: Option<String>,
    name: Option<String>,
    root: Option<String>,
    schedule: Option<String>,
    schedule_timezone: Option<String>,
    format: Option<String>,
    scope_prefix: Option<String>,
    #[serde(default)]
    storage: Section<StorageKeys>,
}

/// Checks the watcher files among `files`; their problems are added to `problems`.
pub(crate) fn check_watchers(
    files: &[PipelineFile],
    project: &Path,
    problems: &mut Vec<String>,
) -> BTreeMap<String, WatchDef> {
    let mut watchers: BTreeMap<String, WatchDef> = BTreeMap::new();
    for file in files.iter().filter(|f| f.kind == Kind::InventoryWatch) {
        let mut file_problems = Problems::new(&file.path);
        if let Some(def) = check_watcher(&file.map, &file.path, project, &mut file_problems) {
            if let Some(other) = watchers.get(&def.name) {
                file_problems.push(
                    "name",
                    format!("{:?} is already used by {}", def.name, other.file.display()),
                );
            } else if file_problems.is_empty() {
                watchers.insert(def.name.clone(), def);
            }
        }
        problems.extend(file_problems.lines);
    }
    watchers
}

fn check_watcher(
    map: &serde_yaml::Mapping,
    path: &Path,
    project: &Path,
    problems: &mut Problems,
) -> Option<WatchDef> {
    let keys: WatchKeys = read_mapping(map, "", problems);
    let name = checked_name(keys.name, problems);
    let root = match keys.root {
        None => {
            problems.push("root", "required: the folder or URL reports appear under");
            None
        }
        Some(r) => match resolve_destination(&r, project) {
            Ok(root) if is_missing_folder(&root) => {
                problems.push("root", format!("{root}: no such folder"));
                None
            }
            Ok(root) => Some(root),
            Err(e) => {
                problems.push("root", e);
                None
            }
        },
    };
    let storage = storage_section(&keys.storage, root.as_deref(), problems);
    let zone = match keys.schedule_timezone {
        None => chrono_tz::UTC,
        Some(name) => parse_zone(&name).unwrap_or_else(|e| {
            problems.push("schedule_timezone", e);
            chrono_tz::UTC
        }),
    };
    let schedule = match keys.schedule {
        None => {
            problems.push("schedule", "required: cron with seconds, @hourly, @daily…");
            None
        }
        Some(s) if s.trim() == "continuous" => {
            problems.push(
                "schedule",
                "continuous: a watcher lists its root on a cron schedule; expected cron with \
                 seconds (e.g. \"0 */5 * * * *\"), @hourly or @daily",
            );
            None
        }
        Some(s) => match Schedule::new(&s, zone) {
            Ok(Some(cron)) => Some((s, cron)),
            Ok(None) => None,
            Err(e) => {
                problems.push("schedule", e);
                None
            }
        },
    };
    let format = match keys.format {
        None => Some(None),
        Some(f) => match f.parse::<Provider>() {
            Ok(p) => Some(Some(p)),
            Err(_) => {
                problems.push("format", format!("{f:?}: expected s3, oss or obs"));
                None
            }
        },
    };
    let scope_prefix = keys.scope_prefix.unwrap_or_default();
    let (schedule, cron) = schedule?;
    Some(WatchDef {
        name: name?,
        file: path.to_path_buf(),
        target: WatchTarget {
            root: root?,
            format: format?,
            scope_prefix,
            storage,
        },
        schedule,
        cron,
    })
}

/// Whether `root` names a local folder that does not exist (URLs are not looked at: whether
/// a bucket answers is a pass's business).
pub fn is_missing_folder(root: &str) -> bool {
    !root.contains("://") && !Path::new(root).is_dir()
}

/// What a pass saw, as it happens.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// A report seen for the first time that is not complete yet.
    Waiting(&'a str),
    /// A report was applied, or found applied before.
    Imported {
        /// What the store did.
        outcome: &'a ImportOutcome,
        /// How long it took.
        seconds: f64,
    },
    /// A report failed.
    Failed {
        /// Its manifest.
        url: &'a str,
        /// Why.
        error: &'a Error,
        /// Whether it is skipped from now on (a retry cannot fix it); otherwise it is tried
        /// again on the next pass.
        skipped: bool,
    },
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassSummary {
    /// Reports applied.
    pub applied: u64,
    /// Reports found applied before.
    pub already_imported: u64,
    /// Reports that failed.
    pub failed: u64,
    /// Reports not complete yet.
    pub waiting: u64,
    /// Rows of the applied reports.
    pub rows: u64,
}

/// Imports the complete reports under a root that it has not handled yet, pass by pass.
/// It remembers what it handled for its own life; after a restart, reports applied before
/// are recognised by the store (by manifest identity) without their data being read.
#[derive(Debug)]
pub struct Watcher {
    target: WatchTarget,
    root: Destination,
    table: TableDef,
    handled: HashSet<String>,
    announced: HashSet<String>,
}

impl Watcher {
    /// A watcher of `target` that applies reports to `table`.
    pub fn new(target: WatchTarget, table: TableDef) -> Result<Watcher> {
        let root = Destination::open(&target.root, &target.storage)?;
        Ok(Watcher {
            target,
            root,
            table,
            handled: HashSet::new(),
            announced: HashSet::new(),
        })
    }

    /// What it watches.
    pub fn target(&self) -> &WatchTarget {
        &self.target
    }

    /// Lists the root once and imports the complete reports not handled yet, in creation
    /// order, telling `on_event` as it goes. A report that fails for a reason retrying
    /// cannot fix (bad input, older than the store's state) is skipped from then on; other
    /// failures are retried on the next pass. Fails only when the root cannot be listed.
    pub async fn pass(
        &mut self,
        store: &Arc<dyn Store>,
        on_event: &mut (dyn FnMut(WatchEvent<'_>) + Send),
    ) -> Result<PassSummary> {
        let found = scan(&self.root, self.target.format == Some(Provider::Obs)).await?;
        let mut summary = PassSummary {
            waiting: found.waiting.len() as u64,
            ..PassSummary::default()
        };
        for url in &found.waiting {
            if self.announced.insert(url.clone()) {
                on_event(WatchEvent::Waiting(url));
            }
        }
        let new: Vec<String> = found
            .complete
            .into_iter()
            .filter(|u| !self.handled.contains(u))
            .collect();
        let opened = {
            let (table, format) = (self.table.clone(), self.target.format);
            let storage = self.target.storage.clone();
            blocking(move || {
                Ok(new
                    .into_iter()
                    .map(|url| {
                        let report = open_report_with(&url, format, &table, &storage);
                        (url, report)
                    })
                    .collect::<Vec<_>>())
            })
            .await?
        };
        let mut reports: Vec<Report> = Vec::new();
        for (url, report) in opened {
            match report {
                Ok(r) => reports.push(r),
                Err(e) => {
                    summary.failed += 1;
                    self.fail(&url, &e, on_event);
                }
            }
        }
        reports.sort_by(|a, b| {
            (a.info.created_ms, &a.info.manifest_url)
                .cmp(&(b.info.created_ms, &b.info.manifest_url))
        });
        for report in reports {
            let url = report.info.manifest_url.clone();
            let (store, table, prefix) = (
                Arc::clone(store),
                self.table.table.clone(),
                self.target.scope_prefix.clone(),
            );
            let started = Instant::now();
            let outcome =
                blocking(move || import_report(store.as_ref(), report, &table, &prefix)).await;
            match outcome {
                Ok(outcome) => {
                    self.handled.insert(url);
                    match &outcome {
                        ImportOutcome::Applied(r) => {
                            summary.applied += 1;
                            summary.rows += r.rows;
                        }
                        ImportOutcome::AlreadyImported(_) => summary.already_imported += 1,
                    }
                    on_event(WatchEvent::Imported {
                        outcome: &outcome,
                        seconds: started.elapsed().as_secs_f64(),
                    });
                }
                Err(e) => {
                    summary.failed += 1;
                    self.fail(&url, &e, on_event);
                }
            }
        }
        Ok(summary)
    }

    /// Reports a failed report; remembers it as handled unless a retry could succeed.
    fn fail(
        &mut self,
        url: &str,
        error: &Error,
        on_event: &mut (dyn FnMut(WatchEvent<'_>) + Send),
    ) {
        let skipped = matches!(
            error,
            Error::InvalidInput(_)
                | Error::Conflict(_)
                | Error::InvalidConfig(_)
                | Error::NotFound(_)
        );
        if skipped {
            self.handled.insert(url.to_string());
        }
        on_event(WatchEvent::Failed {
            url,
            error,
            skipped,
        });
    }
}

/// What one scan of a report root found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// URLs of complete reports' `manifest.json`, sorted by URL (the caller orders them by
    /// creation time once it has read them).
    pub complete: Vec<String>,
    /// URLs of manifests whose report is not complete yet.
    pub waiting: Vec<String>,
}

/// Lists `root` and sorts its manifests into complete and waiting reports; with
/// `all_complete`, every manifest counts as complete.
pub async fn scan(root: &Destination, all_complete: bool) -> Result<Scan> {
    let objects = root.list("").await?;
    let paths: BTreeSet<&str> = objects.iter().map(|(p, _)| p.as_str()).collect();
    let mut found = Scan::default();
    for path in &paths {
        let (folder, name) = match path.rsplit_once('/') {
            Some((folder, name)) => (folder, name),
            None => ("", *path),
        };
        if name != "manifest.json" {
            continue;
        }
        let sibling = |rel: &str| {
            if folder.is_empty() {
                rel.to_string()
            } else {
                format!("{folder}/{rel}")
            }
        };
        let checksum = sibling("manifest.checksum");
        let files_folder = sibling("files/");
        let complete = all_complete
            || paths.contains(checksum.as_str())
            || paths
                .range(files_folder.as_str()..)
                .next()
                .is_some_and(|p| p.starts_with(&files_folder));
        let url = root.object_url(path);
        if complete {
            found.complete.push(url);
        } else {
            found.waiting.push(url);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &std::path::Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[tokio::test]
    async fn complete_reports_have_a_checksum_or_the_obs_layout() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        touch(r, "d/src/cfg/2024-01-01T00-00Z/manifest.json");
        touch(r, "d/src/cfg/2024-01-01T00-00Z/manifest.checksum");
        touch(r, "d/src/cfg/2024-01-02T00-00Z/manifest.json"); // no checksum yet
        touch(r, "d/src/cfg/data/a.csv.gz");
        touch(r, "obs/src/inv/2024-01-01T00-00Z/manifest.json");
        touch(r, "obs/src/inv/2024-01-01T00-00Z/files/u_1.csv");
        touch(r, "manifest.json.bak");
        let root = Destination::parse(&r.display().to_string()).unwrap();
        let found = scan(&root, false).await.unwrap();
        let rel = |urls: &[String]| -> Vec<String> {
            urls.iter()
                .map(|u| u.trim_start_matches(root.url()).to_string())
                .collect()
        };
        assert_eq!(
            rel(&found.complete),
            [
                "/d/src/cfg/2024-01-01T00-00Z/manifest.json",
                "/obs/src/inv/2024-01-01T00-00Z/manifest.json"
            ]
        );
        assert_eq!(
            rel(&found.waiting),
            ["/d/src/cfg/2024-01-02T00-00Z/manifest.json"]
        );
        let all = scan(&root, true).await.unwrap();
        assert_eq!(all.complete.len(), 3);
        assert!(all.waiting.is_empty());
    }
}
