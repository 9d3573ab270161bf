//! The conformance suite every [`Store`] backend must pass: plain functions taking
//! `&dyn Store`, each run by one `#[test]` per backend (SQLite: `sqlite/tests.rs`).
//!
//! Each function expects a fresh, empty store and declares the tables it uses. It owns the
//! semantics of the module documentation (`_seq`, `_write_time`, tombstones, atomic `apply`,
//! consistent snapshots, run records); it does not test backend specifics such as the file
//! layout.

pub(super) mod listing;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::record_batch::RecordBatch;

mod imports;
mod shards;

pub(crate) use imports::{
    snapshot_import_diffs_its_scope, snapshot_import_into_empty_scope_with_repeated_keys,
    snapshot_import_matches_a_model, snapshot_import_out_of_order_switch,
    snapshot_import_prefix_edges, snapshot_import_prefix_scope_and_atomicity,
    snapshot_import_repeated_key, snapshot_import_revives_tombstones,
    snapshot_import_same_or_older_is_not_applied, snapshot_import_sorted_removals,
    snapshot_import_versions_in_byte_order,
};
pub(crate) use shards::shards_are_claimed_once_and_reported;

use crate::error::Error;
use crate::model::{ColumnType, DeliveredObject, TableDef, DELETED_COLUMN};
use crate::store::{
    ApplyOutcome, Change, Lag, LiveSet, RunOwner, RunRecord, RunStatus, Store, TableStats, Value,
};

/// A table with one column of every type, keyed by `id`.
const ITEMS: &str = "table: items
primary_key: [id]
columns:
  - { name: id, type: int64 }
  - { name: name, type: string }
  - { name: size, type: int64 }
  - { name: ratio, type: double }
  - { name: flag, type: bool }
  - { name: data, type: binary }
  - { name: at, type: timestamp_ms }
";

/// A table with a composite key (string, int64).
const PAIRS: &str = "table: pairs
primary_key: [a, b]
columns:
  - { name: v, type: string }
  - { name: a, type: string }
  - { name: b, type: int64 }
";

/// The table of the concurrent-writer test.
const GENS: &str = "table: gens
primary_key: [id]
columns:
  - { name: id, type: int64 }
  - { name: gen, type: int64 }
";

fn declare(store: &dyn Store, yaml: &str) -> TableDef {
    let def = TableDef::from_yaml(yaml, "conformance").unwrap();
    store.ensure_table(&def).unwrap();
    def
}

fn apply(store: &dyn Store, table: &str, changes: Vec<Change>) -> crate::Result<ApplyOutcome> {
    store.apply(table, &mut changes.into_iter().map(Ok))
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn item(id: i64, name: &str, size: i64) -> Change {
    Change::Upsert(vec![
        Value::Int64(id),
        s(name),
        Value::Int64(size),
        Value::Double(0.5),
        Value::Bool(true),
        Value::Binary(vec![1, 2, 3]),
        Value::TimestampMs(1_700_000_000_000 + id),
    ])
}

fn del(id: i64) -> Change {
    Change::Delete(vec![Value::Int64(id)])
}

fn pair(a: &str, b: i64, v: &str) -> Change {
    Change::Upsert(vec![s(v), s(a), Value::Int64(b)])
}

fn stats(store: &dyn Store, table: &str) -> TableStats {
    store
        .table_stats()
        .unwrap()
        .into_iter()
        .find(|t| t.table == table)
        .unwrap()
}

/// One snapshot row: declared values, `_seq`, `_write_time`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    values: Vec<Value>,
    seq: i64,
    write_time: i64,
}

/// The rows of one batch, checking its schema.
fn batch_rows(def: &TableDef, batch: &RecordBatch) -> Vec<Row> {
    assert_eq!(batch.schema(), def.arrow_schema());
    let n = def.columns.len();
    let int = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
    };
    let ts = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap()
    };
    (0..batch.num_rows())
        .map(|r| {
            let values = def
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let col = batch.column(i);
                    if col.is_null(r) {
                        return Value::Null;
                    }
                    let any = col.as_any();
                    match c.ty {
                        ColumnType::String => {
                            s(any.downcast_ref::<StringArray>().unwrap().value(r))
                        }
                        ColumnType::Int64 => Value::Int64(int(i).value(r)),
                        ColumnType::Double => {
                            Value::Double(any.downcast_ref::<Float64Array>().unwrap().value(r))
                        }
                        ColumnType::Bool => {
                            Value::Bool(any.downcast_ref::<BooleanArray>().unwrap().value(r))
                        }
                        ColumnType::Binary => Value::Binary(
                            any.downcast_ref::<BinaryArray>().unwrap().value(r).to_vec(),
                        ),
                        ColumnType::TimestampMs => Value::TimestampMs(ts(i).value(r)),
                    }
                })
                .collect();
            Row {
                values,
                seq: int(n).value(r),
                write_time: ts(n + 1).value(r),
            }
        })
        .collect()
}

/// A snapshot read whole: its `seq`, its `rows` count, and each shard's rows.
struct Read {
    seq: u64,
    rows: u64,
    shards: Vec<Vec<Row>>,
}

impl Read {
    fn all(&self) -> Vec<Row> {
        self.shards.iter().flatten().cloned().collect()
    }
}

fn read(store: &dyn Store, def: &TableDef, shards: usize, batch: usize) -> Read {
    let mut snap = store.snapshot(&def.table, shards).unwrap();
    let mut out = Vec::new();
    for reader in &mut snap.shards {
        let mut rows = Vec::new();
        let n = reader
            .read(batch, &mut |b| {
                assert!(
                    b.num_rows() > 0 && b.num_rows() <= batch,
                    "{}",
                    b.num_rows()
                );
                rows.extend(batch_rows(def, &b));
                Ok(())
            })
            .unwrap();
        assert_eq!(n, rows.len() as u64);
        out.push(rows);
    }
    Read {
        seq: snap.seq,
        rows: snap.rows,
        shards: out,
    }
}

