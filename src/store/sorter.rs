//! An external sort of encoded rows (see [`row_bytes`](super::row_bytes)) by their key, in
//! bounded memory, so that a snapshot of any size can be matched with the store in key order.
//!
//! Rows are appended to one buffer; when the buffer reaches its budget its rows are sorted and
//! written to an anonymous temporary file (a *run*, in the system's temporary folder, `TMPDIR`;
//! the file is gone when the sort is dropped, even after a crash), LZ4-compressed (sorted rows
//! share long key prefixes: the runs of a 1M-object inventory took 72 MB instead of 253 MB,
//! measured 2026-12-07, a third of the report's text), on a thread of their own, while a
//! second buffer fills, so that the rows keep flowing in: memory holds at most two buffers. At
//! the end the runs and the rows still in memory are merged (more than [`MAX_FAN_IN`] runs:
//! some are first merged into longer runs, so that memory and open files stay bounded at any
//! size). Rows with equal keys keep the order they arrived in (each run is sorted stably
//! and the merge prefers earlier runs), so of a repeated key the row that came last is handed
//! out last.
//!
//! Hand-written rather than taken from `extsort`: that crate bounds its runs by a count of
//! items, each its own heap allocation; here the bound is in bytes (keys run from a few bytes
//! to a kilobyte) and rows sit back to back in one buffer.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::thread::JoinHandle;

use lz4_flex::frame::{FrameDecoder, FrameEncoder};

use crate::error::{Error, Result};

/// Bytes of buffered writes of a run file, and of buffered reads of its rows at most (less
/// when there are many runs: the sort's memory is shared by them).
const RUN_IO_BUFFER: usize = 256 * 1024;

/// Bytes of buffered reads of a run's rows at least.
const MIN_RUN_READ_BUFFER: usize = 16 * 1024;

/// Runs one merge reads at once at most. Each open run holds a read buffer, LZ4's block
/// buffers (64 KiB blocks) and a file descriptor; a sort of more runs (beyond about 17M rows of
/// the scale benchmark's inventory at the default memory: runs of about 130,000 rows) first
/// merges some of them into longer runs, one more pass over those rows through the temporary
/// folder (see [`RowSorter::finish`]).
const MAX_FAN_IN: usize = 128;

/// Environment variable that sets the memory of a sort, in MiB: [`memory_budget`].
pub(crate) const SORT_MEMORY_ENV: &str = "LAKEPORT_SORT_MEMORY_MB";

/// The memory of a sort when [`SORT_MEMORY_ENV`] is not set: 64 MiB.
const DEFAULT_SORT_MEMORY_MB: usize = 64;

/// Bytes of rows a sort keeps in memory before it writes a sorted run to a temporary file:
/// `LAKEPORT_SORT_MEMORY_MB` MiB (a whole number, at least 1), else 64 MiB. More memory means
/// fewer, longer runs; the temporary disk a sort needs is the size of its rows either way.
pub(crate) fn memory_budget() -> Result<usize> {
    let Some(raw) = std::env::var_os(SORT_MEMORY_ENV) else {
        return Ok(DEFAULT_SORT_MEMORY_MB << 20);
    };
    raw.to_str()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .filter(|&mb| (1..=1 << 20).contains(&mb))
        .map(|mb| mb << 20)
        .ok_or_else(|| {
            Error::InvalidConfig(format!(
                "{SORT_MEMORY_ENV}={raw:?}: expected a whole number of MiB from 1 to 1048576 \
                 (the memory a sort keeps before it writes a run to the temporary folder)"
            ))
        })
}

/// Where a row sits in the buffer.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    key_len: u32,
    len: u32,
}

/// A buffer of rows and where each row sits in it.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Buffer {
    /// Sorts the entries by key; rows with equal keys keep their order.
    fn sort(&mut self) {
        let bytes = &self.bytes;
        self.entries
            .sort_by(|a, b| key(bytes, a).cmp(key(bytes, b)));
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }
}

/// A run being sorted and written on its own thread; it hands back the run's file and the
/// emptied buffer.
type Spill = JoinHandle<Result<(File, Buffer)>>;

/// Collects encoded rows, then hands them back in key order ([`RowSorter::finish`]).
pub(crate) struct RowSorter {
    /// Bytes per buffer.
    budget: usize,
    filling: Buffer,
    spilling: Option<Spill>,
    runs: Vec<File>,
    rows: u64,
}

