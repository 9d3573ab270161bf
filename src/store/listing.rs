//! Listing and summarising the `object_inventory` table the way S3 lists a bucket: the
//! request and answer types of [`Store::list_objects`](crate::store::Store::list_objects) and
//! [`Store::summarize_objects`](crate::store::Store::summarize_objects), the continuation token
//! and the size buckets. Backends implement the two methods; this module owns what they mean.
//! It does not read the store itself, and it knows nothing of how the CLI prints a page.
//!
//! Semantics every backend keeps (and `conformance/listing.rs` checks):
//! - **Which rows.** Only rows of the asked bucket whose key starts with the prefix (a plain
//!   byte prefix, not a folder), that are live (a tombstone is never listed) and *current*:
//!   `is_latest` is not false and `is_delete_marker` is not true (NULL counts as "not
//!   versioned": listed). A versioned bucket has several rows per key; a key is listed once,
//!   from its `is_latest` row when it has one, else from its first current row by
//!   `version_id`. A key whose latest version is a delete marker is not listed.
//! - **Order.** Lexicographic by the key's UTF-8 bytes, which is S3's order (and Rust's
//!   `str` order; SQLite's BINARY collation compares the same bytes with `memcmp`).
//! - **Delimiter.** With a delimiter (`--non-recursive` uses `/`), a key that has the
//!   delimiter again after the prefix is rolled up into its *common prefix* (the key up to and
//!   including that delimiter). Each common prefix is listed once, at its place in key order,
//!   and only when it holds at least one current object. Having listed one, a backend seeks
//!   straight past it (to the first key ≥ [`prefix_successor`] of it) instead of reading the
//!   folder, so a folder of millions of keys costs one index seek.
//! - **Pages.** At most `limit` entries and common prefixes together (default
//!   [`DEFAULT_LIST_LIMIT`], at most [`MAX_LIST_LIMIT`], as S3's `max-keys`, except that a
//!   larger value is refused rather than lowered). `is_truncated` is true exactly when at
//!   least one more entry or common prefix follows; then `next_continuation_token` is set.
//! - **Continuation tokens** are opaque to users: base64url (no padding) of a format version
//!   byte, a kind byte and the last key (`K`) or common prefix (`P`) of the page. The next page
//!   starts after that position *as the store is at the next call*: keys added or removed
//!   behind it are not seen, keys ahead of it are; so walking every page returns each key that
//!   stayed in the bucket throughout exactly once, in order. A token that does not decode,
//!   has another version, or does not fit the query (its position outside the prefix, a common
//!   prefix without a delimiter) is an [`Error::InvalidInput`] saying so.
//! - **Summaries** count current objects (the same rows a recursive listing returns) and sum
//!   their sizes (a NULL size counts as an object of 0 bytes) in groups: storage class (NULL
//!   is [`NO_STORAGE_CLASS`]), first folder below the prefix (objects directly at the prefix's
//!   level are [`FILES_AT_THIS_LEVEL`]), [`SizeBucket`], or month of `last_modified` (UTC,
//!   `yyyy-MM`; NULL is [`UNKNOWN`]). Rows come in the group's natural order (see
//!   [`SummaryBy`]).
//!
//! An unknown bucket is simply empty, as S3 answers for a bucket with no objects.

use base64::Engine as _;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::schema::OBJECT_INVENTORY;
use crate::model::TableDef;

/// Entries (and common prefixes) per page when the query does not say.
pub const DEFAULT_LIST_LIMIT: usize = 1000;
/// The largest page a query may ask for.
pub const MAX_LIST_LIMIT: usize = 10_000;
/// Group name of objects with no storage class.
pub const NO_STORAGE_CLASS: &str = "(none)";
/// Group name, in a by-prefix summary, of objects directly at the prefix's level.
pub const FILES_AT_THIS_LEVEL: &str = "(files at this level)";
/// Group name of objects whose size or modification time is unknown (NULL).
pub const UNKNOWN: &str = "(unknown)";

/// The delimiter of a non-recursive listing.
pub const FOLDER_DELIMITER: char = '/';

/// One page request of [`Store::list_objects`](crate::store::Store::list_objects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// The bucket (the `bucket` column).
    pub bucket: String,
    /// Only keys that start with these bytes ("" for all).
    pub prefix: String,
    /// Roll keys up into common prefixes at this character after the prefix (`Some('/')` for
    /// a non-recursive listing); `None` lists every key.
    pub delimiter: Option<char>,
    /// Entries and common prefixes per page, 1..=[`MAX_LIST_LIMIT`].
    pub limit: usize,
    /// Where to resume: the `next_continuation_token` of the previous page.
    pub continuation_token: Option<String>,
}

impl ListQuery {
    /// A recursive listing of the whole bucket, first page, [`DEFAULT_LIST_LIMIT`] entries.
    pub fn new(bucket: impl Into<String>) -> ListQuery {
        ListQuery {
            bucket: bucket.into(),
            prefix: String::new(),
            delimiter: None,
            limit: DEFAULT_LIST_LIMIT,
            continuation_token: None,
        }
    }

