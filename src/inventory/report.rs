//! Inventory reports of every provider behind one entry point, [`open_report`] (or
//! [`open_report_in_store`] over a store the caller holds): S3 Inventory in CSV, CSV.gz,
//! Parquet and ORC, Alibaba OSS inventory and Huawei OBS inventory (CSV and CSV.gz). It reads
//! and checks the manifest, then streams the rows of the data files as [`Change::Upsert`]s in
//! the table's column order. Snapshot diffing, import records and store writes are not here:
//! the caller applies the changes.
//!
//! **Layouts.** S3 and OSS write
//! `<destination-prefix>/<source-bucket>/<config-id>/<YYYY-MM-DDTHH-MMZ>/manifest.json` (plus
//! `manifest.checksum`, the hex MD5 of `manifest.json`), and data files as
//! `<destination-prefix>/<source-bucket>/<config-id>/data/<uuid>.<csv.gz|parquet|orc>`. OBS
//! writes the manifest at the same place and its data inside the timestamp folder:
//! `<…>/<inventory-id>/<yyyy-MM-dd'T'HH-mm'Z'>/files/<UUID>_<index>.csv`. The manifest's file
//! `key`s are relative to the destination bucket (OBS percent-encodes the whole key, `%2F` for
//! `/`: it is percent-decoded to find the object). So for an `s3://`, `gs://`, `az://`
//! manifest URL the keys are paths in the URL's bucket; for a local manifest (plain path or
//! `file://`) the folder that plays the destination bucket is found by removing the key's
//! folders (all but the last, `data` or `files`) from the end of the report's anchor folder:
//! the `<config-id>` folder for S3 and OSS, the timestamp folder for OBS. A key that does not
//! fit is an error naming the key and the expected layout.
//!
//! **Provider detection**, from the manifest itself unless a [`Provider`] is given (`--format`):
//! 1. OBS when the manifest is valid JSON only with trailing commas removed (OBS writes
//!    `"inventoriedRecord":70585762,}`), when a file entry has `inventoriedRecord`, or when
//!    `version` is OBS's `2019-01-03`;
//! 2. else OSS when `version` is `2019-09-01` or `creationTimestamp` is in seconds (fewer
//!    than 12 digits; S3's milliseconds have 13);
//! 3. else S3.
//!
//! The trailing-comma leniency (a `,` followed only by whitespace before `}` or `]`) applies
//! to OBS manifests only; any other JSON error is an error for every provider.
//!
//! **Manifests.** S3: `creationTimestamp` in epoch ms, each file's `MD5checksum` required.
//! OSS: `creationTimestamp` in epoch seconds (converted to ms), `MD5checksum` required (often
//! upper-case hex; compared case-insensitively), CSV only. OBS: no `creationTimestamp` (the
//! report is dated by its `yyyy-MM-dd'T'HH-mm'Z'` folder; a `creationTimestamp` in ms is used
//! when present), no `MD5checksum` (checked when present), each file's `inventoriedRecord`
//! row count required, CSV only.
//!
//! **Checks.** `manifest.checksum`, when present beside the manifest, must equal the MD5 of
//! `manifest.json`'s bytes (any provider). Each data file is downloaded to an anonymous temp
//! file while its size and MD5 are computed; the size, and the MD5 when the manifest has one,
//! must match before any row of the file is yielded. OBS files must hold exactly
//! `inventoriedRecord` rows (checked when the file ends). Every row's bucket must equal the
//! manifest's `sourceBucket`. The first error ends the stream.
//!
//! **Fields.** `fileSchema` names the fields: a comma list for CSV, a Parquet message type
//! (`message s3.inventory { required binary bucket (UTF8); … }`) or an ORC struct
//! (`struct<bucket:string,key:string,…>`) for columnar reports. Each provider's names map to
//! columns by its table ([`S3_FIELDS`], [`S3_COLUMNAR_FIELDS`], [`OSS_FIELDS`],
//! [`OBS_FIELDS`]); an unknown field is an error naming it. Columns without a field are NULL,
//! except `version_id` (a key column), which is `""`; `prefix` is derived from the key (its
//! parent folder with the trailing `/`, `""` at the top level). Versioned reports keep one
//! row per version (the key is `[bucket, key, version_id]`). Parquet and ORC files are read in
//! batches of [`BATCH_ROWS`] rows and their columns are matched to fields by name, then cast
//! to the column's type (timestamps of any unit to ms).
//!
//! **Key decoding**, exactly as each provider encodes:
//! - S3 CSV: form-encoded (`+` is a space, `%2B` a `+`, non-ASCII percent-encoded UTF-8).
//! - OSS CSV: "URL-encoded" per Alibaba's docs; OSS's own Go SDK decodes such keys with
//!   `url.QueryUnescape`, i.e. form decoding, so the same form decoding as S3.
//! - OBS CSV: "URL-encoded using UTF-8" per Huawei's docs; decoded the same way (form decoding;
//!   a literal `+` in a key arrives as `%2B`).
//! - S3 Parquet and ORC: keys are not encoded and are never decoded.
//!
//! Errors name the file URL and where: `url:line: Field: expected …, found …` for CSV,
//! `url: row N: Field: …` for Parquet and ORC (N counts from 1 in the file).
//!
//! **ORC** is read with `orc-rust` (the only maintained pure-Rust ORC reader), whose arrow is
//! lakeport's (see `Cargo.toml`): its batches take the same mapping path as Parquet batches.

