//! A lake root: the object store and base path a task's destination URL names, with the few
//! operations the sink needs (streamed upload of a finished local file, delete, list).
//!
//! A plain path (absolute, or relative to the current directory) or a `file://` URL is a folder
//! on this machine, created when missing and served by object_store's `LocalFileSystem` (which
//! stages every write and renames it into place, so an object is visible only when complete).
//! `s3://`, `gs://`, `az://`/`abfs://` (and the `https://` forms object_store recognises) are
//! built with object_store's builders from the URL, the environment the way the builders'
//! `from_env` read it (`AWS_*`, `GOOGLE_*` and `SERVICE_ACCOUNT`, `AZURE_*` and
//! `IDENTITY_ENDPOINT`), and the task's or command's [`StorageOptions`] on top
//! ([`Destination::open`]).
//!
//! Paths handed to a destination are relative to its root and use `/`. Errors are crate
//! [`Error::Permanent`] or [`Error::Transient`] and name the object's URL; a permanent one
//! also says what to fix (bucket missing, access denied, credentials refused, local folder
//! not writable or full). Every operation retries transient failures with exponential backoff
//! and jitter ([`RetryPolicy`], the `backoff` crate) until its total time is spent, on top of
//! the cloud clients' own per-request retries; an upload is retried whole from its local
//! spool file.
//!
//! **Multipart uploads.** A file larger than one [`UPLOAD_CHUNK`] (8 MiB) goes up in 8 MiB
//! parts, four in flight. An upload that fails is aborted (its parts discarded) before the
//! error is returned or the upload retried; one whose future is dropped (a cancelled run) is
//! aborted on a spawned task. A process that is killed cannot abort, and object_store has no
//! call that lists a bucket's incomplete uploads, so a cloud store's upload is *journaled*
//! when the destination has an upload journal ([`Destination::with_upload_journal`]): right
//! after the upload starts, a small marker object naming the object and its upload id is put
//! under the journal folder, and removed once the upload completes or is aborted. A later run
//! aborts every upload whose marker it finds ([`Destination::abort_journaled_uploads`]), with
//! object_store's own `MultipartStore::abort_multipart`. Only an upload killed between its
//! start and its marker's put (no part uploaded yet) escapes; the bucket lifecycle rule
//! `AbortIncompleteMultipartUpload` remains the backstop. A local folder needs no journal:
//! its staged files are found by name ([`Destination::remove_staged`]).
//!
//! This module knows nothing of Parquet or partitions.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backoff::ExponentialBackoffBuilder;

