//! One shard's partitioned Parquet writer: rows in, complete objects in the lake out.
//!
//! # Design
//!
//! A [`PartitionedWriter`] keeps at most one open object per partition. Each open object is
//! encoded by parquet's synchronous `ArrowWriter` into a local *spool file* (a `tempfile` in the
//! spool folder: `LAKEPORT_SPOOL_DIR`, else the system temp folder). When an object is complete
//! (rotation, or [`PartitionedWriter::finish`]) its footer is written and the file is uploaded
//! with [`Destination::upload_file`] (streamed, multipart when large) by a task on the runtime
//! while the writer goes on encoding (at most [`UPLOADS_IN_FLIGHT`] at once: against a cloud
//! store, where one request takes tens of milliseconds, uploading objects one after another
//! would leave the shard idle for most of its time); the spool file is removed when its upload
//! ends, and [`PartitionedWriter::finish`] waits for every upload. Hence:
//!
//! - memory stays bounded however many partitions a shard has open. Rows wait for their
//!   partition in Arrow form (exactly accounted with `get_array_memory_size`); a partition's
//!   rows are encoded into one row group when they reach [`ParquetOptions::row_group_rows`],
//!   and when all waiting rows together exceed [`ParquetOptions::buffer_bytes`] the
//!   partitions holding the most are encoded first, down to three quarters of the budget.
//!   Only one row group per shard is ever being encoded, so the encoder's per-column state
//!   (page buffers, dictionaries, zstd contexts: about 1 MB a column writer) exists once per
//!   shard, not once per open partition; with hundreds of partitions open, that state would
//!   otherwise outweigh the data.
//! - file descriptors stay bounded too: a spool file is opened only while encoded bytes are
//!   being appended to it and closed again right after.
//! - an object becomes visible only when complete (`LocalFileSystem` stages and renames; S3,
//!   GCS and Azure complete multipart uploads atomically).
//!
//! Encodings: with [`ParquetOptions::dictionary`], every column is dictionary-encoded except
//! those whose values are nearly all distinct in the rows of the partition with the most rows
//! waiting when the writer first encodes (decided once per writer: [`nearly_distinct_columns`]);
//! those are written PLAIN.
//! Encoders are therefore made when an object's first row group is encoded, not when its
//! first rows arrive.
//!
//! Objects are named `<partition>/<task>_<concurrent id>_<sequence id>.parquet`. Sequence ids
//! belong to the writer: the first object takes [`ObjectNaming::first_seq`], each new object
//! the next one. An object rotates (closes, uploads, and the partition's next rows open a new
//! object with the next id) only when its `bytes_written() + in_progress_size()` reaches
//! [`ParquetOptions::target_file_size`].
//!
//! The writer blocks: use it from a blocking thread (`tokio::task::spawn_blocking`), never from
//! async code on the runtime (`block_on` would panic there). It does not decide partitions or
//! convert types; delivery hands it batches already in the lake schema.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, GzipLevel, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use tempfile::TempPath;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::spool::{default_spool_dir, spool_file};
use crate::error::{Error, Result};
use crate::model::DeliveredObject;
use crate::objstore::destination::Destination;

/// Rows handed to the encoder at a time, so rotation is checked at a fine grain.
const WRITE_SLICE_ROWS: usize = 4096;

/// Uploads of complete objects one writer keeps running in the background while it encodes
/// (each reads its spool file as it sends it: no memory held but buffers).
const UPLOADS_IN_FLIGHT: usize = 4;

/// How objects are encoded and cut.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetOptions {
    /// Codec for every column (default zstd level 3).
    pub compression: Compression,
    /// Dictionary encoding (default on); off writes PLAIN.
    pub dictionary: bool,
    /// Rows per row group at most (default 1,048,576).
    pub row_group_rows: usize,
    /// An object rotates once its encoded size reaches this many bytes (default 128 MiB).
    pub target_file_size: u64,
    /// Budget in bytes for rows waiting to be encoded, all open objects of this writer
    /// together (default 256 MiB); beyond it the partitions holding the most are encoded
    /// early (smaller row groups).
    pub buffer_bytes: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            compression: Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()),
            dictionary: true,
            row_group_rows: 1_048_576,
            target_file_size: 128 * 1024 * 1024,
            buffer_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Parses a codec name as task files write it: `zstd`, `zstd(1..22)`, `snappy`, `gzip`,
/// `gzip(0..9)`, `lz4`, `none` / `uncompressed` (case-insensitive). Plain `zstd` is level 3,
/// plain `gzip` level 6; `lz4` is Parquet's LZ4_RAW (the old Hadoop LZ4 is deprecated).
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    const EXPECTED: &str =
        "expected one of zstd, zstd(1..22), snappy, gzip, gzip(0..9), lz4, none, uncompressed";
    let text = s.trim().to_ascii_lowercase();
    let bad = || format!("unknown compression {s:?}; {EXPECTED}");
    let (name, level) = match text.split_once('(') {
        Some((name, rest)) => {
            let level = rest.strip_suffix(')').ok_or_else(bad)?.trim();
            (name.trim(), Some(level))
        }
        None => (text.as_str(), None),
    };
    let level_of = |level: &str, range: std::ops::RangeInclusive<i64>| -> Result<i64, String> {
        match level.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(format!(
                "compression {s:?}: level must be an integer from {} to {}",
                range.start(),
                range.end()
            )),
        }
    };
    Ok(match (name, level) {
        ("zstd", None) => Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| e.to_string())?),
        ("zstd", Some(l)) => {
            let n = level_of(l, 1..=22)? as i32;
            Compression::ZSTD(ZstdLevel::try_new(n).map_err(|e| e.to_string())?)
        }
        ("gzip", None) => Compression::GZIP(GzipLevel::default()),
        ("gzip", Some(l)) => {
            let n = level_of(l, 0..=9)? as u32;
            Compression::GZIP(GzipLevel::try_new(n).map_err(|e| e.to_string())?)
        }
        ("snappy", None) => Compression::SNAPPY,
        ("lz4", None) => Compression::LZ4_RAW,
        ("none" | "uncompressed", None) => Compression::UNCOMPRESSED,
        _ => return Err(bad()),
    })
}

/// `range` widened to cover the non-null values of `values` (negative values are ignored:
/// `_seq` never is).
fn widen(range: Option<(u64, u64)>, values: &Int64Array) -> Option<(u64, u64)> {
    let lo = arrow::compute::min(values).and_then(|v| u64::try_from(v).ok());
    let hi = arrow::compute::max(values).and_then(|v| u64::try_from(v).ok());
    match (range, lo, hi) {
        (Some((a, b)), Some(lo), Some(hi)) => Some((a.min(lo), b.max(hi))),
        (None, Some(lo), Some(hi)) => Some((lo, hi)),
        (range, _, _) => range,
    }
}

