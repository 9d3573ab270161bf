//! S3 Inventory reports in CSV and CSV.gz: the manifest, its checksum, the data files, and the
//! mapping of their fields onto a table such as `object_inventory`. Parquet and ORC reports,
//! OSS and OBS reports, snapshot diffing and store writes are not here (the caller applies the
//! [`Change`]s this module yields).
//!
//! **Layout.** S3 writes a report as
//! `<destination-prefix>/<source-bucket>/<config-id>/<YYYY-MM-DDTHH-MMZ>/manifest.json` (plus
//! `manifest.checksum`, the hex MD5 of `manifest.json`), and its data files as
//! `<destination-prefix>/<source-bucket>/<config-id>/data/<uuid>.csv.gz`; the manifest's file
//! `key`s are relative to the destination bucket. So:
//! - for an `s3://`, `gs://`, `az://` manifest URL the keys are paths in the URL's bucket;
//! - for a local manifest (plain path or `file://`) the folder that plays the destination bucket
//!   is found by removing the key's `<destination-prefix>/<source-bucket>/<config-id>` from the
//!   end of the manifest's grandparent folder (the `<config-id>` folder). A key that does not
//!   fit there is an error naming the key and the expected layout.
//!
//! **Checks, before any row is yielded from a file.** `manifest.checksum`, when present, must
//! equal the MD5 of `manifest.json`'s bytes. Each data file is downloaded to an anonymous temp
//! file while its size and MD5 are computed; both must equal the manifest's `size` and
//! `MD5checksum`. Then the temp file is decompressed (when its key ends in `.gz`) and parsed as
//! CSV row by row, so memory does not grow with the report.
//!
//! **Values.** `fileSchema` names the CSV columns in order; each S3 field maps to its snake_case
//! column (see [`S3_FIELDS`]); an unknown field is an error. Columns whose field is not in
//! `fileSchema` are NULL, except `version_id` (a key column) which is `""`; `prefix` is derived
//! from the key (its parent folder with the trailing `/`, `""` at the top level). `Key` is
//! form-decoded (`+` is a space, `%XX` a byte, the bytes UTF-8). Empty fields are NULL (an empty
//! string in a key column such as `version_id`; an error for `Bucket` and `Key`). Integers are decimal, booleans `true`/`false`, dates ISO 8601
//! (`2024-03-05T10:20:30.000Z`, stored as epoch ms). Errors name the manifest or data file URL
//! (`url:line: Field: expected …, found …` for a value).
//!
//! Trailing commas in `manifest.json` (seen in OBS manifests, never in S3's) are refused here as
//! invalid JSON; OBS support will decide where to accept them.

mod fields;
mod manifest;

pub use fields::{form_decode, parent_folder, S3_FIELDS};
pub use manifest::{S3Manifest, S3ManifestFile};

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path as FsPath, PathBuf};

use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{Error, Result};
use crate::sink::destination::Destination;
use crate::store::{Change, TableDef};

use fields::RowPlan;

/// Lowercase hex of `bytes` (MD5 digests).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs async object_store calls from blocking code: on a given runtime, or on an own one.
enum Blocker {
    Own(tokio::runtime::Runtime),
    Handle(tokio::runtime::Handle),
}

impl Blocker {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            Blocker::Own(rt) => rt.block_on(f),
            Blocker::Handle(h) => h.block_on(f),
        }
    }
}

/// An opened, checked S3 Inventory report whose rows are read by [`S3Report::changes`].
pub struct S3Report {
    /// The parsed manifest.
    pub manifest: S3Manifest,
    /// Hex MD5 of `manifest.json`'s bytes (lowercase).
    pub manifest_md5: String,
    /// The scope this report is a full snapshot of: the source bucket.
    pub scope_bucket: String,
    /// The manifest URL as given.
    pub manifest_url: String,
    plan: RowPlan,
    data: Destination,
    blocker: Blocker,
}

impl std::fmt::Debug for S3Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Report")
            .field("manifest_url", &self.manifest_url)
            .field("manifest", &self.manifest)
            .field("manifest_md5", &self.manifest_md5)
            .finish_non_exhaustive()
    }
}

