//! Who may write a task's destination: one store, its owner.
//!
//! Two stores that deliver the same task into the same destination corrupt it without an
//! error: each numbers its objects from its own state, so one replaces or removes the other's
//! objects, and each store's live set and manifests describe a lake that is no longer there (a
//! command run from a subfolder that made itself a second, empty store did exactly that).
//! So a destination has one owner, recorded in the destination itself:
//! `<destination>/_lakeport/<task>/owner.json` ([`OwnerMarker`]: the owning store's id and
//! location, the task, when and from which host it was claimed, and the owner before it when
//! the task was moved).
//!
//! - **Every run checks it first** ([`ensure_owner`]), before it deletes or writes anything
//!   in the destination (the clean-up of earlier runs and the take-over of an interrupted run
//!   included). A marker naming another store refuses the run ([`Error::NotOwner`], exit 1)
//!   naming both stores and the way to move the task deliberately.
//! - **The first run claims it**: with no marker, a run writes one naming its store, only if
//!   none exists ([`Destination::put_if_absent`]: create-new in a local folder, a conditional
//!   put on S3, GCS and Azure), so of two stores racing to claim a destination one wins and
//!   the other is refused. The claim then reads the marker back and defers to the one that
//!   stands: an S3-compatible server that checks the condition and writes in two steps (the
//!   tests' s3s-fs does) can let two claims made in the same instant through. A destination without a marker that already holds the task's
//!   objects or run manifests, delivered by a store that has no record of the task, is not
//!   claimed automatically (it was written by another store, or by lakeport before owners
//!   existed): the run is refused, and `lakeport claim <task>` claims it deliberately.
//! - **A task moves deliberately** ([`claim`], `lakeport claim <task> [--force]`): the
//!   claiming store adopts the task's objects found in the destination as its live set
//!   ([`Store::adopt_task`]), the previous owner's run manifests move to
//!   `_lakeport/<task>/previous/<store id>/runs/`, and the marker is rewritten naming the new
//!   owner with the previous one in `moved_from`. The task's next run delivers everything the
//!   new store holds (whatever the task's mode) and then removes the adopted objects, as a
//!   full run replaces the one before it. `--force` is needed to take a destination from a
//!   store that claimed it; stop that store's runs and services first (the marker stops their
//!   next run, not one in flight).
//!
//! The check costs one small GET per run.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::delivery::config::Task;
use crate::delivery::manifest::manifests_folder;
use crate::error::{Error, Result};
use crate::model::DeliveredObject;
use crate::objstore::destination::Destination;
use crate::store::{blocking, RunOwner, Store, StoreIdentity};

/// Version of the marker's format, written as `format_version`.
pub const OWNER_FORMAT: u32 = 1;

/// The owner marker's path, relative to the destination.
pub fn owner_path(task: &str) -> String {
    format!("_lakeport/{task}/owner.json")
}

/// Where a moved task's previous owner's run manifests go, relative to the destination.
pub fn previous_manifests_folder(task: &str, store_id: &str) -> String {
    format!("_lakeport/{task}/previous/{store_id}/runs")
}

/// `<destination>/_lakeport/<task>/owner.json`: which store delivers the task there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerMarker {
    /// [`OWNER_FORMAT`].
    pub format_version: u32,
    /// The owning store's id ([`StoreIdentity::id`]).
    pub store_id: String,
    /// Where the owning store is, without secrets ([`StoreIdentity::location`]).
    pub store: String,
    /// The task.
    pub task: String,
    /// When the store claimed the destination, ms since epoch UTC.
    pub claimed_ms: i64,
    /// The same instant, RFC 3339 UTC, for people.
    pub claimed_at: String,
    /// The host the claim was made from, when it has a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The owner before, when the task was moved with `lakeport claim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<Box<OwnerMarker>>,
}

impl OwnerMarker {
    /// A marker naming `store` as the owner of `task`'s destination from now.
    fn new(store: &StoreIdentity, task: &str, moved_from: Option<OwnerMarker>) -> OwnerMarker {
        let now = chrono::Utc::now();
        OwnerMarker {
            format_version: OWNER_FORMAT,
            store_id: store.id.clone(),
            store: store.location.clone(),
            task: task.to_string(),
            claimed_ms: now.timestamp_millis(),
            claimed_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            host: RunOwner::this_process().map(|o| o.host),
            moved_from: moved_from.map(Box::new),
        }
    }