mod fields;
mod manifest;

pub use fields::{form_decode, OBS_FIELDS, OSS_FIELDS, S3_COLUMNAR_FIELDS, S3_FIELDS};

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{Error, Result};
use crate::model::TableDef;
use crate::objstore::destination::{hex, Destination};
use crate::objstore::storage::StorageOptions;
use crate::store::{Change, Value};

use fields::{known_fields, PlannedBatch, RowPlan};
use manifest::{FileFormat, Manifest, ManifestFile};

/// Rows per Arrow batch read from a Parquet or ORC file.
pub const BATCH_ROWS: usize = 8192;

/// The cloud whose inventory feature wrote a report (`--format s3|oss|obs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// Amazon S3 Inventory (CSV, CSV.gz, Parquet, ORC).
    S3,
    /// Alibaba Cloud OSS bucket inventory.
    Oss,
    /// Huawei Cloud OBS bucket inventory.
    Obs,
}

impl Provider {
    /// `s3`, `oss` or `obs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::S3 => "s3",
            Provider::Oss => "oss",
            Provider::Obs => "obs",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = Error;

    fn from_str(s: &str) -> Result<Provider> {
        match s {
            "s3" => Ok(Provider::S3),
            "oss" => Ok(Provider::Oss),
            "obs" => Ok(Provider::Obs),
            other => Err(Error::InvalidConfig(format!(
                "report format: expected s3, oss or obs, found {other:?}"
            ))),
        }
    }
}

/// What an opened report is: its identity and scope, known before any data file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportInfo {
    /// The provider that wrote it (detected, or as given).
    pub provider: Provider,
    /// The manifest URL as given (or the store URL of the manifest key).
    pub manifest_url: String,
    /// Lowercase hex MD5 of `manifest.json`'s bytes: the report's identity.
    pub manifest_md5: String,
    /// Creation time in epoch milliseconds.
    pub created_ms: i64,
    /// The scope bucket: the manifest's `sourceBucket`.
    pub source_bucket: String,
    /// `CSV`, `Parquet` or `ORC`.
    pub file_format: String,
    /// Number of data files.
    pub files: usize,
}