/// `_seq` is strictly increasing across tables and transactions; `ApplyOutcome::seq` and
/// `table_stats` agree with the rows.
pub(crate) fn seq_is_store_wide(store: &dyn Store) {
    let items = declare(store, ITEMS);
    let pairs = declare(store, PAIRS);
    let o1 = apply(store, "items", vec![item(1, "a", 1), item(2, "b", 2)]).unwrap();
    assert_eq!((o1.inserted, o1.seq), (2, 2));
    let o2 = apply(store, "pairs", vec![pair("x", 1, "p"), pair("x", 2, "q")]).unwrap();
    assert_eq!((o2.inserted, o2.seq), (2, 4));
    let o3 = apply(store, "items", vec![item(1, "a2", 1), item(3, "c", 3)]).unwrap();
    assert_eq!((o3.inserted, o3.updated, o3.seq), (1, 1, 6));

    let mut seqs: Vec<i64> = read(store, &items, 1, 100)
        .all()
        .iter()
        .chain(read(store, &pairs, 1, 100).all().iter())
        .map(|r| r.seq)
        .collect();
    seqs.sort();
    // Row 1 was rewritten at seq 5, so its first seq 1 is gone.
    assert_eq!(seqs, [2, 3, 4, 5, 6]);
    let items_rows = read(store, &items, 1, 100).all();
    let by_id: BTreeMap<i64, i64> = items_rows
        .iter()
        .map(|r| match r.values[0] {
            Value::Int64(id) => (id, r.seq),
            _ => panic!("id"),
        })
        .collect();
    assert_eq!(by_id, BTreeMap::from([(1, 5), (2, 2), (3, 6)]));
    assert_eq!(stats(store, "items").max_seq, 6);
    assert_eq!(stats(store, "pairs").max_seq, 4);
    let names: Vec<String> = store
        .table_stats()
        .unwrap()
        .into_iter()
        .map(|t| t.table)
        .collect();
    assert_eq!(names, ["items", "pairs"]);
}

/// An upsert of equal values takes no `_seq` and counts as unchanged (nulls, doubles, bytes
/// included); changing one value takes one.
pub(crate) fn unchanged_upsert_takes_no_seq(store: &dyn Store) {
    let items = declare(store, ITEMS);
    let nulls = Change::Upsert(vec![
        Value::Int64(2),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ]);
    let zeros = Change::Upsert(vec![
        Value::Int64(3),
        s(""),
        Value::Int64(0),
        Value::Double(-0.0),
        Value::Bool(false),
        Value::Binary(vec![]),
        Value::TimestampMs(0),
    ]);
    let first = apply(
        store,
        "items",
        vec![item(1, "a", 10), nulls.clone(), zeros.clone()],
    )
    .unwrap();
    assert_eq!((first.inserted, first.seq), (3, 3));
    let before = read(store, &items, 1, 10).all();

    let again = apply(store, "items", vec![item(1, "a", 10), nulls, zeros]).unwrap();
    assert_eq!(
        again,
        ApplyOutcome {
            unchanged: 3,
            seq: 3,
            ..ApplyOutcome::default()
        }
    );
    assert_eq!(read(store, &items, 1, 10).all(), before);

    let changed = apply(store, "items", vec![item(1, "a", 11)]).unwrap();
    assert_eq!((changed.updated, changed.unchanged, changed.seq), (1, 0, 4));
    let changed = apply(
        store,
        "items",
        vec![item(1, "a", 11), item(2, "now set", 5)],
    )
    .unwrap();
    assert_eq!((changed.updated, changed.unchanged, changed.seq), (1, 1, 5));
    assert_eq!(stats(store, "items").max_seq, 5);
}

/// Upserting a deleted key is an insert, with a new `_seq`.
pub(crate) fn upsert_after_delete_is_insert(store: &dyn Store) {
    let items = declare(store, ITEMS);
    apply(store, "items", vec![item(1, "a", 1)]).unwrap();
    let d = apply(store, "items", vec![del(1)]).unwrap();
    assert_eq!((d.deleted, d.seq), (1, 2));
    let again = apply(store, "items", vec![item(1, "a", 1)]).unwrap();
    assert_eq!(
        again,
        ApplyOutcome {
            inserted: 1,
            seq: 3,
            ..ApplyOutcome::default()
        }
    );
    let rows = read(store, &items, 1, 10).all();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].seq, 3);
    assert_eq!(rows[0].values[1], s("a"));
    let st = stats(store, "items");
    assert_eq!((st.rows, st.tombstones, st.max_seq), (1, 0, 3));
}

/// A delete leaves a tombstone with its own `_seq`; deleting absent or deleted keys changes
/// nothing; tombstones are not in snapshots.
pub(crate) fn delete_leaves_tombstone(store: &dyn Store) {
    let pairs = declare(store, PAIRS);
    apply(
        store,
        "pairs",
        vec![pair("a", 1, "x"), pair("a", 2, "y"), pair("b", 1, "z")],
    )
    .unwrap();
    let key = |a: &str, b: i64| Change::Delete(vec![s(a), Value::Int64(b)]);
    let d = apply(store, "pairs", vec![key("a", 2)]).unwrap();
    assert_eq!(
        d,
        ApplyOutcome {
            deleted: 1,
            seq: 4,
            ..ApplyOutcome::default()
        }
    );
    let st = stats(store, "pairs");
    assert_eq!((st.rows, st.tombstones, st.max_seq), (2, 1, 4));

    let none = apply(store, "pairs", vec![key("a", 2), key("zz", 9), key("b", 2)]).unwrap();
    assert_eq!(
        none,
        ApplyOutcome {
            unchanged: 3,
            seq: 4,
            ..ApplyOutcome::default()
        }
    );
    assert_eq!(stats(store, "pairs"), st);

    let rows = read(store, &pairs, 2, 10).all();
    let keys: Vec<(Value, Value)> = rows
        .iter()
        .map(|r| (r.values[1].clone(), r.values[2].clone()))
        .collect();
    assert_eq!(keys, [(s("a"), Value::Int64(1)), (s("b"), Value::Int64(1))]);
    assert!(rows.iter().all(|r| r.seq < 4));
}