/// A failure to write or read a run: names the folder (a full one is the usual cause).
fn temp_error(e: std::io::Error) -> Error {
    Error::Io {
        context: format!(
            "sorting rows in a temporary file in {} (the temporary folder: TMPDIR)",
            std::env::temp_dir().display()
        ),
        source: e,
    }
}

impl RowSorter {
    /// A sorter that keeps at most about `budget` bytes of rows in memory (two buffers of
    /// half that).
    pub(crate) fn new(budget: usize) -> RowSorter {
        RowSorter {
            budget: budget / 2,
            filling: Buffer::default(),
            spilling: None,
            runs: Vec::new(),
            rows: 0,
        }
    }

    /// Rows pushed so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one row: `encode` writes it at the end of the buffer and returns the length of
    /// its key part.
    pub(crate) fn push_with(&mut self, encode: impl FnOnce(&mut Vec<u8>) -> usize) -> Result<()> {
        let buffer = &mut self.filling;
        if buffer.bytes.capacity() == 0 {
            buffer.bytes.reserve(self.budget.min(1 << 20));
        }
        let start = buffer.bytes.len();
        let key_len = encode(&mut buffer.bytes);
        let len = u32::try_from(buffer.bytes.len() - start).map_err(|_| too_long())?;
        let key_len = u32::try_from(key_len).map_err(|_| too_long())?;
        buffer.entries.push(Entry {
            start,
            key_len,
            len,
        });
        self.rows += 1;
        if buffer.bytes.len() + buffer.entries.len() * std::mem::size_of::<Entry>() >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Hands the full buffer to a thread that sorts it and writes it to a new run file, once
    /// the previous one is done; goes on with that one's emptied buffer.
    fn spill(&mut self) -> Result<()> {
        let spare = self.wait_for_spill()?.unwrap_or_default();
        let full = std::mem::replace(&mut self.filling, spare);
        let spill = std::thread::Builder::new()
            .name("lakeport-sort".into())
            .spawn(move || write_run(full))
            .map_err(|e| Error::store_caused("cannot start a thread to sort rows", e))?;
        self.spilling = Some(spill);
        Ok(())
    }

    /// Waits for the run being written, if any; its emptied buffer.
    fn wait_for_spill(&mut self) -> Result<Option<Buffer>> {
        let Some(spill) = self.spilling.take() else {
            return Ok(None);
        };
        let (file, mut buffer) = spill
            .join()
            .map_err(|_| Error::store("the thread sorting rows panicked"))??;
        self.runs.push(file);
        buffer.clear();
        Ok(Some(buffer))
    }

    /// Every row pushed, in key order.
    pub(crate) fn finish(mut self) -> Result<SortedRows> {
        self.wait_for_spill()?;
        let mut memory = std::mem::take(&mut self.filling);
        memory.sort();
        let mut runs = std::mem::take(&mut self.runs);
        // More runs than one merge reads at once (the rows in memory count as one): runs are
        // merged into longer ones first, each taking the place of the runs it replaces, so
        // that equal keys keep arrival order. When merging the earliest few is enough, only
        // those; otherwise every run, MAX_FAN_IN at a time (each such level moves every row
        // once more, and a level divides the runs by MAX_FAN_IN).
        while runs.len() + 1 > MAX_FAN_IN {
            let excess = runs.len() + 2 - MAX_FAN_IN;
            if excess <= MAX_FAN_IN {
                let rest = runs.split_off(excess);
                runs = std::iter::once(merge_into_run(runs, self.budget)?)
                    .chain(rest)
                    .collect();
            } else {
                let mut longer = Vec::with_capacity(runs.len().div_ceil(MAX_FAN_IN));
                let mut rest = runs.into_iter().peekable();
                while rest.peek().is_some() {
                    let group: Vec<File> = rest.by_ref().take(MAX_FAN_IN).collect();
                    longer.push(merge_into_run(group, self.budget)?);
                }
                runs = longer;
            }
        }
        let sources = read_runs(runs, self.budget).chain(std::iter::once(Source::Memory {
            buffer: memory,
            next: 0,
        }));
        merge(sources)
    }
}

/// A row whose length does not fit a run's 32-bit length fields.
fn too_long() -> Error {
    Error::InvalidInput("a row of more than 4 GiB cannot be sorted".into())
}

/// Readers of run files, which share `budget` bytes of read buffers (within bounds).
fn read_runs(runs: Vec<File>, budget: usize) -> impl Iterator<Item = Source> {
    let read_buffer = (budget / runs.len().max(1)).clamp(MIN_RUN_READ_BUFFER, RUN_IO_BUFFER);
    runs.into_iter()
        .map(move |f| Source::File(BufReader::with_capacity(read_buffer, FrameDecoder::new(f))))
}

/// One run holding the rows of `runs`, in key order (of equal keys, the earlier run's first).
fn merge_into_run(runs: Vec<File>, budget: usize) -> Result<File> {
    if runs.len() == 1 {
        return runs
            .into_iter()
            .next()
            .ok_or_else(|| Error::store("no run to merge"));
    }
    let mut merged = merge(read_runs(runs, budget))?;
    let mut w = RunWriter::new()?;
    while let Some((row, key_len)) = merged.next_row()? {
        w.push(key_len, row)?;
    }
    w.finish()
}

/// The rows of `sources` merged in key order; of equal keys, the earlier source's first.
fn merge(sources: impl Iterator<Item = Source>) -> Result<SortedRows> {
    let mut heap = BinaryHeap::new();
    for (run, mut source) in sources.enumerate() {
        let mut rec = Vec::new();
        if let Some(key_len) = source.read_into(&mut rec)? {
            heap.push(Head {
                run,
                rec,
                key_len,
                source,
            });
        }
    }
    Ok(SortedRows {
        heap,
        current: Vec::new(),
        key_len: 0,
    })
}

/// Writes rows to a new run file: LZ4 frames of (key length, row length, row).
struct RunWriter {
    w: FrameEncoder<BufWriter<File>>,
}

impl RunWriter {
    fn new() -> Result<RunWriter> {
        let file = tempfile::tempfile().map_err(temp_error)?;
        Ok(RunWriter {
            w: FrameEncoder::new(BufWriter::with_capacity(RUN_IO_BUFFER, file)),
        })
    }