/// Opens the S3 Inventory report whose `manifest.json` is at `manifest_url` (a path,
/// `file://`, `s3://`, `gs://`, `az://`), checks `manifest.checksum` when present, parses the
/// manifest and maps its `fileSchema` onto `table`. Data files are read later, by
/// [`S3Report::changes`]. Runs its object-store calls on an own small runtime; call it from
/// a blocking thread (not from async code).
pub fn read_s3_report(manifest_url: &str, table: &TableDef) -> Result<S3Report> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start a runtime for", FsPath::new(manifest_url), e))?;
    open_report(Blocker::Own(rt), manifest_url, table)
}

/// Like [`read_s3_report`], running the object-store calls on `handle` (the caller must be on
/// a blocking thread of that runtime or outside it, never on one of its async workers).
pub fn read_s3_report_on(
    handle: tokio::runtime::Handle,
    manifest_url: &str,
    table: &TableDef,
) -> Result<S3Report> {
    open_report(Blocker::Handle(handle), manifest_url, table)
}

/// Where a manifest lives: its folder as a lake-root URL, its file name, and how data keys
/// are resolved.
struct ManifestLocation {
    folder_url: String,
    file_name: String,
    /// The local folder of the manifest (None for cloud URLs).
    local_folder: Option<PathBuf>,
    /// For cloud URLs, the bucket root URL (`s3://bucket`).
    bucket_url: Option<String>,
}

fn locate(manifest_url: &str) -> Result<ManifestLocation> {
    let bad = |what: &str| Error::InvalidInput(format!("{manifest_url}: {what}"));
    let trimmed = manifest_url.trim();
    let local = |path: PathBuf| -> Result<ManifestLocation> {
        let path =
            std::fs::canonicalize(&path).map_err(|e| Error::io("open manifest", &path, e))?;
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("expected the path of a manifest.json file"))?
            .to_string();
        let folder = path
            .parent()
            .ok_or_else(|| bad("expected the path of a manifest.json file"))?
            .to_path_buf();
        Ok(ManifestLocation {
            folder_url: folder.display().to_string(),
            file_name,
            local_folder: Some(folder),
            bucket_url: None,
        })
    };
    if !trimmed.contains("://") {
        return local(PathBuf::from(trimmed));
    }
    let url = Url::parse(trimmed).map_err(|e| bad(&format!("not a URL: {e}")))?;
    if url.scheme() == "file" {
        let path = url
            .to_file_path()
            .map_err(|()| bad("not a local absolute path"))?;
        return local(path);
    }
    let (folder, name) = trimmed
        .rsplit_once('/')
        .filter(|(_, n)| !n.is_empty())
        .ok_or_else(|| bad("expected the URL of a manifest.json object"))?;
    let host = url
        .host_str()
        .ok_or_else(|| bad("expected a bucket in the URL"))?;
    Ok(ManifestLocation {
        folder_url: folder.to_string(),
        file_name: name.to_string(),
        local_folder: None,
        bucket_url: Some(format!("{}://{host}", url.scheme())),
    })
}

fn open_report(blocker: Blocker, manifest_url: &str, table: &TableDef) -> Result<S3Report> {
    let location = locate(manifest_url)?;
    let folder = Destination::parse(&location.folder_url)?;
    let data = match (&location.bucket_url, &location.local_folder) {
        (Some(bucket), _) => DataRoot::Bucket(Destination::parse(bucket)?),
        (None, Some(folder)) => DataRoot::LocalLayout(folder.clone()),
        (None, None) => return Err(Error::InvalidInput(format!("{manifest_url}: no location"))),
    };
    open_in(
        blocker,
        manifest_url,
        &folder,
        &location.file_name,
        "manifest.checksum",
        data,
        table,
    )
}

/// Like [`read_s3_report`], over an existing store rooted at the destination bucket (e.g.
/// object_store's `InMemory`, or a store the caller already holds for a watched root):
/// `manifest_key` and the manifest's data keys are paths in `store`; `bucket_url` is used in
/// messages only.
pub fn read_s3_report_in_store(
    store: std::sync::Arc<dyn ObjectStore>,
    bucket_url: &str,
    manifest_key: &str,
    table: &TableDef,
) -> Result<S3Report> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start a runtime for", FsPath::new(bucket_url), e))?;
    let bucket = Destination::from_store(store, bucket_url);
    let manifest_url = bucket.object_url(manifest_key);
    let checksum_key = match manifest_key.trim_end_matches('/').rsplit_once('/') {
        Some((folder, _)) => format!("{folder}/manifest.checksum"),
        None => "manifest.checksum".to_string(),
    };
    open_in(
        Blocker::Own(rt),
        &manifest_url,
        &bucket,
        manifest_key,
        &checksum_key,
        DataRoot::Bucket(bucket.clone()),
        table,
    )
}