/// An opened, checked report; [`Report::into_changes`] streams its rows.
pub struct Report {
    /// What the report is.
    pub info: ReportInfo,
    manifest: Manifest,
    /// The CSV row plan (checked at open); Parquet and ORC batches are planned per batch.
    csv_plan: Option<RowPlan>,
    table: TableDef,
    bucket_column: usize,
    data: Destination,
    blocker: Blocker,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Report {
    /// All rows of every data file in manifest order, as [`Change::Upsert`]s in the table's
    /// column order. Each file is downloaded and verified (size, MD5) before its first row;
    /// memory stays bounded (one CSV record or one batch of [`BATCH_ROWS`] at a time). The
    /// first error ends the stream. Runs blocking I/O: iterate on a blocking thread.
    pub fn into_changes(self) -> Box<dyn Iterator<Item = Result<Change>> + Send> {
        Box::new(Changes {
            report: self,
            next_file: 0,
            current: None,
            done: false,
        })
    }

    /// The full URL of a data file `key`.
    pub fn data_file_url(&self, key: &str) -> String {
        self.data.object_url(key)
    }
}

/// Opens the report whose `manifest.json` is at `manifest_url` (a path, `file://`, `s3://`,
/// `gs://`, `az://`), detecting the provider from the manifest unless `provider` is given;
/// checks `manifest.checksum` when present, parses the manifest and maps its `fileSchema`
/// onto `table`. Data files are read later, by [`Report::into_changes`]. Call from a
/// blocking thread, never from async code: object-store calls run on the current
/// multi-thread tokio runtime when there is one, else on an own small runtime.
pub fn open_report(
    manifest_url: &str,
    provider: Option<Provider>,
    table: &TableDef,
) -> Result<Report> {
    open_report_with(manifest_url, provider, table, &StorageOptions::default())
}

/// [`open_report`] with object-store options (a watcher file's `storage:` section, or the
/// command line's store flags) for the manifest's store and its data files, applied over
/// the environment as [`Destination::open`] applies them.
pub fn open_report_with(
    manifest_url: &str,
    provider: Option<Provider>,
    table: &TableDef,
    storage: &StorageOptions,
) -> Result<Report> {
    let blocker = Blocker::new(manifest_url)?;
    let location = locate(manifest_url)?;
    let folder = Destination::open(&location.folder_url, storage)?;
    let data = match (&location.bucket_url, &location.local_folder) {
        (Some(bucket), _) => DataRoot::Bucket(Destination::open(bucket, storage)?),
        (None, Some(folder)) => DataRoot::LocalLayout(folder.clone()),
        (None, None) => return Err(Error::InvalidInput(format!("{manifest_url}: no location"))),
    };
    open_in(
        blocker,
        Opening {
            manifest_url,
            folder: &folder,
            manifest_rel: &location.file_name,
            checksum_rel: "manifest.checksum",
            folder_name: location.folder_name.as_deref(),
        },
        data,
        provider,
        table,
    )
}

/// Like [`open_report`], over a store rooted at the report's destination bucket (e.g. the
/// watcher's store, or object_store's `InMemory`): `manifest_key` and the manifest's data
/// keys are paths in `store`; `bucket_url` is used in messages and [`ReportInfo::manifest_url`].
pub fn open_report_in_store(
    store: Arc<dyn ObjectStore>,
    bucket_url: &str,
    manifest_key: &str,
    provider: Option<Provider>,
    table: &TableDef,
) -> Result<Report> {
    let blocker = Blocker::new(bucket_url)?;
    let bucket = Destination::from_store(store, bucket_url);
    let manifest_url = bucket.object_url(manifest_key);
    let trimmed = manifest_key.trim_end_matches('/');
    let (checksum_key, folder_name) = match trimmed.rsplit_once('/') {
        Some((folder, _)) => (
            format!("{folder}/manifest.checksum"),
            folder.rsplit('/').next().map(str::to_string),
        ),
        None => ("manifest.checksum".to_string(), None),
    };
    open_in(
        blocker,
        Opening {
            manifest_url: &manifest_url,
            folder: &bucket,
            manifest_rel: manifest_key,
            checksum_rel: &checksum_key,
            folder_name: folder_name.as_deref(),
        },
        DataRoot::Bucket(bucket.clone()),
        provider,
        table,
    )
}

/// Runs async object_store calls from blocking code: on the caller's multi-thread runtime,
/// or on an own one (a current-thread runtime's handle cannot drive I/O from another thread).
enum Blocker {
    Own(tokio::runtime::Runtime),
    Handle(tokio::runtime::Handle),
}

impl Blocker {
    fn new(url: &str) -> Result<Blocker> {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                return Ok(Blocker::Handle(handle));
            }
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(Blocker::Own)
            .map_err(|e| Error::io("start a runtime for", FsPath::new(url), e))
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            Blocker::Own(rt) => rt.block_on(f),
            Blocker::Handle(h) => h.block_on(f),
        }
    }
}