    /// Checks the limit and the token against the query and returns where the page starts:
    /// the lower bound of the key range (bytes; may be a non-UTF-8 successor) and whether it
    /// is inclusive. Any problem is an [`Error::InvalidInput`].
    pub fn start(&self) -> Result<(Vec<u8>, bool)> {
        if self.limit == 0 || self.limit > MAX_LIST_LIMIT {
            return Err(Error::InvalidInput(format!(
                "limit: expected 1 to {MAX_LIST_LIMIT}, found {}",
                self.limit
            )));
        }
        let Some(token) = &self.continuation_token else {
            return Ok((self.prefix.as_bytes().to_vec(), true));
        };
        let cursor = Cursor::decode(token)?;
        let bad = |why: &str| {
            Err(Error::InvalidInput(format!(
                "continuation token {token:?} does not belong to this listing: {why}"
            )))
        };
        match &cursor {
            Cursor::AfterKey(k) if !k.starts_with(&self.prefix) => {
                bad("its key is outside the prefix")
            }
            Cursor::AfterKey(k) => Ok((k.as_bytes().to_vec(), false)),
            Cursor::AfterPrefix(p) => {
                let Some(d) = self.delimiter else {
                    return bad("it ends on a common prefix but this listing has no delimiter");
                };
                if common_prefix(p, &self.prefix, d) != Some(p.as_str()) {
                    return bad("its common prefix is not one of this prefix and delimiter");
                }
                match prefix_successor(p.as_bytes()) {
                    Some(next) => Ok((next, true)),
                    None => bad("its common prefix has no successor"),
                }
            }
        }
    }
}

/// One object of a page: its current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectEntry {
    /// The object key.
    pub key: String,
    /// Version id, or `None` for an unversioned object (stored as "").
    pub version_id: Option<String>,
    /// Size in bytes (NULL when the report had no size).
    pub size: Option<i64>,
    /// Last modification, ms since the Unix epoch, UTC.
    pub last_modified_ms: Option<i64>,
    /// Storage class as the report wrote it.
    pub storage_class: Option<String>,
    /// ETag as the report wrote it.
    pub etag: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListPage {
    /// Objects, in key order.
    pub entries: Vec<ObjectEntry>,
    /// Common prefixes (each ends with the delimiter), in key order.
    pub common_prefixes: Vec<String>,
    /// Pass this as `continuation_token` for the next page; set exactly when truncated.
    pub next_continuation_token: Option<String>,
    /// Whether more entries or common prefixes follow.
    pub is_truncated: bool,
}

/// How [`Store::summarize_objects`](crate::store::Store::summarize_objects) groups objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryBy {
    /// By `storage_class`, alphabetically (byte order), [`NO_STORAGE_CLASS`] last.
    StorageClass,
    /// By the first folder below the prefix (`prefix` + segment + `/`), in key order, after
    /// [`FILES_AT_THIS_LEVEL`].
    Prefix,
    /// By [`SizeBucket`], smallest first, [`UNKNOWN`] last.
    SizeBucket,
    /// By month of `last_modified` (UTC, `yyyy-MM`), oldest first, [`UNKNOWN`] last.
    Month,
}

impl SummaryBy {
    /// The name the CLI uses: `storage_class`, `prefix`, `size_bucket`, `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            SummaryBy::StorageClass => "storage_class",
            SummaryBy::Prefix => "prefix",
            SummaryBy::SizeBucket => "size_bucket",
            SummaryBy::Month => "month",
        }
    }
}

/// One group of a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    /// The group's name (see [`SummaryBy`]).
    pub group: String,
    /// Current objects in the group.
    pub objects: u64,
    /// Sum of their sizes in bytes.
    pub bytes: u64,
}

/// The size buckets of a by-size summary. Bucket `i` holds sizes in
/// `[SIZE_EDGES[i-1], SIZE_EDGES[i])` (bucket 0 is exactly 0 bytes); the last holds
/// everything from 5 GiB up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SizeBucket(pub usize);

const KIB: i64 = 1024;
const MIB: i64 = 1024 * KIB;
const GIB: i64 = 1024 * MIB;

/// Upper (exclusive) edges of the size buckets: 1 B (so bucket 0 is empty objects), 1 KiB,
/// 1 MiB, 16 MiB, 128 MiB, 1 GiB, 5 GiB (S3's single-PUT limit); the last bucket is open.
pub const SIZE_EDGES: [i64; 7] = [1, KIB, MIB, 16 * MIB, 128 * MIB, GIB, 5 * GIB];

/// Labels of the size buckets, in order; `a .. b` means `a <= size < b`.
pub const SIZE_LABELS: [&str; 8] = [
    "0 B",
    "1 B .. 1 KiB",
    "1 KiB .. 1 MiB",
    "1 MiB .. 16 MiB",
    "16 MiB .. 128 MiB",
    "128 MiB .. 1 GiB",
    "1 GiB .. 5 GiB",
    ">= 5 GiB",
];