    fn push(&mut self, key_len: usize, row: &[u8]) -> Result<()> {
        let key_len = u32::try_from(key_len).map_err(|_| too_long())?;
        let len = u32::try_from(row.len()).map_err(|_| too_long())?;
        self.w
            .write_all(&key_len.to_le_bytes())
            .and_then(|()| self.w.write_all(&len.to_le_bytes()))
            .and_then(|()| self.w.write_all(row))
            .map_err(temp_error)
    }

    /// The run's file, rewound for reading.
    fn finish(self) -> Result<File> {
        let w = self.w.finish().map_err(|e| temp_error(e.into()))?;
        let mut file = w.into_inner().map_err(|e| temp_error(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(temp_error)?;
        Ok(file)
    }
}

/// Sorts a buffer and writes its rows to a new run file, rewound for reading.
fn write_run(mut buffer: Buffer) -> Result<(File, Buffer)> {
    buffer.sort();
    let mut w = RunWriter::new()?;
    for e in &buffer.entries {
        w.push(e.key_len as usize, row(&buffer.bytes, e))?;
    }
    Ok((w.finish()?, buffer))
}

fn key<'b>(buffer: &'b [u8], e: &Entry) -> &'b [u8] {
    &buffer[e.start..e.start + e.key_len as usize]
}

fn row<'b>(buffer: &'b [u8], e: &Entry) -> &'b [u8] {
    &buffer[e.start..e.start + e.len as usize]
}

/// Where a run's rows come from.
enum Source {
    File(BufReader<FrameDecoder<File>>),
    Memory { buffer: Buffer, next: usize },
}

impl Source {
    /// Replaces `rec` with the run's next row; its key length, or `None` at the run's end.
    fn read_into(&mut self, rec: &mut Vec<u8>) -> Result<Option<usize>> {
        match self {
            Source::Memory { buffer, next } => {
                let Some(e) = buffer.entries.get(*next) else {
                    return Ok(None);
                };
                *next += 1;
                rec.clear();
                rec.extend_from_slice(row(&buffer.bytes, e));
                Ok(Some(e.key_len as usize))
            }
            Source::File(r) => {
                let mut head = [0u8; 8];
                match r.read_exact(&mut head[..1]) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(e) => return Err(temp_error(e)),
                }
                r.read_exact(&mut head[1..]).map_err(temp_error)?;
                let [k0, k1, k2, k3, l0, l1, l2, l3] = head;
                let key_len = u32::from_le_bytes([k0, k1, k2, k3]) as usize;
                let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
                rec.resize(len, 0);
                r.read_exact(rec).map_err(temp_error)?;
                if key_len > len {
                    return Err(Error::store("a sorted run in a temporary file is corrupt"));
                }
                Ok(Some(key_len))
            }
        }
    }
}

