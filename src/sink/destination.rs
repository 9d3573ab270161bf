//! A lake root: the object store and base path a task's destination URL names, with the few
//! operations the sink needs (streamed upload of a finished local file, delete, list).
//!
//! A plain path (absolute, or relative to the current directory) or a `file://` URL is a folder
//! on this machine, created when missing and served by object_store's `LocalFileSystem` (which
//! stages every write and renames it into place, so an object is visible only when complete).
//! `s3://`, `gs://`, `az://`/`abfs://` (and the `https://` forms object_store recognises) go
//! through `object_store::parse_url_opts`, configured from the environment the way the
//! builders' `from_env` read it (`AWS_*`, `GOOGLE_*` and `SERVICE_ACCOUNT`, `AZURE_*` and
//! `IDENTITY_ENDPOINT`).
//!
//! Paths handed to a destination are relative to its root and use `/`. Errors are crate
//! [`Error::Permanent`] or [`Error::Transient`] and name the object's URL; a permanent one
//! also says what to fix (bucket missing, access denied, credentials refused, local folder
//! not writable or full). Every operation retries transient failures with exponential backoff
//! and jitter ([`RetryPolicy`], the `backoff` crate) until its total time is spent, on top of
//! the cloud clients' own per-request retries; an upload is retried whole from its local
//! spool file. This module knows nothing of Parquet or partitions.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backoff::ExponentialBackoffBuilder;

use bytes::Bytes;
use futures::TryStreamExt;
use md5::{Digest, Md5};
use object_store::local::LocalFileSystem;
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;
use url::Url;

use crate::error::{Error, Result};

/// Size of one read from a local file and of one multipart part.
pub const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once (bounds an upload's memory to this many chunks).
const PARTS_IN_FLIGHT: usize = 4;

/// The root of a lake: an object store plus the base path inside it.
#[derive(Debug, Clone)]
pub struct Destination {
    url: String,
    store: Arc<dyn ObjectStore>,
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

    /// Like [`Destination::parse`], with the store options given (`aws_region`,
    /// `google_service_account`, `azure_storage_account_name`, … as object_store's config keys
    /// spell them, case-insensitive) instead of read from the environment. Options that do not
    /// apply to the URL's store are ignored.
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
        let (scheme, _) = ObjectStoreScheme::parse(&parsed).map_err(|_| {
            bad(format!(
                "unsupported scheme {:?}; expected a path, file://, s3://, gs://, az:// or abfs://",
                parsed.scheme()
            ))
        })?;
        let prefix = match scheme {
            ObjectStoreScheme::AmazonS3 => "aws_",
            ObjectStoreScheme::GoogleCloudStorage => "google_",
            ObjectStoreScheme::MicrosoftAzure => "azure_",
            _ => {
                return Err(bad(format!(
                "unsupported scheme {:?}; expected a path, file://, s3://, gs://, az:// or abfs://",
                parsed.scheme()
            )))
            }
        };
        let options = options
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
            .filter(|(k, _)| k.starts_with(prefix));
        let (store, base) =
            object_store::parse_url_opts(&parsed, options).map_err(|e| bad(e.to_string()))?;
        Ok(Destination {
            url: trim_url(trimmed),
            store: Arc::from(store),
            base,
            local_root: None,
            retry: RetryPolicy::default(),
        })
    }

    /// A destination over an existing store (e.g. object_store's `InMemory` in tests), rooted at
    /// the store's root; `url` is only used for display and [`Destination::object_url`].
    pub fn from_store(store: Arc<dyn ObjectStore>, url: &str) -> Destination {
        Destination {
            url: trim_url(url),
            store,
            base: Path::default(),
            local_root: None,
            retry: RetryPolicy::default(),
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
                        Error::Transient(_) => backoff::Error::transient(e),
                        e => backoff::Error::permanent(e),
                    })
                }
            },
            |e: Error, wait: Duration| {
                tracing::warn!(destination = %self.url, error = %e,
                    "transient object-store failure; retrying in {:.1}s", wait.as_secs_f64());
            },
        )
        .await;
        outcome.map_err(|e| match e {
            Error::Transient(m) => Error::Transient(format!(
                "{m} (gave up after {} attempts in {:.0}s; the task key retry.max_elapsed sets \
                 how long to keep trying)",
                attempts.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            )),
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

        let first = read_chunk(&mut file, local).await?;
        md5.update(&first);
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
                let chunk = read_chunk(&mut file, local).await?;
                if chunk.is_empty() {
                    return Ok(());
                }
                md5.update(&chunk);
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

    /// Deletes `rel`; an absent object is fine.
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
    /// uploads are aborted by its lifecycle rule, see the README).
    pub async fn remove_staged(
        &self,
        matches: impl Fn(&str) -> bool + Send + 'static,
    ) -> Result<usize> {
        let Some(root) = self.local_root.clone() else {
            return Ok(0);
        };
        tokio::task::spawn_blocking(move || remove_staged_in(&root, &matches))
            .await
            .map_err(|e| Error::Store(format!("staged-file cleanup panicked: {e}")))?
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
        match Error::from(e) {
            Error::Permanent(m) => Error::Permanent(match fix {
                Some(fix) => format!("{what}: {fix} ({m})"),
                None => format!("{what}: {m}"),
            }),
            Error::Transient(m) => Error::Transient(format!("{what}: {m}")),
            other => other,
        }
    }

    /// What the operator has to do about a refusal of the store, if it says.
    fn fix_for(&self, e: &object_store::Error) -> Option<String> {
        use object_store::Error as E;
        let root = &self.url;
        Some(match e {
            E::NotFound { .. } if self.local_root.is_none() => format!(
                "bucket or container of {root} does not exist: create it, or fix the task's \
                 destination"
            ),
            E::PermissionDenied { .. } => format!(
                "access denied: the credentials in use may not write, list or delete objects \
                 under {root}; grant that, or use other credentials"
            ),
            E::Unauthenticated { .. } => format!(
                "the store refused the credentials for {root}: check the AWS_*, GOOGLE_* or \
                 AZURE_* settings lakeport runs with"
            ),
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
async fn read_chunk(file: &mut tokio::fs::File, path: &std::path::Path) -> Result<Bytes> {
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    let mut filled = 0;
    while filled < buf.len() {
        let n = file
            .read(&mut buf[filled..])
            .await
            .map_err(|e| Error::io("read for upload", path, e))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
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
    fn in_memory_roundtrip() {
        let d = Destination::from_store(Arc::new(InMemory::new()), "memory:///");
        assert_eq!(d.url(), "memory://");
        runtime().block_on(exercise(&d));
    }
}