impl SizeBucket {
    /// The bucket of a size; `None` for an unknown (NULL) or negative size.
    pub fn of(size: Option<i64>) -> Option<SizeBucket> {
        let size = size.filter(|s| *s >= 0)?;
        Some(SizeBucket(
            SIZE_EDGES
                .iter()
                .position(|&edge| size < edge)
                .unwrap_or(SIZE_EDGES.len()),
        ))
    }

    /// The bucket's label ([`SIZE_LABELS`]), [`UNKNOWN`] past the last.
    pub fn label(self) -> &'static str {
        SIZE_LABELS.get(self.0).copied().unwrap_or(UNKNOWN)
    }
}

/// Counts and bytes of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Acc {
    objects: u64,
    bytes: u64,
}

impl Acc {
    fn add(&mut self, size: Option<i64>) {
        self.objects += 1;
        self.bytes = self
            .bytes
            .saturating_add(size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0));
    }

    fn merge(&mut self, other: Acc) {
        self.objects += other.objects;
        self.bytes = self.bytes.saturating_add(other.bytes);
    }

    fn row(self, group: impl Into<String>) -> SummaryRow {
        SummaryRow {
            group: group.into(),
            objects: self.objects,
            bytes: self.bytes,
        }
    }
}

/// Folds current objects into the groups of a summary, one object at a time, in memory
/// proportional to the number of groups (not of objects). Backends stream the rows of
/// [`Store::summarize_objects`](crate::store::Store::summarize_objects) through it, so every
/// backend groups, names and orders alike. Rows may come in any order (key order is fastest
/// for [`SummaryBy::Prefix`]: one folder lookup per run of keys).
#[derive(Debug)]
pub struct Summarizer {
    by: SummaryBy,
    prefix: String,
    /// Storage classes and folders.
    named: std::collections::BTreeMap<String, Acc>,
    /// Months as `year * 12 + month0`.
    months: std::collections::BTreeMap<i64, Acc>,
    sizes: [Acc; SIZE_LABELS.len()],
    /// No storage class, unknown size or time; or files at the prefix's level.
    other: Acc,
    /// The folder of the last key (Prefix) and what it gathered since.
    current: Option<(String, Acc)>,
}

impl Summarizer {
    /// An empty summary of the objects under `prefix`, grouped `by`.
    pub fn new(by: SummaryBy, prefix: &str) -> Summarizer {
        Summarizer {
            by,
            prefix: prefix.to_string(),
            named: Default::default(),
            months: Default::default(),
            sizes: Default::default(),
            other: Acc::default(),
            current: None,
        }
    }

    /// Adds one current object. `key` must start with the prefix (only `Prefix` reads it);
    /// a NULL or negative `size` counts as 0 bytes (and an unknown size bucket).
    pub fn add(
        &mut self,
        key: &str,
        size: Option<i64>,
        storage_class: Option<&str>,
        last_modified_ms: Option<i64>,
    ) {
        match self.by {
            SummaryBy::StorageClass => match storage_class {
                Some(c) => match self.named.get_mut(c) {
                    Some(acc) => acc.add(size),
                    None => self.named.entry(c.to_string()).or_default().add(size),
                },
                None => self.other.add(size),
            },
            SummaryBy::SizeBucket => match SizeBucket::of(size) {
                Some(b) => self.sizes[b.0].add(size),
                None => self.other.add(size),
            },
            SummaryBy::Month => {
                use chrono::Datelike as _;
                match last_modified_ms.and_then(chrono::DateTime::from_timestamp_millis) {
                    Some(t) => {
                        let month = i64::from(t.year()) * 12 + i64::from(t.month0());
                        self.months.entry(month).or_default().add(size);
                    }
                    None => self.other.add(size),
                }
            }
            SummaryBy::Prefix => {
                if let Some((folder, acc)) = &mut self.current {
                    if key.starts_with(folder.as_str()) {
                        acc.add(size);
                        return;
                    }
                }
                self.flush_folder();
                match common_prefix(key, &self.prefix, FOLDER_DELIMITER) {
                    Some(folder) => {
                        let mut acc = Acc::default();
                        acc.add(size);
                        self.current = Some((folder.to_string(), acc));
                    }
                    None => self.other.add(size),
                }
            }
        }
    }

    fn flush_folder(&mut self) {
        if let Some((folder, acc)) = self.current.take() {
            self.named.entry(folder).or_default().merge(acc);
        }
    }

