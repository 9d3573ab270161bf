//! Bulk writes to a PostgreSQL data table: every snapshot import
//! ([`Store::apply_snapshot`](crate::store::Store::apply_snapshot)) and every
//! [`Store::apply`](crate::store::Store::apply) of [`BULK_FROM`] changes or more (a `load`)
//! go to the server as one binary `COPY` into a temporary staging table, then a few
//! set-based statements merge the staging table into the data table.
//!
//! # Staging
//!
//! The staging table (`ON COMMIT DROP`, made from the data table's columns so that text
//! keeps its `COLLATE "C"`) holds every change in input order: the table's columns (a delete
//! carries its key and NULLs), its ordinal `_ord` and whether it is a delete `_del`. The
//! changes stream into it as `COPY … FROM STDIN (FORMAT binary)`, encoded here in chunks of
//! [`CHUNK`] bytes: the client holds one chunk, never the input. A change is checked (and its
//! values encoded) before the next is taken, so a refused value names its change.
//!
//! # Repeated keys
//!
//! A key may come more than once; changes apply in their order (the last one wins) and each
//! is counted against the state the one before it left. While streaming, the client notes
//! whether the keys came strictly ascending (then no key repeats), and adds each key to a
//! Bloom filter of fixed size ([`Seen`]), keeping the keys the filter held already: every
//! repeated key is among those candidates (with a few false ones). When there is none, no key
//! repeats and nothing more is done; otherwise the candidates go to the server and one
//! `GROUP BY` of the stage's rows with a candidate key (of every row, when the candidates were
//! too many to keep) finds the repeated keys. Their
//! occurrences are counted one by one (window functions over `_ord`, the first against the
//! stored row), and the stage keeps only each such key's last change, marked `_dup` and
//! `_force` when any occurrence changed something. The merge below leaves `_dup` rows out of
//! its counts and writes each forced one at the end, with one new `_seq` (a key changed twice
//! in one transaction takes one `_seq`, as the [`Store`](crate::store::Store) docs allow).
//!
//! # Merge and `_seq`
//!
//! The merge holds the meta row's lock (see [`postgres`](super), sequence at commit): it locks
//! it after the `COPY` (so other writers commit freely while the input streams), reads the
//! store's `seq` and takes the write time, and numbers every row it writes from a temporary
//! sequence set just above `seq` (`nextval` is evaluated only for rows a statement writes, so
//! the numbers are consecutive; within the transaction they follow the order the statements
//! below write rows, not the input's, which the store's contract leaves open). Other writers cannot commit until this transaction does, so
//! `_seq` order is commit order and the counts read while merging are exact. The statements,
//! each one pass over the stage (and the data table where they meet):
//! - tombstone (snapshot import): the live rows of the scope whose key the stage does not
//!   hold (an anti-join on the server; run first, while the scope holds only older rows);
//! - delete: live rows whose key the stage deletes become tombstones;
//! - revive: tombstones whose key the stage upserts take its values (counted inserted);
//! - update: live rows whose values differ from the stage's (`IS DISTINCT FROM`) take them;
//!   equal rows are not written and take no `_seq`;
//! - insert: staged upserts whose key the data table does not hold, in key order (so the
//!   indexes grow at their right edge rather than at random pages);
//! - forced: the last change of each repeated key that changed something.
//!
//! What is unchanged is what the input held minus what it inserted, updated or deleted.
//!
//! A small writer that holds rows the merge then wants to write (the same keys, written
//! meanwhile) and waits for the meta row at its commit is a deadlock, which PostgreSQL breaks
//! by failing one of the two (nothing of it applied; a watcher retries at its next pass, a
//! `load` is run again): only writers of the same keys at the same moment can meet it. The
//! temporary sequence outlives the transaction in its pooled connection (a sequence cannot be
//! dropped at commit); the next bulk write there sets it again.
//!
//! Small applies (fewer than [`BULK_FROM`] changes: the service's and most API writes) keep
//! the batched statements of [`write`](super::write): the staging table, its `COPY` and the
//! merge's several statements cost a fixed few milliseconds that a handful of rows does not
//! repay. Measured 2026-12-07 (`tests::bulk_threshold_timings`, debug build, median of five
//! applies of new rows; batched vs bulk): 10 rows 1.9 vs 4.6 ms, 1,000 rows 15.6 vs 23.4 ms,
//! 4,096 rows 58.8 vs 56.8 ms, 20,000 rows 345 vs 164 ms. The same rows again (unchanged)
//! stay cheaper batched (20,000: 102 vs 123 ms), but at a million rows the bulk path is ahead
//! there too (see `docs/performance.md`, "Inventories at scale on PostgreSQL").