/// The next row of one run, ordered for [`BinaryHeap`] (a max-heap) so that the least key,
/// then the earliest run, comes out first.
struct Head {
    run: usize,
    rec: Vec<u8>,
    key_len: usize,
    source: Source,
}

impl Head {
    fn key(&self) -> &[u8] {
        &self.rec[..self.key_len]
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key()
            .cmp(self.key())
            .then_with(|| other.run.cmp(&self.run))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// Sorted rows, handed out one at a time ([`SortedRows::next_row`]).
pub(crate) struct SortedRows {
    heap: BinaryHeap<Head>,
    current: Vec<u8>,
    key_len: usize,
}

impl SortedRows {
    /// The next row and the length of its key part; `None` after the last.
    pub(crate) fn next_row(&mut self) -> Result<Option<(&[u8], usize)>> {
        let Some(mut head) = self.heap.pop() else {
            return Ok(None);
        };
        std::mem::swap(&mut self.current, &mut head.rec);
        self.key_len = head.key_len;
        if let Some(key_len) = head.source.read_into(&mut head.rec)? {
            head.key_len = key_len;
            self.heap.push(head);
        }
        Ok(Some((&self.current, self.key_len)))
    }
}

#[cfg(test)]
mod tests {
    use super::{RowSorter, MAX_FAN_IN};

    /// Rows of (key, arrival number), pushed with a budget that forces several runs, come back
    /// in key order, equal keys in arrival order.
    fn sorts(budget: usize, keys: &[u32]) {
        let mut s = RowSorter::new(budget);
        for (n, k) in keys.iter().enumerate() {
            s.push_with(|out| {
                out.extend_from_slice(&k.to_be_bytes());
                out.extend_from_slice(&(n as u32).to_be_bytes());
                4
            })
            .unwrap();
        }
        assert_eq!(s.rows(), keys.len() as u64);
        let mut want: Vec<(u32, u32)> = keys
            .iter()
            .enumerate()
            .map(|(n, &k)| (k, n as u32))
            .collect();
        want.sort();
        let mut got = Vec::new();
        let mut sorted = s.finish().unwrap();
        while let Some((row, key_len)) = sorted.next_row().unwrap() {
            assert_eq!(key_len, 4);
            let k = u32::from_be_bytes(row[..4].try_into().unwrap());
            let n = u32::from_be_bytes(row[4..8].try_into().unwrap());
            got.push((k, n));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn sorts_in_memory_and_through_runs() {
        // A small linear congruential sequence with repeats.
        let keys: Vec<u32> = (0..5000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 997)
            .collect();
        sorts(1 << 30, &keys);
        sorts(4096, &keys);
        sorts(1, &keys[..50]);
        sorts(4096, &[]);
        sorts(1, &[7]);
        // Runs of several LZ4 blocks (64 KiB each) and more runs than read buffers fit.
        let many: Vec<u32> = (0..300_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 65_521)
            .collect();
        sorts(1 << 20, &many);
        sorts(64 << 10, &many);
    }

    #[test]
    fn more_runs_than_one_merge_reads_are_merged_first() {
        let mut s = RowSorter::new(4096);
        for i in 0..40_000u32 {
            s.push_with(|out| {
                out.extend_from_slice(&(i.wrapping_mul(2_654_435_761) % 1_000).to_be_bytes());
                4
            })
            .unwrap();
        }
        s.wait_for_spill().unwrap();
        assert!(s.runs.len() > 2 * MAX_FAN_IN, "{} runs", s.runs.len());
        let mut sorted = s.finish().unwrap();
        let mut previous = None;
        let mut rows = 0;
        while let Some((row, _)) = sorted.next_row().unwrap() {
            let key = u32::from_be_bytes(row[..4].try_into().unwrap());
            assert!(previous <= Some(key));
            previous = Some(key);
            rows += 1;
        }
        assert_eq!(rows, 40_000);
    }
}