    /// The groups in the order [`SummaryBy`] documents; empty groups are left out.
    pub fn finish(mut self) -> Vec<SummaryRow> {
        self.flush_folder();
        let other = (self.other.objects > 0).then_some(self.other);
        let mut out = Vec::new();
        match self.by {
            SummaryBy::StorageClass => {
                out.extend(self.named.into_iter().map(|(g, a)| a.row(g)));
                out.extend(other.map(|a| a.row(NO_STORAGE_CLASS)));
            }
            SummaryBy::Prefix => {
                out.extend(other.map(|a| a.row(FILES_AT_THIS_LEVEL)));
                out.extend(self.named.into_iter().map(|(g, a)| a.row(g)));
            }
            SummaryBy::SizeBucket => {
                out.extend(
                    self.sizes
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.objects > 0)
                        .map(|(i, a)| a.row(SizeBucket(i).label())),
                );
                out.extend(other.map(|a| a.row(UNKNOWN)));
            }
            SummaryBy::Month => {
                out.extend(self.months.into_iter().map(|(m, a)| {
                    let (year, month0) = (m.div_euclid(12), m.rem_euclid(12));
                    a.row(format!("{year:04}-{:02}", month0 + 1))
                }));
                out.extend(other.map(|a| a.row(UNKNOWN)));
            }
        }
        out
    }
}

/// The smallest byte string greater than every string that starts with `prefix`: `prefix`
/// with its last byte below 0xFF incremented and what follows it dropped. `None` for an
/// empty prefix or one of only 0xFF bytes (no upper bound). UTF-8 text never contains 0xFF,
/// so a non-empty key prefix always has one (which may not be valid UTF-8 itself).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut out = prefix[..=last].to_vec();
    out[last] += 1;
    Some(out)
}

/// The common prefix `key` rolls up into under `prefix` and `delimiter`: `key` up to and
/// including the first `delimiter` after `prefix`, or `None` when there is none (or `key`
/// does not start with `prefix`).
pub fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: char) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len_utf8()])
}

/// The least string at or above `bound` (bytes, compared as S3 compares keys) that a text
/// column can hold: valid UTF-8 without NUL; `None` when there is none. For every such string
/// `s`, `s >= bound` exactly when `s >= least_text_at_or_above(bound)` (and, when there is
/// none, `s < bound` for all). A backend whose text values must be valid UTF-8 (PostgreSQL)
/// binds this instead of a byte bound from [`ListQuery::start`] or [`prefix_successor`],
/// which may not be UTF-8 (`"é"`'s successor ends in byte 0xAA, a lone continuation byte).
pub(crate) fn least_text_at_or_above(bound: &[u8]) -> Option<String> {
    let valid = match std::str::from_utf8(bound) {
        Ok(_) => bound.len(),
        Err(e) => e.valid_up_to(),
    };
    let k = bound[..valid].iter().position(|&b| b == 0).unwrap_or(valid);
    let head = std::str::from_utf8(&bound[..k]).ok()?;
    let rest = &bound[k..];
    if rest.is_empty() {
        return Some(head.to_string());
    }
    // `rest` starts with no whole character a text can hold, so no such character's bytes are
    // a prefix of it: a string `head + c + …` is at or above `bound` exactly when `c`'s bytes
    // are above `rest`. The least such `c` alone follows `head`; without one, the answer is
    // the least string above every string that starts with `head`.
    match least_char_above(rest) {
        Some(c) => Some(format!("{head}{c}")),
        None => text_successor(head),
    }
}

/// [`least_text_at_or_above`] for the lower bound of a range (as [`ListQuery::start`] gives
/// it): the text bound and whether it is inclusive; `None` when no text is in the range.
pub(crate) fn text_lower_bound(bound: &[u8], inclusive: bool) -> Option<(String, bool)> {
    let text = least_text_at_or_above(bound)?;
    // A bound that is not itself a text is never equal to one: `> bound` is `>= text`.
    let inclusive = inclusive || text.as_bytes() != bound;
    Some((text, inclusive))
}

/// The least character other than NUL (code-point order is UTF-8 byte order) whose bytes
/// are above `rest`.
fn least_char_above(rest: &[u8]) -> Option<char> {
    // Characters U+0001..=U+10FFFF without the surrogates, by index.
    const COUNT: u32 = 0x10_FFFF - 0x800;
    let nth = |i: u32| {
        let cp = i + 1;
        char::from_u32(if cp >= 0xD800 { cp + 0x800 } else { cp })
    };
    let above = |i: u32| {
        let mut buf = [0u8; 4];
        nth(i).is_some_and(|c| c.encode_utf8(&mut buf).as_bytes() > rest)
    };
    let (mut lo, mut hi) = (0, COUNT);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if above(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo < COUNT {
        nth(lo)
    } else {
        None
    }
}

/// The least string (valid UTF-8) above every string that starts with `text`: its last
/// character below U+10FFFF incremented, what follows dropped; `None` when there is none.
fn text_successor(text: &str) -> Option<String> {
    let mut chars: Vec<char> = text.chars().collect();
    while let Some(c) = chars.pop() {
        let next = match c {
            '\u{10FFFF}' => continue,
            '\u{D7FF}' => '\u{E000}',
            c => char::from_u32(u32::from(c) + 1)?,
        };
        chars.push(next);
        return Some(chars.into_iter().collect());
    }
    None
}

/// Columns of `object_inventory` that listing and summaries read, by their declared names.
pub(crate) const LISTED_COLUMNS: [&str; 9] = [
    "bucket",
    "key",
    "version_id",
    "is_latest",
    "is_delete_marker",
    "size",
    "last_modified",
    "storage_class",
    "etag",
];

/// Whether `def` is the object-inventory table with every column listing reads: the table
/// that `ls` and `du` read (PostgreSQL gives it a summary index).
pub(crate) fn is_listed_table(def: &TableDef) -> bool {
    def.table == OBJECT_INVENTORY && LISTED_COLUMNS.iter().all(|c| def.column(c).is_some())
}

/// What a backend does after handing a row to [`PageBuilder::take`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Hand over the next row of the range.
    Next,
    /// Go on at the first key at or above these bytes (a common prefix was listed: its keys
    /// are skipped with one seek); may not be UTF-8 (see [`least_text_at_or_above`]).
    Seek(Vec<u8>),
    /// The page is complete.
    Stop,
}