use std::cmp::Ordering;
use std::io::Write as _;

use chrono::{DateTime, Utc};

use super::postgres::types::ToSql;
use super::postgres::Transaction;
use super::{non_negative, DbFailure, PostgresStore, TableSql};
use crate::error::{Error, Result};
use crate::store::listing::prefix_upper_bound;
use crate::store::{ApplyOutcome, Change, ImportScope, Value};

/// An apply of this many changes or more takes the bulk path.
pub(crate) const BULK_FROM: usize = 4096;

/// The `work_mem` the merge's transaction runs with at least (its hashes and sorts of the
/// whole stage spill to disk less; a server set higher keeps its own).
const WORK_MEM: i64 = 128 * 1024 * 1024;

/// Bytes of encoded rows sent to the server at a time.
const CHUNK: usize = 256 * 1024;

/// The staging table.
const STAGE: &str = "pg_temp.\"_lakeport_stage\"";
/// The keys that repeat in the stage.
const DUPS: &str = "pg_temp.\"_lakeport_dups\"";
/// The occurrences of repeated keys, each with what it did.
const DUP_ROWS: &str = "pg_temp.\"_lakeport_dup_rows\"";
/// The temporary sequence the merge numbers its rows from.
const NEXT_SEQ: &str = "nextval('pg_temp._lakeport_seq')";

/// The trailer that ends a binary `COPY` stream: a field count of −1.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// PostgreSQL's epoch (2000-01-01 UTC) in ms since the Unix epoch.
const PG_EPOCH_MS: i64 = 946_684_800_000;

/// What a staging table holds.
pub(super) struct Staged {
    /// Changes staged.
    rows: u64,
    /// Whether any of them is a delete.
    deletes: bool,
    /// Which keys may repeat.
    repeats: Repeats,
}

/// Which staged keys may come more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeats {
    /// None: the keys came strictly ascending, or none was seen before.
    None,
    /// Only those in the candidates table ([`CANDIDATES`]).
    Candidates,
    /// Any (too many candidates to send).
    Any,
}

/// The keys the filter of [`Seen`] had seen before (a repeat, or a false positive).
const CANDIDATES: &str = "pg_temp.\"_lakeport_candidates\"";

/// Bits of the filter of keys seen (32 MiB, whatever the input's size).
const FILTER_BITS: u64 = 1 << 28;
/// Bits set per key.
const FILTER_HASHES: u64 = 4;
/// Candidate keys kept at most (about 10 MB of keys); beyond, every key may repeat. The
/// tests keep two, so that both ways of finding repeated keys run.
const MAX_CANDIDATES: usize = if cfg!(test) { 2 } else { 100_000 };