use bytes::Bytes;
use futures::TryStreamExt;
use md5::{Digest, Md5};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::{Path, PathPart};
use object_store::{
    MultipartId, ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload, WriteMultipart,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use url::Url;

use crate::error::{Error, Result};
use crate::objstore::storage::{StorageOptions, StoreKind};

/// Size of one read from a local file and of one multipart part.
pub const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once (bounds an upload's memory to this many chunks).
const PARTS_IN_FLIGHT: usize = 4;

/// Makes ring the process's TLS crypto provider (once; a provider installed before is kept).
/// The cloud stores' HTTP client (reqwest, built without a provider of its own so that
/// aws-lc's C library is not compiled: see Cargo.toml) asks the process for one when a store
/// is built.
fn use_ring_for_tls() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err: a provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The root of a lake: an object store plus the base path inside it.
#[derive(Clone)]
pub struct Destination {
    url: String,
    store: Arc<dyn ObjectStore>,
    /// The same store's multipart API, when it has one (cloud stores, `InMemory`): large
    /// uploads then go through it, journaled when `journal` is set.
    multipart: Option<Arc<dyn MultipartStore>>,
    /// The folder (relative to the root) where in-progress multipart uploads are recorded.
    journal: Option<String>,
    base: Path,
    /// The folder, when the destination is a local one.
    local_root: Option<PathBuf>,
    /// How transient failures are retried.
    retry: RetryPolicy,
}

/// How a destination retries an operation that failed transiently: exponential backoff with
/// jitter (the `backoff` crate: each wait drawn from ±50% around a base that starts at
/// `initial` and grows 1.5× up to `max_interval`), given up once `max_elapsed` has passed since
/// the first attempt. Permanent failures are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max_interval: Duration,
    /// Total time after which the last error is returned.
    pub max_elapsed: Duration,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("url", &self.url)
            .field("store", &self.store.to_string())
            .field("multipart", &self.multipart.is_some())
            .field("journal", &self.journal)
            .field("base", &self.base)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(200),
            max_interval: Duration::from_secs(15),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl Destination {
    /// Opens the lake root `url`: a plain path or `file://` URL (the folder is created when
    /// missing), or an `s3://`, `gs://`, `az://`, `abfs://` URL configured from the
    /// environment. A bad URL or store configuration is an [`Error::InvalidConfig`]; nothing is
    /// contacted over the network here.
    pub fn parse(url: &str) -> Result<Destination> {
        Destination::parse_with_options(url, env_options())
    }

    /// Like [`Destination::parse`], with `storage` (a task's `storage:` section, or the
    /// command line's store flags) applied over the environment; the environment variables
    /// it names are read now (an unset one is an [`Error::Permanent`] naming it). Options
    /// are checked when the task is loaded ([`StorageOptions::problems`]); a local folder
    /// ignores them.
    pub fn open(url: &str, storage: &StorageOptions) -> Result<Destination> {
        let Some(kind) = StoreKind::of_url(url) else {
            return Destination::parse(url);
        };
        let mut options: Vec<(String, String)> = env_options()
            .into_iter()
            .filter(|(k, _)| !storage.overrides_env(kind, k))
            .collect();
        options.extend(storage.store_options(kind)?);
        Destination::parse_with_options(url, options)
    }

    /// Like [`Destination::parse`], with the store options given (`aws_region`,
    /// `google_service_account`, `azure_storage_account_name`, … as object_store's config keys
    /// spell them, case-insensitive) instead of read from the environment. Options that do not
    /// apply to the URL's store are ignored; of two values of one option, the later wins.
    pub fn parse_with_options<I, K, V>(url: &str, options: I) -> Result<Destination>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let bad = |what: String| Error::InvalidConfig(format!("destination {url:?}: {what}"));
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(bad("is empty; expected a path or a URL".into()));
        }
        if !trimmed.contains("://") {
            return Destination::local(PathBuf::from(trimmed), url);
        }
        let parsed = Url::parse(trimmed).map_err(|e| bad(e.to_string()))?;
        if parsed.scheme() == "file" {
            let path = parsed
                .to_file_path()
                .map_err(|()| bad("is not a local absolute path".into()))?;
            return Destination::local(path, url);
        }
        let unsupported = || {
            bad(format!(
                "unsupported scheme {:?}; expected a path, file://, s3://, gs://, az:// or abfs://",
                parsed.scheme()
            ))
        };
        let (scheme, path) = ObjectStoreScheme::parse(&parsed).map_err(|_| unsupported())?;
        let prefix = match scheme {
            ObjectStoreScheme::AmazonS3 => StoreKind::S3,
            ObjectStoreScheme::GoogleCloudStorage => StoreKind::Gcs,
            ObjectStoreScheme::MicrosoftAzure => StoreKind::Azure,
            _ => return Err(unsupported()),
        }
        .key_prefix();
        let options: Vec<(String, String)> = options
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
            .filter(|(k, _)| k.starts_with(prefix))
            .collect();
        let base = Path::parse(path).map_err(|e| bad(e.to_string()))?;
        let built = |e: object_store::Error| bad(e.to_string());
        use_ring_for_tls();
        // Each builder as object_store's `parse_url_opts` configures it (URL first, then
        // every option its keys know), kept as its own type: the store is also a
        // `MultipartStore`.
        let (store, multipart): (Arc<dyn ObjectStore>, Arc<dyn MultipartStore>) = match scheme {
            ObjectStoreScheme::AmazonS3 => {
                let mut b = AmazonS3Builder::new().with_url(trimmed);
                for (k, v) in options {
                    if let Ok(key) = k.parse() {
                        b = b.with_config(key, v);
                    }
                }
                let s = Arc::new(b.build().map_err(built)?);
                (s.clone(), s)
            }
            ObjectStoreScheme::GoogleCloudStorage => {
                let mut b = GoogleCloudStorageBuilder::new().with_url(trimmed);
                for (k, v) in options {
                    if let Ok(key) = k.parse() {
                        b = b.with_config(key, v);
                    }
                }
                let s = Arc::new(b.build().map_err(built)?);
                (s.clone(), s)
            }
            _ => {
                let mut b = MicrosoftAzureBuilder::new().with_url(trimmed);
                for (k, v) in options {
                    if let Ok(key) = k.parse() {
                        b = b.with_config(key, v);
                    }
                }
                let s = Arc::new(b.build().map_err(built)?);
                (s.clone(), s)
            }
        };
        Ok(Destination {
            url: trim_url(trimmed),
            store,
            multipart: Some(multipart),
            journal: None,
            base,
            local_root: None,
            retry: RetryPolicy::default(),
        })
    }

    /// A destination over an existing store (e.g. object_store's `InMemory` in tests), rooted at
    /// the store's root; `url` is only used for display and [`Destination::object_url`].
    /// Large uploads go through a `WriteMultipart` (no journal: see the module docs).
    pub fn from_store(store: Arc<dyn ObjectStore>, url: &str) -> Destination {
        Destination {
            url: trim_url(url),
            store,
            multipart: None,
            journal: None,
            base: Path::default(),
            local_root: None,
            retry: RetryPolicy::default(),
        }
    }

    /// Like [`Destination::from_store`], over a store that also has the low-level multipart
    /// API (object_store's `InMemory`, or a cloud store built by the caller): large uploads go
    /// through it and can be journaled ([`Destination::with_upload_journal`]).
    pub fn from_multipart_store<S: ObjectStore + MultipartStore>(
        store: Arc<S>,
        url: &str,
    ) -> Destination {
        let multipart: Arc<dyn MultipartStore> = store.clone();
        Destination {
            multipart: Some(multipart),
            ..Destination::from_store(store, url)
        }
    }

    fn local(path: PathBuf, given: &str) -> Result<Destination> {
        let path = if path.is_absolute() {
            path
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("read the current directory for", &path, e))?
                .join(path)
        };
        std::fs::create_dir_all(&path).map_err(|e| Error::io("create lake folder", &path, e))?;
        let root =
            std::fs::canonicalize(&path).map_err(|e| Error::io("resolve lake folder", &path, e))?;
        let url = Url::from_file_path(&root).map_err(|()| {
            Error::InvalidConfig(format!(
                "destination {given:?}: {} is not an absolute path",
                root.display()
            ))
        })?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| Error::InvalidConfig(format!("destination {given:?}: {e}")))?
            .with_automatic_cleanup(true);
        Ok(Destination {
            url: trim_url(url.as_str()),
            store: Arc::new(store),
            multipart: None,
            journal: None,
            base: Path::default(),
            local_root: Some(root),
            retry: RetryPolicy::default(),
        })
    }

    /// This destination with transient failures retried by `policy`.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Destination {
        self.retry = policy;
        self
    }

    /// Runs `op` until it succeeds, fails permanently, or the retry policy's total time has
    /// passed (the last error then says how many attempts were made). Each transient failure
    /// is logged with the wait before the next attempt.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let policy = ExponentialBackoffBuilder::new()
            .with_initial_interval(self.retry.initial)
            .with_max_interval(self.retry.max_interval)
            .with_max_elapsed_time(Some(self.retry.max_elapsed))
            .build();
        let attempts = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let outcome = backoff::future::retry_notify(
            policy,
            || {
                attempts.fetch_add(1, Ordering::Relaxed);
                let attempt = op();
                async move {
                    attempt.await.map_err(|e| match e {
                        Error::Transient { .. } => backoff::Error::transient(e),
                        e => backoff::Error::permanent(e),
                    })
                }
            },
            |e: Error, wait: Duration| {
                tracing::warn!(destination = %self.url, error = %e.chain(),
                    "transient object-store failure; retrying in {:.1}s", wait.as_secs_f64());
            },
        )
        .await;
        outcome.map_err(|e| match e {
            Error::Transient { context, source } => Error::Transient {
                context: format!(
                    "{context} (gave up after {} attempts in {:.0}s; the task key \
                     retry.max_elapsed sets how long to keep trying)",
                    attempts.load(Ordering::Relaxed),
                    started.elapsed().as_secs_f64()
                ),
                source,
            },
            other => other,
        })
    }

    /// The normalised root URL without a trailing `/` (`file:///abs/path` for local folders).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store (paths in it are [`Destination::path`]s).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The store path of `rel` (relative to the root, `/`-separated; empty segments are
    /// skipped and characters object stores avoid are percent-encoded).
    pub fn path(&self, rel: &str) -> Path {
        let mut path = self.base.clone();
        for segment in rel.split('/').filter(|s| !s.is_empty()) {
            path = path.join(PathPart::from(segment));
        }
        path
    }

    /// The file that holds `rel` when the destination is a local folder (None for object
    /// stores, and for a `rel` with a `.` or `..` segment, which only the store's own path
    /// rules may resolve).
    pub fn local_file(&self, rel: &str) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?;
        let mut path = root.clone();
        for segment in rel.split('/').filter(|s| !s.is_empty()) {
            if segment == "." || segment == ".." || segment.contains('\\') {
                return None;
            }
            path.push(segment);
        }
        Some(path)
    }

    /// The full URL of `rel`, e.g. `s3://bucket/lake/dt=2024-01-01/t_0_1.parquet`.
    pub fn object_url(&self, rel: &str) -> String {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{rel}", self.url)
        }
    }

    /// Uploads the local file `local` as `rel`, streaming it in [`UPLOAD_CHUNK`] pieces: one
    /// put when it fits in a chunk, else a multipart upload (aborted on error). The object
    /// appears only when complete. Returns its size and the MD5 of its bytes, computed as they
    /// are read.
    pub async fn upload_file(&self, local: &std::path::Path, rel: &str) -> Result<Uploaded> {
        self.retrying(|| self.upload_file_once(local, rel)).await
    }

    async fn upload_file_once(&self, local: &std::path::Path, rel: &str) -> Result<Uploaded> {
        let location = self.path(rel);
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::io("open for upload", local, e))?;
        let mut md5 = Md5::new();
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::io("read for upload", local, e))?
            .len();

        // Most objects fit in one chunk: its buffer is made for the file's size.
        let first = read_chunk(&mut file, local, size).await?;
        md5 = hashed(std::mem::take(&mut md5), &first).await;
        if first.len() < UPLOAD_CHUNK {
            let len = first.len() as u64;
            self.store
                .put(&location, PutPayload::from(first))
                .await
                .map_err(|e| self.error("upload", rel, e))?;
            return Ok(Uploaded {
                bytes: len,
                md5: hex(&md5.finalize()),
            });
        }

        if let Some(multipart) = &self.multipart {
            return self
                .upload_parts(multipart, &location, rel, local, &mut file, first, md5)
                .await;
        }
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| self.error("start multipart upload of", rel, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK);
        let mut total = first.len() as u64;
        writer.put(first);
        let streamed: Result<()> = async {
            loop {
                let chunk = read_chunk(&mut file, local, UPLOAD_CHUNK as u64).await?;
                if chunk.is_empty() {
                    return Ok(());
                }
                md5 = hashed(std::mem::take(&mut md5), &chunk).await;
                total += chunk.len() as u64;
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.error("upload part of", rel, e))?;
                writer.put(chunk);
            }
        }
        .await;
        match streamed {
            Ok(()) => {
                // `finish` aborts the upload itself when completing fails.
                writer
                    .finish()
                    .await
                    .map_err(|e| self.error("complete upload of", rel, e))?;
                Ok(Uploaded {
                    bytes: total,
                    md5: hex(&md5.finalize()),
                })
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(object = %self.object_url(rel), error = %abort,
                        "aborting a failed multipart upload failed");
                }
                Err(e)
            }
        }
    }

    /// Uploads the rest of `file` (whose first chunk is `first`, already in `md5`) to
    /// `location` through the store's multipart API, [`PARTS_IN_FLIGHT`] parts at a time,
    /// journaled when the destination has a journal. A failure aborts the upload (and a
    /// dropped future aborts it on a spawned task) before the error is returned.
    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        &self,
        multipart: &Arc<dyn MultipartStore>,
        location: &Path,
        rel: &str,
        local: &std::path::Path,
        file: &mut tokio::fs::File,
        first: Bytes,
        mut md5: Md5,
    ) -> Result<Uploaded> {
        let id = multipart
            .create_multipart(location)
            .await
            .map_err(|e| self.error("start multipart upload of", rel, e))?;
        let mut pending = PendingUpload {
            multipart: Arc::clone(multipart),
            store: Arc::clone(&self.store),
            location: location.clone(),
            id,
            marker: None,
            object: self.object_url(rel),
        };
        let outcome: Result<(u64, Vec<PartId>)> = async {
            if let Some(journal) = &self.journal {
                let entry = JournalEntry {
                    object: self.object_url(rel),
                    path: location.to_string(),
                    upload_id: pending.id.clone(),
                    started_ms: chrono::Utc::now().timestamp_millis(),
                };
                let marker = self.path(&format!("{journal}/{}.json", uuid::Uuid::new_v4()));
                let json = serde_json::to_vec(&entry)
                    .map_err(|e| Error::encode_caused("upload journal entry", e))?;
                self.store
                    .put(&marker, PutPayload::from(json))
                    .await
                    .map_err(|e| self.error("record the multipart upload of", rel, e))?;
                pending.marker = Some(marker);
            }
            let mut tasks: tokio::task::JoinSet<(usize, object_store::Result<PartId>)> =
                tokio::task::JoinSet::new();
            let mut parts: Vec<Option<PartId>> = Vec::new();
            let mut total = 0u64;
            let mut chunk = first;
            loop {
                while tasks.len() >= PARTS_IN_FLIGHT {
                    self.part_done(tasks.join_next().await, &mut parts, rel)?;
                }
                total += chunk.len() as u64;
                let idx = parts.len();
                parts.push(None);
                let (mp, loc, id) = (
                    Arc::clone(&pending.multipart),
                    location.clone(),
                    pending.id.clone(),
                );
                tasks.spawn(async move {
                    let part = mp.put_part(&loc, &id, idx, PutPayload::from(chunk)).await;
                    (idx, part)
                });
                chunk = read_chunk(file, local, UPLOAD_CHUNK as u64).await?;
                if chunk.is_empty() {
                    break;
                }
                md5 = hashed(std::mem::take(&mut md5), &chunk).await;
            }
            while let Some(joined) = tasks.join_next().await {
                self.part_done(Some(joined), &mut parts, rel)?;
            }
            let parts: Vec<PartId> = parts.into_iter().flatten().collect();
            Ok((total, parts))
        }
        .await;
        let completed = match outcome {
            Ok((total, parts)) => multipart
                .complete_multipart(location, &pending.id, parts)
                .await
                .map(|_| total)
                .map_err(|e| self.error("complete upload of", rel, e)),
            Err(e) => Err(e),
        };
        match completed {
            Ok(total) => {
                pending.completed().await;
                Ok(Uploaded {
                    bytes: total,
                    md5: hex(&md5.finalize()),
                })
            }
            Err(e) => {
                pending.abort().await;
                Err(e)
            }
        }
    }

    /// Records a finished part upload, or returns its error.
    fn part_done(
        &self,
        joined: Option<
            std::result::Result<(usize, object_store::Result<PartId>), tokio::task::JoinError>,
        >,
        parts: &mut [Option<PartId>],
        rel: &str,
    ) -> Result<()> {
        match joined {
            None => Ok(()),
            Some(Ok((idx, Ok(part)))) => {
                if let Some(slot) = parts.get_mut(idx) {
                    *slot = Some(part);
                }
                Ok(())
            }
            Some(Ok((_, Err(e)))) => Err(self.error("upload part of", rel, e)),
            Some(Err(e)) => Err(Error::transient_caused(
                format!(
                    "upload part of {}: the part's task ended",
                    self.object_url(rel)
                ),
                e,
            )),
        }
    }

    /// This destination with its cloud multipart uploads journaled under `rel_folder` (see
    /// the module docs): a run gives each of its uploads a marker there, so a later run can
    /// abort what a killed one left. Without a multipart API (a local folder) it changes
    /// nothing.
    pub fn with_upload_journal(mut self, rel_folder: &str) -> Destination {
        let folder = rel_folder.trim_matches('/');
        self.journal = (!folder.is_empty()).then(|| folder.to_string());
        self
    }

    /// Aborts every multipart upload journaled under `rel_folder` (any depth) and removes
    /// its marker; returns how many uploads it aborted. An upload the store no longer knows
    /// (completed, or aborted before) just loses its marker. One that cannot be aborted
    /// transiently keeps it for the next call; a permanent refusal is logged and the marker
    /// removed (trying again would not help: the bucket's lifecycle rule has to). Fails only
    /// when the folder cannot be listed. Call it only when no upload journaled there can
    /// still be in progress (a run holding its task's lease, for runs of its task).
    pub async fn abort_journaled_uploads(&self, rel_folder: &str) -> Result<usize> {
        let Some(multipart) = &self.multipart else {
            return Ok(0);
        };
        let mut aborted = 0;
        for (rel, _) in self.list(rel_folder).await? {
            if !rel.ends_with(".json") {
                continue;
            }
            let read = match self.store.get(&self.path(&rel)).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            };
            let entry: Option<JournalEntry> = match read {
                Ok(bytes) => serde_json::from_slice(&bytes).ok(),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => {
                    tracing::warn!(marker = %self.object_url(&rel), error = %crate::error::chain(&e),
                        "cannot read an upload journal entry; trying again next time");
                    continue;
                }
            };
            let Some(entry) = entry else {
                tracing::warn!(marker = %self.object_url(&rel),
                    "removing an upload journal entry that is not one");
                self.delete(&rel).await?;
                continue;
            };
            let Ok(location) = Path::parse(&entry.path) else {
                self.delete(&rel).await?;
                continue;
            };
            match multipart.abort_multipart(&location, &entry.upload_id).await {
                Ok(()) => {
                    aborted += 1;
                    tracing::info!(object = %entry.object, upload_id = %entry.upload_id,
                        "aborted a multipart upload an earlier run left unfinished");
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => match Error::from(e) {
                    e @ Error::Transient { .. } => {
                        tracing::warn!(object = %entry.object, error = %e.chain(),
                            "cannot abort a leftover multipart upload now; trying again next run");
                        continue;
                    }
                    other => tracing::warn!(object = %entry.object, upload_id = %entry.upload_id,
                        error = %other.chain(),
                        "the store refused to abort a leftover multipart upload (already \
                         gone, or no permission); its parts go with the bucket's \
                         AbortIncompleteMultipartUpload lifecycle rule"),
                },
            }
            self.delete(&rel).await?;
        }
        Ok(aborted)
    }

    /// Writes the small object `rel` in one put (it appears whole or not at all).
    pub async fn put_bytes(&self, rel: &str, data: Vec<u8>) -> Result<()> {
        let data = Bytes::from(data);
        self.retrying(|| async {
            self.store
                .put(&self.path(rel), PutPayload::from(data.clone()))
                .await
                .map_err(|e| self.error("write", rel, e))?;
            Ok(())
        })
        .await
    }

    /// Writes the small object `rel` only if there is none at that path, and says whether it
    /// did (`false`: one exists, and it was left alone). object_store's `PutMode::Create`
    /// makes this atomic where the store can: a local folder (the file is linked into place
    /// only if absent), S3 (`If-None-Match: *`), GCS (`ifGenerationMatch=0`), Azure
    /// (`If-None-Match: *`) and memory. A store that cannot (an S3 configured without
    /// conditional puts) gets the best it offers: a look, then a plain put when nothing was
    /// there, which two writers racing in the same instant could both pass.
    pub async fn put_if_absent(&self, rel: &str, data: Vec<u8>) -> Result<bool> {
        let data = Bytes::from(data);
        let create = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..object_store::PutOptions::default()
        };
        let atomic = self
            .retrying(|| async {
                let put = self
                    .store
                    .put_opts(
                        &self.path(rel),
                        PutPayload::from(data.clone()),
                        create.clone(),
                    )
                    .await;
                match put {
                    Ok(_) => Ok(Some(true)),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(Some(false)),
                    Err(object_store::Error::NotImplemented { .. }) => Ok(None),
                    Err(e) => Err(self.error("write", rel, e)),
                }
            })
            .await?;
        if let Some(written) = atomic {
            return Ok(written);
        }
        if self.get_bytes(rel).await?.is_some() {
            return Ok(false);
        }
        self.put_bytes(rel, data.to_vec()).await?;
        Ok(true)
    }

    /// Reads the small object `rel` whole (`None` when there is none).
    pub async fn get_bytes(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        self.retrying(|| async {
            let got = match self.store.get(&self.path(rel)).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.error("read", rel, e)),
            };
            let bytes = got.bytes().await.map_err(|e| self.error("read", rel, e))?;
            Ok(Some(bytes.to_vec()))
        })
        .await
    }

    /// Copies the object `from` to `to` (replacing what is there), then deletes `from`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.retrying(|| async {
            self.store
                .copy(&self.path(from), &self.path(to))
                .await
                .map_err(|e| self.error("copy", from, e))
        })
        .await?;
        self.delete(from).await
    }

    /// Deletes `rel`; an absent object is fine.    /// Deletes `rel`; an absent object is fine.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        self.retrying(|| async {
            match self.store.delete(&self.path(rel)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.error("delete", rel, e)),
            }
        })
        .await
    }

    /// Removes the upload staging files that a killed process left in a local destination
    /// for objects whose relative path `matches`, and returns how many. object_store's local
    /// store writes `<object>#<n>` and renames it into place when complete; a process killed
    /// in between leaves the staging file, which listings do not show (so readers of the
    /// store never see it) but a reader of the folder would. Cloud stores need nothing here:
    /// an upload that never completed is no object (an S3 bucket's incomplete multipart
    /// uploads are aborted by its lifecycle rule, see docs/object-storage.md).
    pub async fn remove_staged(
        &self,
        matches: impl Fn(&str) -> bool + Send + 'static,
    ) -> Result<usize> {
        let Some(root) = self.local_root.clone() else {
            return Ok(0);
        };
        tokio::task::spawn_blocking(move || remove_staged_in(&root, &matches))
            .await
            .map_err(|e| Error::store_caused("staged-file cleanup panicked", e))?
    }

    /// Every object under the folder `rel_prefix` (whole path segments; `""` for all), as
    /// paths relative to the root with their sizes, sorted by path.
    pub async fn list(&self, rel_prefix: &str) -> Result<Vec<(String, u64)>> {
        self.retrying(|| self.list_once(rel_prefix)).await
    }

    async fn list_once(&self, rel_prefix: &str) -> Result<Vec<(String, u64)>> {
        let prefix = self.path(rel_prefix);
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.error("list", rel_prefix, e))?;
        let mut out: Vec<(String, u64)> = metas
            .into_iter()
            .filter_map(|m| {
                let parts = m.location.prefix_match(&self.base)?;
                let rel = parts
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                Some((rel, m.size))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Converts an object_store error, naming the operation and the object's URL.
    /// A permanent failure also says what to fix.
    fn error(&self, action: &str, rel: &str, e: object_store::Error) -> Error {
        let what = format!("{action} {}", self.object_url(rel));
        let fix = self.fix_for(&e);
        match Error::object_storage(what, e) {
            Error::Permanent { context, source } => Error::Permanent {
                context: match fix {
                    Some(fix) => format!("{context}: {fix}"),
                    None => context,
                },
                source,
            },
            other => other,
        }
    }

    /// What the operator has to do about a refusal of the store, if it says.
    fn fix_for(&self, e: &object_store::Error) -> Option<String> {
        use object_store::Error as E;
        let root = &self.url;
        let refusal = crate::error::http_refusal(e);
        let code = refusal.as_ref().and_then(|r| r.code.as_deref());
        let credentials = || {
            format!(
                "the store refused the credentials for {root}{}: check the keys lakeport runs \
                 with (the variables the task's storage.*_env keys name, else AWS_*, GOOGLE_* \
                 or AZURE_*) and the endpoint they belong to",
                code.map(|c| format!(" ({c})")).unwrap_or_default()
            )
        };
        let no_bucket = || {
            format!(
                "bucket or container of {root} does not exist: create it, or fix the task's \
                 destination (or the report root)"
            )
        };
        let credential_codes = [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "InvalidToken",
            "ExpiredToken",
            "InvalidClientTokenId",
            "AuthenticationFailed",
        ];
        if code.is_some_and(|c| credential_codes.contains(&c)) {
            return Some(credentials());
        }
        Some(match e {
            E::NotFound { .. } if self.local_root.is_none() => no_bucket(),
            E::PermissionDenied { .. } => format!(
                "access denied: the credentials in use may not write, list or delete objects \
                 under {root}; grant that, or use other credentials"
            ),
            E::Unauthenticated { .. } => credentials(),
            E::Generic { store, source } if *store == "LocalFileSystem" => {
                match crate::error::io_kind(source.as_ref())? {
                    std::io::ErrorKind::PermissionDenied => format!(
                        "permission denied: the user running lakeport may not write to {root}"
                    ),
                    std::io::ErrorKind::StorageFull => format!("no space left under {root}"),
                    std::io::ErrorKind::ReadOnlyFilesystem => {
                        format!("{root} is on a read-only file system")
                    }
                    _ => return None,
                }
            }
            E::Generic { .. } => match refusal.as_ref()?.status {
                404 if matches!(code, Some("NoSuchBucket" | "ContainerNotFound")) => no_bucket(),
                401 => credentials(),
                403 => format!(
                    "access denied: the credentials in use may not write, list or delete \
                     objects under {root}; grant that, or use other credentials"
                ),
                _ => return None,
            },
            _ => return None,
        })
    }
}

/// Walks `root` and removes every `<object>#<digits>` file whose object path (relative to
/// `root`, `/`-separated) `matches`.
fn remove_staged_in(root: &std::path::Path, matches: &dyn Fn(&str) -> bool) -> Result<usize> {
    let mut removed = 0;
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            // A folder removed meanwhile (its last object deleted) has nothing left.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("list folder", &folder, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list folder", &folder, e))?;
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                folders.push(path);
                continue;
            }
            let Some((object, n)) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.rsplit_once('#'))
                .map(|(o, n)| (o.to_string(), n.to_string()))
            else {
                continue;
            };
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(rel) = path
                .with_file_name(&object)
                .strip_prefix(root)
                .map(|p| p.to_path_buf())
            else {
                continue;
            };
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches(&rel.join("/")) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove staged upload", &path, e)),
                }
            }
        }
    }
    Ok(removed)
}