/// An iterator error midway rolls everything back and comes back unchanged.
pub(crate) fn apply_is_atomic_on_iterator_error(store: &dyn Store) {
    let items = declare(store, ITEMS);
    apply(store, "items", vec![item(1, "a", 1), item(2, "b", 2)]).unwrap();
    let before = (stats(store, "items"), read(store, &items, 1, 10).all());
    let changes = vec![
        Ok(item(1, "changed", 1)),
        Ok(del(2)),
        Ok(item(3, "new", 3)),
        Err(Error::InvalidInput("input.ndjson:4: bad line".into())),
        Ok(item(4, "never", 4)),
    ];
    let err = store.apply("items", &mut changes.into_iter()).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(err.to_string(), "input.ndjson:4: bad line");
    assert_eq!(
        (stats(store, "items"), read(store, &items, 1, 10).all()),
        before
    );
    // The sequence continues where it was: nothing of the failed apply was kept.
    let next = apply(store, "items", vec![item(5, "e", 5)]).unwrap();
    assert_eq!(next.seq, 3);
}

/// A value of the wrong type, a NULL key or a wrong arity rolls everything back with an
/// `InvalidInput` naming the column.
pub(crate) fn apply_is_atomic_on_bad_value(store: &dyn Store) {
    let items = declare(store, ITEMS);
    let pairs = declare(store, PAIRS);
    apply(store, "items", vec![item(1, "a", 1)]).unwrap();
    let before = (stats(store, "items"), read(store, &items, 1, 10).all());

    let mut bad = item(3, "c", 3);
    if let Change::Upsert(v) = &mut bad {
        v[2] = s("12");
    }
    let err = apply(store, "items", vec![item(1, "x", 9), item(2, "b", 2), bad]).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("column size: expected int64, found string \"12\""),
        "{err}"
    );
    assert_eq!(
        (stats(store, "items"), read(store, &items, 1, 10).all()),
        before
    );
    // The refusal comes before the next change is taken: a caller knows which one it was.
    let mut taken = 0;
    let nan = Change::Upsert(vec![
        Value::Int64(5),
        s("e"),
        Value::Null,
        Value::Double(f64::NAN),
        Value::Null,
        Value::Null,
        Value::Null,
    ]);
    let mut changes = [item(4, "d", 4), nan, item(6, "f", 6)]
        .into_iter()
        .inspect(|_| taken += 1)
        .map(Ok);
    let err = store.apply("items", &mut changes).unwrap_err();
    drop(changes);
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("column ratio: expected double, found double NaN"),
        "{err}"
    );
    assert_eq!(taken, 2);

    let null_key = Change::Delete(vec![Value::Null]);
    let err = apply(store, "items", vec![del(1), null_key]).unwrap_err();
    assert!(
        err.to_string()
            .contains("column id: expected int64, found null"),
        "{err}"
    );
    let short = Change::Upsert(vec![Value::Int64(7), s("g")]);
    let err = apply(store, "items", vec![item(8, "h", 8), short]).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(
        err.to_string().contains("column size: expected int64"),
        "{err}"
    );
    let long = Change::Upsert(vec![s("v"), s("a"), Value::Int64(1), Value::Null]);
    let err = apply(store, "pairs", vec![pair("a", 0, "ok"), long]).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    let wrong_key_type = Change::Delete(vec![Value::Int64(1), Value::Int64(1)]);
    let err = apply(store, "pairs", vec![wrong_key_type]).unwrap_err();
    assert!(
        err.to_string()
            .contains("column a: expected string, found int64 1"),
        "{err}"
    );

    assert_eq!(
        (stats(store, "items"), read(store, &items, 1, 10).all()),
        before
    );
    assert!(read(store, &pairs, 1, 10).all().is_empty());
    assert_eq!(apply(store, "items", vec![item(2, "b", 2)]).unwrap().seq, 2);
}