/// The keys of a staged input in a Bloom filter of fixed size, and the keys it had seen
/// already when they came: a key that repeats is among them (the filter has no false
/// negatives), so only they need checking on the server. With [`FILTER_BITS`] and
/// [`FILTER_HASHES`], about 4,000 of 10M distinct keys are false candidates; at about 60M
/// keys the candidates pass [`MAX_CANDIDATES`] and the server checks every key instead.
struct Seen {
    bits: Vec<u64>,
    /// `None` once more than [`MAX_CANDIDATES`] came.
    candidates: Option<Vec<Vec<Value>>>,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            // Zeroed memory: the pages are mapped as the filter touches them.
            bits: vec![0; (FILTER_BITS / 64) as usize],
            candidates: Some(Vec::new()),
        }
    }

    /// Adds `key`, keeping it as a candidate when the filter held it already.
    fn add(&mut self, key: &[Value]) {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for v in key {
            match v {
                Value::String(s) => s.as_bytes().hash(&mut hasher),
                Value::Int64(n) | Value::TimestampMs(n) => n.hash(&mut hasher),
                // -0.0 equals 0.0 in PostgreSQL: they hash alike.
                Value::Double(d) => (if *d == 0.0 { 0.0f64 } else { *d })
                    .to_bits()
                    .hash(&mut hasher),
                Value::Bool(b) => b.hash(&mut hasher),
                Value::Binary(b) => b.hash(&mut hasher),
                Value::Null => 0u8.hash(&mut hasher),
            }
        }
        let h = hasher.finish();
        let (h1, h2) = (h & 0xffff_ffff, (h >> 32) | 1);
        let mut held = true;
        for i in 0..FILTER_HASHES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % FILTER_BITS;
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            if let Some(w) = self.bits.get_mut(word) {
                if *w & mask == 0 {
                    held = false;
                    *w |= mask;
                }
            }
        }
        if held {
            match &mut self.candidates {
                Some(c) if c.len() < MAX_CANDIDATES => c.push(key.to_vec()),
                _ => self.candidates = None,
            }
        }
    }
}

impl Staged {
    /// Changes staged.
    pub(super) fn rows(&self) -> u64 {
        self.rows
    }
}

/// Creates the staging table and streams `changes` (each already checked against the table)
/// into it with one binary `COPY`. An error from the iterator or the server aborts the
/// `COPY`; the caller's transaction then rolls back.
pub(super) fn stage(
    store: &PostgresStore,
    tx: &mut Transaction<'_>,
    t: &TableSql,
    changes: &mut dyn Iterator<Item = Result<Change>>,
) -> Result<Staged> {
    let table = t.name();
    let all = all_columns(t, "");
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS \
         SELECT {all}, NULL::int8 AS \"_ord\", NULL::bool AS \"_del\", \
                NULL::bool AS \"_dup\", NULL::bool AS \"_force\" \
         FROM {} WITH NO DATA",
        t.data
    ))
    .map_err(store.db(format_args!("staging rows for table {table}")))?;
    let mut writer = tx
        .copy_in(&format!(
            "COPY {STAGE} ({all}, \"_ord\", \"_del\") FROM STDIN (FORMAT binary)"
        ))
        .map_err(store.db(format_args!("sending rows to table {table}")))?;
    let sent = |e: std::io::Error| copy_error(store, table, e);
    let fields = i16::try_from(t.def.columns.len() + 2)
        .map_err(|_| Error::store(format!("table {table} has too many columns to copy")))?;
    let mut buf = copy_start();
    let mut staged = Staged {
        rows: 0,
        deletes: false,
        repeats: Repeats::None,
    };
    let mut ascending = true;
    let mut seen = Seen::new();
    let mut prev_key: Vec<Value> = Vec::new();
    let null = Value::Null;
    for change in changes {
        let change = change?;
        let ord = i64::try_from(staged.rows + 1).unwrap_or(i64::MAX);
        buf.extend_from_slice(&fields.to_be_bytes());
        let key: Vec<Value> = match change {
            Change::Upsert(mut values) => {
                for v in &values {
                    put(&mut buf, v)?;
                }
                put(&mut buf, &Value::Int64(ord))?;
                put(&mut buf, &Value::Bool(false))?;
                t.key_idx
                    .iter()
                    .map(|&i| std::mem::replace(&mut values[i], Value::Null))
                    .collect()
            }
            Change::Delete(key) => {
                staged.deletes = true;
                for i in 0..t.def.columns.len() {
                    let v = match t.key_idx.iter().position(|&k| k == i) {
                        Some(j) => &key[j],
                        None => &null,
                    };
                    put(&mut buf, v)?;
                }
                put(&mut buf, &Value::Int64(ord))?;
                put(&mut buf, &Value::Bool(true))?;
                key
            }
        };
        if ascending && staged.rows > 0 && !strictly_after(&key, &prev_key) {
            ascending = false;
        }
        seen.add(&key);
        prev_key = key;
        staged.rows += 1;
        if buf.len() >= CHUNK {
            writer.write_all(&buf).map_err(sent)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&TRAILER);
    writer.write_all(&buf).map_err(sent)?;
    let copied = writer
        .finish()
        .map_err(store.db(format_args!("sending rows to table {table}")))?;
    if copied != staged.rows {
        return Err(Error::store(format!(
            "sending rows to table {table}: the server took {copied} of {} rows",
            staged.rows
        )));
    }
    staged.repeats = match seen.candidates {
        _ if ascending => Repeats::None,
        Some(c) if c.is_empty() => Repeats::None,
        Some(c) => {
            send_candidates(store, tx, t, &c)?;
            Repeats::Candidates
        }
        None => Repeats::Any,
    };
    Ok(staged)
}