/// Where a manifest lives: its folder as a lake-root URL, its file name, and how data keys
/// are resolved.
struct ManifestLocation {
    folder_url: String,
    file_name: String,
    /// The name of the folder holding the manifest (the report's timestamp folder).
    folder_name: Option<String>,
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
            folder_name: folder
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string),
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
        folder_name: folder.rsplit('/').next().map(str::to_string),
        local_folder: None,
        bucket_url: Some(format!("{}://{host}", url.scheme())),
    })
}

/// Where the manifest's data keys are resolved.
enum DataRoot {
    /// Keys are paths in this bucket.
    Bucket(Destination),
    /// A local report: the bucket folder is found from the manifest's folder and the keys.
    LocalLayout(PathBuf),
}

/// Where to read a manifest and its checksum.
struct Opening<'a> {
    manifest_url: &'a str,
    folder: &'a Destination,
    manifest_rel: &'a str,
    checksum_rel: &'a str,
    /// The name of the folder holding the manifest (dates OBS reports).
    folder_name: Option<&'a str>,
}

fn open_in(
    blocker: Blocker,
    at: Opening<'_>,
    data: DataRoot,
    provider: Option<Provider>,
    table: &TableDef,
) -> Result<Report> {
    let manifest_url = at.manifest_url;
    let manifest_bytes = blocker
        .block_on(get_small(at.folder, at.manifest_rel))?
        .ok_or_else(|| Error::InvalidInput(format!("{manifest_url}: manifest not found")))?;
    let manifest_md5 = hex(&Md5::digest(&manifest_bytes));
    if let Some(checksum) = blocker.block_on(get_small(at.folder, at.checksum_rel))? {
        let text = String::from_utf8_lossy(&checksum);
        let said = text.trim().to_ascii_lowercase();
        if said != manifest_md5 {
            return Err(Error::InvalidInput(format!(
                "{manifest_url}: manifest.checksum says {said}, manifest.json has MD5 {manifest_md5}"
            )));
        }
    }
    let (doc, lenient) = manifest::parse_json(&manifest_bytes, manifest_url)?;
    let provider = provider.unwrap_or_else(|| manifest::detect(&doc, lenient));
    let manifest = manifest::parse(&doc, lenient, provider, manifest_url, at.folder_name)?;
    let known = known_fields(provider, manifest.file_format);
    let what = format!("{manifest_url}: fileSchema");
    let csv_plan = match manifest.file_format {
        FileFormat::Csv => Some(RowPlan::new(
            &manifest.file_schema,
            known,
            table,
            &what,
            true,
        )?),
        // Checked now, so an unknown field fails before any download; files are mapped by name.
        _ => RowPlan::new(&manifest.file_schema, known, table, &what, false).map(|_| None)?,
    };
    let bucket_column = table.column_index("bucket").ok_or_else(|| {
        Error::InvalidInput(format!(
            "{manifest_url}: table {} has no bucket column for the report's rows",
            table.table
        ))
    })?;
    let data = match data {
        DataRoot::Bucket(d) => d,
        DataRoot::LocalLayout(folder) => match manifest.files.first() {
            Some(first) => {
                let (anchor, layout) = match provider {
                    Provider::Obs => (
                        Some(folder.as_path()),
                        "<destinationPrefix>/<source-bucket>/<inventory-id>/<timestamp>/files/<file> \
                         with the manifest in <destinationPrefix>/<source-bucket>/<inventory-id>/<timestamp>/",
                    ),
                    _ => (
                        folder.parent(),
                        "<destination-prefix>/<source-bucket>/<config-id>/data/<file> \
                         with the manifest in <destination-prefix>/<source-bucket>/<config-id>/<timestamp>/",
                    ),
                };
                let root = anchor
                    .and_then(|a| local_bucket_root(a, &first.key))
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "{manifest_url}: files: key {:?} does not fit the report layout \
                             (expected {layout})",
                            first.key
                        ))
                    })?;
                folder_dest(&root)?
            }
            None => folder_dest(&folder)?,
        },
    };
    Ok(Report {
        info: ReportInfo {
            provider,
            manifest_url: manifest_url.to_string(),
            manifest_md5,
            created_ms: manifest.created_ms,
            source_bucket: manifest.source_bucket.clone(),
            file_format: manifest.file_format.as_str().to_string(),
            files: manifest.files.len(),
        },
        manifest,
        csv_plan,
        table: table.clone(),
        bucket_column,
        data,
        blocker,
    })
}

