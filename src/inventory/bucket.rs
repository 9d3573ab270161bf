//! Native snapshots: a bucket listed directly through object_store (no report needed) into the
//! rows of `object_inventory`, with the same snapshot semantics as a report (see
//! [`crate::store::Store::apply_snapshot`]).
//!
//! **Bucket and keys.** `s3://b`, `gs://b`, `az://account/container`-style URLs name the bucket
//! by their host; a path after it is a key prefix (folded into the scope's prefix). A local
//! folder (`file:///…` or a plain path) plays a bucket named after the folder; its keys are
//! file paths relative to it, `/`-separated. object_store percent-encodes characters it avoids
//! in path segments (`%` among them) when it lists a local folder; keys are decoded back, so
//! a file `a%b c.txt` is the key `a%b c.txt`.
//!
//! **Prefix.** The scope prefix is a plain string prefix of the key (`logs/2024` covers
//! `logs/2024-01/x` and `logs/2024.txt`), as S3's `ListObjectsV2` prefix is. The listing asks
//! the store for the folder the prefix sits in and keeps the keys that start with it.
//!
//! **Columns.** bucket, key, version_id `""`, prefix (derived), size, last_modified, etag (as
//! the store reports it; a local folder's is object_store's own file tag); every other column
//! is NULL: a listing does not say storage class, encryption or ACLs.

use std::sync::Arc;

use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::ObjectStore;
use percent_encoding::percent_decode_str;
use url::Url;

use crate::error::{Error, Result};
use crate::inventory::read_ahead::{Producer, ReadAhead};
use crate::model::schema::parent_folder;
use crate::model::TableDef;
use crate::objstore::destination::{hex, Destination};
use crate::objstore::storage::StorageOptions;
use crate::store::{Change, ImportRecord, ImportScope, Value};

/// A bucket (or local folder) about to be listed.
pub struct BucketListing {
    /// The bucket's name: the URL's host, or the local folder's name.
    pub bucket: String,
    /// The key prefix the listing covers (`""`: every key).
    pub prefix: String,
    /// The bucket URL as normalised (`file:///abs/folder`, `s3://bucket`).
    pub url: String,
    store: Arc<dyn ObjectStore>,
    plan: Plan,
}

/// Where each listed field goes in the table's rows.
#[derive(Clone)]
struct Plan {
    width: usize,
    bucket: usize,
    key: usize,
    version_id: Option<usize>,
    prefix: Option<usize>,
    size: Option<usize>,
    last_modified: Option<usize>,
    etag: Option<usize>,
}

impl Plan {
    fn new(table: &TableDef) -> Result<Plan> {
        let find = |name: &str| table.columns.iter().position(|c| c.name == name);
        let need = |name: &str| {
            find(name).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "table {}: a bucket listing needs a column {name:?}",
                    table.table
                ))
            })
        };
        Ok(Plan {
            width: table.columns.len(),
            bucket: need("bucket")?,
            key: need("key")?,
            version_id: find("version_id"),
            prefix: find("prefix"),
            size: find("size"),
            last_modified: find("last_modified"),
            etag: find("etag"),
        })
    }

    fn row(&self, bucket: &str, key: String, meta: &object_store::ObjectMeta) -> Vec<Value> {
        let mut row = vec![Value::Null; self.width];
        let mut put = |at: Option<usize>, v: Value| {
            if let Some(i) = at {
                row[i] = v;
            }
        };
        put(Some(self.bucket), Value::String(bucket.to_string()));
        put(self.version_id, Value::String(String::new()));
        put(self.prefix, Value::String(parent_folder(&key).to_string()));
        put(
            self.size,
            Value::Int64(i64::try_from(meta.size).unwrap_or(i64::MAX)),
        );
        put(
            self.last_modified,
            Value::TimestampMs(meta.last_modified.timestamp_millis()),
        );
        put(
            self.etag,
            meta.e_tag.as_ref().map_or(Value::Null, |e| {
                Value::String(e.trim_matches('"').to_string())
            }),
        );
        row[self.key] = Value::String(key);
        row
    }
}