/// Fills one page of a listing from the rows a backend reads in `(key, version_id)` order
/// from the page's start ([`ListQuery::start`]) up to the prefix's [`prefix_successor`],
/// tombstones left out. It owns what every backend must do alike: leave out versions that are
/// not current, roll keys up into common prefixes (asking the backend to seek past each), list
/// a key once (from its `is_latest` row when it has one), stop at the limit, and end the page
/// with its continuation token ([`PageBuilder::finish`]).
#[derive(Debug)]
pub(crate) struct PageBuilder<'q> {
    q: &'q ListQuery,
    out: ListPage,
    /// The last item listed, and whether it came from an `is_latest` row.
    last: Option<(Cursor, bool)>,
}

impl<'q> PageBuilder<'q> {
    /// An empty page of `q`.
    pub(crate) fn new(q: &'q ListQuery) -> Self {
        PageBuilder {
            q,
            out: ListPage::default(),
            last: None,
        }
    }

    /// Entries and common prefixes listed so far.
    pub(crate) fn items(&self) -> usize {
        self.out.entries.len() + self.out.common_prefixes.len()
    }

    /// Takes one live row: its key, its `is_latest` and `is_delete_marker` flags, and how to
    /// read the rest of it (`entry`, called only when the row is listed). A new item past the
    /// limit truncates the page.
    pub(crate) fn take(
        &mut self,
        key: &str,
        is_latest: Option<bool>,
        is_delete_marker: Option<bool>,
        entry: impl FnOnce() -> Result<ObjectEntry>,
    ) -> Result<Step> {
        if is_latest == Some(false) || is_delete_marker == Some(true) {
            return Ok(Step::Next);
        }
        let is_latest = is_latest == Some(true);
        if let Some(d) = self.q.delimiter {
            if let Some(cp) = common_prefix(key, &self.q.prefix, d) {
                if self.items() == self.q.limit {
                    self.out.is_truncated = true;
                    return Ok(Step::Stop);
                }
                self.out.common_prefixes.push(cp.to_string());
                self.last = Some((Cursor::AfterPrefix(cp.to_string()), false));
                return Ok(match prefix_successor(cp.as_bytes()) {
                    Some(next) => Step::Seek(next),
                    None => Step::Stop,
                });
            }
        }
        let same_key = matches!(&self.last, Some((Cursor::AfterKey(k), _)) if k == key);
        if same_key {
            // Another current version of the key just listed: its is_latest row wins.
            if is_latest && !self.last.as_ref().is_some_and(|l| l.1) {
                let entry = entry()?;
                if let Some(e) = self.out.entries.last_mut() {
                    *e = entry;
                }
                self.last = Some((Cursor::AfterKey(key.to_string()), true));
            }
            return Ok(Step::Next);
        }
        if self.items() == self.q.limit {
            self.out.is_truncated = true;
            return Ok(Step::Stop);
        }
        self.out.entries.push(entry()?);
        self.last = Some((Cursor::AfterKey(key.to_string()), is_latest));
        Ok(Step::Next)
    }

    /// The page, with its continuation token when it is truncated.
    pub(crate) fn finish(mut self) -> ListPage {
        if self.out.is_truncated {
            self.out.next_continuation_token = self.last.map(|(c, _)| c.encode());
        }
        self.out
    }
}

/// Version of the token layout below.
const TOKEN_VERSION: u8 = 1;

/// The position a continuation token stands for: the last item of the page it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// The page ended on this key; the next starts at the first key after it.
    AfterKey(String),
    /// The page ended on this common prefix; the next starts after every key below it.
    AfterPrefix(String),
}