/// Whether an upload that failed with `e` may have written its object all the same, so that
/// removing what a failed write left must include it. A refusal by the store
/// ([`Error::Permanent`]: no bucket, no permission, a local folder that cannot hold the
/// object) and a failure to read the spool file ([`Error::Io`]) write nothing: a local store
/// renames a complete file into place, a cloud store refuses the whole request or aborts
/// the multipart upload. A transient failure may be a lost answer to a request that
/// succeeded, and a panicked upload tells nothing.
fn may_have_written(e: &Error) -> bool {
    !matches!(e, Error::Permanent { .. } | Error::Io { .. })
}

/// What object names are made of: `<prefix>/<task>_<concurrent_id>_<seq>.parquet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectNaming {
    /// Task name.
    pub task: String,
    /// The shard's concurrent id.
    pub concurrent_id: u32,
    /// Sequence id of the writer's first object.
    pub first_seq: u64,
}

impl ObjectNaming {
    /// The object name for `seq` under `partition` (no leading `/` when it is empty).
    pub fn object_path(&self, partition: &str, seq: u64) -> String {
        let name = format!("{}_{}_{}.parquet", self.task, self.concurrent_id, seq);
        let partition = partition.trim_matches('/');
        if partition.is_empty() {
            name
        } else {
            format!("{partition}/{name}")
        }
    }
}

/// Rows [`nearly_distinct_columns`] looks at: the first of those waiting for the fullest
/// partition when the writer first encodes.
const DICTIONARY_SAMPLE_ROWS: usize = 4096;

/// Non-null values a column needs in the sample to be judged at all; a sparser column keeps
/// dictionary encoding.
const DICTIONARY_SAMPLE_MIN_VALUES: usize = 256;

/// The top-level columns of `sample` (its first [`DICTIONARY_SAMPLE_ROWS`] rows) whose
/// non-null values are over 90% distinct: strings, binaries and fixed-width primitives.
///
/// Dictionary encoding such a column costs a hash of every value and stores each value once
/// in the dictionary page anyway, plus an index per row: larger and slower than PLAIN.
/// parquet-mr and DuckDB fall back to PLAIN in this case by themselves; the parquet crate
/// falls back only once a dictionary outgrows its page limit (1 MiB), so a few thousand keys,
/// ETags or `_seq` values per row group would always be dictionary-encoded. The threshold is
/// high because a sample overstates distinctness: 2,000 values repeated at random over a
/// 10,000-row row group are about 84% distinct among 700 of its rows but 20% in the whole.
fn nearly_distinct_columns(sample: &[RecordBatch]) -> Vec<String> {
    let Some(first) = sample.first() else {
        return Vec::new();
    };
    let schema = first.schema();
    (0..schema.fields().len())
        .filter(|&c| {
            let mut tally = DistinctTally::default();
            let mut rows_left = DICTIONARY_SAMPLE_ROWS;
            for batch in sample {
                if rows_left == 0 {
                    break;
                }
                let array = batch.column(c);
                let rows = array.len().min(rows_left);
                rows_left -= rows;
                if !tally.add(array.as_ref(), rows) {
                    return false;
                }
            }
            tally.values >= DICTIONARY_SAMPLE_MIN_VALUES && tally.distinct() * 10 > tally.values * 9
        })
        .map(|c| schema.field(c).name().clone())
        .collect()
}

/// Distinct non-null values seen in the arrays of one column.
#[derive(Default)]
struct DistinctTally<'a> {
    values: usize,
    bytes: HashSet<&'a [u8]>,
    fixed: HashSet<u128>,
}

impl<'a> DistinctTally<'a> {
    fn distinct(&self) -> usize {
        self.bytes.len() + self.fixed.len()
    }

    /// Counts the first `rows` rows of `array`; false when its type is not one that is
    /// judged (booleans, nested types, primitives wider than 16 bytes).
    fn add(&mut self, array: &'a dyn Array, rows: usize) -> bool {
        let valid = (0..rows).filter(|&row| array.is_valid(row));
        match array.data_type() {
            DataType::Utf8 => {
                let a = array.as_string::<i32>();
                self.bytes.extend(valid.map(|i| a.value(i).as_bytes()));
            }
            DataType::LargeUtf8 => {
                let a = array.as_string::<i64>();
                self.bytes.extend(valid.map(|i| a.value(i).as_bytes()));
            }
            DataType::Binary => {
                let a = array.as_binary::<i32>();
                self.bytes.extend(valid.map(|i| a.value(i)));
            }
            DataType::LargeBinary => {
                let a = array.as_binary::<i64>();
                self.bytes.extend(valid.map(|i| a.value(i)));
            }
            DataType::Boolean => return false,
            t => {
                let Some(width) = t.primitive_width().filter(|&w| w <= 16) else {
                    return false;
                };
                let data = array.to_data();
                let Some(buffer) = data.buffers().first() else {
                    return false;
                };
                let values = buffer.as_slice();
                self.fixed.extend(valid.filter_map(|i| {
                    let start = (data.offset() + i) * width;
                    let mut key = [0u8; 16];
                    key[..width].copy_from_slice(values.get(start..start + width)?);
                    Some(u128::from_le_bytes(key))
                }));
            }
        }
        self.values += rows
            - array
                .nulls()
                .map_or(0, |nulls| nulls.slice(0, rows).null_count());
        true
    }
}

/// A spool file that holds an open descriptor only between a write and the next flush.
struct SpoolFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl SpoolFile {
    fn is_open(&self) -> bool {
        self.file.is_some()
    }
}

impl Write for SpoolFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let file = match &mut self.file {
            Some(f) => f,
            none => none.insert(std::fs::OpenOptions::new().append(true).open(&self.path)?),
        };
        file.write(buf)
    }

    /// Closes the descriptor; the next write reopens the file for appending.
    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
        }
        Ok(())
    }
}

/// An object being encoded into its spool file, with the rows waiting for its next row group.
struct OpenObject {
    partition: String,
    rel_path: String,
    /// `None` until the writer first encodes rows (see [`PartitionedWriter::encoding`]).
    writer: Option<ArrowWriter<SpoolFile>>,
    /// Removes the spool file when dropped.
    spool: TempPath,
    /// Rows encoded into the object so far.
    rows: u64,
    /// Lowest and highest value of the sequence column among them (when tracked).
    seq_range: Option<(u64, u64)>,
    /// Rows waiting to be encoded, in arrival order.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// Sum of `get_array_memory_size` of `pending`.
    pending_bytes: usize,
}