/// A buffer for a binary `COPY … FROM STDIN` stream, holding its header: the signature
/// ([`copy::SIGNATURE`](super::copy::SIGNATURE)), no flags, no header extension.
fn copy_start() -> Vec<u8> {
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    buf.extend_from_slice(super::copy::SIGNATURE);
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf
}

/// Sends the candidate keys of [`Seen`] to the [`CANDIDATES`] table.
fn send_candidates(
    store: &PostgresStore,
    tx: &mut Transaction<'_>,
    t: &TableSql,
    keys: &[Vec<Value>],
) -> Result<()> {
    let table = t.name();
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE {CANDIDATES} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
        t.key_list, t.data
    ))
    .map_err(store.db(format_args!("staging keys of table {table}")))?;
    let mut writer = tx
        .copy_in(&format!(
            "COPY {CANDIDATES} ({}) FROM STDIN (FORMAT binary)",
            t.key_list
        ))
        .map_err(store.db(format_args!("sending keys of table {table}")))?;
    let fields = i16::try_from(t.key_idx.len())
        .map_err(|_| Error::store(format!("table {table} has too many key columns")))?;
    let mut buf = copy_start();
    for key in keys {
        buf.extend_from_slice(&fields.to_be_bytes());
        for v in key {
            put(&mut buf, v)?;
        }
        if buf.len() >= CHUNK {
            writer
                .write_all(&buf)
                .map_err(|e| copy_error(store, table, e))?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&TRAILER);
    writer
        .write_all(&buf)
        .map_err(|e| copy_error(store, table, e))?;
    writer
        .finish()
        .map_err(store.db(format_args!("sending keys of table {table}")))?;
    Ok(())
}

/// A failed write of `COPY` data, with the server's words when it refused the data.
fn copy_error(store: &PostgresStore, table: &str, e: std::io::Error) -> Error {
    let what = format!("sending rows to table {table} ({})", store.shown);
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<super::postgres::Error>())
    {
        Some(db) => Error::store_caused(what, DbFailure::new(db)),
        None => Error::store_caused(what, e),
    }
}

/// Appends one field of a binary `COPY` tuple: its length and its value in PostgreSQL's
/// binary form (the value already checked against its column's type).
fn put(buf: &mut Vec<u8>, v: &Value) -> Result<()> {
    match v {
        Value::Null => {
            buf.extend_from_slice(&(-1i32).to_be_bytes());
            Ok(())
        }
        Value::String(s) => field(buf, s.as_bytes()),
        Value::Int64(n) => field(buf, &n.to_be_bytes()),
        Value::Double(d) => field(buf, &d.to_be_bytes()),
        Value::Bool(b) => field(buf, &[u8::from(*b)]),
        Value::Binary(b) => field(buf, b),
        Value::TimestampMs(ms) => field(buf, &pg_micros(*ms)?.to_be_bytes()),
    }
}