impl Cursor {
    /// The opaque token: base64url without padding of `[version, b'K' | b'P', text…]`.
    pub fn encode(&self) -> String {
        let (kind, text) = match self {
            Cursor::AfterKey(k) => (b'K', k),
            Cursor::AfterPrefix(p) => (b'P', p),
        };
        let mut raw = Vec::with_capacity(2 + text.len());
        raw.push(TOKEN_VERSION);
        raw.push(kind);
        raw.extend_from_slice(text.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a token made by [`Cursor::encode`]; anything else is an [`Error::InvalidInput`]
    /// naming the token and what is wrong with it.
    pub fn decode(token: &str) -> Result<Cursor> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "continuation token {token:?} is not valid: {why}; pass the next_continuation_token of the previous page unchanged"
            ))
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad("not base64url"))?;
        let (version, kind, text) = match raw.as_slice() {
            [version, kind, text @ ..] => (*version, *kind, text),
            _ => return Err(bad("too short")),
        };
        if version != TOKEN_VERSION {
            return Err(bad(&format!(
                "format version {version}, expected {TOKEN_VERSION}"
            )));
        }
        let text = String::from_utf8(text.to_vec()).map_err(|_| bad("its key is not UTF-8"))?;
        match kind {
            b'K' if !text.is_empty() => Ok(Cursor::AfterKey(text)),
            b'P' if !text.is_empty() => Ok(Cursor::AfterPrefix(text)),
            b'K' | b'P' => Err(bad("its position is empty")),
            _ => Err(bad("unknown kind")),
        }
    }
}