impl OpenObject {
    fn encoded_size(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, |w| (w.bytes_written() + w.in_progress_size()) as u64)
    }

    /// The object's encoder, made with `props` when it has none yet.
    fn encoder(
        &mut self,
        schema: &SchemaRef,
        props: &WriterProperties,
    ) -> Result<&mut ArrowWriter<SpoolFile>> {
        Ok(match &mut self.writer {
            Some(writer) => writer,
            none => {
                let file = SpoolFile {
                    path: self.spool.to_path_buf(),
                    file: None,
                };
                none.insert(
                    ArrowWriter::try_new(file, Arc::clone(schema), Some(props.clone()))
                        .map_err(spool_error(&self.spool))?,
                )
            }
        })
    }

    /// Hands encoded bytes to the spool file and closes its descriptor if one was opened.
    fn release_descriptor(&mut self) -> Result<()> {
        if let Some(writer) = &mut self.writer {
            if writer.inner().is_open() {
                writer
                    .sync()
                    .map_err(|e| Error::io("write spool file", &self.spool, e))?;
            }
        }
        Ok(())
    }
}

/// Maps an error of an encoder writing into its spool file: a failed write (a full disk, a
/// folder gone) is local I/O that names the file, anything else an encoding error.
fn spool_error(spool: &Path) -> impl FnOnce(ParquetError) -> Error + '_ {
    move |e| match e {
        ParquetError::External(source) => match source.downcast::<std::io::Error>() {
            Ok(io) => Error::io("write spool file", spool, *io),
            Err(other) => Error::from(ParquetError::External(other)),
        },
        e => Error::from(e),
    }
}

/// Writes one shard's rows as Parquet objects, one open object per partition. See the module
/// documentation for the design.
pub struct PartitionedWriter {
    dest: Arc<Destination>,
    schema: SchemaRef,
    /// Properties of every object, but for the columns [`PartitionedWriter::encoding`] takes
    /// out of dictionary encoding.
    base_props: WriterProperties,
    /// The properties objects are encoded with, decided when the writer first encodes rows.
    props: Option<Arc<WriterProperties>>,
    options: ParquetOptions,
    naming: ObjectNaming,
    next_seq: u64,
    open: HashMap<String, OpenObject>,
    /// Sum of `OpenObject::pending_bytes`.
    pending_bytes: usize,
    /// Objects uploaded so far.
    done: Vec<DeliveredObject>,
    /// Uploads of completed objects still running in the background (relative path and
    /// task), oldest first.
    uploading: VecDeque<(String, JoinHandle<Result<DeliveredObject>>)>,
    /// Relative paths of failed uploads that may have written their object all the same
    /// (see [`may_have_written`]).
    maybe_written: Vec<String>,
    spool_dir: PathBuf,
    runtime: Handle,
    /// Index of the Int64 column whose range each object records (see
    /// [`PartitionedWriter::with_seq_column`]).
    seq_column: Option<usize>,
}

impl std::fmt::Debug for PartitionedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedWriter")
            .field("dest", &self.dest.url())
            .field("naming", &self.naming)
            .field("next_seq", &self.next_seq)
            .field("open", &self.open.len())
            .field("done", &self.done.len())
            .finish()
    }
}

impl PartitionedWriter {
    /// A writer for batches in `schema`, uploading to `dest`. `metadata` key-values go into
    /// every object's footer (delivery passes task, run id, sequence range). Spool files go to
    /// [`default_spool_dir`] unless [`PartitionedWriter::with_spool_dir`] says otherwise.
    /// Zero `row_group_rows` or `target_file_size`, or a task name holding `/`, is an
    /// [`Error::InvalidConfig`].
    pub fn new(
        dest: Arc<Destination>,
        schema: SchemaRef,
        options: ParquetOptions,
        naming: ObjectNaming,
        metadata: Vec<(String, String)>,
        runtime: Handle,
    ) -> Result<Self> {
        if options.row_group_rows == 0 {
            return Err(Error::InvalidConfig(
                "parquet: row group rows must be at least 1".into(),
            ));
        }
        if options.target_file_size == 0 {
            return Err(Error::InvalidConfig(
                "parquet: target_file_size must be at least 1 byte".into(),
            ));
        }
        if naming.task.is_empty() || naming.task.contains('/') {
            return Err(Error::InvalidConfig(format!(
                "parquet: task name {:?} cannot name objects (empty or holds '/')",
                naming.task
            )));
        }
        let key_values: Vec<KeyValue> = metadata
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let mut builder = WriterProperties::builder()
            .set_compression(options.compression)
            .set_dictionary_enabled(options.dictionary)
            .set_max_row_group_row_count(Some(options.row_group_rows))
            // "<app> version <v>" is the form parquet-mr parses; other forms make Spark distrust
            // the statistics of string columns.
            .set_created_by(format!("lakeport version {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata((!key_values.is_empty()).then_some(key_values));
        if !options.dictionary {
            builder = builder.set_encoding(Encoding::PLAIN);
        }
        Ok(PartitionedWriter {
            dest,
            schema,
            base_props: builder.build(),
            props: None,
            next_seq: naming.first_seq,
            naming,
            options,
            open: HashMap::new(),
            pending_bytes: 0,
            done: Vec::new(),
            uploading: VecDeque::new(),
            maybe_written: Vec::new(),
            spool_dir: default_spool_dir(),
            runtime,
            seq_column: None,
        })
    }

    /// Records, for every object, the lowest and highest value of the Int64 column `name`
    /// (delivery's `_seq`) among its rows ([`DeliveredObject::seq_range`]). A name the schema
    /// lacks, or whose type is not Int64, is ignored: objects then carry no range.
    pub fn with_seq_column(mut self, name: &str) -> Self {
        self.seq_column = self
            .schema
            .index_of(name)
            .ok()
            .filter(|&i| self.schema.field(i).data_type() == &DataType::Int64);
        self
    }

    /// Puts spool files into `dir` (created when missing) instead of the default.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create spool folder", &dir, e))?;
        self.spool_dir = dir;
        Ok(self)
    }

    /// Appends a copy of `batch` (in the writer's schema) to `partition`'s rows. The copy
    /// makes the writer independent of the batch's buffers (a slice would keep its whole
    /// parent alive); when the caller owns a compact batch, [`write_owned`](Self::write_owned)
    /// saves the copy. On error the caller should [`abort`](PartitionedWriter::abort).
    pub fn write(&mut self, partition: &str, batch: &RecordBatch) -> Result<()> {
        let all = UInt32Array::from_iter_values(0..batch.num_rows() as u32);
        self.write_owned(partition, take_record_batch(batch, &all)?)
    }

    /// Appends `batch` to `partition`'s rows, keeping the batch itself (it should not be a
    /// slice of a larger batch, or the whole parent stays in memory). Encodes a row group when
    /// the partition has [`ParquetOptions::row_group_rows`] rows waiting, rotates objects at
    /// the target size, and keeps all waiting rows under the memory budget.
    pub fn write_owned(&mut self, partition: &str, batch: RecordBatch) -> Result<()> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(Error::encode(format!(
                "a batch for {partition:?} does not have the writer's schema: expected {:?}, found {:?}",
                self.schema.fields(),
                batch.schema().fields()
            )));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if !self.open.contains_key(partition) {
            let obj = self.open_object(partition)?;
            self.open.insert(partition.to_string(), obj);
        }
        let Some(obj) = self.open.get_mut(partition) else {
            unreachable!("the object was inserted above")
        };
        let bytes = batch.get_array_memory_size();
        obj.pending_rows += batch.num_rows();
        obj.pending_bytes += bytes;
        obj.pending.push(batch);
        self.pending_bytes += bytes;
        if obj.pending_rows >= self.options.row_group_rows {
            self.encode_pending(partition)?;
        }
        self.enforce_budget()
    }