    fn to_json(&self) -> Result<Vec<u8>> {
        let mut json =
            serde_json::to_vec_pretty(self).map_err(|e| Error::encode_caused("owner marker", e))?;
        json.push(b'\n');
        Ok(json)
    }

    /// `store ID (LOCATION), claimed from host H at T` for messages.
    fn describe(&self) -> String {
        format!(
            "store {} ({}), claimed{} at {}",
            self.store_id,
            self.store,
            self.host
                .as_deref()
                .map(|h| format!(" from host {h}"))
                .unwrap_or_default(),
            self.claimed_at
        )
    }
}

/// What [`claim`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claimed {
    /// The task.
    pub task: String,
    /// The marker now in the destination.
    pub marker: OwnerMarker,
    /// The store already owned the destination: nothing changed.
    pub already_owned: bool,
    /// Objects of the task found in the destination and adopted as its live set (the next
    /// run removes them once it has delivered).
    pub adopted_objects: usize,
    /// Run manifests of the previous owner moved under `_lakeport/<task>/previous/`.
    pub moved_manifests: usize,
}

/// Makes sure this store owns `task`'s destination before a run touches it, claiming it when
/// nobody does (see the module docs). Another owner, or objects of the task that no store
/// claimed and this store did not write, are an [`Error::NotOwner`]; nothing is written or
/// deleted then.
pub async fn ensure_owner(store: &Arc<dyn Store>, task: &Task, dest: &Destination) -> Result<()> {
    let me = identity(store).await?;
    let path = owner_path(&task.name);
    for _ in 0..2 {
        if let Some(marker) = read_marker(dest, &task.name).await? {
            return owned_by_me(task, dest, &marker, &me);
        }
        if !delivered_here(store, &task.name).await? {
            if let Some(found) = foreign_output(dest, &task.name).await? {
                // A store that claimed it meanwhile and started writing: name that one.
                if let Some(marker) = read_marker(dest, &task.name).await? {
                    owned_by_me(task, dest, &marker, &me)?;
                }
                return Err(Error::NotOwner(format!(
                    "task {}: refused: its destination {} holds {found} that this store ({}, \
                     store {}) did not deliver, and no store has claimed it \
                     ({} is missing: written by lakeport before destinations had owners, or by \
                     another store). Nothing was written or deleted. If this store is to \
                     deliver the task from now on, run `lakeport claim {}` (the next run \
                     re-delivers what this store holds and then removes those objects); \
                     otherwise run lakeport with the store that delivered them (--store).",
                    task.name,
                    dest.url(),
                    me.location,
                    me.id,
                    dest.object_url(&path),
                    task.name
                )));
            }
        }
        let marker = OwnerMarker::new(&me, &task.name, None);
        if dest.put_if_absent(&path, marker.to_json()?).await? {
            // Read back: a store that checks the condition and writes in two steps (some
            // S3-compatible servers) may have let another claim through in the same instant;
            // the marker that stands is the owner.
            if let Some(now) = read_marker(dest, &task.name).await? {
                owned_by_me(task, dest, &now, &me)?;
            }
            tracing::info!(task = %task.name, store = %me.id, "claimed the destination");
            return Ok(());
        }
        // Another process wrote a marker first: look at whose it is.
    }
    Err(Error::NotOwner(format!(
        "task {}: the owner marker {} keeps changing; run again",
        task.name,
        dest.object_url(&path)
    )))
}

/// Checks, without claiming, that no other store owns `task`'s destination (for `store
/// compact`, whose purge trusts this store's checkpoints): a marker naming another store is
/// an [`Error::NotOwner`]; no marker is fine (the task has not delivered anywhere yet).
pub async fn ensure_owned(store: &Arc<dyn Store>, task: &Task, dest: &Destination) -> Result<()> {
    match read_marker(dest, &task.name).await? {
        Some(marker) => owned_by_me(task, dest, &marker, &identity(store).await?),
        None => Ok(()),
    }
}