/// `_write_time` is one time per transaction, non-decreasing in `_seq`, close to now.
pub(crate) fn write_time_follows_seq(store: &dyn Store) {
    let items = declare(store, ITEMS);
    let t0 = chrono::Utc::now().timestamp_millis();
    for round in 0..5 {
        let changes = (0..4).map(|i| item(round * 10 + i, "x", round)).collect();
        apply(store, "items", changes).unwrap();
        apply(store, "items", vec![del(round * 10)]).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    let t1 = chrono::Utc::now().timestamp_millis();
    let mut rows = read(store, &items, 3, 4).all();
    assert_eq!(rows.len(), 15);
    rows.sort_by_key(|r| r.seq);
    for w in rows.windows(2) {
        assert!(w[0].write_time <= w[1].write_time, "{w:?}");
    }
    for r in &rows {
        assert!(
            r.write_time >= t0 - 1000 && r.write_time <= t1 + 1000,
            "{r:?}"
        );
    }
    // Rows of one transaction share one write time; the rounds slept, so times advanced.
    let mut per_round: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for r in &rows {
        if let Value::Int64(size) = r.values[2] {
            per_round.entry(size).or_default().insert(r.write_time);
        }
    }
    assert!(per_round.values().all(|t| t.len() == 1), "{per_round:?}");
    assert!(rows[0].write_time < rows[rows.len() - 1].write_time);
}

/// Shards of a composite-key table cover every live row exactly once, in key order, with
/// nothing deleted; batches respect `batch_rows`.
pub(crate) fn snapshot_shards_cover_rows(store: &dyn Store) {
    let pairs = declare(store, PAIRS);
    let mut expected = BTreeMap::new();
    let mut changes = Vec::new();
    for a in ["b", "a", "c", "aa", "é", "B"] {
        for b in [3, -1, 10, 2, 0] {
            changes.push(pair(a, b, &format!("{a}{b}")));
            expected.insert((a.to_string(), b), format!("{a}{b}"));
        }
    }
    apply(store, "pairs", changes).unwrap();
    let mut deletes = Vec::new();
    for (a, b) in [("a", 10), ("c", -1), ("é", 0), ("B", 3)] {
        deletes.push(Change::Delete(vec![s(a), Value::Int64(b)]));
        expected.remove(&(a.to_string(), b));
    }
    let out = apply(store, "pairs", deletes).unwrap();
    assert_eq!(out.deleted, 4);

    for shards in [1, 2, 4, 7] {
        let snap = read(store, &pairs, shards, 3);
        assert_eq!(snap.seq, out.seq);
        assert_eq!(snap.rows, expected.len() as u64);
        assert_eq!(snap.shards.len(), shards);
        assert!(
            snap.shards.iter().all(|s| !s.is_empty()),
            "empty shard with {shards} shards"
        );
        // Shards are about equal: sizes differ by at most one.
        let sizes: Vec<usize> = snap.shards.iter().map(Vec::len).collect();
        let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(hi - lo <= 1, "{sizes:?}");
        let got: Vec<((String, i64), String)> = snap
            .all()
            .into_iter()
            .map(|r| match (&r.values[1], &r.values[2], &r.values[0]) {
                (Value::String(a), Value::Int64(b), Value::String(v)) => {
                    ((a.clone(), *b), v.clone())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let want: Vec<((String, i64), String)> = expected.clone().into_iter().collect();
        assert_eq!(got, want, "{shards} shards");
    }
}

/// Asking for more shards than rows gives one shard per row; an empty table gives none but
/// still a `seq`.
pub(crate) fn snapshot_with_more_shards_than_rows(store: &dyn Store) {
    let items = declare(store, ITEMS);
    let pairs = declare(store, PAIRS);
    apply(store, "pairs", vec![pair("a", 1, "x")]).unwrap();
    let empty = read(store, &items, 4, 10);
    assert_eq!((empty.seq, empty.rows, empty.shards.len()), (1, 0, 0));

    apply(
        store,
        "items",
        vec![item(3, "c", 3), item(1, "a", 1), item(2, "b", 2)],
    )
    .unwrap();
    apply(store, "items", vec![del(2)]).unwrap();
    let snap = read(store, &items, 8, 10);
    assert_eq!((snap.seq, snap.rows, snap.shards.len()), (5, 2, 2));
    let ids: Vec<Vec<Value>> = snap
        .shards
        .iter()
        .map(|s| s.iter().map(|r| r.values[0].clone()).collect())
        .collect();
    assert_eq!(ids, [vec![Value::Int64(1)], vec![Value::Int64(3)]]);
    assert_eq!(read(store, &pairs, 5, 10).shards.len(), 1);
}

/// Snapshots stay consistent while a writer commits: a writer keeps setting generation g on
/// the first and the last key in one transaction; every snapshot (4 shards, read one after
/// the other while the writer goes on) must show the same g on both and a `seq` equal to the
/// highest `_seq` among its rows.
pub(crate) fn snapshot_consistent_under_writer(store: &dyn Store) {
    const ROWS: i64 = 1000;
    let gens = declare(store, GENS);
    let gen_row = |id: i64, g: i64| Change::Upsert(vec![Value::Int64(id), Value::Int64(g)]);
    apply(store, "gens", (0..ROWS).map(|id| gen_row(id, 0)).collect()).unwrap();

    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut g = 0;
            while !stop.load(Ordering::Relaxed) {
                g += 1;
                let out = apply(store, "gens", vec![gen_row(0, g), gen_row(ROWS - 1, g)]);
                assert_eq!(out.unwrap().updated, 2);
                std::thread::sleep(Duration::from_micros(200));
            }
            g
        });
        // Stops the writer however this thread leaves the scope (a failed assertion too), so
        // that the scope's join cannot hang.
        let _stop = StopOnDrop(&stop);
        let started = Instant::now();
        let distinct = |seen: &[i64]| seen.iter().collect::<BTreeSet<_>>().len();
        while seen.len() < 30 || distinct(&seen) < 10 {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "writer made no progress: {seen:?}"
            );
            assert!(!writer.is_finished(), "the writer stopped early");
            let mut snap = store.snapshot("gens", 4).unwrap();
            assert_eq!(snap.shards.len(), 4);
            assert_eq!(snap.rows, ROWS as u64);
            let mut rows = Vec::new();
            for reader in &mut snap.shards {
                reader
                    .read(128, &mut |b| {
                        rows.extend(batch_rows(&gens, &b));
                        Ok(())
                    })
                    .unwrap();
                // Give the writer time to commit between shards.
                std::thread::sleep(Duration::from_millis(2));
            }
            let ids: Vec<Value> = rows.iter().map(|r| r.values[0].clone()).collect();
            let want: Vec<Value> = (0..ROWS).map(Value::Int64).collect();
            assert_eq!(ids, want);
            let (first, last) = (&rows[0].values[1], &rows[rows.len() - 1].values[1]);
            assert_eq!(first, last, "snapshot {} mixes generations", seen.len());
            let max_seq = rows.iter().map(|r| r.seq).max().unwrap();
            assert_eq!(snap.seq, max_seq as u64);
            match first {
                Value::Int64(g) => seen.push(*g),
                other => panic!("{other:?}"),
            }
        }
        drop(_stop);
        writer.join().unwrap()
    });
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen[seen.len() - 1] > seen[0], "{seen:?}");
    assert!(written >= seen[seen.len() - 1]);
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn object(path: &str, rows: u64) -> DeliveredObject {
    DeliveredObject {
        path: path.into(),
        partition: path.split('/').next().unwrap_or("").into(),
        rows,
        bytes: rows * 100,
        ..DeliveredObject::default()
    }
}

/// A run record of `task` as planned, before the store numbers it.
pub(crate) fn planned(task: &str) -> RunRecord {
    RunRecord {
        seq_to: 42,
        first_object_seq: 999,
        shards: 2,
        owner: None,
        ..RunRecord::new(task, "full", 1_700_000_000_000, RunStatus::Running)
    }
}