/// The smallest string greater than every string that starts with `prefix`, in code-point
/// (= UTF-8 byte, SQLite BINARY) order; `None` when there is none (empty prefix, or one made
/// only of `char::MAX`).
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;

    use super::*;

    #[test]
    fn tokens_round_trip_and_are_url_safe() {
        for c in [
            Cursor::AfterKey("a".into()),
            Cursor::AfterKey("photos/été 2024/+%2B?&=.jpg".into()),
            Cursor::AfterPrefix("日本語/".into()),
            Cursor::AfterKey("\u{10FFFF}".into()),
        ] {
            let t = c.encode();
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
            assert_eq!(Cursor::decode(&t).unwrap(), c);
        }
        assert_ne!(
            Cursor::AfterKey("a/".into()).encode(),
            Cursor::AfterPrefix("a/".into()).encode()
        );
    }

    #[test]
    fn bad_tokens_are_invalid_input_saying_why() {
        let b64 = |raw: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        for (token, why) in [
            ("not a token!".to_string(), "not base64url"),
            (String::new(), "too short"),
            (b64(&[1]), "too short"),
            (b64(&[2, b'K', b'a']), "format version 2, expected 1"),
            (b64(&[1, b'X', b'a']), "unknown kind"),
            (b64(&[1, b'K']), "position is empty"),
            (b64(&[1, b'K', 0xFF]), "not UTF-8"),
        ] {
            let err = Cursor::decode(&token).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
            assert!(err.to_string().contains(why), "{token}: {err}");
            assert!(err.to_string().contains("continuation token"), "{err}");
        }
    }

    #[test]
    fn start_checks_limit_and_token_against_the_query() {
        let mut q = ListQuery::new("b");
        q.prefix = "a/".into();
        assert_eq!(q.start().unwrap(), (b"a/".to_vec(), true));
        q.continuation_token = Some(Cursor::AfterKey("a/x".into()).encode());
        assert_eq!(q.start().unwrap(), (b"a/x".to_vec(), false));
        q.continuation_token = Some(Cursor::AfterKey("b/x".into()).encode());
        assert!(q
            .start()
            .unwrap_err()
            .to_string()
            .contains("outside the prefix"));

        q.continuation_token = Some(Cursor::AfterPrefix("a/x/".into()).encode());
        let err = q.start().unwrap_err().to_string();
        assert!(err.contains("no delimiter"), "{err}");
        q.delimiter = Some('/');
        assert_eq!(q.start().unwrap(), (b"a/x0".to_vec(), true));
        q.continuation_token = Some(Cursor::AfterPrefix("a/x/y/".into()).encode());
        assert!(q.start().unwrap_err().to_string().contains("not one of"));

        for bad in [0, MAX_LIST_LIMIT + 1] {
            q.limit = bad;
            let err = q.start().unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)));
            assert!(err.to_string().contains("expected 1 to 10000"), "{err}");
        }
        q.limit = MAX_LIST_LIMIT;
        q.continuation_token = None;
        assert!(q.start().is_ok());
    }

    #[test]
    fn size_buckets_have_the_documented_edges() {
        let cases = [
            (0, 0),
            (1, 1),
            (1023, 1),
            (1024, 2),
            (MIB - 1, 2),
            (MIB, 3),
            (16 * MIB - 1, 3),
            (16 * MIB, 4),
            (128 * MIB - 1, 4),
            (128 * MIB, 5),
            (GIB - 1, 5),
            (GIB, 6),
            (5 * GIB - 1, 6),
            (5 * GIB, 7),
            (i64::MAX, 7),
        ];
        for (size, bucket) in cases {
            assert_eq!(
                SizeBucket::of(Some(size)),
                Some(SizeBucket(bucket)),
                "{size}"
            );
        }
        assert_eq!(SizeBucket::of(None), None);
        assert_eq!(SizeBucket::of(Some(-1)), None);
        assert_eq!(SizeBucket(0).label(), "0 B");
        assert_eq!(SizeBucket(7).label(), ">= 5 GiB");
        assert_eq!(SizeBucket(8).label(), UNKNOWN);
    }

    #[test]
    fn successors_and_common_prefixes() {
        assert_eq!(prefix_successor(b"a/b/"), Some(b"a/b0".to_vec()));
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(&[b'a', 0xFF, 0xFF]), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(&[0xFF]), None);
        // Every key below "a/" sorts before the successor, and "a0" not below it.
        let succ = prefix_successor(b"a/").unwrap();
        for below in ["a/", "a/\u{10FFFF}\u{10FFFF}", "a/zzz"] {
            assert!(below.as_bytes() < succ.as_slice(), "{below}");
        }
        assert!("a0".as_bytes() >= succ.as_slice());

        assert_eq!(common_prefix("a/b/c", "", '/'), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", '/'), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", '/'), None);
        assert_eq!(common_prefix("a/b/", "a/", '/'), Some("a/b/"));
        assert_eq!(common_prefix("ab/c", "a", '/'), Some("ab/"));
        assert_eq!(common_prefix("x/b/c", "a/", '/'), None);
        assert_eq!(common_prefix("été→x→y", "été", '→'), Some("été→"));
    }

    #[test]
    fn text_bounds_of_byte_bounds() {
        let least = |b: &[u8]| least_text_at_or_above(b);
        assert_eq!(least(b"a/b"), Some("a/b".into()));
        assert_eq!(least(b""), Some(String::new()));
        // "é" is C3 A9: its successor C3 AA is not UTF-8; the least text above is "ê".
        assert_eq!(
            least(&prefix_successor("é".as_bytes()).unwrap()),
            Some("ê".into())
        );
        // A lone lead byte, an overlong lead, a surrogate's bytes, past U+10FFFF.
        assert_eq!(least(b"a\xC0"), Some("a\u{80}".into()));
        assert_eq!(least(b"a\xE0\x80"), Some("a\u{800}".into()));
        assert_eq!(least(b"a\xED\xA0\x80"), Some("a\u{E000}".into()));
        assert_eq!(least(b"a\xF4\x90"), Some("b".into()));
        assert_eq!(least(b"a\xFF"), Some("b".into()));
        assert_eq!(least(b"\xFF"), None);
        assert_eq!(least(b"\xF4\x8F\xBF\xBF\xFF"), None);
        assert_eq!(least(b"a\xD7\xBF\xF5"), Some("a\u{600}".into()));
        assert_eq!(least(b"\xED\x9F\xBF\xFF"), Some("\u{E000}".into()));
        // NUL is no text's: "a\0x" rounds up to "a\u{1}".
        assert_eq!(least(b"a\0x"), Some("a\u{1}".into()));
        assert_eq!(text_lower_bound(b"a", false), Some(("a".into(), false)));
        assert_eq!(
            text_lower_bound(b"a\xC0", false),
            Some(("a\u{80}".into(), true))
        );
        assert_eq!(text_lower_bound(b"\xFF", true), None);
    }

    /// Bytes and characters near the edges of UTF-8's encoding lengths and of the surrogates.
    fn edge_bytes() -> impl Strategy<Value = Vec<u8>> {
        let bytes = [
            0x00u8, 0x01, b'/', b'a', 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
            0xDF, 0xE0, 0xED, 0xEE, 0xEF, 0xF0, 0xF3, 0xF4, 0xF5, 0xFF,
        ];
        proptest::collection::vec(proptest::sample::select(bytes.to_vec()), 0..6)
    }

    fn edge_text() -> impl Strategy<Value = String> {
        let chars = [
            '\u{1}',
            '/',
            'a',
            '\u{7F}',
            '\u{80}',
            '\u{7FF}',
            '\u{800}',
            '\u{D7FF}',
            '\u{E000}',
            '\u{FFFF}',
            '\u{10000}',
            '\u{3FFFF}',
            '\u{40000}',
            '\u{10FFFF}',
        ];
        proptest::collection::vec(proptest::sample::select(chars.to_vec()), 0..5)
            .prop_map(|c| c.into_iter().collect())
    }

    proptest::proptest! {
        /// Every text compares with the text bound as with the byte bound; the text bound is
        /// a text and at or above the byte bound.
        #[test]
        fn text_bounds_keep_every_comparison(bound in edge_bytes(), cut in 0usize..6, tail in edge_text()) {
            // Texts near the bound: its longest text prefix, cut, and a tail.
            let valid = match std::str::from_utf8(&bound) {
                Ok(s) => s.to_string(),
                Err(e) => String::from_utf8(bound[..e.valid_up_to()].to_vec()).unwrap(),
            };
            let valid: String = valid.replace('\0', "");
            let head: String = valid.chars().take(cut).collect();
            let text = format!("{head}{tail}");
            let least = least_text_at_or_above(&bound);
            if let Some(l) = &least {
                proptest::prop_assert!(l.as_bytes() >= bound.as_slice());
                proptest::prop_assert!(!l.contains('\0'));
            }
            let at_or_above = text.as_bytes() >= bound.as_slice();
            proptest::prop_assert_eq!(
                at_or_above,
                least.as_ref().is_some_and(|l| text >= *l),
                "{:?} vs {:?} ({:?})", text, bound, least
            );
        }
    }

    fn row(key: &str) -> ObjectEntry {
        ObjectEntry {
            key: key.into(),
            version_id: None,
            size: None,
            last_modified_ms: None,
            storage_class: None,
            etag: None,
        }
    }

    #[test]
    fn pages_roll_up_prefixes_and_keep_one_version_per_key() {
        let mut q = ListQuery::new("b");
        q.delimiter = Some('/');
        q.limit = 3;
        let mut page = PageBuilder::new(&q);
        let mut take = |key: &str, latest: Option<bool>, marker: Option<bool>| {
            page.take(key, latest, marker, || {
                let mut e = row(key);
                e.version_id = latest.map(|l| l.to_string());
                Ok(e)
            })
            .unwrap()
        };
        assert_eq!(take("a", Some(false), None), Step::Next);
        assert_eq!(take("a", None, Some(true)), Step::Next);
        assert_eq!(take("b", None, None), Step::Next);
        assert_eq!(take("b", Some(true), None), Step::Next);
        assert_eq!(take("b", None, None), Step::Next);
        assert_eq!(take("c/x", None, None), Step::Seek(b"c0".to_vec()));
        assert_eq!(take("d", Some(true), None), Step::Next);
        assert_eq!(take("e", None, None), Step::Stop);
        let out = page.finish();
        assert_eq!(out.common_prefixes, ["c/"]);
        let entries: Vec<_> = out
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.version_id.as_deref()))
            .collect();
        assert_eq!(entries, [("b", Some("true")), ("d", Some("true"))]);
        assert!(out.is_truncated);
        assert_eq!(
            out.next_continuation_token,
            Some(Cursor::AfterKey("d".into()).encode())
        );
    }

    /// Key, size, storage class, last modified.
    type TestObj<'a> = (&'a str, Option<i64>, Option<&'a str>, Option<i64>);

    fn summary(by: SummaryBy, prefix: &str, objs: &[TestObj<'_>]) -> Vec<(String, u64, u64)> {
        let mut s = Summarizer::new(by, prefix);
        for (key, size, class, ms) in objs {
            s.add(key, *size, *class, *ms);
        }
        s.finish()
            .into_iter()
            .map(|r| (r.group, r.objects, r.bytes))
            .collect()
    }

    fn owned(rows: &[(&str, u64, u64)]) -> Vec<(String, u64, u64)> {
        rows.iter()
            .map(|(g, o, b)| (g.to_string(), *o, *b))
            .collect()
    }

    #[test]
    fn months_are_utc_and_ordered() {
        // 2024-03-31T23:59:59.999Z and the next millisecond; -1 ms is December 1969.
        let objs = [
            ("a", Some(1), None, Some(1_711_929_600_000)),
            ("b", Some(2), None, Some(1_711_929_599_999)),
            ("c", Some(4), None, Some(-1)),
            ("d", Some(8), None, Some(0)),
            ("e", Some(16), None, None),
            ("f", None, None, Some(0)),
        ];
        assert_eq!(
            summary(SummaryBy::Month, "", &objs),
            owned(&[
                ("1969-12", 1, 4),
                ("1970-01", 2, 8),
                ("2024-03", 1, 2),
                ("2024-04", 1, 1),
                ("(unknown)", 1, 16),
            ])
        );
    }

    #[test]
    fn folders_gather_in_any_order() {
        let objs = [
            ("p/a/1", Some(1), None, None),
            ("p/x", Some(2), None, None),
            ("p/a/2", Some(4), None, None),
            ("p/b/c/3", Some(8), None, None),
            ("p/a/b/4", Some(16), None, None),
            ("p/y", Some(-5), None, None),
        ];
        assert_eq!(
            summary(SummaryBy::Prefix, "p/", &objs),
            owned(&[
                ("(files at this level)", 2, 2),
                ("p/a/", 3, 21),
                ("p/b/", 1, 8),
            ])
        );
        assert_eq!(
            summary(SummaryBy::Prefix, "p/a", &objs[..1]),
            owned(&[("p/a/", 1, 1)])
        );
        assert!(summary(SummaryBy::Prefix, "", &[]).is_empty());
    }

    #[test]
    fn classes_and_sizes_name_their_missing_groups() {
        let objs = [
            ("a", Some(0), Some("STANDARD"), None),
            ("b", Some(1024), None, None),
            ("c", None, Some("GLACIER"), None),
            ("d", Some(5 * GIB), Some("STANDARD"), None),
        ];
        assert_eq!(
            summary(SummaryBy::StorageClass, "", &objs),
            owned(&[
                ("GLACIER", 1, 0),
                ("STANDARD", 2, 5 * GIB as u64),
                ("(none)", 1, 1024),
            ])
        );
        assert_eq!(
            summary(SummaryBy::SizeBucket, "", &objs),
            owned(&[
                ("0 B", 1, 0),
                ("1 KiB .. 1 MiB", 1, 1024),
                (">= 5 GiB", 1, 5 * GIB as u64),
                ("(unknown)", 1, 0),
            ])
        );
    }
}