    /// Encodes `partition`'s waiting rows into row groups of its open object (rotating to a
    /// new object whenever the current one reaches the target size) and flushes the last row
    /// group, so that no encoder state stays behind.
    fn encode_pending(&mut self, partition: &str) -> Result<()> {
        if !self.open.contains_key(partition) {
            return Ok(());
        }
        let props = match &self.props {
            Some(props) => Arc::clone(props),
            None => Arc::clone(self.props.insert(Arc::new(self.encoding()))),
        };
        let Some(obj) = self.open.get_mut(partition) else {
            unreachable!("the object was found above")
        };
        let pending = std::mem::take(&mut obj.pending);
        self.pending_bytes -= obj.pending_bytes;
        obj.pending_rows = 0;
        obj.pending_bytes = 0;
        for batch in pending {
            let rows = batch.num_rows();
            let mut offset = 0;
            while offset < rows {
                let len = WRITE_SLICE_ROWS.min(rows - offset);
                let slice = batch.slice(offset, len);
                offset += len;
                if !self.open.contains_key(partition) {
                    let obj = self.open_object(partition)?;
                    self.open.insert(partition.to_string(), obj);
                }
                let Some(obj) = self.open.get_mut(partition) else {
                    unreachable!("the object was inserted above")
                };
                let encoder = obj.encoder(&self.schema, &props)?;
                encoder.write(&slice).map_err(spool_error(&obj.spool))?;
                obj.rows += len as u64;
                if let Some(i) = self.seq_column {
                    obj.seq_range =
                        widen(obj.seq_range, slice.column(i).as_primitive::<Int64Type>());
                }
                if obj.encoded_size() >= self.options.target_file_size {
                    if let Some(obj) = self.open.remove(partition) {
                        self.complete(obj)?;
                    }
                }
            }
        }
        if let Some(obj) = self.open.get_mut(partition) {
            if let Some(writer) = &mut obj.writer {
                writer.flush().map_err(spool_error(&obj.spool))?;
            }
            obj.release_descriptor()?;
        }
        Ok(())
    }

    /// Closes and uploads every open object, in partition order, and returns every object
    /// this writer delivered (paths relative to the destination). When an upload fails, the
    /// objects already uploaded are deleted (best effort; failures are logged) and the spool
    /// files removed before the error returns.
    pub fn finish(mut self) -> Result<Vec<DeliveredObject>> {
        let mut partitions: Vec<String> = self.open.keys().cloned().collect();
        partitions.sort();
        let closed = partitions
            .iter()
            .try_for_each(|partition| self.close_partition(partition))
            .and_then(|()| self.settle());
        if let Err(e) = closed {
            let dest = Arc::clone(&self.dest);
            let runtime = self.runtime.clone();
            for rel in self.abort() {
                if let Err(de) = runtime.block_on(dest.delete(&rel)) {
                    tracing::warn!(object = %dest.object_url(&rel), error = %de.chain(),
                        "could not remove an object of a failed write");
                }
            }
            return Err(e);
        }
        Ok(std::mem::take(&mut self.done))
    }

    /// Encodes `partition`'s waiting rows, then completes its open object and starts its
    /// upload.
    fn close_partition(&mut self, partition: &str) -> Result<()> {
        self.encode_pending(partition)?;
        if let Some(obj) = self.open.remove(partition) {
            self.complete(obj)?;
        }
        Ok(())
    }