/// Starts a run of `task` that takes nothing over.
fn start(store: &dyn Store, task: &str) -> RunRecord {
    let started = store
        .start_run(&planned(task), Duration::from_secs(60), &|_| false)
        .unwrap();
    assert!(started.interrupted.is_empty());
    started.run
}

fn finished(
    mut run: RunRecord,
    status: RunStatus,
    objects: Vec<DeliveredObject>,
    next: u64,
) -> RunRecord {
    run.status = status;
    run.ended_ms = Some(run.started_ms + 5000);
    run.rows = objects.iter().map(|o| o.rows).sum();
    run.bytes = objects.iter().map(|o| o.bytes).sum();
    run.objects = objects;
    run.next_object_seq = next;
    run
}

/// Run records and task state round-trip through `start_run`/`finish_run` with `Replace`
/// and `Append`; failed runs leave the state alone; `runs` lists newest first.
pub(crate) fn runs_and_task_state(store: &dyn Store) {
    assert_eq!(store.task_state("daily").unwrap(), None);
    assert!(store.runs(None, 10).unwrap().is_empty());

    let r1 = start(store, "daily");
    assert!(r1.run_id > 0);
    assert_eq!((r1.status, r1.first_object_seq), (RunStatus::Running, 0));
    assert_eq!((r1.seq_to, r1.shards), (42, 2));
    assert_eq!(
        store.runs(Some("daily"), 10).unwrap(),
        std::slice::from_ref(&r1)
    );

    let (a, b, c, d) = (
        object("dt=1/daily_0_0.parquet", 10),
        object("dt=1/daily_1_1.parquet", 20),
        object("dt=2/daily_0_2.parquet", 30),
        object("dt=3/daily_0_3.parquet", 40),
    );
    let mut f1 = finished(
        r1.clone(),
        RunStatus::Succeeded,
        vec![a.clone(), b.clone()],
        2,
    );
    f1.dirty.insert("size: not an integer".into(), 3);
    store.finish_run(&f1, LiveSet::Replace).unwrap();
    let st = store.task_state("daily").unwrap().unwrap();
    assert_eq!(st.task, "daily");
    assert_eq!(st.next_object_seq, 2);
    assert_eq!(
        st.checkpoint, 42,
        "a succeeded run delivered up to its seq_to"
    );
    assert_eq!(store.live_objects("daily").unwrap(), [a.clone(), b.clone()]);
    assert_eq!(
        store.live_partitions("daily").unwrap(),
        [("dt=1".to_string(), 2)]
    );
    assert!(st.pending_removal.is_empty());

    let r2 = start(store, "daily");
    assert!(r2.run_id > r1.run_id);
    assert_eq!(r2.first_object_seq, 2);
    let f2 = finished(r2.clone(), RunStatus::Succeeded, vec![c.clone()], 3);
    store.finish_run(&f2, LiveSet::Replace).unwrap();
    let st = store.task_state("daily").unwrap().unwrap();
    assert_eq!(st.next_object_seq, 3);
    assert_eq!(
        store.live_objects("daily").unwrap(),
        std::slice::from_ref(&c)
    );
    assert_eq!(st.pending_removal, [a.clone(), b.clone()]);

    store
        .clear_pending_removal("daily", std::slice::from_ref(&a))
        .unwrap();
    let st = store.task_state("daily").unwrap().unwrap();
    assert_eq!(st.pending_removal, std::slice::from_ref(&b));

    let r3 = start(store, "daily");
    assert_eq!(r3.first_object_seq, 3);
    let f3 = finished(r3.clone(), RunStatus::Succeeded, vec![d.clone()], 4);
    store.finish_run(&f3, LiveSet::Append).unwrap();
    let st = store.task_state("daily").unwrap().unwrap();
    assert_eq!(st.next_object_seq, 4);
    assert_eq!(store.live_objects("daily").unwrap(), [c.clone(), d.clone()]);
    assert_eq!(st.pending_removal, std::slice::from_ref(&b));

    // A failed run only stores its record.
    let r4 = start(store, "daily");
    assert_eq!(r4.first_object_seq, 4);
    let mut f4 = finished(r4.clone(), RunStatus::Failed, vec![object("x", 1)], 9);
    f4.error = Some("permission denied".into());
    store.finish_run(&f4, LiveSet::Replace).unwrap();
    assert_eq!(store.task_state("daily").unwrap().unwrap(), st);
    // A finished run cannot be finished again.
    assert!(store.finish_run(&f4, LiveSet::Replace).is_err());

    // Another task has its own numbering.
    let other = start(store, "other");
    assert_eq!(other.first_object_seq, 0);

    let daily = store.runs(Some("daily"), 10).unwrap();
    assert_eq!(daily, [f4.clone(), f3, f2, f1.clone()]);
    assert_eq!(daily[3].dirty_rows(), 3);
    assert_eq!(daily[3].partitions(), ["dt=1"]);
    assert_eq!(store.runs(None, 2).unwrap(), [other, f4]);
    assert_eq!(store.runs(Some("daily"), 1).unwrap().len(), 1);
    assert!(store.runs(Some("nope"), 10).unwrap().is_empty());
}

/// A store has one id, the same every time it is asked, and says where it is.
pub(crate) fn store_has_one_identity(store: &dyn Store) {
    let first = store.identity().unwrap();
    assert_eq!(first.id.len(), 36, "a UUID: {first:?}");
    assert!(first.created_ms > 1_600_000_000_000);
    assert!(
        first.location.starts_with("sqlite:") || first.location.starts_with("postgres"),
        "{first:?}"
    );
    assert_eq!(store.identity().unwrap(), first);
}