/// Where the manifest's data keys are resolved.
enum DataRoot {
    /// Keys are paths in this bucket.
    Bucket(Destination),
    /// A local report: the bucket folder is found from the manifest's folder and the keys.
    LocalLayout(PathBuf),
}

fn open_in(
    blocker: Blocker,
    manifest_url: &str,
    folder: &Destination,
    manifest_rel: &str,
    checksum_rel: &str,
    data: DataRoot,
    table: &TableDef,
) -> Result<S3Report> {
    let manifest_bytes = blocker
        .block_on(get_small(folder, manifest_rel))?
        .ok_or_else(|| Error::InvalidInput(format!("{manifest_url}: manifest not found")))?;
    let manifest_md5 = hex(&Md5::digest(&manifest_bytes));
    if let Some(checksum) = blocker.block_on(get_small(folder, checksum_rel))? {
        let text = String::from_utf8_lossy(&checksum);
        let said = text.trim().to_ascii_lowercase();
        if said != manifest_md5 {
            return Err(Error::InvalidInput(format!(
                "{manifest_url}: manifest.checksum says {said}, manifest.json has MD5 {manifest_md5}"
            )));
        }
    }
    let manifest = S3Manifest::parse(&manifest_bytes, manifest_url)?;
    let plan = RowPlan::new(&manifest.file_schema, table, manifest_url)?;
    let data = match data {
        DataRoot::Bucket(d) => d,
        DataRoot::LocalLayout(folder) => match manifest.files.first() {
            Some(first) => {
                let root = local_bucket_root(&folder, &first.key).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "{manifest_url}: files: key {:?} does not fit the report layout \
                         (expected <destination-prefix>/<source-bucket>/<config-id>/data/<file> \
                         with the manifest in <destination-prefix>/<source-bucket>/<config-id>/<timestamp>/)",
                        first.key
                    ))
                })?;
                folder_dest(&root)?
            }
            None => folder_dest(&folder)?,
        },
    };
    Ok(S3Report {
        scope_bucket: manifest.source_bucket.clone(),
        manifest,
        manifest_md5,
        manifest_url: manifest_url.to_string(),
        plan,
        data,
        blocker,
    })
}

fn folder_dest(folder: &FsPath) -> Result<Destination> {
    Destination::parse(&folder.display().to_string())
}

/// The local folder that plays the destination bucket: the manifest's grandparent (the
/// `<config-id>` folder) with the key's folders above `data/` removed from its end.
fn local_bucket_root(manifest_folder: &FsPath, key: &str) -> Option<PathBuf> {
    let config_folder = manifest_folder.parent()?;
    let parts: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() < 2 {
        return None;
    }
    let above = &parts[..parts.len() - 2];
    let mut root = config_folder.to_path_buf();
    for part in above.iter().rev() {
        if root.file_name()?.to_str()? != *part {
            return None;
        }
        root = root.parent()?.to_path_buf();
    }
    Some(root)
}

/// Reads a small object whole; `None` when it does not exist.
async fn get_small(dest: &Destination, rel: &str) -> Result<Option<Vec<u8>>> {
    let url = dest.object_url(rel);
    match dest.store().get(&dest.path(rel)).await {
        Ok(r) => {
            let bytes = r
                .bytes()
                .await
                .map_err(|e| with_url(&format!("read {url}"), e))?;
            Ok(Some(bytes.to_vec()))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(with_url(&format!("read {url}"), e)),
    }
}

fn with_url(what: &str, e: object_store::Error) -> Error {
    match Error::from(e) {
        Error::Permanent(m) => Error::Permanent(format!("{what}: {m}")),
        Error::Transient(m) => Error::Transient(format!("{what}: {m}")),
        other => other,
    }
}

/// Downloads `path` into an anonymous temp file, returning it rewound with the byte count and
/// hex MD5 of what was read.
async fn download(
    store: &dyn ObjectStore,
    path: &Path,
    url: &str,
) -> Result<Option<(File, u64, String)>> {
    let result = match store.get(path).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(with_url(&format!("read {url}"), e)),
    };
    let mut file = tempfile::tempfile()
        .map_err(|e| Error::io("create a temp file for", FsPath::new(url), e))?;
    let mut hasher = Md5::new();
    let mut size = 0u64;
    let mut stream = result.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| with_url(&format!("read {url}"), e))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk)
            .map_err(|e| Error::io("write a temp copy of", FsPath::new(url), e))?;
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewind the temp copy of", FsPath::new(url), e))?;
    Ok(Some((file, size, hex(&hasher.finalize()))))
}