/// Appends a field's length and bytes.
fn field(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let len = i32::try_from(bytes.len()).map_err(|_| {
        Error::InvalidInput(format!(
            "a value of {} bytes is larger than PostgreSQL stores in one field (1 GB)",
            bytes.len()
        ))
    })?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

/// A time in ms since the Unix epoch as PostgreSQL's binary `timestamptz`: microseconds
/// since 2000-01-01 UTC.
fn pg_micros(ms: i64) -> Result<i64> {
    let out_of_range = || {
        Error::InvalidInput(format!(
            "timestamp {ms} ms is outside the range PostgreSQL stores"
        ))
    };
    DateTime::from_timestamp_millis(ms).ok_or_else(out_of_range)?;
    ms.checked_sub(PG_EPOCH_MS)
        .and_then(|v| v.checked_mul(1000))
        .ok_or_else(out_of_range)
}

/// Whether `key` sorts strictly after `prev` as the data table's primary key orders them
/// (text by bytes); `false` when unsure.
fn strictly_after(key: &[Value], prev: &[Value]) -> bool {
    for (a, b) in key.iter().zip(prev) {
        let order = match (a, b) {
            (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Value::Int64(a), Value::Int64(b)) | (Value::TimestampMs(a), Value::TimestampMs(b)) => {
                Some(a.cmp(b))
            }
            // -0.0 and 0.0 compare equal here, as they do in PostgreSQL.
            (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::Binary(a), Value::Binary(b)) => Some(a.cmp(b)),
            _ => None,
        };
        match order {
            Some(Ordering::Greater) => return true,
            Some(Ordering::Equal) => {}
            _ => return false,
        }
    }
    false
}

/// Merges the staged changes into the data table (see the module docs); with `scope`, the
/// stage is the full snapshot of that scope and the scope's live rows it does not hold
/// become tombstones. Returns the outcome and the write time (ms since epoch UTC); the caller
/// commits right after.
pub(super) fn merge(
    store: &PostgresStore,
    tx: &mut Transaction<'_>,
    t: &TableSql,
    staged: &Staged,
    scope: Option<&ImportScope>,
) -> Result<(ApplyOutcome, i64)> {
    let table = t.name();
    let at = || store.db(format!("merging staged rows into table {table}"));
    // Hashes and sorts of millions of rows: at least WORK_MEM each, for this transaction.
    tx.execute(
        "SELECT set_config('work_mem', greatest(pg_size_bytes(current_setting('work_mem')), \
                $1) / 1024 || 'kB', true)",
        &[&WORK_MEM],
    )
    .map_err(at())?;
    let s_keys = t.columns_of(&t.key_idx, "s.");
    let candidates = match staged.repeats {
        Repeats::None => None,
        Repeats::Candidates => Some(format!(
            " WHERE EXISTS (SELECT 1 FROM {CANDIDATES} c WHERE {})",
            t.key_join("c", "s")
        )),
        Repeats::Any => Some(String::new()),
    };
    let repeats = match candidates {
        None => false,
        Some(only) => {
            tx.execute(
                &format!(
                    "CREATE TEMP TABLE {DUPS} ON COMMIT DROP AS \
                     SELECT {s_keys} FROM {STAGE} s{only} GROUP BY {s_keys} HAVING count(*) > 1"
                ),
                &[],
            )
            .map_err(at())?
                > 0
        }
    };

    let (base, write_ms) = super::lock_meta(store, tx, table)?;
    let time = time_of(write_ms)?;
    tx.batch_execute("CREATE TEMP SEQUENCE IF NOT EXISTS \"_lakeport_seq\"")
        .map_err(at())?;
    tx.execute(
        "SELECT setval('pg_temp._lakeport_seq', $1, false)",
        &[&(base + 1)],
    )
    .map_err(at())?;

    let mut out = ApplyOutcome::default();
    if repeats {
        count_repeats(store, tx, t, &mut out)?;
    }
    // Rows of the scope the snapshot did not hold: deleted, but none of the staged changes.
    let unseen = match scope {
        Some(scope) => tombstone_unseen(store, tx, t, scope, &time)?,
        None => 0,
    };
    let mut run = |sql: String, params: &[&(dyn ToSql + Sync)]| -> Result<u64> {
        tx.execute(sql.as_str(), params).map_err(at())
    };
    let single = "s.\"_dup\" IS NOT TRUE";
    let tombstone = tombstone_sets(t);
    if staged.deletes {
        out.deleted += run(
            format!(
                "UPDATE {data} d SET {tombstone} FROM {STAGE} s \
                 WHERE s.\"_del\" AND {single} AND {join} AND NOT d.\"_deleted\"",
                data = t.data,
                join = t.key_join("d", "s"),
            ),
            &[&time],
        )?;
    }
    let mut sets: Vec<String> = t
        .other_idx
        .iter()
        .map(|&i| format!("{c} = s.{c}", c = t.col(i)))
        .collect();
    sets.push(format!("\"_seq\" = {NEXT_SEQ}"));
    sets.push("\"_write_time\" = $1".into());
    sets.push("\"_deleted\" = false".into());
    let update = |condition: &str| {
        format!(
            "UPDATE {data} d SET {sets} FROM {STAGE} s \
             WHERE NOT s.\"_del\" AND {single} AND {join} AND {condition}",
            data = t.data,
            sets = sets.join(", "),
            join = t.key_join("d", "s"),
        )
    };
    out.inserted += run(update("d.\"_deleted\""), &[&time])?;
    if !t.other_idx.is_empty() {
        out.updated += run(
            update(&format!("NOT d.\"_deleted\" AND {}", t.differs("d", "s"))),
            &[&time],
        )?;
    }
    out.inserted += run(
        format!(
            "INSERT INTO {data} ({all}, \"_seq\", \"_write_time\", \"_deleted\") \
             SELECT {s_all}, {NEXT_SEQ}, $1, false FROM {STAGE} s \
             WHERE NOT s.\"_del\" AND {single} \
               AND NOT EXISTS (SELECT 1 FROM {data} d WHERE {join}) \
             ORDER BY {s_keys}",
            data = t.data,
            all = all_columns(t, ""),
            s_all = all_columns(t, "s."),
            join = t.key_join("d", "s"),
        ),
        &[&time],
    )?;
    if repeats {
        // The last change of each repeated key that changed something, counted already.
        let mut sets: Vec<String> = t
            .other_idx
            .iter()
            .map(|&i| format!("{c} = excluded.{c}", c = t.col(i)))
            .collect();
        for c in ["_seq", "_write_time", "_deleted"] {
            sets.push(format!("\"{c}\" = excluded.\"{c}\""));
        }
        run(
            format!(
                "INSERT INTO {data} ({all}, \"_seq\", \"_write_time\", \"_deleted\") \
                 SELECT {s_all}, {NEXT_SEQ}, $1, s.\"_del\" FROM {STAGE} s \
                 WHERE s.\"_dup\" AND s.\"_force\" \
                 ON CONFLICT ({keys}) DO UPDATE SET {sets}",
                data = t.data,
                all = all_columns(t, ""),
                s_all = all_columns(t, "s."),
                keys = t.key_list,
                sets = sets.join(", "),
            ),
            &[&time],
        )?;
    }

    let row = tx
        .query_one(
            "SELECT last_value, is_called FROM pg_temp.\"_lakeport_seq\"",
            &[],
        )
        .map_err(at())?;
    let seq: i64 = if row.get::<_, bool>(1) {
        row.get(0)
    } else {
        base
    };
    let written = out.inserted + out.updated + out.deleted;
    out.deleted += unseen;
    out.unchanged = staged.rows.checked_sub(written).ok_or_else(|| {
        Error::store(format!(
            "merging into table {table}: {written} rows changed by {} staged changes",
            staged.rows
        ))
    })?;
    if seq > base {
        tx.execute(
            r#"UPDATE "_lakeport_meta" SET "seq" = $1, "last_write_ms" = $2 WHERE "id" = 1"#,
            &[&seq, &write_ms],
        )
        .map_err(at())?;
    }
    out.seq = non_negative(seq, "the store's seq")?;
    Ok((out, write_ms))
}

/// Tombstones the live rows of `scope` whose key the stage does not hold; how many.
fn tombstone_unseen(
    store: &PostgresStore,
    tx: &mut Transaction<'_>,
    t: &TableSql,
    scope: &ImportScope,
    time: &DateTime<Utc>,
) -> Result<u64> {
    let bucket = t.col(t.key_idx[0]);
    let key = t.col(t.key_idx[1]);
    let upper = prefix_upper_bound(&scope.prefix);
    let sql = format!(
        "UPDATE {data} d SET {sets} \
         WHERE d.{bucket} = $2 AND d.{key} >= $3{upper_test} AND NOT d.\"_deleted\" \
           AND NOT EXISTS (SELECT 1 FROM {STAGE} s WHERE {join})",
        data = t.data,
        sets = tombstone_sets(t),
        upper_test = if upper.is_some() {
            format!(" AND d.{key} < $4")
        } else {
            String::new()
        },
        join = t.key_join("s", "d"),
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![time, &scope.bucket, &scope.prefix];
    if let Some(upper) = &upper {
        params.push(upper);
    }
    tx.execute(sql.as_str(), &params)
        .map_err(store.db(format_args!(
            "tombstoning rows of table {} absent from the snapshot",
            t.name()
        )))
}

/// The `SET` list that makes a row a tombstone numbered from the sequence, written at `$1`.
fn tombstone_sets(t: &TableSql) -> String {
    let mut sets: Vec<String> = t
        .other_idx
        .iter()
        .map(|&i| format!("{} = NULL", t.col(i)))
        .collect();
    sets.push(format!("\"_seq\" = {NEXT_SEQ}"));
    sets.push("\"_write_time\" = $1".into());
    sets.push("\"_deleted\" = true".into());
    sets.join(", ")
}

/// Every declared column, each with `prefix` (`"s."`), in table order.
fn all_columns(t: &TableSql, prefix: &str) -> String {
    let all: Vec<usize> = (0..t.def.columns.len()).collect();
    t.columns_of(&all, prefix)
}

/// Counts the occurrences of repeated keys one by one (the first against the stored row,
/// each later one against the one before it) into `out`, then leaves in the stage only the
/// last change of each such key, marked `_dup`, and `_force` when any occurrence changed
/// something. What each occurrence did (`_what`): 0 nothing, 1 inserted, 2 updated,
/// 3 deleted.
fn count_repeats(
    store: &PostgresStore,
    tx: &mut Transaction<'_>,
    t: &TableSql,
    out: &mut ApplyOutcome,
) -> Result<()> {
    let at = || store.db(format!("counting repeated keys of table {}", t.name()));
    // The previous occurrence's values, as columns `_p0`, `_p1`, … of the window.
    let lags: String = t
        .other_idx
        .iter()
        .enumerate()
        .map(|(j, &i)| format!(", lag(s.{}) OVER w AS \"_p{j}\"", t.col(i)))
        .collect();
    let prev_differs = if t.other_idx.is_empty() {
        "false".to_string()
    } else {
        let prev: Vec<String> = (0..t.other_idx.len())
            .map(|j| format!("o.\"_p{j}\""))
            .collect();
        format!(
            "({}) IS DISTINCT FROM ({})",
            prev.join(", "),
            t.columns_of(&t.other_idx, "o.")
        )
    };
    let sql = format!(
        "CREATE TEMP TABLE {DUP_ROWS} ON COMMIT DROP AS \
         SELECT {o_keys}, o.\"_ord\", o.\"_last\", \
           CASE WHEN o.\"_n\" = 1 THEN \
                  CASE WHEN d.\"_deleted\" IS NOT FALSE THEN \
                         CASE WHEN o.\"_del\" THEN 0 ELSE 1 END \
                       WHEN o.\"_del\" THEN 3 \
                       WHEN {stored_differs} THEN 2 ELSE 0 END \
                WHEN o.\"_p_del\" THEN CASE WHEN o.\"_del\" THEN 0 ELSE 1 END \
                WHEN o.\"_del\" THEN 3 \
                WHEN {prev_differs} THEN 2 ELSE 0 END AS \"_what\" \
         FROM (SELECT s.*, row_number() OVER w AS \"_n\", \
                      lead(s.\"_ord\") OVER w IS NULL AS \"_last\", \
                      lag(s.\"_del\") OVER w AS \"_p_del\"{lags} \
               FROM {STAGE} s WHERE EXISTS (SELECT 1 FROM {DUPS} k WHERE {join_ks}) \
               WINDOW w AS (PARTITION BY {s_keys} ORDER BY s.\"_ord\")) o \
         LEFT JOIN {data} d ON o.\"_n\" = 1 AND {join_do}",
        o_keys = t.columns_of(&t.key_idx, "o."),
        s_keys = t.columns_of(&t.key_idx, "s."),
        stored_differs = t.differs("d", "o"),
        join_ks = t.key_join("k", "s"),
        join_do = t.key_join("d", "o"),
        data = t.data,
    );
    tx.batch_execute(&sql).map_err(at())?;
    let row = tx
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE \"_what\" = 1), \
                        count(*) FILTER (WHERE \"_what\" = 2), \
                        count(*) FILTER (WHERE \"_what\" = 3) FROM {DUP_ROWS}"
            ),
            &[],
        )
        .map_err(at())?;
    out.inserted += non_negative(row.get(0), "a row count")?;
    out.updated += non_negative(row.get(1), "a row count")?;
    out.deleted += non_negative(row.get(2), "a row count")?;
    tx.execute(
        &format!(
            "DELETE FROM {STAGE} s USING {DUP_ROWS} r \
             WHERE s.\"_ord\" = r.\"_ord\" AND NOT r.\"_last\""
        ),
        &[],
    )
    .map_err(at())?;
    tx.execute(
        &format!(
            "UPDATE {STAGE} s SET \"_dup\" = true, \"_force\" = r.\"_touched\" \
             FROM (SELECT max(\"_ord\") AS \"_ord\", bool_or(\"_what\" <> 0) AS \"_touched\" \
                   FROM {DUP_ROWS} GROUP BY {keys}) r \
             WHERE s.\"_ord\" = r.\"_ord\"",
            keys = t.key_list,
        ),
        &[],
    )
    .map_err(at())?;
    Ok(())
}