/// `lakeport claim <task> [--force]`: makes this store the owner of `task`'s destination,
/// adopting what another store delivered there (see the module docs). Without `force`, a
/// destination another store claimed is an [`Error::NotOwner`].
pub async fn claim(
    store: &Arc<dyn Store>,
    task: &Task,
    dest: &Destination,
    force: bool,
) -> Result<Claimed> {
    let me = identity(store).await?;
    let path = owner_path(&task.name);
    let previous = read_marker(dest, &task.name).await?;
    if let Some(marker) = &previous {
        if marker.store_id == me.id {
            return Ok(Claimed {
                task: task.name.clone(),
                marker: marker.clone(),
                already_owned: true,
                adopted_objects: 0,
                moved_manifests: 0,
            });
        }
        if !force {
            return Err(not_owner(task, dest, marker, &me));
        }
    }
    let name = task.name.clone();
    let running = blocking({
        let store = Arc::clone(store);
        move || store.runs(Some(&name), 1)
    })
    .await?
    .into_iter()
    .find(|r| r.status == crate::store::RunStatus::Running);
    if let Some(run) = running {
        return Err(Error::Busy(format!(
            "task {}: run {} is in progress in this store; claim the destination when it has \
             ended",
            task.name, run.run_id
        )));
    }
    // Objects this store did not deliver: everything of the task's when another store owned
    // the destination, or when nobody did and this store never delivered the task.
    let adopt = previous.is_some() || !delivered_here(store, &task.name).await?;
    let (mut adopted, mut moved) = (0, 0);
    if adopt {
        let listed = dest.list("").await?;
        let objects = task_objects(&task.name, &listed);
        let next_seq = objects
            .iter()
            .filter_map(|o| object_seq(&task.name, &o.path))
            .max()
            .map_or(0, |s| s + 1);
        adopted = objects.len();
        let name = task.name.clone();
        blocking({
            let store = Arc::clone(store);
            move || store.adopt_task(&name, &objects, next_seq)
        })
        .await?;
        let from = previous
            .as_ref()
            .map_or("unclaimed", |m| m.store_id.as_str());
        let folder = format!("{}/", manifests_folder(&task.name));
        let target = previous_manifests_folder(&task.name, from);
        for (rel, _) in listed.iter().filter(|(p, _)| p.starts_with(&folder)) {
            let file = &rel[folder.len()..];
            dest.rename(rel, &format!("{target}/{file}")).await?;
            moved += 1;
        }
    }
    let marker = OwnerMarker::new(&me, &task.name, previous.clone());
    match &previous {
        Some(_) => dest.put_bytes(&path, marker.to_json()?).await?,
        None => {
            if !dest.put_if_absent(&path, marker.to_json()?).await? {
                let now = read_marker(dest, &task.name).await?;
                if now.as_ref().is_none_or(|m| m.store_id != me.id) {
                    return Err(Error::NotOwner(format!(
                        "task {}: another store claimed the destination {} while this one \
                         did ({}); nothing of it was removed. Run `lakeport claim {} --force` \
                         to take it",
                        task.name,
                        dest.url(),
                        now.map_or_else(|| "its marker is gone again".into(), |m| m.describe()),
                        task.name
                    )));
                }
            }
        }
    }
    tracing::info!(task = %task.name, store = %me.id, adopted, moved_manifests = moved,
        previous = previous.as_ref().map_or("none", |m| m.store_id.as_str()),
        "claimed the destination");
    Ok(Claimed {
        task: task.name.clone(),
        marker,
        already_owned: false,
        adopted_objects: adopted,
        moved_manifests: moved,
    })
}

/// The owner marker of `task` in `dest`, if any. A marker that is not one is an
/// [`Error::NotOwner`] (nobody can tell whose the destination is).
pub async fn read_marker(dest: &Destination, task: &str) -> Result<Option<OwnerMarker>> {
    let path = owner_path(task);
    let Some(bytes) = dest.get_bytes(&path).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::NotOwner(format!(
            "task {task}: the owner marker {} is not valid ({e}); nothing was written or \
             deleted. Put back the marker of the store that delivers the task, or remove it \
             and run `lakeport claim {task}` with that store",
            dest.object_url(&path)
        ))
    })
}

async fn identity(store: &Arc<dyn Store>) -> Result<StoreIdentity> {
    let store = Arc::clone(store);
    blocking(move || store.identity()).await
}

/// Whether this store has delivered `task`: it holds the task's state, which its first
/// succeeded run makes. (A run that failed is no sign: a refused run is recorded too.)
async fn delivered_here(store: &Arc<dyn Store>, task: &str) -> Result<bool> {
    let store = Arc::clone(store);
    let task = task.to_string();
    blocking(move || Ok(store.task_state(&task)?.is_some())).await
}