fn folder_dest(folder: &FsPath) -> Result<Destination> {
    Destination::parse(&folder.display().to_string())
}

/// The local folder that plays the destination bucket: `anchor` (the report's `<config-id>`
/// folder for S3 and OSS, its timestamp folder for OBS) with the key's folders above the
/// last one (`data/`, `files/`) removed from its end.
fn local_bucket_root(anchor: &FsPath, key: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() < 2 {
        return None;
    }
    let above = &parts[..parts.len() - 2];
    let mut root = anchor.to_path_buf();
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
    Error::object_storage(what, e)
}

/// Opens the local file `path` and reads it once for its byte count and hex MD5, returning
/// it rewound: a report in a local folder is read where it is, not copied to a temp file.
fn hash_local(path: &FsPath) -> Result<Option<(File, u64, String)>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let mut hasher = Md5::new();
    let mut size = 0u64;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        hasher.update(&chunk[..n]);
        size += n as u64;
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewind", path, e))?;
    Ok(Some((file, size, hex(&hasher.finalize()))))
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

/// Batches of one columnar file (Parquet or ORC), as Arrow record batches.
type Batches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// The rows of one open data file.
enum Rows {
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        /// The record being read, reused from row to row.
        record: csv::StringRecord,
    },
    Columnar {
        batches: Batches,
        batch: Option<PlannedBatch>,
        next: usize,
    },
}

struct OpenFile {
    url: String,
    rows: Rows,
    /// OBS `inventoriedRecord`: rows the file must hold.
    expected: Option<u64>,
    /// Rows read so far.
    count: u64,
}

impl Report {
    fn open_file(&self, file: &ManifestFile) -> Result<OpenFile> {
        let url = self.data.object_url(&file.key);
        let path = self.data.path(&file.key);
        let opened = match self.data.local_file(&file.key) {
            Some(local) => hash_local(&local)?,
            None => self
                .blocker
                .block_on(download(self.data.store().as_ref(), &path, &url))?,
        };
        let (local, size, md5) = opened.ok_or_else(|| {
            Error::InvalidInput(format!(
                "{url}: data file listed in {} not found",
                self.info.manifest_url
            ))
        })?;
        if size != file.size {
            return Err(Error::InvalidInput(format!(
                "{url}: size: expected {} bytes (manifest), found {size}",
                file.size
            )));
        }
        if let Some(expected) = &file.md5 {
            if &md5 != expected {
                return Err(Error::InvalidInput(format!(
                    "{url}: MD5: expected {expected} (manifest), found {md5}"
                )));
            }
        }
        let rows = match self.manifest.file_format {
            FileFormat::Csv => {
                let buffered = BufReader::with_capacity(1 << 20, local);
                let reader: Box<dyn Read + Send> = if file.key.ends_with(".gz") {
                    Box::new(BufReader::with_capacity(
                        1 << 20,
                        flate2::read::MultiGzDecoder::new(buffered),
                    ))
                } else {
                    Box::new(buffered)
                };
                Rows::Csv {
                    reader: csv::ReaderBuilder::new()
                        .has_headers(false)
                        .flexible(true)
                        .from_reader(reader),
                    record: csv::StringRecord::new(),
                }
            }
            FileFormat::Parquet => Rows::Columnar {
                batches: parquet_batches(local, &url)?,
                batch: None,
                next: 0,
            },
            FileFormat::Orc => Rows::Columnar {
                batches: orc_batches(local, &url)?,
                batch: None,
                next: 0,
            },
        };
        Ok(OpenFile {
            url,
            rows,
            expected: file.records,
            count: 0,
        })
    }