    /// Waits for every upload running in the background; the first that failed is the error
    /// (the others are waited for all the same).
    pub fn settle(&mut self) -> Result<()> {
        let mut failure = None;
        while let Some(upload) = self.uploading.pop_front() {
            match self.join(upload) {
                Ok(object) => self.done.push(object),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Waits for one upload; a failed one that may have written its object all the same is
    /// remembered for [`abort`](Self::abort).
    fn join(
        &mut self,
        (rel_path, upload): (String, JoinHandle<Result<DeliveredObject>>),
    ) -> Result<DeliveredObject> {
        let joined = self
            .runtime
            .block_on(upload)
            .map_err(|e| Error::store_caused("an upload task panicked", e))
            .and_then(|uploaded| uploaded);
        if let Err(e) = &joined {
            if may_have_written(e) {
                self.maybe_written.push(rel_path);
            }
        }
        joined
    }

    /// Drops every open object and its spool file, waits for the uploads running in the
    /// background, and returns the relative paths of the objects that may exist: those
    /// uploaded, and those whose upload failed in a way that may have written them all the
    /// same ([`may_have_written`]); the caller deletes them. An object whose upload the store
    /// refused, or that was never uploaded, is not among them: there is nothing to remove,
    /// and removing it would fail for the same reason the upload did.
    pub fn abort(mut self) -> Vec<String> {
        self.open.clear();
        // An upload still running could complete after the caller deleted its object.
        let _ = self.settle();
        let mut paths: Vec<String> = self.done.drain(..).map(|d| d.path).collect();
        paths.append(&mut self.maybe_written);
        paths
    }

    /// The first sequence id this writer has not used.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Objects completed and uploaded so far (by rotation) whose uploads have been waited for
    /// ([`settle`](Self::settle)), before [`finish`](Self::finish).
    pub fn delivered(&self) -> &[DeliveredObject] {
        &self.done
    }

    /// Objects open now (one per partition written to since its last rotation).
    pub fn open_objects(&self) -> usize {
        self.open.len()
    }

    /// Bytes of rows waiting in memory now (Arrow form), over all open objects.
    pub fn buffered_bytes(&self) -> usize {
        self.pending_bytes
    }

    fn open_object(&mut self, partition: &str) -> Result<OpenObject> {
        let spool = spool_file(&self.spool_dir, ".parquet.spool")?.into_temp_path();
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(OpenObject {
            partition: partition.to_string(),
            rel_path: self.naming.object_path(partition, seq),
            writer: None,
            spool,
            rows: 0,
            seq_range: None,
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
        })
    }

    /// Writes `obj`'s footer and starts uploading it in the background (the spool file is
    /// removed when the upload ends); waits for the oldest upload first when
    /// [`UPLOADS_IN_FLIGHT`] are running.
    fn complete(&mut self, obj: OpenObject) -> Result<()> {
        let OpenObject {
            partition,
            rel_path,
            writer,
            spool,
            rows,
            seq_range,
            pending_bytes,
            ..
        } = obj;
        self.pending_bytes -= pending_bytes;
        let Some(writer) = writer else {
            // No row was ever encoded into it: there is no object to upload.
            return Ok(());
        };
        let mut file = writer.into_inner().map_err(spool_error(&spool))?;
        file.flush()
            .map_err(|e| Error::io("write spool file", &spool, e))?;
        // Uploads that have ended are collected first, so that a refused one stops the writer
        // before it starts more.
        while self.uploading.len() >= UPLOADS_IN_FLIGHT
            || self
                .uploading
                .front()
                .is_some_and(|(_, upload)| upload.is_finished())
        {
            if let Some(oldest) = self.uploading.pop_front() {
                let object = self.join(oldest)?;
                self.done.push(object);
            }
        }
        let dest = Arc::clone(&self.dest);
        let key = rel_path.clone();
        let upload = self.runtime.spawn(async move {
            let uploaded = dest.upload_file(&spool, &rel_path).await;
            if let Err(e) = spool.close() {
                tracing::warn!(error = %e, "could not remove a spool file");
            }
            let uploaded = uploaded?;
            tracing::debug!(object = %dest.object_url(&rel_path), rows, bytes = uploaded.bytes,
                "object delivered");
            Ok(DeliveredObject {
                path: rel_path,
                partition,
                rows,
                bytes: uploaded.bytes,
                md5: Some(uploaded.md5),
                seq_range,
            })
        });
        self.uploading.push_back((key, upload));
        Ok(())
    }

    /// The properties of every object of this writer: [`ParquetOptions`], with dictionary
    /// encoding turned off for the columns whose values are nearly all distinct among the
    /// rows waiting for the partition that has the most (see [`nearly_distinct_columns`]);
    /// decided when the writer first encodes rows.
    fn encoding(&self) -> WriterProperties {
        if !self.options.dictionary {
            return self.base_props.clone();
        }
        let sample = self
            .open
            .values()
            .max_by_key(|obj| obj.pending_rows)
            .map_or(&[][..], |obj| &obj.pending[..]);
        let distinct = nearly_distinct_columns(sample);
        if distinct.is_empty() {
            return self.base_props.clone();
        }
        tracing::debug!(columns = ?distinct, "dictionary encoding off: values nearly all distinct");
        distinct
            .into_iter()
            .fold(self.base_props.clone().into_builder(), |builder, name| {
                builder.set_column_dictionary_enabled(ColumnPath::from(name), false)
            })
            .build()
    }

    /// Encodes the partitions with the most waiting rows while all waiting rows together
    /// exceed the budget, down to three quarters of it.
    fn enforce_budget(&mut self) -> Result<()> {
        if self.pending_bytes <= self.options.buffer_bytes {
            return Ok(());
        }
        let low_water = self.options.buffer_bytes / 4 * 3;
        let mut by_size: Vec<(usize, String)> = self
            .open
            .iter()
            .filter(|(_, o)| o.pending_bytes > 0)
            .map(|(p, o)| (o.pending_bytes, p.clone()))
            .collect();
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        for (_, partition) in by_size {
            if self.pending_bytes <= low_water {
                break;
            }
            self.encode_pending(&partition)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use bytes::Bytes;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn batch(from: i64, rows: usize) -> RecordBatch {
        let ids: Vec<i64> = (from..from + rows as i64).collect();
        // varied text so that encoded size grows with rows even with dictionaries
        let names: Vec<String> = ids
            .iter()
            .map(|i| format!("object-{}", i * 7919 % 100_003))
            .collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn naming(first_seq: u64) -> ObjectNaming {
        ObjectNaming {
            task: "daily".into(),
            concurrent_id: 3,
            first_seq,
        }
    }

    fn metadata() -> Vec<(String, String)> {
        vec![
            ("lakeport.task".into(), "daily".into()),
            ("lakeport.run_id".into(), "42".into()),
        ]
    }

    struct Fixture {
        rt: tokio::runtime::Runtime,
        dest: Arc<Destination>,
        spool: tempfile::TempDir,
        _lake: Option<tempfile::TempDir>,
    }

    impl Fixture {
        fn local() -> Fixture {
            let lake = tempfile::tempdir().unwrap();
            let dest = Destination::parse(lake.path().to_str().unwrap()).unwrap();
            Fixture {
                rt: runtime(),
                dest: Arc::new(dest),
                spool: tempfile::tempdir().unwrap(),
                _lake: Some(lake),
            }
        }

        fn memory() -> Fixture {
            Fixture {
                rt: runtime(),
                dest: Arc::new(Destination::from_store(
                    Arc::new(InMemory::new()),
                    "memory://",
                )),
                spool: tempfile::tempdir().unwrap(),
                _lake: None,
            }
        }

        fn writer(&self, options: ParquetOptions, first_seq: u64) -> PartitionedWriter {
            PartitionedWriter::new(
                Arc::clone(&self.dest),
                schema(),
                options,
                naming(first_seq),
                metadata(),
                self.rt.handle().clone(),
            )
            .unwrap()
            .with_spool_dir(self.spool.path())
            .unwrap()
        }

        /// Runs `f` on a blocking thread of the runtime, as delivery does.
        fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
            self.rt.block_on(self.rt.spawn_blocking(f)).unwrap()
        }

        fn list(&self) -> Vec<(String, u64)> {
            self.rt.block_on(self.dest.list("")).unwrap()
        }

        fn read(&self, rel: &str) -> Bytes {
            let dest = Arc::clone(&self.dest);
            let path = dest.path(rel);
            self.rt.block_on(async move {
                dest.store()
                    .get(&path)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
            })
        }

        fn spool_files(&self) -> usize {
            std::fs::read_dir(self.spool.path()).unwrap().count()
        }
    }

    fn rows_of(data: Bytes) -> (usize, Vec<i64>) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(data)
            .unwrap()
            .build()
            .unwrap();
        let mut ids = Vec::new();
        for b in reader {
            let b = b.unwrap();
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            ids.extend(col.values().iter().copied());
        }
        (ids.len(), ids)
    }

    fn partitions_and_finish(fx: &Fixture) {
        let mut w = fx.writer(ParquetOptions::default(), 7);
        let list_before = fx.list();
        let w = fx.blocking(move || {
            w.write("dt=2024-01-01", &batch(0, 100)).unwrap();
            w.write("dt=2024-01-02", &batch(100, 50)).unwrap();
            w.write("dt=2024-01-01", &batch(150, 10)).unwrap();
            w.write("", &batch(160, 5)).unwrap();
            w
        });
        assert!(list_before.is_empty());
        // nothing is visible before finish
        assert!(fx.list().is_empty());
        assert_eq!(w.open_objects(), 3);
        assert_eq!(fx.spool_files(), 3);
        assert_eq!(w.next_seq(), 10);

        let delivered = fx.blocking(move || w.finish().unwrap());
        assert_eq!(fx.spool_files(), 0);
        let mut got: Vec<(String, String, u64)> = delivered
            .iter()
            .map(|d| (d.path.clone(), d.partition.clone(), d.rows))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("daily_3_9.parquet".to_string(), "".to_string(), 5),
                (
                    "dt=2024-01-01/daily_3_7.parquet".to_string(),
                    "dt=2024-01-01".to_string(),
                    110
                ),
                (
                    "dt=2024-01-02/daily_3_8.parquet".to_string(),
                    "dt=2024-01-02".to_string(),
                    50
                ),
            ]
        );
        let listed = fx.list();
        assert_eq!(listed.len(), 3);
        for d in &delivered {
            assert!(
                listed.contains(&(d.path.clone(), d.bytes)),
                "{listed:?} {d:?}"
            );
            let data = fx.read(&d.path);
            assert_eq!(data.len() as u64, d.bytes);
            assert_eq!(rows_of(data.clone()).0 as u64, d.rows);

            let meta = SerializedFileReader::new(data)
                .unwrap()
                .metadata()
                .file_metadata()
                .clone();
            let kv = meta.key_value_metadata().unwrap();
            let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
            assert_eq!(get("lakeport.task").as_deref(), Some("daily"));
            assert_eq!(get("lakeport.run_id").as_deref(), Some("42"));
            assert!(meta.created_by().unwrap().starts_with("lakeport version "));
        }
        let (_, ids) = rows_of(fx.read("dt=2024-01-01/daily_3_7.parquet"));
        let expected: Vec<i64> = (0..100).chain(150..160).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn partitions_local() {
        partitions_and_finish(&Fixture::local());
    }

    #[test]
    fn partitions_in_memory() {
        partitions_and_finish(&Fixture::memory());
    }

    fn rotation(fx: &Fixture) {
        let options = ParquetOptions {
            target_file_size: 16 * 1024,
            row_group_rows: 1000,
            compression: Compression::UNCOMPRESSED,
            ..ParquetOptions::default()
        };
        let mut w = fx.writer(options, 100);
        let (w, rotated) = fx.blocking(move || {
            for i in 0..40 {
                w.write("p=a", &batch(i * 500, 500)).unwrap();
            }
            w.settle().unwrap();
            let rotated = w.delivered().to_vec();
            (w, rotated)
        });
        // rotated objects are visible before finish, the open one is not
        assert!(rotated.len() >= 2, "{rotated:?}");
        assert_eq!(fx.list().len(), rotated.len());
        let next = w.next_seq();
        let delivered = fx.blocking(move || w.finish().unwrap());
        assert_eq!(delivered.len() as u64, next - 100);
        let mut seqs: Vec<u64> = Vec::new();
        let mut total = 0;
        let mut all_ids = Vec::new();
        for d in &delivered {
            let name = d.path.strip_prefix("p=a/daily_3_").unwrap();
            seqs.push(name.strip_suffix(".parquet").unwrap().parse().unwrap());
            let (n, ids) = rows_of(fx.read(&d.path));
            assert_eq!(n as u64, d.rows);
            total += n;
            all_ids.extend(ids);
            if d != delivered.last().unwrap() {
                // every rotated object reached the target, without overshooting much
                assert!(d.bytes >= 16 * 1024 - 1024, "{d:?}");
                assert!(d.bytes < 64 * 1024, "{d:?}");
            }
        }
        assert_eq!(seqs, (100..next).collect::<Vec<_>>());
        assert_eq!(total, 20_000);
        assert_eq!(all_ids, (0..20_000).collect::<Vec<_>>());
        assert_eq!(fx.spool_files(), 0);
    }

    #[test]
    fn rotation_local() {
        rotation(&Fixture::local());
    }

    #[test]
    fn rotation_in_memory() {
        rotation(&Fixture::memory());
    }

    #[test]
    fn abort_drops_spool_files_and_reports_uploaded_objects() {
        let fx = Fixture::local();
        let options = ParquetOptions {
            target_file_size: 8 * 1024,
            row_group_rows: 1000,
            compression: Compression::UNCOMPRESSED,
            ..ParquetOptions::default()
        };
        let mut w = fx.writer(options, 0);
        let w = fx.blocking(move || {
            for i in 0..10 {
                w.write("p=big", &batch(i * 1000, 1000)).unwrap();
            }
            w.write("p=small", &batch(0, 3)).unwrap();
            w.settle().unwrap();
            w
        });
        assert!(fx.spool_files() >= 1);
        let uploaded: Vec<String> = w.delivered().iter().map(|d| d.path.clone()).collect();
        assert!(!uploaded.is_empty());
        let reported = w.abort();
        assert_eq!(reported, uploaded);
        assert_eq!(fx.spool_files(), 0);
        let listed: Vec<String> = fx.list().into_iter().map(|(p, _)| p).collect();
        assert_eq!(listed, uploaded);
        assert!(listed.iter().all(|p| p.starts_with("p=big/")));
    }

    #[test]
    fn memory_budget_flushes_row_groups_early() {
        let fx = Fixture::memory();
        let options = ParquetOptions {
            buffer_bytes: 64 * 1024,
            compression: Compression::UNCOMPRESSED,
            dictionary: false,
            ..ParquetOptions::default()
        };
        let mut w = fx.writer(options, 0);
        let (peak, delivered) = fx.blocking(move || {
            let mut peak = 0;
            for i in 0..50 {
                let partition = format!("p={}", i % 10);
                w.write(&partition, &batch(i * 200, 200)).unwrap();
                peak = peak.max(w.buffered_bytes());
            }
            (peak, w.finish().unwrap())
        });
        assert!(peak <= 64 * 1024, "peak {peak}");
        assert_eq!(delivered.len(), 10);
        let mut total = 0;
        for d in &delivered {
            let data = fx.read(&d.path);
            let reader = SerializedFileReader::new(data.clone()).unwrap();
            // flushed early: more than one row group, no dictionary pages
            assert!(reader.metadata().num_row_groups() > 1, "{d:?}");
            let col = reader.metadata().row_group(0).column(0);
            assert!(col.dictionary_page_offset().is_none());
            total += rows_of(data).0;
        }
        assert_eq!(total, 10_000);
    }

    #[test]
    fn row_groups_cut_at_row_count() {
        let fx = Fixture::memory();
        let options = ParquetOptions {
            row_group_rows: 300,
            ..ParquetOptions::default()
        };
        let mut w = fx.writer(options, 0);
        let delivered = fx.blocking(move || {
            w.write("", &batch(0, 1000)).unwrap();
            w.finish().unwrap()
        });
        let reader = SerializedFileReader::new(fx.read(&delivered[0].path)).unwrap();
        let sizes: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|r| r.num_rows())
            .collect();
        assert_eq!(sizes, [300, 300, 300, 100]);
        let codec = reader.metadata().row_group(0).column(0).compression();
        assert!(matches!(codec, Compression::ZSTD(_)), "{codec:?}");
    }

    #[test]
    fn every_codec_writes_readable_files() {
        let fx = Fixture::memory();
        for codec in ["zstd(9)", "snappy", "gzip(1)", "lz4", "none"] {
            let options = ParquetOptions {
                compression: parse_compression(codec).unwrap(),
                ..ParquetOptions::default()
            };
            let mut w = fx.writer(options, 0);
            let p = format!("c={}", codec.replace(['(', ')'], ""));
            let delivered = fx.blocking(move || {
                w.write(&p, &batch(0, 100)).unwrap();
                w.finish().unwrap()
            });
            assert_eq!(rows_of(fx.read(&delivered[0].path)).0, 100, "{codec}");
        }
    }

    /// A batch of `rows` rows: `key` all distinct, `class` one of five, `size` all distinct,
    /// `flag` alternating, `sparse` nearly all NULL (distinct where set).
    fn mixed_batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("class", DataType::Utf8, false),
            Field::new("size", DataType::Int64, false),
            Field::new("flag", DataType::Boolean, false),
            Field::new("sparse", DataType::Utf8, true),
        ]));
        let n = rows as i64;
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("logs/2026/{i:08}.gz")),
                )),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| {
                    ["STANDARD", "IA", "GLACIER", "DEEP", "RRS"][i as usize % 5]
                }))),
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| i * 7919 % 1_000_003),
                )),
                Arc::new(arrow::array::BooleanArray::from_iter(
                    (0..n).map(|i| Some(i % 2 == 0)),
                )),
                Arc::new(StringArray::from_iter(
                    (0..n).map(|i| (i % 100 == 0).then(|| format!("v{i}"))),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn nearly_distinct_columns_are_found_in_a_sample() {
        let batch = mixed_batch(3000);
        // split in two, as a partition's waiting rows are
        let sample = [batch.slice(0, 1000), batch.slice(1000, 2000)];
        assert_eq!(nearly_distinct_columns(&sample), ["key", "size"]);
        // too few values to judge: dictionary stays
        assert!(nearly_distinct_columns(&[batch.slice(0, 100)]).is_empty());
        // 1,000 values repeated: not distinct although a short run of them is
        let repeated = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from_iter_values(
                (0..4000).map(|i| i * 7919 % 1000),
            ))],
        )
        .unwrap();
        assert!(nearly_distinct_columns(&[repeated]).is_empty());
        assert!(nearly_distinct_columns(&[]).is_empty());
    }

    #[test]
    fn dictionary_encoding_is_left_out_where_values_are_distinct() {
        let fx = Fixture::memory();
        let encodings = |dictionary: bool| {
            let options = ParquetOptions {
                dictionary,
                ..ParquetOptions::default()
            };
            let batch = mixed_batch(3000);
            let mut w = PartitionedWriter::new(
                Arc::clone(&fx.dest),
                batch.schema(),
                options,
                naming(0),
                metadata(),
                fx.rt.handle().clone(),
            )
            .unwrap()
            .with_spool_dir(fx.spool.path())
            .unwrap();
            let p = format!("dictionary={dictionary}");
            let delivered = fx.blocking(move || {
                // encoded first (partition order), too few rows to judge: the writer decides
                // from the partition with the most rows waiting
                w.write("a-few", &batch.slice(0, 10)).unwrap();
                w.write(&p, &batch).unwrap();
                w.finish().unwrap()
            });
            let object = delivered.iter().find(|o| o.rows == 3000).unwrap();
            let reader = SerializedFileReader::new(fx.read(&object.path)).unwrap();
            let row_group = reader.metadata().row_group(0);
            assert_eq!(row_group.num_rows(), 3000);
            row_group
                .columns()
                .iter()
                .map(|c| {
                    let dict = c.encodings().any(|e| e == Encoding::RLE_DICTIONARY);
                    (c.column_path().string(), dict)
                })
                .collect::<Vec<_>>()
        };
        let by_name = |pairs: &[(String, bool)], name: &str| {
            pairs.iter().find(|(n, _)| n == name).map(|(_, d)| *d)
        };
        let auto = encodings(true);
        assert_eq!(by_name(&auto, "key"), Some(false), "{auto:?}");
        assert_eq!(by_name(&auto, "size"), Some(false), "{auto:?}");
        assert_eq!(by_name(&auto, "class"), Some(true), "{auto:?}");
        assert_eq!(by_name(&auto, "sparse"), Some(true), "{auto:?}");
        let plain = encodings(false);
        assert!(plain.iter().all(|(_, dict)| !dict), "{plain:?}");
    }

    #[test]
    fn wrong_schema_is_an_error_and_abort_cleans_up() {
        let fx = Fixture::memory();
        let mut w = fx.writer(ParquetOptions::default(), 0);
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["a"]))],
        )
        .unwrap();
        let w = fx.blocking(move || {
            assert!(w.write("p", &other).is_err());
            w
        });
        assert!(w.abort().is_empty());
        assert_eq!(fx.spool_files(), 0);
    }

    #[test]
    fn failed_upload_in_finish_removes_what_was_uploaded() {
        // A local lake whose partition path is blocked by a plain file cannot take that
        // partition's object; the other one, uploaded first, must be removed again.
        let fx = Fixture::local();
        let root = fx._lake.as_ref().unwrap().path();
        std::fs::write(root.join("p=b"), b"not a folder").unwrap();
        let mut w = fx.writer(ParquetOptions::default(), 0);
        let result = fx.blocking(move || {
            w.write("p=a", &batch(0, 10)).unwrap();
            w.write("p=b", &batch(0, 10)).unwrap();
            w.finish()
        });
        assert!(result.is_err());
        assert_eq!(fx.spool_files(), 0);
        assert_eq!(fx.list(), [("p=b".to_string(), 12)]);
    }

    #[test]
    fn abort_leaves_out_objects_whose_upload_was_refused() {
        // Partition p=b's path is blocked by a plain file: the local store refuses its
        // objects, so they never exist and abort must not hand them out for removal (their
        // removal would fail the same way and warn about objects that were never written).
        let fx = Fixture::local();
        let root = fx._lake.as_ref().unwrap().path();
        std::fs::write(root.join("p=b"), b"not a folder").unwrap();
        let options = ParquetOptions {
            target_file_size: 8 * 1024,
            row_group_rows: 1000,
            compression: Compression::UNCOMPRESSED,
            ..ParquetOptions::default()
        };
        let mut w = fx.writer(options, 0);
        let (w, wrote_b) = fx.blocking(move || {
            for i in 0..3 {
                w.write("p=a", &batch(i * 1000, 1000)).unwrap();
            }
            w.settle().unwrap();
            // A refused rotation fails this write or a later one; settle reports the rest.
            let wrote_b = (0..3)
                .map(|i| w.write("p=b", &batch(i * 1000, 1000)))
                .collect::<Result<Vec<()>>>()
                .and_then(|_| w.settle());
            (w, wrote_b)
        });
        assert!(
            matches!(wrote_b, Err(Error::Permanent { .. })),
            "{wrote_b:?}"
        );
        // The listing holds the blocking file and p=a's objects, nothing of p=b.
        let mut uploaded: Vec<String> = fx.list().into_iter().map(|(p, _)| p).collect();
        assert_eq!(uploaded.pop().as_deref(), Some("p=b"));
        assert!(uploaded.len() >= 2, "{uploaded:?}");
        assert!(
            uploaded.iter().all(|p| p.starts_with("p=a/")),
            "{uploaded:?}"
        );
        assert_eq!(w.abort(), uploaded);
        assert_eq!(fx.spool_files(), 0);
    }

    #[test]
    fn only_a_refused_or_unread_upload_surely_wrote_nothing() {
        assert!(!may_have_written(&Error::permanent("403")));
        let io = std::io::Error::other("gone");
        assert!(!may_have_written(&Error::io("read", "/s".as_ref(), io)));
        assert!(may_have_written(&Error::transient("timed out")));
        assert!(may_have_written(&Error::store("an upload task panicked")));
    }

    #[test]
    fn bad_options_are_config_errors() {
        let fx = Fixture::memory();
        let make = |options: ParquetOptions, task: &str| {
            PartitionedWriter::new(
                Arc::clone(&fx.dest),
                schema(),
                options,
                ObjectNaming {
                    task: task.into(),
                    concurrent_id: 0,
                    first_seq: 0,
                },
                vec![],
                fx.rt.handle().clone(),
            )
        };
        let zero_rows = ParquetOptions {
            row_group_rows: 0,
            ..ParquetOptions::default()
        };
        assert!(matches!(make(zero_rows, "t"), Err(Error::InvalidConfig(_))));
        assert!(matches!(
            make(ParquetOptions::default(), "a/b"),
            Err(Error::InvalidConfig(_))
        ));
        assert!(make(ParquetOptions::default(), "ok").is_ok());
    }

    #[test]
    fn compression_names() {
        assert_eq!(
            parse_compression("zstd").unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(3).unwrap())
        );
        assert_eq!(
            parse_compression(" ZSTD( 19 ) ").unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(19).unwrap())
        );
        assert_eq!(parse_compression("snappy").unwrap(), Compression::SNAPPY);
        assert_eq!(
            parse_compression("gzip").unwrap(),
            Compression::GZIP(GzipLevel::default())
        );
        assert_eq!(
            parse_compression("gzip(0)").unwrap(),
            Compression::GZIP(GzipLevel::try_new(0).unwrap())
        );
        assert_eq!(parse_compression("lz4").unwrap(), Compression::LZ4_RAW);
        assert_eq!(
            parse_compression("none").unwrap(),
            Compression::UNCOMPRESSED
        );
        assert_eq!(
            parse_compression("uncompressed").unwrap(),
            Compression::UNCOMPRESSED
        );
        for bad in [
            "zstd(0)",
            "zstd(23)",
            "gzip(10)",
            "zstd(x)",
            "zstd(3",
            "brotli",
            "snappy(1)",
            "",
        ] {
            assert!(parse_compression(bad).is_err(), "{bad}");
        }
        assert!(parse_compression("zstd(23)")
            .unwrap_err()
            .contains("from 1 to 22"));
        assert!(parse_compression("lzo")
            .unwrap_err()
            .contains("expected one of"));
    }

    #[test]
    fn object_names() {
        let n = naming(5);
        assert_eq!(n.object_path("", 5), "daily_3_5.parquet");
        assert_eq!(
            n.object_path("dt=2024-01-01/hh=00", 6),
            "dt=2024-01-01/hh=00/daily_3_6.parquet"
        );
    }

    #[test]
    fn a_failed_spool_write_names_the_file_and_the_cause() {
        let spool = Path::new("/spool/lakeport-1-x.parquet.spool");
        let full = std::io::Error::from_raw_os_error(28);
        let e = spool_error(spool)(ParquetError::from(full));
        assert!(
            matches!(&e, Error::Io { source, .. } if source.raw_os_error() == Some(28)),
            "{e:?}"
        );
        let text = e.chain().to_string();
        assert!(text.starts_with("write spool file /spool/lakeport-1-x.parquet.spool: "));
        assert!(text.contains("No space left on device"), "{text}");
        // Anything else stays an encoding error.
        let e = spool_error(spool)(ParquetError::General("bad column".into()));
        assert!(matches!(e, Error::Encode { .. }), "{e:?}");
    }
}