/// What of `task` is in `dest` already (run manifests, else objects), said for a message;
/// `None` when nothing is.
async fn foreign_output(dest: &Destination, task: &str) -> Result<Option<String>> {
    let manifests = dest.list(&manifests_folder(task)).await?;
    if !manifests.is_empty() {
        return Ok(Some(format!(
            "{} run manifests of the task",
            manifests.len()
        )));
    }
    let objects = task_objects(task, &dest.list("").await?);
    Ok((!objects.is_empty()).then(|| format!("{} objects of the task", objects.len())))
}

/// The objects among `listed` (paths relative to the destination, with sizes) that a run of
/// `task` writes (`<prefix>/<task>_<cid>_<seq>.parquet`), as live-set entries: the partition is
/// the object's folder; rows are not known without reading the object (0).
fn task_objects(task: &str, listed: &[(String, u64)]) -> Vec<DeliveredObject> {
    listed
        .iter()
        .filter(|(path, _)| !path.starts_with('_') && object_seq(task, path).is_some())
        .map(|(path, bytes)| DeliveredObject {
            path: path.clone(),
            partition: path.rsplit_once('/').map_or("", |(dir, _)| dir).to_string(),
            rows: 0,
            bytes: *bytes,
            md5: None,
            seq_range: None,
        })
        .collect()
}

/// The sequence id of an object of `task` named `<task>_<cid>_<seq>.parquet` at the end of
/// `path`, or `None` for any other file.
fn object_seq(task: &str, path: &str) -> Option<u64> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let rest = file
        .strip_prefix(task)?
        .strip_prefix('_')?
        .strip_suffix(".parquet")?;
    let (cid, seq) = rest.split_once('_')?;
    cid.parse::<u32>().ok()?;
    seq.parse::<u64>().ok()
}

/// Ok when `marker` names this store (`me`), else the refusal ([`not_owner`]).
fn owned_by_me(
    task: &Task,
    dest: &Destination,
    marker: &OwnerMarker,
    me: &StoreIdentity,
) -> Result<()> {
    if marker.store_id == me.id {
        Ok(())
    } else {
        Err(not_owner(task, dest, marker, me))
    }
}

/// The refusal of a run (or claim) by a store that does not own the destination.
fn not_owner(task: &Task, dest: &Destination, owner: &OwnerMarker, me: &StoreIdentity) -> Error {
    Error::NotOwner(format!(
        "task {}: refused: its destination {} belongs to another store.\n  owner:      {}\n  \
         this store: store {} ({})\nNothing was written or deleted. Run lakeport with the \
         owner's store (--store), or move the task to this store with `lakeport claim {} \
         --force` (its next run re-delivers what this store holds and removes the previous \
         owner's objects).",
        task.name,
        dest.url(),
        owner.describe(),
        me.id,
        me.location,
        task.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_of_a_task_are_told_by_name() {
        let listed = vec![
            ("dt=2024-01-01/daily_0_7.parquet".to_string(), 10),
            ("daily_1_12.parquet".to_string(), 20),
            ("dt=2024-01-01/daily-x_0_7.parquet".to_string(), 30),
            ("dt=2024-01-01/daily_a_7.parquet".to_string(), 40),
            ("_lakeport/daily/runs/1.json".to_string(), 50),
            ("_dirty/daily/run-1_0.ndjson".to_string(), 60),
        ];
        let objects = task_objects("daily", &listed);
        let found: Vec<(&str, &str, u64)> = objects
            .iter()
            .map(|o| (o.path.as_str(), o.partition.as_str(), o.bytes))
            .collect();
        assert_eq!(
            found,
            [
                ("dt=2024-01-01/daily_0_7.parquet", "dt=2024-01-01", 10),
                ("daily_1_12.parquet", "", 20)
            ]
        );
        assert_eq!(object_seq("daily", "x/daily_3_41.parquet"), Some(41));
        assert_eq!(object_seq("daily", "x/daily_3_41.json"), None);
    }

    #[test]
    fn a_marker_reads_back_and_names_its_store() {
        let me = StoreIdentity {
            id: "id-1".into(),
            created_ms: 1,
            location: "sqlite:/p/lakeport.db".into(),
        };
        let first = OwnerMarker::new(&me, "daily", None);
        let other = StoreIdentity {
            id: "id-2".into(),
            ..me.clone()
        };
        let moved = OwnerMarker::new(&other, "daily", Some(first.clone()));
        let json = moved.to_json().unwrap();
        let back: OwnerMarker = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, moved);
        assert_eq!(back.moved_from.as_deref(), Some(&first));
        assert!(back
            .describe()
            .starts_with("store id-2 (sqlite:/p/lakeport.db), claimed"));
    }
}