    /// Checks a row's bucket against the manifest's `sourceBucket`.
    fn check_bucket(&self, row: &[Value]) -> std::result::Result<(), String> {
        match &row[self.bucket_column] {
            Value::String(b) if *b == self.info.source_bucket => Ok(()),
            other => Err(format!(
                "Bucket: expected {:?} (the manifest's sourceBucket), found {}",
                self.info.source_bucket,
                match other {
                    Value::String(b) => format!("{b:?}"),
                    _ => "no bucket".to_string(),
                }
            )),
        }
    }
}

fn parquet_batches(file: File, url: &str) -> Result<Batches> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| {
            Error::InvalidInput(format!(
                "{url}: expected a Parquet file, cannot read it: {e}"
            ))
        })?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| Error::InvalidInput(format!("{url}: cannot read Parquet: {e}")))?;
    let url = url.to_string();
    Ok(Box::new(reader.map(move |batch| {
        batch.map_err(|e| Error::InvalidInput(format!("{url}: cannot read Parquet data: {e}")))
    })))
}

fn orc_batches(file: File, url: &str) -> Result<Batches> {
    let reader = orc_rust::ArrowReaderBuilder::try_new(file)
        .map_err(|e| {
            Error::InvalidInput(format!("{url}: expected an ORC file, cannot read it: {e}"))
        })?
        .with_batch_size(BATCH_ROWS)
        .with_timestamp_precision(orc_rust::TimestampPrecision::Microsecond)
        .build();
    let url = url.to_string();
    Ok(Box::new(reader.map(move |batch| {
        batch.map_err(|e| Error::InvalidInput(format!("{url}: cannot read ORC data: {e}")))
    })))
}

struct Changes {
    report: Report,
    next_file: usize,
    current: Option<OpenFile>,
    done: bool,
}

impl Changes {
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
            // Where the row is, for a message: a CSV line or a row number.
            let (row, place) = match &mut open.rows {
                Rows::Csv { reader, record } => match reader.read_record(record) {
                    Ok(false) => None,
                    Err(e) => return Some(Err(csv_error(&open.url, &e))),
                    Ok(true) => {
                        let line = record.position().map_or(0, |p| p.line());
                        let plan = self.report.csv_plan.as_ref()?;
                        Some((plan.row(record), Place::Line(line)))
                    }
                },
                Rows::Columnar {
                    batches,
                    batch,
                    next,
                } => {
                    if batch.as_ref().is_some_and(|b| *next >= b.len()) {
                        *batch = None;
                    }
                    if batch.is_none() {
                        match batches.next() {
                            None => None,
                            Some(Err(e)) => return Some(Err(e)),
                            Some(Ok(b)) => {
                                let what = format!("{}: rows {}..", open.url, open.count + 1);
                                match PlannedBatch::new(
                                    &b,
                                    known_fields(
                                        self.report.info.provider,
                                        self.report.manifest.file_format,
                                    ),
                                    &self.report.table,
                                    &what,
                                ) {
                                    Ok(p) => *batch = Some(p),
                                    Err(e) => return Some(Err(e)),
                                }
                                *next = 0;
                                continue;
                            }
                        }
                    } else {
                        let b = batch.as_ref()?;
                        let i = *next;
                        *next += 1;
                        Some((b.row(i), Place::Row(open.count + 1)))
                    }
                }
            }
            .map_or((None, Place::Row(0)), |(r, p)| (Some(r), p));
            let Some(row) = row else {
                // The file is done: check OBS's row count, then go on with the next file.
                if let Some(expected) = open.expected {
                    if expected != open.count {
                        return Some(Err(Error::InvalidInput(format!(
                            "{}: inventoriedRecord: expected {expected} rows (manifest), found {}",
                            open.url, open.count
                        ))));
                    }
                }
                self.current = None;
                continue;
            };
            open.count += 1;
            let checked = row.and_then(|r| self.report.check_bucket(&r).map(|()| r));
            return Some(checked.map(Change::Upsert).map_err(|m| {
                let at = match place {
                    Place::Line(line) => format!("{}:{line}", open.url),
                    Place::Row(n) => format!("{}: row {n}", open.url),
                };
                Error::InvalidInput(format!("{at}: {m}"))
            }));
        }
    }
}

/// Where a row is in its file: a CSV line, or a row number of a columnar file.
#[derive(Clone, Copy)]
enum Place {
    Line(u64),
    Row(u64),
}

impl Iterator for Changes {
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