/// A run that failed before it started is recorded as the task's newest run and changes
/// nothing else; only a failed record is accepted.
pub(crate) fn failed_starts_are_recorded(store: &dyn Store) {
    let r1 = start(store, "daily");
    let f1 = finished(
        r1,
        RunStatus::Succeeded,
        vec![object("dt=1/daily_0_0.parquet", 5)],
        1,
    );
    store.finish_run(&f1, LiveSet::Replace).unwrap();
    let state = store.task_state("daily").unwrap();

    let mut refused = planned("daily");
    refused.status = RunStatus::Failed;
    refused.error = Some("refused: another store owns the destination".into());
    let id = store.record_failed_run(&refused).unwrap();
    assert!(id > f1.run_id);
    let newest = store.runs(Some("daily"), 1).unwrap();
    refused.run_id = id;
    assert_eq!(newest, [refused]);
    assert_eq!(store.task_state("daily").unwrap(), state);
    assert_eq!(store.live_objects("daily").unwrap(), f1.objects);
    // The task's next run starts as it would have.
    let r2 = start(store, "daily");
    assert_eq!(r2.first_object_seq, 1);

    let running = planned("daily");
    assert!(matches!(
        store.record_failed_run(&running),
        Err(Error::InvalidInput(_))
    ));
}

/// Adopting objects replaces a task's live set and state; the next succeeded run replaces the
/// adopted set whatever its `LiveSet`, numbering its objects past them, and clears the mark.
pub(crate) fn adopted_objects_are_replaced_by_the_next_run(store: &dyn Store) {
    let r1 = start(store, "daily");
    let own = object("dt=1/daily_0_0.parquet", 5);
    let f1 = finished(r1, RunStatus::Succeeded, vec![own.clone()], 1);
    store.finish_run(&f1, LiveSet::Replace).unwrap();

    let adopted = vec![
        object("dt=1/daily_0_7.parquet", 0),
        object("dt=2/daily_1_9.parquet", 0),
    ];
    store.adopt_task("daily", &adopted, 10).unwrap();
    let st = store.task_state("daily").unwrap().unwrap();
    assert_eq!(
        (st.checkpoint, st.next_object_seq, st.replace_next),
        (0, 10, true)
    );
    assert!(st.pending_removal.is_empty());
    assert_eq!(store.live_objects("daily").unwrap(), adopted);
    // An adoption never numbers objects below the task's own.
    store.adopt_task("other", &[], 0).unwrap();
    assert_eq!(
        store.task_state("other").unwrap().unwrap().next_object_seq,
        0
    );

    let mut plan = planned("daily");
    plan.mode = "incremental".into();
    plan.seq_from = 0;
    let r2 = store
        .start_run(&plan, Duration::from_secs(60), &|_| false)
        .unwrap()
        .run;
    assert_eq!(r2.first_object_seq, 10);
    let new = object("dt=3/daily_0_10.parquet", 8);
    let f2 = finished(r2, RunStatus::Succeeded, vec![new.clone()], 11);
    store.finish_run(&f2, LiveSet::Replace).unwrap();
    let st = store.task_state("daily").unwrap().unwrap();
    assert!(!st.replace_next);
    assert_eq!((st.checkpoint, st.next_object_seq), (42, 11));
    assert_eq!(st.pending_removal, adopted);
    assert_eq!(store.live_objects("daily").unwrap(), [new]);
}

/// A run whose process is known to be gone is taken over at once, though it was heard from
/// just now; the gone-check sees the run's owner.
pub(crate) fn runs_of_a_gone_process_are_taken_over_at_once(store: &dyn Store) {
    let lease = Duration::from_secs(3600);
    let mut plan = planned("hourly");
    plan.owner = Some(RunOwner {
        host: "h1".into(),
        pid: 4242,
        start_ticks: None,
    });
    let first = store.start_run(&plan, lease, &|_| false).unwrap().run;
    assert_eq!(first.owner, plan.owner);
    let alive = |r: &RunRecord| r.owner.as_ref().is_some_and(|o| o.pid != 4242);
    assert!(matches!(
        store.start_run(&planned("hourly"), lease, &alive),
        Err(Error::Conflict(_))
    ));
    let gone = |r: &RunRecord| r.owner.as_ref().is_some_and(|o| o.pid == 4242);
    let taken = store.start_run(&planned("hourly"), lease, &gone).unwrap();
    assert_eq!(taken.interrupted.len(), 1);
    let error = taken.interrupted[0].error.clone().unwrap_or_default();
    assert!(
        error.starts_with("interrupted: its process 4242 on h1 is gone"),
        "{error}"
    );
    assert_eq!(taken.run.first_object_seq, first.first_object_seq);
}