/// A multipart upload in progress: aborted on a spawned task if dropped before
/// [`PendingUpload::completed`] or [`PendingUpload::abort`] (a cancelled run).
struct PendingUpload {
    multipart: Arc<dyn MultipartStore>,
    store: Arc<dyn ObjectStore>,
    location: Path,
    id: MultipartId,
    /// Its journal entry, once put.
    marker: Option<Path>,
    /// The object's URL, for messages.
    object: String,
}

impl PendingUpload {
    /// The upload completed: its journal entry goes (a failure to remove it only costs a
    /// later run an abort the store answers with "no such upload").
    async fn completed(mut self) {
        if let Some(marker) = self.marker.take() {
            if let Err(e) = self.store.delete(&marker).await {
                tracing::warn!(object = %self.object, error = %crate::error::chain(&e),
                    "cannot remove the journal entry of a completed upload");
            }
        }
        self.id.clear();
    }

    /// Aborts the upload, and removes its journal entry when that worked (else a later run
    /// tries again).
    async fn abort(mut self) {
        let id = std::mem::take(&mut self.id);
        match self.multipart.abort_multipart(&self.location, &id).await {
            Ok(()) => {
                if let Some(marker) = self.marker.take() {
                    if let Err(e) = self.store.delete(&marker).await {
                        tracing::warn!(object = %self.object, error = %crate::error::chain(&e),
                            "cannot remove the journal entry of an aborted upload");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(object = %self.object, error = %crate::error::chain(&e),
                    "aborting a failed multipart upload failed; a later run aborts it from \
                     its journal entry (if the destination keeps one)");
            }
        }
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (multipart, store) = (Arc::clone(&self.multipart), Arc::clone(&self.store));
        let (location, id, marker) = (
            self.location.clone(),
            std::mem::take(&mut self.id),
            self.marker.take(),
        );
        runtime.spawn(async move {
            if multipart.abort_multipart(&location, &id).await.is_ok() {
                if let Some(marker) = marker {
                    let _ = store.delete(&marker).await;
                }
            }
        });
    }
}

/// A journal entry: a multipart upload that was started and not yet completed or aborted.
#[derive(Debug, Serialize, Deserialize)]
struct JournalEntry {
    /// The object's URL (for people and logs).
    object: String,
    /// The object's path in the store.
    path: String,
    /// The store's id of the upload.
    upload_id: String,
    /// When it started, ms since epoch UTC.
    started_ms: i64,
}

/// What [`Destination::upload_file`] uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Size in bytes.
    pub bytes: u64,
    /// MD5 of the bytes, lowercase hex.
    pub md5: String,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `url` without trailing `/`, except the one of an empty authority (`memory:///` → `memory://`).
fn trim_url(url: &str) -> String {
    let mut s = url.trim();
    while s.ends_with('/') && !s.ends_with("://") {
        s = &s[..s.len() - 1];
    }
    s.to_string()
}

/// Reads up to [`UPLOAD_CHUNK`] bytes (fewer only at the end of the file).
/// `md5` updated with `chunk`: on a blocking thread when the chunk is large, so that hashing
/// an upload's 8 MiB parts never holds up the async runtime's threads.
async fn hashed(mut md5: Md5, chunk: &Bytes) -> Md5 {
    if chunk.len() < 1 << 20 {
        md5.update(chunk);
        return md5;
    }
    let data = chunk.clone();
    let hashing = tokio::task::spawn_blocking(move || {
        md5.update(&data);
        md5
    });
    match hashing.await {
        Ok(md5) => md5,
        // Only a panic in `update` gets here: let it through.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Reads the next [`UPLOAD_CHUNK`] bytes of `file` (fewer at its end) into a buffer made for
/// `expected` bytes at most (a hint: the file's size for a first chunk; the buffer grows if
/// the file holds more), not zeroed first.
async fn read_chunk(
    file: &mut tokio::fs::File,
    path: &std::path::Path,
    expected: u64,
) -> Result<Bytes> {
    let limit = UPLOAD_CHUNK as u64;
    let mut buf = Vec::with_capacity(expected.min(limit) as usize);
    file.take(limit)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| Error::io("read for upload", path, e))?;
    Ok(Bytes::from(buf))
}

/// Store options from the environment, as the object_store builders' `from_env` read them.
fn env_options() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter_map(|(k, v)| {
            let key =
                if k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_") {
                    k.to_ascii_lowercase()
                } else if k == "SERVICE_ACCOUNT" {
                    "google_service_account".to_string()
                } else if k == "IDENTITY_ENDPOINT" {
                    "azure_msi_endpoint".to_string()
                } else {
                    return None;
                };
            Some((key, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn staged_uploads_of_matching_objects_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = Destination::parse(dir.path().to_str().unwrap()).unwrap();
        for f in [
            "a/x.parquet#1",
            "a/x.parquet#",
            "a/y.parquet#2",
            "b/x.parquet",
            "x.parquet#3",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"half").unwrap();
        }
        let rt = runtime();
        let removed = rt
            .block_on(d.remove_staged(|rel| rel.ends_with("x.parquet")))
            .unwrap();
        assert_eq!(removed, 2);
        let left = |f: &str| dir.path().join(f).exists();
        assert!(!left("a/x.parquet#1") && !left("x.parquet#3"));
        assert!(left("a/x.parquet#") && left("a/y.parquet#2") && left("b/x.parquet"));
        let memory = Destination::from_store(Arc::new(InMemory::new()), "memory://");
        assert_eq!(rt.block_on(memory.remove_staged(|_| true)).unwrap(), 0);
    }

    #[test]
    fn local_path_is_created_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/lake");
        let d = Destination::parse(root.to_str().unwrap()).unwrap();
        assert!(root.is_dir());
        let canon = std::fs::canonicalize(&root).unwrap();
        assert_eq!(d.url(), format!("file://{}", canon.display()));
        assert!(!d.url().ends_with('/'));

        let d2 = Destination::parse(&format!("file://{}/", canon.display())).unwrap();
        assert_eq!(d2.url(), d.url());
        assert_eq!(
            d.object_url("dt=1/x.parquet"),
            format!("{}/dt=1/x.parquet", d.url())
        );
        assert_eq!(d.object_url(""), d.url());
    }

    #[test]
    fn relative_path_resolves_against_current_dir() {
        let d = Destination::parse("target/lakeport-destination-test").unwrap();
        let expected = std::env::current_dir()
            .unwrap()
            .join("target/lakeport-destination-test");
        assert_eq!(
            d.url(),
            Url::from_file_path(std::fs::canonicalize(&expected).unwrap())
                .unwrap()
                .as_str()
        );
        std::fs::remove_dir(&expected).unwrap();
    }

    #[test]
    fn cloud_urls_parse() {
        let s3 = Destination::parse_with_options(
            "s3://bucket/lake/inv/",
            [("AWS_REGION", "us-east-1"), ("google_bogus", "x")],
        )
        .unwrap();
        assert_eq!(s3.url(), "s3://bucket/lake/inv");
        assert_eq!(
            s3.path("dt=1/a.parquet").as_ref(),
            "lake/inv/dt=1/a.parquet"
        );

        let gs =
            Destination::parse_with_options("gs://bucket/x", Vec::<(&str, &str)>::new()).unwrap();
        assert_eq!(gs.path("y").as_ref(), "x/y");

        let az = Destination::parse_with_options(
            "az://container/p",
            [
                ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
                ("azure_storage_account_key", "a2V5"),
            ],
        )
        .unwrap();
        assert_eq!(az.url(), "az://container/p");
        let abfs = Destination::parse_with_options(
            "abfs://fs@acct.dfs.core.windows.net/p/q",
            Vec::<(&str, &str)>::new(),
        )
        .unwrap();
        assert_eq!(abfs.path("r").as_ref(), "p/q/r");
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for url in [
            "",
            "ftp://host/x",
            "http://example.com/x",
            "file://remote-host/x",
        ] {
            match Destination::parse_with_options(url, Vec::<(&str, &str)>::new()) {
                Err(Error::InvalidConfig(m)) => assert!(m.contains("destination"), "{m}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    async fn exercise(d: &Destination) {
        let dir = tempfile::tempdir().unwrap();
        // small file: single put
        let small = dir.path().join("small");
        std::fs::write(&small, b"hello").unwrap();
        let up = d.upload_file(&small, "p=1/small.txt").await.unwrap();
        assert_eq!(up.bytes, 5);
        assert_eq!(up.md5, "5d41402abc4b2a76b9719d911017c592", "MD5 of hello");
        // larger than one chunk: multipart, contents must survive byte for byte
        let big = dir.path().join("big");
        let data: Vec<u8> = (0..UPLOAD_CHUNK * 2 + 12345)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&big, &data).unwrap();
        let up = d.upload_file(&big, "p=2/big.bin").await.unwrap();
        assert_eq!(up.bytes, data.len() as u64);
        assert_eq!(up.md5, hex(&Md5::digest(&data)));
        let got = d
            .store()
            .get(&d.path("p=2/big.bin"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(got[..] == data[..]);

        assert_eq!(
            d.list("").await.unwrap(),
            [
                ("p=1/small.txt".to_string(), 5),
                ("p=2/big.bin".to_string(), data.len() as u64)
            ]
        );
        assert_eq!(d.list("p=1").await.unwrap().len(), 1);
        assert!(d.list("p=9").await.unwrap().is_empty());

        d.delete("p=1/small.txt").await.unwrap();
        d.delete("p=1/small.txt").await.unwrap(); // absent is fine
        assert_eq!(d.list("").await.unwrap().len(), 1);

        // a missing local file is an I/O error naming it
        let err = d
            .upload_file(&dir.path().join("nope"), "x")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn local_file_system_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let d = Destination::parse(dir.path().to_str().unwrap()).unwrap();
        runtime().block_on(exercise(&d));
        // emptied partition folders are cleaned up
        assert!(!dir.path().join("p=1").exists());
        // no staging files are left behind
        let names: Vec<_> = std::fs::read_dir(dir.path().join("p=2"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["big.bin"]);
    }

    #[test]
    fn journaled_multipart_roundtrip_leaves_no_journal_entry() {
        let d = Destination::from_multipart_store(Arc::new(InMemory::new()), "memory:///")
            .with_upload_journal("_lakeport/t/uploads/7");
        let rt = runtime();
        rt.block_on(exercise(&d));
        let left = rt.block_on(d.list("_lakeport")).unwrap();
        assert!(left.is_empty(), "journal entries left: {left:?}");
    }

    #[test]
    fn journaled_leftover_uploads_are_aborted() {
        let memory = Arc::new(InMemory::new());
        let d = Destination::from_multipart_store(Arc::clone(&memory), "memory:///");
        let rt = runtime();
        rt.block_on(async {
            // Two uploads a killed run left: one with a part, one already completed.
            let (left, done) = (d.path("p/left.bin"), d.path("p/done.bin"));
            let left_id = memory.create_multipart(&left).await.unwrap();
            let part = memory
                .put_part(&left, &left_id, 0, PutPayload::from(vec![1u8; 64]))
                .await
                .unwrap();
            let done_id = memory.create_multipart(&done).await.unwrap();
            let done_part = memory
                .put_part(&done, &done_id, 0, PutPayload::from(vec![2u8; 64]))
                .await
                .unwrap();
            memory
                .complete_multipart(&done, &done_id, vec![done_part])
                .await
                .unwrap();
            for (name, path, id) in [("a", &left, &left_id), ("b", &done, &done_id)] {
                let entry = JournalEntry {
                    object: d.object_url(path.as_ref()),
                    path: path.to_string(),
                    upload_id: id.clone(),
                    started_ms: 0,
                };
                d.put_bytes(
                    &format!("_lakeport/t/uploads/3/{name}.json"),
                    serde_json::to_vec(&entry).unwrap(),
                )
                .await
                .unwrap();
            }
            d.put_bytes("_lakeport/t/uploads/3/junk.json", b"not json".to_vec())
                .await
                .unwrap();

            assert_eq!(
                d.abort_journaled_uploads("_lakeport/t/uploads")
                    .await
                    .unwrap(),
                1
            );
            assert!(d.list("_lakeport").await.unwrap().is_empty());
            // The leftover upload is gone: it can no longer be completed.
            assert!(memory
                .complete_multipart(&left, &left_id, vec![part])
                .await
                .is_err());
            // The completed object is untouched.
            assert_eq!(d.list("p").await.unwrap(), [("p/done.bin".to_string(), 64)]);
            assert_eq!(
                d.abort_journaled_uploads("_lakeport/t/uploads")
                    .await
                    .unwrap(),
                0
            );
        });
        // Without a multipart API there is nothing to journal or abort.
        let dir = tempfile::tempdir().unwrap();
        let local = Destination::parse(dir.path().to_str().unwrap())
            .unwrap()
            .with_upload_journal("j");
        assert_eq!(rt.block_on(local.abort_journaled_uploads("j")).unwrap(), 0);
    }

    /// The multipart API of an `InMemory` store, failing every part `fail_part` and, while
    /// `abort_fails`, every abort; counts uploads started and aborted.
    #[derive(Debug)]
    struct FailingParts {
        inner: Arc<InMemory>,
        fail_part: usize,
        abort_fails: std::sync::atomic::AtomicBool,
        started: AtomicU32,
        aborted: AtomicU32,
    }

    #[async_trait::async_trait]
    impl MultipartStore for FailingParts {
        async fn create_multipart(&self, path: &Path) -> object_store::Result<MultipartId> {
            self.started.fetch_add(1, Ordering::SeqCst);
            self.inner.create_multipart(path).await
        }
        async fn put_part(
            &self,
            path: &Path,
            id: &MultipartId,
            part_idx: usize,
            data: PutPayload,
        ) -> object_store::Result<PartId> {
            if part_idx == self.fail_part {
                return Err(object_store::Error::Generic {
                    store: "S3",
                    source: "injected: connection reset".into(),
                });
            }
            self.inner.put_part(path, id, part_idx, data).await
        }
        async fn complete_multipart(
            &self,
            path: &Path,
            id: &MultipartId,
            parts: Vec<PartId>,
        ) -> object_store::Result<object_store::PutResult> {
            self.inner.complete_multipart(path, id, parts).await
        }
        async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> object_store::Result<()> {
            if self.abort_fails.load(Ordering::SeqCst) {
                return Err(object_store::Error::Generic {
                    store: "S3",
                    source: "injected: connection refused".into(),
                });
            }
            self.inner.abort_multipart(path, id).await?;
            self.aborted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn a_failed_multipart_upload_is_aborted_now_or_from_its_journal() {
        let memory = Arc::new(InMemory::new());
        let parts = Arc::new(FailingParts {
            inner: Arc::clone(&memory),
            fail_part: 1,
            abort_fails: true.into(),
            started: AtomicU32::new(0),
            aborted: AtomicU32::new(0),
        });
        let multipart: Arc<dyn MultipartStore> = parts.clone();
        let d = Destination {
            multipart: Some(multipart),
            ..Destination::from_store(memory.clone(), "memory://")
        }
        .with_upload_journal("_lakeport/t/uploads/1")
        .with_retry(RetryPolicy {
            initial: Duration::from_millis(5),
            max_interval: Duration::from_millis(10),
            max_elapsed: Duration::from_millis(1500),
        });
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![7u8; UPLOAD_CHUNK + 10]).unwrap();
        let rt = runtime();
        rt.block_on(async {
            // The store is down for aborts too: every attempt's upload stays journaled.
            let err = d.upload_file(&big, "p/big.bin").await.unwrap_err();
            assert!(matches!(err, Error::Transient { .. }), "{err}");
            assert!(
                err.to_string()
                    .contains("upload part of memory:///p/big.bin"),
                "{err}"
            );
            let started = parts.started.load(Ordering::SeqCst);
            assert!(started >= 2, "retried whole: {started} uploads");
            assert_eq!(parts.aborted.load(Ordering::SeqCst), 0);
            let journal = d.list("_lakeport/t/uploads/1").await.unwrap();
            assert_eq!(journal.len() as u32, started, "{journal:?}");
            assert!(d.list("p").await.unwrap().is_empty(), "no object appeared");

            // Back up: the journal lets a later look abort every one of them.
            parts.abort_fails.store(false, Ordering::SeqCst);
            let aborted = d.abort_journaled_uploads("_lakeport/t").await.unwrap();
            assert_eq!(aborted as u32, started);
            assert!(d.list("_lakeport").await.unwrap().is_empty());

            // With aborts working, a failed upload is aborted at once and leaves no entry.
            let before = parts.aborted.load(Ordering::SeqCst);
            d.upload_file(&big, "p/big.bin").await.unwrap_err();
            let now = parts.started.load(Ordering::SeqCst) - started;
            assert_eq!(parts.aborted.load(Ordering::SeqCst) - before, now);
            assert!(d.list("_lakeport").await.unwrap().is_empty());
        });
    }

    #[test]
    fn storage_options_reach_the_store() {
        let storage = StorageOptions {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("eu-west-3".into()),
            allow_http: Some(true),
            ..StorageOptions::default()
        };
        let d = Destination::open("s3://bucket/lake", &storage).unwrap();
        let shown = d.store().to_string();
        assert!(shown.contains("bucket"), "{shown}");
        assert_eq!(d.url(), "s3://bucket/lake");
        // A local folder ignores them (the task check refuses them before).
        let dir = tempfile::tempdir().unwrap();
        assert!(Destination::open(dir.path().to_str().unwrap(), &storage).is_ok());
    }

    #[test]
    fn in_memory_roundtrip() {
        let d = Destination::from_store(Arc::new(InMemory::new()), "memory:///");
        assert_eq!(d.url(), "memory://");
        runtime().block_on(exercise(&d));
    }
}
