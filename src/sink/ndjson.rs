//! NDJSON objects for rejected ("dirty") rows: one JSON value per line, spooled to a local
//! file and uploaded whole when finished, like the Parquet objects (see
//! [`parquet`](super::parquet)). What goes into a line (the row, the reason) is the caller's.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use tempfile::TempPath;
use tokio::runtime::Handle;

use super::spool::{default_spool_dir, spool_file};
use crate::error::{Error, Result};
use crate::model::DeliveredObject;
use crate::objstore::destination::Destination;

/// Writes one NDJSON object, e.g. `_dirty/<task>/<task>_<cid>_<seq>.ndjson`. Blocks: use it
/// from a blocking thread.
pub struct NdjsonWriter {
    dest: Arc<Destination>,
    rel_path: String,
    runtime: Handle,
    spool_dir: PathBuf,
    /// Opened at the first line.
    spool: Option<(BufWriter<std::fs::File>, TempPath)>,
    lines: u64,
}

impl std::fmt::Debug for NdjsonWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonWriter")
            .field("object", &self.dest.object_url(&self.rel_path))
            .field("lines", &self.lines)
            .finish()
    }
}

impl NdjsonWriter {
    /// A writer for the object `rel_path` under `dest`. Nothing is created until the first
    /// line; spool files go to [`default_spool_dir`] unless
    /// [`NdjsonWriter::with_spool_dir`] says otherwise.
    pub fn new(dest: Arc<Destination>, rel_path: String, runtime: Handle) -> Result<Self> {
        if rel_path.trim_matches('/').is_empty() {
            return Err(Error::InvalidConfig(
                "ndjson: the object path is empty".to_string(),
            ));
        }
        Ok(NdjsonWriter {
            dest,
            rel_path,
            runtime,
            spool_dir: default_spool_dir(),
            spool: None,
            lines: 0,
        })
    }

    /// Puts the spool file into `dir` (created when missing) instead of the default.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create spool folder", &dir, e))?;
        self.spool_dir = dir;
        Ok(self)
    }

    /// Appends `value` as one line.
    pub fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        let (file, path) = match &mut self.spool {
            Some(spool) => spool,
            none => {
                let (file, path) = spool_file(&self.spool_dir, ".ndjson.spool")?.into_parts();
                none.insert((BufWriter::new(file), path))
            }
        };
        let written = serde_json::to_writer(&mut *file, value)
            .map_err(std::io::Error::from)
            .and_then(|()| file.write_all(b"\n"));
        written.map_err(|e| Error::io("write spool file", path, e))?;
        self.lines += 1;
        Ok(())
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Uploads the object when at least one line was written (else `None`, and nothing is
    /// created) and removes the spool file. `rows` of the result is the line count.
    pub fn finish(self) -> Result<Option<DeliveredObject>> {
        let Some((file, path)) = self.spool else {
            return Ok(None);
        };
        file.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|mut f| f.flush())
            .map_err(|e| Error::io("write spool file", &path, e))?;
        let uploaded = self
            .runtime
            .block_on(self.dest.upload_file(&path, &self.rel_path))?;
        if let Err(e) = path.close() {
            tracing::warn!(error = %e, "could not remove a spool file");
        }
        Ok(Some(DeliveredObject {
            path: self.rel_path,
            partition: String::new(),
            rows: self.lines,
            bytes: uploaded.bytes,
            md5: Some(uploaded.md5),
            seq_range: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;
    use serde_json::json;

    fn setup() -> (tokio::runtime::Runtime, Arc<Destination>, tempfile::TempDir) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dest = Arc::new(Destination::from_store(
            Arc::new(InMemory::new()),
            "memory://",
        ));
        (rt, dest, tempfile::tempdir().unwrap())
    }

    #[test]
    fn writes_lines_and_uploads_on_finish() {
        let (rt, dest, spool) = setup();
        let mut w = NdjsonWriter::new(
            Arc::clone(&dest),
            "_dirty/t/t_0_1.ndjson".into(),
            rt.handle().clone(),
        )
        .unwrap()
        .with_spool_dir(spool.path())
        .unwrap();
        let spool_path = spool.path().to_path_buf();
        let delivered = rt
            .block_on(rt.spawn_blocking(move || {
                w.write(&json!({"key": "a", "reason": "int64 → int32 overflow"}))
                    .unwrap();
                w.write(&json!({"key": "b\nc"})).unwrap();
                assert_eq!(std::fs::read_dir(&spool_path).unwrap().count(), 1);
                w.finish().unwrap()
            }))
            .unwrap()
            .unwrap();
        assert_eq!(delivered.rows, 2);
        assert_eq!(delivered.path, "_dirty/t/t_0_1.ndjson");
        let data = rt
            .block_on(async {
                dest.store()
                    .get(&dest.path(&delivered.path))
                    .await
                    .unwrap()
                    .bytes()
                    .await
            })
            .unwrap();
        assert_eq!(data.len() as u64, delivered.bytes);
        let text = std::str::from_utf8(&data).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["reason"], "int64 → int32 overflow");
        assert_eq!(lines[1]["key"], "b\nc");
        assert_eq!(lines.len(), 2);
        assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
    }

    #[test]
    fn no_lines_no_object() {
        let (rt, dest, spool) = setup();
        let w = NdjsonWriter::new(
            Arc::clone(&dest),
            "_dirty/x.ndjson".into(),
            rt.handle().clone(),
        )
        .unwrap()
        .with_spool_dir(spool.path())
        .unwrap();
        let got = rt
            .block_on(rt.spawn_blocking(move || w.finish()))
            .unwrap()
            .unwrap();
        assert!(got.is_none());
        assert!(rt.block_on(dest.list("")).unwrap().is_empty());
        assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
    }
}