/// Opens the bucket `url` for a listing of the keys under `prefix` into `table`'s rows, with
/// the store options `storage` over the environment (see [`Destination::open`]). A local
/// folder that does not exist is an [`Error::NotFound`]; nothing is contacted over the
/// network here.
pub fn open_bucket(
    url: &str,
    prefix: &str,
    table: &TableDef,
    storage: &StorageOptions,
) -> Result<BucketListing> {
    let plan = Plan::new(table)?;
    let trimmed = url.trim();
    let local = if trimmed.contains("://") {
        let parsed = Url::parse(trimmed)
            .map_err(|e| Error::InvalidConfig(format!("bucket URL {url:?}: {e}")))?;
        (parsed.scheme() == "file")
            .then(|| parsed.to_file_path())
            .transpose()
            .map_err(|()| {
                Error::InvalidConfig(format!("bucket URL {url:?}: not a local absolute path"))
            })?
    } else {
        Some(std::path::PathBuf::from(trimmed))
    };
    if let Some(folder) = local {
        if !folder.is_dir() {
            return Err(Error::NotFound(format!(
                "bucket {url}: folder {} does not exist",
                folder.display()
            )));
        }
        let dest = Destination::parse(trimmed)?;
        let name = std::fs::canonicalize(&folder)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        if name.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "bucket {url}: the folder needs a name to play a bucket (not /)"
            )));
        }
        return Ok(BucketListing {
            bucket: name,
            prefix: prefix.to_string(),
            url: dest.url().to_string(),
            store: Arc::clone(dest.store()),
            plan,
        });
    }
    let parsed = Url::parse(trimmed)
        .map_err(|e| Error::InvalidConfig(format!("bucket URL {url:?}: {e}")))?;
    let bucket = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::InvalidConfig(format!("bucket URL {url:?}: names no bucket")))?
        .to_string();
    let inside = percent_decode_str(parsed.path().trim_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    let root = format!("{}://{bucket}", parsed.scheme());
    let dest = Destination::open(&root, storage)?;
    let full_prefix = if inside.is_empty() {
        prefix.to_string()
    } else {
        format!("{inside}/{prefix}")
    };
    Ok(BucketListing {
        bucket,
        prefix: full_prefix,
        url: dest.url().to_string(),
        store: Arc::clone(dest.store()),
        plan,
    })
}

impl BucketListing {
    /// The draft import record of a listing started at `now_ms` into `table`: its identity is
    /// unique to this listing, so two listings are never "the same snapshot".
    pub fn draft(&self, table: &str, now_ms: i64) -> ImportRecord {
        let id = format!("listing\n{}\n{}\n{now_ms}", self.url, self.prefix);
        let md5 = hex(&Md5::digest(id.as_bytes()));
        ImportRecord::draft(
            table,
            ImportScope {
                bucket: self.bucket.clone(),
                prefix: self.prefix.clone(),
            },
            &self.url,
            &md5,
            "listing",
            now_ms,
        )
    }

    /// The listing's rows, read ahead on a thread of their own that runs the object-store
    /// calls on `handle` (so call from outside that runtime's async workers).
    pub fn into_changes(self, handle: tokio::runtime::Handle) -> ReadAhead {
        let producer: Producer = Box::new(move |emit| {
            handle.block_on(self.list_into(emit));
        });
        ReadAhead::new(producer)
    }

    async fn list_into(self, emit: &mut dyn FnMut(Result<Change>) -> bool) {
        let folder = parent_folder(&self.prefix);
        let list_at: Option<Path> = (!folder.is_empty()).then(|| {
            folder
                .split('/')
                .filter(|s| !s.is_empty())
                .map(object_store::path::PathPart::from)
                .collect()
        });
        let mut stream = self.store.list(list_at.as_ref());
        while let Some(item) = stream.next().await {
            let change = match item {
                Err(e) => Err(listing_error(&self.url, e)),
                Ok(meta) => match self.key_of(&meta.location) {
                    Some(key) if key.starts_with(&self.prefix) => {
                        Ok(Change::Upsert(self.plan.row(&self.bucket, key, &meta)))
                    }
                    _ => continue,
                },
            };
            let stop = change.is_err();
            if !emit(change) || stop {
                return;
            }
        }
    }

    /// The key of a listed path: its segments decoded, joined with `/`.
    fn key_of(&self, location: &Path) -> Option<String> {
        let parts: Vec<String> = location
            .parts()
            .map(|p| {
                percent_decode_str(p.as_ref())
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

fn listing_error(url: &str, e: object_store::Error) -> Error {
    Error::object_storage(format!("listing {url}"), e)
}