/// Runs of one task never overlap: a second start is refused while the first is heard from
/// within its lease; once it is silent longer, the next start takes it over (recorded
/// failed, its object numbers reused), and the taken-over run can neither heartbeat nor
/// commit.
pub(crate) fn runs_of_a_task_never_overlap(store: &dyn Store) {
    let lease = Duration::from_secs(60);
    let first = start(store, "hourly");
    match store.start_run(&planned("hourly"), lease, &|_| false) {
        Err(Error::Conflict(m)) => {
            assert!(
                m.contains(&format!("run {} is still running", first.run_id)),
                "{m}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    store.heartbeat(first.run_id).unwrap();
    // Another task is not held up.
    start(store, "daily");

    let taken = store
        .start_run(&planned("hourly"), Duration::ZERO, &|_| false)
        .unwrap();
    assert_eq!(taken.interrupted.len(), 1);
    let old = &taken.interrupted[0];
    assert_eq!((old.run_id, old.status), (first.run_id, RunStatus::Failed));
    assert!(
        old.error
            .as_deref()
            .unwrap_or("")
            .starts_with("interrupted"),
        "{old:?}"
    );
    assert_eq!(taken.run.first_object_seq, first.first_object_seq);
    assert!(matches!(
        store.heartbeat(first.run_id),
        Err(Error::Conflict(_))
    ));
    let late = finished(first.clone(), RunStatus::Succeeded, vec![object("a", 1)], 1);
    assert!(matches!(
        store.finish_run(&late, LiveSet::Append),
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.task_state("hourly").unwrap(),
        None,
        "nothing committed"
    );
    let runs = store.runs(Some("hourly"), 10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].status, RunStatus::Running);
    assert_eq!(&runs[1], old);
    assert!(matches!(store.heartbeat(999_999), Err(Error::NotFound(_))));
}

/// The rows of every shard of `changes(table, after, shards)`, shard by shard.
fn read_changes(
    store: &dyn Store,
    def: &TableDef,
    after: u64,
    shards: usize,
) -> crate::Result<Read> {
    let mut snap = store.changes(&def.table, after, shards, false)?;
    let mut out = Vec::new();
    for reader in &mut snap.shards {
        let mut rows = Vec::new();
        let n = reader.read(2, &mut |b| {
            rows.extend(batch_rows(def, &b));
            Ok(())
        })?;
        assert_eq!(n, rows.len() as u64);
        out.push(rows);
    }
    Ok(Read {
        seq: snap.seq,
        rows: snap.rows,
        shards: out,
    })
}

/// `changes` after a checkpoint: exactly the live rows whose `_seq` is above it, up to the
/// snapshot's `seq`, in `_seq` order, split into contiguous `_seq` ranges; tombstones and
/// unchanged rows are not there; a checkpoint from the future is a conflict.
pub(crate) fn changes_after_a_checkpoint(store: &dyn Store) {
    let items = declare(store, ITEMS);
    apply(store, "items", (1..=10).map(|i| item(i, "a", i)).collect()).unwrap();
    let base = stats(store, "items").max_seq;

    let all = read_changes(store, &items, 0, 3).unwrap();
    assert_eq!((all.seq, all.rows, all.shards.len()), (base, 10, 3));
    let seqs: Vec<i64> = all.shards.iter().flatten().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(seqs.len(), 10);
    assert!(all.shards.iter().all(|s| !s.is_empty()));

    // One update, one delete, one insert, one unchanged upsert.
    apply(
        store,
        "items",
        vec![item(3, "b", 3), del(5), item(11, "a", 11), item(1, "a", 1)],
    )
    .unwrap();
    let after = read_changes(store, &items, base, 2).unwrap();
    let ids: Vec<Value> = after
        .shards
        .iter()
        .flatten()
        .map(|r| r.values[0].clone())
        .collect();
    assert_eq!(ids, [Value::Int64(3), Value::Int64(11)]);
    assert_eq!(
        (after.seq, after.rows, after.shards.len()),
        (base + 3, 2, 2)
    );
    assert_eq!(after.shards[1][0].seq, i64::try_from(base).unwrap() + 3);

    let lag = store.lag("items", base, false).unwrap();
    assert_eq!((lag.newest_seq, lag.rows_behind), (base + 3, 2));
    assert_eq!(lag.oldest_write_ms, Some(after.shards[0][0].write_time));
    assert_eq!(
        store.lag("items", base + 3, false).unwrap(),
        Lag {
            newest_seq: base + 3,
            rows_behind: 0,
            oldest_write_ms: None
        }
    );
    assert_eq!(store.lag("items", 0, false).unwrap().rows_behind, 10);

    let fewer = read_changes(store, &items, base, 8).unwrap();
    assert_eq!(fewer.shards.len(), 2, "no more shards than rows");
    let none = read_changes(store, &items, base + 3, 4).unwrap();
    assert_eq!((none.seq, none.rows, none.shards.len()), (base + 3, 0, 0));

    match read_changes(store, &items, base + 100, 1) {
        Err(Error::Conflict(m)) => assert!(m.contains("above the store's newest _seq"), "{m}"),
        other => panic!("expected a conflict, got {:?}", other.map(|r| r.rows)),
    }
    assert!(matches!(
        store.changes("nope", 0, 1, false),
        Err(Error::NotFound(_))
    ));
}

/// `changes` with deletes: the tombstones above the checkpoint come too, flagged in a last
/// `_deleted` column with their key and `_seq` (other columns NULL); `lag` counts them; purging
/// removes tombstones up to a `_seq` and nothing else, and leaves the store's sequence alone.
pub(crate) fn changes_with_deletes_and_purging(store: &dyn Store) {
    let items = declare(store, ITEMS);
    apply(store, "items", (1..=6).map(|i| item(i, "a", i)).collect()).unwrap();
    let base = stats(store, "items").max_seq;
    apply(store, "items", vec![del(2), item(3, "b", 3), del(5)]).unwrap();
    apply(store, "items", vec![del(6)]).unwrap();

    let mut snap = store.changes("items", base, 2, true).unwrap();
    assert_eq!((snap.seq, snap.rows), (base + 4, 4));
    let mut seen = Vec::new();
    for reader in &mut snap.shards {
        reader
            .read(3, &mut |b| {
                let n = items.columns.len();
                assert_eq!(b.num_columns(), n + 3);
                assert_eq!(b.schema().field(n + 2).name(), DELETED_COLUMN);
                let deleted = b.column(n + 2).as_boolean().clone();
                let without = b.project(&(0..n + 2).collect::<Vec<_>>()).unwrap();
                for (r, row) in batch_rows(&items, &without).into_iter().enumerate() {
                    seen.push((
                        row.values[0].clone(),
                        row.seq,
                        deleted.value(r),
                        row.values[1].clone(),
                    ));
                }
                Ok(())
            })
            .unwrap();
    }
    let seq = |k: u64| i64::try_from(base + k).unwrap();
    assert_eq!(
        seen,
        [
            (Value::Int64(2), seq(1), true, Value::Null),
            (Value::Int64(3), seq(2), false, Value::String("b".into())),
            (Value::Int64(5), seq(3), true, Value::Null),
            (Value::Int64(6), seq(4), true, Value::Null),
        ]
    );
    assert_eq!(store.lag("items", base, true).unwrap().rows_behind, 4);
    assert_eq!(store.lag("items", base, false).unwrap().rows_behind, 1);

    assert_eq!(store.purge_tombstones("items", base + 3).unwrap(), 2);
    assert_eq!(store.purge_tombstones("items", base + 3).unwrap(), 0);
    let left = store.changes("items", base, 1, true).unwrap();
    assert_eq!(left.rows, 2, "key 3 and the tombstone of key 6 are left");
    assert_eq!(
        left.seq,
        base + 4,
        "purging does not move the store's sequence"
    );
    let after = stats(store, "items");
    assert_eq!((after.rows, after.tombstones), (3, 1));
    assert!(matches!(
        store.purge_tombstones("nope", 1),
        Err(Error::NotFound(_))
    ));
}

/// `ensure_table` is idempotent, refuses a changed definition with a `Conflict` naming the
/// difference, and unknown tables are `NotFound`.
pub(crate) fn tables_are_declared_once(store: &dyn Store) {
    let items = declare(store, ITEMS);
    store.ensure_table(&items).unwrap();
    let changed = TableDef::from_yaml(
        &ITEMS.replace("size, type: int64", "size, type: string"),
        "x",
    )
    .unwrap();
    let err = store.ensure_table(&changed).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("column size"), "{err}");
    let extra =
        TableDef::from_yaml(&format!("{ITEMS}  - {{ name: more, type: bool }}\n"), "x").unwrap();
    let err = store.ensure_table(&extra).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m.contains("column more")),
        "{err:?}"
    );
    let err = apply(store, "missing", vec![del(1)]).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert!(matches!(
        store.snapshot("missing", 2),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.table_stats().unwrap().len(), 1);
}

/// Workers report themselves, are listed oldest first with the time of their last report,
/// are forgotten when they stop, and are pruned once silent for longer than asked.
pub(crate) fn workers_are_recorded_and_forgotten(store: &dyn Store) {
    use crate::store::WorkerRecord;
    let worker = |id: &str, started_ms: i64| WorkerRecord {
        worker_id: id.to_string(),
        host: "h".into(),
        pid: 7,
        listen: "127.0.0.1:8080".into(),
        version: "test".into(),
        started_ms,
        heartbeat_ms: 0,
    };
    assert!(store.workers().unwrap().is_empty());
    let long = Duration::from_secs(3600);
    let before = chrono::Utc::now().timestamp_millis();
    store.worker_heartbeat(&worker("b", 20), long).unwrap();
    store.worker_heartbeat(&worker("a", 10), long).unwrap();
    store.worker_heartbeat(&worker("b", 20), long).unwrap();
    let listed = store.workers().unwrap();
    let ids: Vec<&str> = listed.iter().map(|w| w.worker_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(
        listed.iter().all(|w| w.heartbeat_ms >= before),
        "{listed:?}"
    );
    store.remove_worker("a").unwrap();
    assert_eq!(store.workers().unwrap().len(), 1);
    // "b" is silent past a zero limit once "c" reports a little later: it is forgotten.
    std::thread::sleep(Duration::from_millis(5));
    store
        .worker_heartbeat(&worker("c", 30), Duration::ZERO)
        .unwrap();
    let ids: Vec<String> = store
        .workers()
        .unwrap()
        .into_iter()
        .map(|w| w.worker_id)
        .collect();
    assert_eq!(ids, ["c"]);
}

/// One `#[test]` per check of this suite (and a `listing` module of the listing suite's),
/// each running the check on a store that `$with_store` makes: a backend's test module says
/// `conformance_suite!(with_store);` with a `fn with_store(test: fn(&dyn Store))` in scope.
/// The one list of checks, so that every backend runs all of them.
macro_rules! conformance_suite {
    ($with_store:ident) => {
        $crate::store::conformance::conformance_suite!(@applies $with_store);
        $crate::store::conformance::conformance_suite!(@tests $with_store, $crate::store::conformance,
            runs_and_task_state,
            store_has_one_identity,
            failed_starts_are_recorded,
            adopted_objects_are_replaced_by_the_next_run,
            changes_with_deletes_and_purging,
            runs_of_a_gone_process_are_taken_over_at_once,
            tables_are_declared_once,
            snapshot_import_diffs_its_scope,
            snapshot_import_same_or_older_is_not_applied,
            snapshot_import_prefix_scope_and_atomicity,
            snapshot_import_into_empty_scope_with_repeated_keys,
            snapshot_import_sorted_removals,
            snapshot_import_out_of_order_switch,
            snapshot_import_repeated_key,
            snapshot_import_revives_tombstones,
            snapshot_import_prefix_edges,
            snapshot_import_versions_in_byte_order,
            snapshot_import_matches_a_model,
            workers_are_recorded_and_forgotten,
            shards_are_claimed_once_and_reported,
        );

        $crate::store::conformance::conformance_suite!(@listing $with_store);
    };
    // The checks that apply changes and read them back (all but
    // `changes_with_deletes_and_purging`, which fixes the order of `_seq` within one
    // transaction): a backend with another write path runs them again through it.
    (@applies $with_store:ident) => {
        $crate::store::conformance::conformance_suite!(@tests $with_store, $crate::store::conformance,
            seq_is_store_wide,
            unchanged_upsert_takes_no_seq,
            upsert_after_delete_is_insert,
            delete_leaves_tombstone,
            apply_is_atomic_on_iterator_error,
            apply_is_atomic_on_bad_value,
            write_time_follows_seq,
            snapshot_shards_cover_rows,
            snapshot_with_more_shards_than_rows,
            snapshot_consistent_under_writer,
            changes_after_a_checkpoint,
            runs_of_a_task_never_overlap,
        );
    };
    // The listing suite (`store::conformance::listing`), in a module `listing`.
    (@listing $with_store:ident) => {
        mod listing {
            use super::$with_store;
            $crate::store::conformance::conformance_suite!(@tests $with_store,
                $crate::store::conformance::listing,
                paging_returns_every_key_once_in_byte_order,
                versions_and_tombstones,
                delimiter_rolls_up_common_prefixes_across_pages,
                pages_resume_after_concurrent_changes,
                limits_and_bad_tokens,
                unknown_bucket_is_empty,
                summaries_group_exactly,
            );
        }
    };
    (@tests $with_store:ident, $suite:path, $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                use $suite as suite;
                $with_store(suite::$name);
            }
        )*
    };
}
pub(crate) use conformance_suite;