/// A time in ms since the epoch as PostgreSQL's `timestamptz`.
fn time_of(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Error::store(format!("write time {ms} ms is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ascend_by_bytes_then_by_later_columns() {
        let s = |v: &str| Value::String(v.into());
        assert!(strictly_after(&[s("b")], &[s("a")]));
        assert!(!strictly_after(&[s("a")], &[s("a")]));
        // "z" < "é" in UTF-8 bytes.
        assert!(strictly_after(&[s("\u{e9}")], &[s("z")]));
        assert!(strictly_after(
            &[s("a"), Value::Int64(2)],
            &[s("a"), Value::Int64(1)]
        ));
        assert!(!strictly_after(
            &[s("a"), Value::Int64(1)],
            &[s("a"), Value::Int64(1)]
        ));
        assert!(!strictly_after(
            &[Value::Double(0.0)],
            &[Value::Double(-0.0)]
        ));
        assert!(!strictly_after(&[Value::Int64(1)], &[s("a")]));
    }

    #[test]
    fn every_repeated_key_is_a_candidate() {
        let mut seen = Seen::new();
        let key = |i: i64| vec![Value::String(format!("k{i}")), Value::Int64(i % 7)];
        for i in 0..10_000 {
            seen.add(&key(i));
        }
        assert_eq!(
            seen.candidates.as_deref(),
            Some(&[][..]),
            "no false candidate"
        );
        seen.add(&key(42));
        seen.add(&key(0));
        assert_eq!(seen.candidates, Some(vec![key(42), key(0)]));
        seen.add(&key(1));
        assert_eq!(seen.candidates, None, "more than MAX_CANDIDATES");
        let mut zeros = Seen::new();
        zeros.add(&[Value::Double(0.0)]);
        zeros.add(&[Value::Double(-0.0)]);
        assert_eq!(
            zeros.candidates.map(|c| c.len()),
            Some(1),
            "-0.0 repeats 0.0"
        );
    }

    #[test]
    fn timestamps_are_microseconds_since_2000() {
        assert_eq!(pg_micros(PG_EPOCH_MS).unwrap(), 0);
        assert_eq!(pg_micros(PG_EPOCH_MS + 1).unwrap(), 1000);
        assert_eq!(pg_micros(0).unwrap(), -PG_EPOCH_MS * 1000);
        assert!(matches!(pg_micros(i64::MAX), Err(Error::InvalidInput(_))));
    }
}