/// The CSV reader of one verified data file.
struct OpenFile {
    url: String,
    records: csv::StringRecordsIntoIter<Box<dyn Read>>,
}

impl S3Report {
    /// The rows of every data file in manifest order, as [`Change::Upsert`]s in the table's
    /// column order. Each file is verified (size, MD5) before its first row; the first error
    /// ends the stream.
    pub fn changes(&mut self) -> impl Iterator<Item = Result<Change>> + '_ {
        Changes {
            report: self,
            next_file: 0,
            current: None,
            done: false,
        }
    }

    /// The full URL of a data file `key`.
    pub fn data_file_url(&self, key: &str) -> String {
        self.data.object_url(key)
    }

    fn open_file(&self, file: &S3ManifestFile) -> Result<OpenFile> {
        let url = self.data.object_url(&file.key);
        let path = self.data.path(&file.key);
        let (local, size, md5) = self
            .blocker
            .block_on(download(self.data.store().as_ref(), &path, &url))?
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{url}: data file listed in {} not found",
                    self.manifest_url
                ))
            })?;
        if size != file.size {
            return Err(Error::InvalidInput(format!(
                "{url}: size: expected {} bytes (manifest), found {size}",
                file.size
            )));
        }
        if md5 != file.md5_checksum {
            return Err(Error::InvalidInput(format!(
                "{url}: MD5: expected {} (manifest), found {md5}",
                file.md5_checksum
            )));
        }
        let buffered = BufReader::with_capacity(1 << 20, local);
        let reader: Box<dyn Read> = if file.key.ends_with(".gz") {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        let records = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(reader)
            .into_records();
        Ok(OpenFile { url, records })
    }
}

struct Changes<'a> {
    report: &'a mut S3Report,
    next_file: usize,
    current: Option<OpenFile>,
    done: bool,
}

impl Changes<'_> {
    fn step(&mut self) -> Option<Result<Change>> {
        loop {
            let Some(open) = self.current.as_mut() else {
                let file = self.report.manifest.files.get(self.next_file)?.clone();
                self.next_file += 1;
                match self.report.open_file(&file) {
                    Ok(f) => self.current = Some(f),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            };
            match open.records.next() {
                None => self.current = None,
                Some(Err(e)) => return Some(Err(csv_error(&open.url, &e))),
                Some(Ok(record)) => {
                    let line = record.position().map_or(0, |p| p.line());
                    return Some(
                        self.report
                            .plan
                            .row(&record)
                            .map(Change::Upsert)
                            .map_err(|m| Error::InvalidInput(format!("{}:{line}: {m}", open.url))),
                    );
                }
            }
        }
    }
}

impl Iterator for Changes<'_> {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if matches!(item, None | Some(Err(_))) {
            self.done = true;
        }
        item
    }
}

fn csv_error(url: &str, e: &csv::Error) -> Error {
    let line = e.position().map(|p| p.line());
    let where_ = match line {
        Some(l) => format!("{url}:{l}"),
        None => url.to_string(),
    };
    match e.kind() {
        csv::ErrorKind::Io(io) => Error::InvalidInput(format!(
            "{where_}: cannot read (corrupt or truncated gzip?): {io}"
        )),
        csv::ErrorKind::Utf8 { err, .. } => {
            Error::InvalidInput(format!("{where_}: expected UTF-8 text: {err}"))
        }
        _ => Error::InvalidInput(format!("{where_}: {e}")),
    }
}

#[cfg(test)]
mod tests;
