//! Conformance of snapshot imports ([`Store::apply_snapshot`], [`Store::imports`]): the diff
//! against the scope, atomicity, same-snapshot no-ops and creation order.

use std::collections::BTreeMap;

use super::{declare, read, s, stats};
use crate::error::Error;
use crate::model::TableDef;
use crate::store::{Change, ImportOutcome, ImportRecord, ImportScope, Store, Value};

/// A table keyed like `object_inventory`: (bucket, key).
const OBJS: &str = "table: objs
primary_key: [bucket, key]
columns:
  - { name: bucket, type: string }
  - { name: key, type: string }
  - { name: size, type: int64 }
";

fn obj(bucket: &str, key: &str, size: i64) -> Change {
    Change::Upsert(vec![s(bucket), s(key), Value::Int64(size)])
}

fn draft(bucket: &str, prefix: &str, md5: &str, created_ms: i64) -> ImportRecord {
    let scope = ImportScope {
        bucket: bucket.into(),
        prefix: prefix.into(),
    };
    let url = format!("file:///reports/{md5}/manifest.json");
    ImportRecord::draft("objs", scope, &url, md5, "s3", created_ms)
}

fn import(store: &dyn Store, d: &ImportRecord, rows: Vec<Change>) -> crate::Result<ImportOutcome> {
    store.apply_snapshot(d, &mut rows.into_iter().map(Ok))
}

fn applied(outcome: ImportOutcome) -> ImportRecord {
    match outcome {
        ImportOutcome::Applied(r) => r,
        ImportOutcome::AlreadyImported(r) => panic!("expected an applied import, got {r:?}"),
    }
}

/// Live rows as (bucket, key) → (size, `_seq`).
fn live(store: &dyn Store, def: &TableDef) -> BTreeMap<(String, String), (Value, i64)> {
    read(store, def, 1, 1000)
        .all()
        .into_iter()
        .map(|r| match &r.values[..] {
            [Value::String(b), Value::String(k), size] => {
                ((b.clone(), k.clone()), (size.clone(), r.seq))
            }
            other => panic!("unexpected row {other:?}"),
        })
        .collect()
}

/// A newer snapshot inserts, updates and tombstones exactly the differences inside its scope;
/// unchanged rows keep their `_seq`; other buckets are untouched; the record counts agree.
pub(crate) fn snapshot_import_diffs_its_scope(store: &dyn Store) {
    let def = declare(store, OBJS);
    let first = applied(
        import(
            store,
            &draft("b1", "", "m1", 1_000),
            vec![obj("b1", "a", 1), obj("b1", "b", 2), obj("b1", "c", 3)],
        )
        .unwrap(),
    );
    assert_eq!(
        (
            first.rows,
            first.inserted,
            first.updated,
            first.deleted,
            first.unchanged
        ),
        (3, 3, 0, 0, 0)
    );
    assert!(first.import_id > 0 && first.seq == 3 && first.imported_ms > 0);
    applied(
        import(
            store,
            &draft("b2", "", "other", 1_000),
            vec![obj("b2", "c", 9)],
        )
        .unwrap(),
    );
    let before = live(store, &def);

    let second = applied(
        import(
            store,
            &draft("b1", "", "m2", 2_000),
            vec![obj("b1", "d", 4), obj("b1", "a", 1), obj("b1", "b", 20)],
        )
        .unwrap(),
    );
    assert_eq!(
        (
            second.rows,
            second.inserted,
            second.updated,
            second.deleted,
            second.unchanged
        ),
        (3, 1, 1, 1, 1)
    );
    let after = live(store, &def);
    let key = |b: &str, k: &str| (b.to_string(), k.to_string());
    assert_eq!(
        after[&key("b1", "a")],
        before[&key("b1", "a")],
        "unchanged row rewritten"
    );
    assert_eq!(
        after[&key("b2", "c")],
        before[&key("b2", "c")],
        "other bucket touched"
    );
    assert_eq!(after[&key("b1", "b")].0, Value::Int64(20));
    assert!(after[&key("b1", "b")].1 > before[&key("b2", "c")].1);
    assert!(
        !after.contains_key(&key("b1", "c")),
        "absent row still live"
    );
    assert_eq!(after.len(), 4);
    let st = stats(store, "objs");
    assert_eq!((st.rows, st.tombstones, st.max_seq), (4, 1, second.seq));
    assert_eq!(second.seq, 4 + 3, "three changes took three _seq");

    let records = store.imports(10).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0], second, "newest first, stored as returned");
    assert_eq!(records[2], first);
}

/// The same snapshot again is a no-op that reads nothing; an older one is refused.
pub(crate) fn snapshot_import_same_or_older_is_not_applied(store: &dyn Store) {
    declare(store, OBJS);
    let first =
        applied(import(store, &draft("b", "", "m5", 5_000), vec![obj("b", "k", 1)]).unwrap());
    let mut untouched = std::iter::from_fn(|| -> Option<crate::Result<Change>> {
        panic!("a repeated snapshot must not be read")
    });
    match store
        .apply_snapshot(&draft("b", "", "m5", 5_000), &mut untouched)
        .unwrap()
    {
        ImportOutcome::AlreadyImported(r) => assert_eq!(r, first),
        other => panic!("expected AlreadyImported, got {other:?}"),
    }
    let err = import(store, &draft("b", "", "m4", 4_000), vec![]).unwrap_err();
    match &err {
        Error::Conflict(m) => {
            assert!(
                m.contains("m4/manifest.json") && m.contains("m5/manifest.json"),
                "{m}"
            );
            assert!(m.contains("1970-01-01T00:00:04.000Z"), "{m}");
            assert!(m.contains("1970-01-01T00:00:05.000Z"), "{m}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        stats(store, "objs").rows,
        1,
        "the refused empty report deleted rows"
    );
    assert_eq!(store.imports(10).unwrap().len(), 1);
    // The same report for another scope is another import.
    applied(import(store, &draft("b", "x/", "m5", 5_000), vec![]).unwrap());
}

/// A prefix scope tombstones only under its prefix; a row outside the scope, a delete or an
/// error from the source leaves the store as it was.
pub(crate) fn snapshot_import_prefix_scope_and_atomicity(store: &dyn Store) {
    let def = declare(store, OBJS);
    applied(
        import(
            store,
            &draft("b", "", "all", 1),
            vec![
                obj("b", "logs/1", 1),
                obj("b", "logs/2", 2),
                obj("b", "logs0", 3),
                obj("b", "top", 4),
            ],
        )
        .unwrap(),
    );
    let scoped = applied(
        import(
            store,
            &draft("b", "logs/", "p1", 2),
            vec![obj("b", "logs/2", 2)],
        )
        .unwrap(),
    );
    assert_eq!((scoped.deleted, scoped.unchanged), (1, 1));
    let keys: Vec<String> = live(store, &def).into_keys().map(|(_, k)| k).collect();
    assert_eq!(keys, ["logs/2", "logs0", "top"]);
    let before = live(store, &def);
    let imports = store.imports(10).unwrap().len();

    let outside = import(
        store,
        &draft("b", "logs/", "p2", 3),
        vec![obj("b", "logs/3", 3), obj("b", "top", 5)],
    )
    .unwrap_err();
    assert!(
        matches!(&outside, Error::InvalidInput(m) if m.contains("\"top\"") && m.contains("outside")),
        "{outside:?}"
    );
    let delete = import(
        store,
        &draft("b", "", "p3", 3),
        vec![Change::Delete(vec![s("b"), s("top")])],
    )
    .unwrap_err();
    assert!(matches!(delete, Error::InvalidInput(_)), "{delete:?}");
    let mut failing = vec![
        Ok(obj("b", "new", 1)),
        Err(Error::InvalidInput(
            "report.csv:2: Size: expected digits".into(),
        )),
    ]
    .into_iter();
    let err = store
        .apply_snapshot(&draft("b", "", "p4", 3), &mut failing)
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("report.csv:2")),
        "{err:?}"
    );

    assert_eq!(live(store, &def), before, "a failed import changed rows");
    assert_eq!(store.imports(10).unwrap().len(), imports);
    // The store still takes the next good import (no leftover temp state).
    let next = applied(import(store, &draft("b", "", "p5", 4), vec![obj("b", "top", 4)]).unwrap());
    assert_eq!((next.deleted, next.unchanged), (2, 1));
}

/// A first snapshot of an empty scope that repeats a key: the later row wins, counted as an
/// update (or unchanged when equal). Each row the import changed has its own `_seq`, the
/// highest being the store's; a key written twice in one transaction may take one `_seq` or
/// two (SQLite numbers every change in key order, PostgreSQL the rows at commit).
pub(crate) fn snapshot_import_into_empty_scope_with_repeated_keys(store: &dyn Store) {
    let def = declare(store, OBJS);
    let first = applied(
        import(
            store,
            &draft("b", "", "dup", 1),
            vec![
                obj("b", "a", 1),
                obj("b", "b", 2),
                obj("b", "a", 10),
                obj("b", "b", 2),
            ],
        )
        .unwrap(),
    );
    assert_eq!(
        (first.rows, first.inserted, first.updated, first.unchanged),
        (4, 2, 1, 1)
    );
    let rows = live(store, &def);
    let (a_value, a_seq) = rows[&("b".to_string(), "a".to_string())].clone();
    let (b_value, b_seq) = rows[&("b".to_string(), "b".to_string())].clone();
    assert_eq!((a_value, b_value), (Value::Int64(10), Value::Int64(2)));
    assert_ne!(a_seq, b_seq);
    assert_eq!(first.seq as i64, a_seq.max(b_seq));
    assert!((2..=3).contains(&first.seq), "{}", first.seq);
}

/// Record counts (rows, inserted, updated, deleted, unchanged).
fn counts(r: &ImportRecord) -> (u64, u64, u64, u64, u64) {
    (r.rows, r.inserted, r.updated, r.deleted, r.unchanged)
}

/// Live keys of bucket `b`, in order.
fn keys_of(store: &dyn Store, def: &TableDef, b: &str) -> Vec<String> {
    live(store, def)
        .into_keys()
        .filter(|(bucket, _)| bucket == b)
        .map(|(_, k)| k)
        .collect()
}

/// `_seq` of the live row (b, k).
fn seq_of(store: &dyn Store, def: &TableDef, b: &str, k: &str) -> i64 {
    live(store, def)[&(b.to_string(), k.to_string())].1
}

/// An ascending report with rows removed at the start, in the middle and at the end: each
/// becomes one tombstone, the changes take one `_seq` each, unchanged rows keep theirs.
pub(crate) fn snapshot_import_sorted_removals(store: &dyn Store) {
    let def = declare(store, OBJS);
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let rows = keys.iter().map(|k| obj("b", k, 1)).collect();
    applied(import(store, &draft("b", "", "r1", 1), rows).unwrap());
    let before = live(store, &def);
    // Removed: a (start), d and e (middle), h (end); changed: c; added: cc, i.
    let second = applied(
        import(
            store,
            &draft("b", "", "r2", 2),
            vec![
                obj("b", "b", 1),
                obj("b", "c", 2),
                obj("b", "cc", 1),
                obj("b", "f", 1),
                obj("b", "g", 1),
                obj("b", "i", 1),
            ],
        )
        .unwrap(),
    );
    assert_eq!(counts(&second), (6, 2, 1, 4, 3));
    assert_eq!(second.seq, 8 + 3 + 4, "one _seq per change");
    assert_eq!(
        keys_of(store, &def, "b"),
        ["b", "c", "cc", "f", "g", "i"],
        "absent rows still live"
    );
    for k in ["b", "f", "g"] {
        assert_eq!(
            seq_of(store, &def, "b", k),
            before[&("b".into(), k.into())].1
        );
    }
    let st = stats(store, "objs");
    assert_eq!((st.rows, st.tombstones, st.max_seq), (6, 4, second.seq));
    // Every row removed at once, and an unchanged re-import that writes nothing.
    let third = applied(
        import(
            store,
            &draft("b", "", "r3", 3),
            vec![obj("b", "c", 2), obj("b", "i", 1)],
        )
        .unwrap(),
    );
    assert_eq!(counts(&third), (2, 0, 0, 4, 2));
    let same = applied(
        import(
            store,
            &draft("b", "", "r4", 4),
            vec![obj("b", "c", 2), obj("b", "i", 1)],
        )
        .unwrap(),
    );
    assert_eq!(counts(&same), (2, 0, 0, 0, 2));
    assert_eq!(same.seq, third.seq, "an unchanged report took a _seq");
    let empty = applied(import(store, &draft("b", "", "r5", 5), vec![]).unwrap());
    assert_eq!(counts(&empty), (0, 0, 0, 2, 0));
    assert!(keys_of(store, &def, "b").is_empty());
}

/// A report whose keys go out of order part-way: rows absent before the switch but present
/// after it are neither tombstoned nor rewritten; absent rows on both sides of the switch
/// are tombstoned once.
pub(crate) fn snapshot_import_out_of_order_switch(store: &dyn Store) {
    let def = declare(store, OBJS);
    let keys = ["a", "b", "c", "d", "e", "f", "g"];
    let rows = keys.iter().map(|k| obj("b", k, 1)).collect();
    applied(import(store, &draft("b", "", "o1", 1), rows).unwrap());
    let before = live(store, &def);
    // Ascending a, c, e (b and d absent so far), then b goes back: d stays absent (before
    // the switch), f is changed, g absent (after the switch), h new.
    let second = applied(
        import(
            store,
            &draft("b", "", "o2", 2),
            vec![
                obj("b", "a", 1),
                obj("b", "c", 1),
                obj("b", "e", 1),
                obj("b", "b", 1),
                obj("b", "h", 1),
                obj("b", "f", 2),
            ],
        )
        .unwrap(),
    );
    assert_eq!(counts(&second), (6, 1, 1, 2, 4));
    assert_eq!(second.seq, 7 + 4);
    assert_eq!(keys_of(store, &def, "b"), ["a", "b", "c", "e", "f", "h"]);
    for k in ["a", "b", "c", "e"] {
        assert_eq!(
            seq_of(store, &def, "b", k),
            before[&("b".into(), k.into())].1,
            "{k} rewritten"
        );
    }
    let st = stats(store, "objs");
    assert_eq!((st.rows, st.tombstones, st.max_seq), (6, 2, second.seq));
}

/// A repeated key in a report of a stored scope: the later row wins and is counted against
/// the earlier one; nothing is tombstoned.
pub(crate) fn snapshot_import_repeated_key(store: &dyn Store) {
    let def = declare(store, OBJS);
    applied(
        import(
            store,
            &draft("b", "", "d1", 1),
            vec![obj("b", "a", 1), obj("b", "b", 1), obj("b", "c", 1)],
        )
        .unwrap(),
    );
    let second = applied(
        import(
            store,
            &draft("b", "", "d2", 2),
            vec![
                obj("b", "a", 1),
                obj("b", "b", 1),
                obj("b", "b", 5),
                obj("b", "c", 1),
            ],
        )
        .unwrap(),
    );
    assert_eq!(counts(&second), (4, 0, 1, 0, 3));
    let rows = live(store, &def);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[&("b".into(), "b".into())], (Value::Int64(5), 4));
    assert_eq!(rows[&("b".into(), "c".into())].1, 3);
}

/// Tombstoned rows that come back are counted as inserts and revived with a new `_seq`;
/// tombstones the report still lacks stay as they are.
pub(crate) fn snapshot_import_revives_tombstones(store: &dyn Store) {
    let def = declare(store, OBJS);
    let all = |sizes: &[(&str, i64)]| -> Vec<Change> {
        sizes.iter().map(|(k, n)| obj("b", k, *n)).collect()
    };
    applied(
        import(
            store,
            &draft("b", "", "t1", 1),
            all(&[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)]),
        )
        .unwrap(),
    );
    let second = applied(import(store, &draft("b", "", "t2", 2), all(&[("c", 1)])).unwrap());
    assert_eq!(counts(&second), (1, 0, 0, 4, 1));
    let third = applied(
        import(
            store,
            &draft("b", "", "t3", 3),
            all(&[("a", 7), ("c", 1), ("e", 1), ("f", 1)]),
        )
        .unwrap(),
    );
    assert_eq!(counts(&third), (4, 3, 0, 0, 1));
    assert_eq!(third.seq, second.seq + 3);
    let rows = live(store, &def);
    assert_eq!(
        rows[&("b".into(), "a".into())],
        (Value::Int64(7), i64::try_from(second.seq).unwrap() + 1)
    );
    assert_eq!(keys_of(store, &def, "b"), ["a", "c", "e", "f"]);
    let st = stats(store, "objs");
    assert_eq!((st.rows, st.tombstones), (4, 2));
}

/// Prefix scopes next to rows just outside the prefix on both sides (and in neighbouring
/// buckets): sorted, empty and out-of-order reports change only the scope.
pub(crate) fn snapshot_import_prefix_edges(store: &dyn Store) {
    let def = declare(store, OBJS);
    let outside = ["logr", "logs", "logs.", "logs0", "logt"];
    let inside = ["logs/", "logs/a", "logs/m", "logs/z", "logs/\u{e9}"];
    for (n, bucket) in ["a", "b", "c"].into_iter().enumerate() {
        let rows = outside
            .iter()
            .chain(&inside)
            .map(|k| obj(bucket, k, 1))
            .collect();
        applied(import(store, &draft(bucket, "", &format!("p{bucket}"), 1), rows).unwrap());
        assert_eq!(keys_of(store, &def, bucket).len(), 10, "bucket {n}");
    }
    let untouched = |store: &dyn Store| -> Vec<((String, String), (Value, i64))> {
        live(store, &def)
            .into_iter()
            .filter(|((b, k), _)| b != "b" || !k.starts_with("logs/"))
            .collect()
    };
    let before = untouched(store);

    // Sorted: the first and last rows of the scope removed, "logs/b" added.
    let sorted = applied(
        import(
            store,
            &draft("b", "logs/", "s1", 2),
            vec![
                obj("b", "logs/a", 1),
                obj("b", "logs/b", 1),
                obj("b", "logs/m", 1),
                obj("b", "logs/z", 1),
            ],
        )
        .unwrap(),
    );
    assert_eq!(counts(&sorted), (4, 1, 0, 2, 3));
    assert_eq!(untouched(store), before);
    let in_b = |store: &dyn Store| -> Vec<String> {
        keys_of(store, &def, "b")
            .into_iter()
            .filter(|k| k.starts_with("logs/"))
            .collect()
    };
    assert_eq!(in_b(store), ["logs/a", "logs/b", "logs/m", "logs/z"]);

    // Out of order: "logs/m" absent before the switch, "logs/z" after it.
    let unsorted = applied(
        import(
            store,
            &draft("b", "logs/", "s2", 3),
            vec![
                obj("b", "logs/b", 1),
                obj("b", "logs/", 2),
                obj("b", "logs/a", 1),
            ],
        )
        .unwrap(),
    );
    assert_eq!(counts(&unsorted), (3, 1, 0, 2, 2));
    assert_eq!(untouched(store), before);
    assert_eq!(in_b(store), ["logs/", "logs/a", "logs/b"]);

    // Empty: every row of the scope, nothing else.
    let empty = applied(import(store, &draft("b", "logs/", "s3", 4), vec![]).unwrap());
    assert_eq!(counts(&empty), (0, 0, 0, 3, 0));
    assert_eq!(untouched(store), before);
    assert!(in_b(store).is_empty());
}

/// A key of three string columns (like `object_inventory`'s bucket, key, version): the order
/// is the key columns' UTF-8 byte order, one column after the other.
const VERSIONS: &str = "table: objs
primary_key: [bucket, key, version_id]
columns:
  - { name: bucket, type: string }
  - { name: key, type: string }
  - { name: version_id, type: string }
  - { name: size, type: int64 }
";

/// Versions of a key, keys one a prefix of another and non-ASCII keys in byte order; a
/// version out of order switches mode without losing a row.
pub(crate) fn snapshot_import_versions_in_byte_order(store: &dyn Store) {
    declare(store, VERSIONS);
    let v =
        |k: &str, ver: &str, n: i64| Change::Upsert(vec![s("b"), s(k), s(ver), Value::Int64(n)]);
    let stored = [
        ("a", ""),
        ("a", "v1"),
        ("a", "v2"),
        ("a/", ""),
        ("ab", "v1"),
        ("z", ""),
        ("\u{e9}", ""),
        ("\u{e9}t\u{e9}", "v1"),
    ];
    let rows = stored.iter().map(|(k, ver)| v(k, ver, 1)).collect();
    applied(import(store, &draft("b", "", "v1", 1), rows).unwrap());
    // Ascending in bytes ("z" < "é"): "a"/"v1" and "ab"/"v1" removed, "é"/"x" added.
    let sorted = applied(
        import(
            store,
            &draft("b", "", "v2", 2),
            vec![
                v("a", "", 1),
                v("a", "v2", 1),
                v("a/", "", 1),
                v("z", "", 1),
                v("\u{e9}", "", 1),
                v("\u{e9}", "x", 1),
                v("\u{e9}t\u{e9}", "v1", 1),
            ],
        )
        .unwrap(),
    );
    assert_eq!(counts(&sorted), (7, 1, 0, 2, 6));
    // A version out of order ("v2" before ""): nothing lost, nothing rewritten.
    let unsorted = applied(
        import(
            store,
            &draft("b", "", "v3", 3),
            vec![
                v("a", "v2", 1),
                v("a", "", 1),
                v("a/", "", 1),
                v("z", "", 1),
                v("\u{e9}", "", 1),
                v("\u{e9}", "x", 1),
                v("\u{e9}t\u{e9}", "v1", 1),
            ],
        )
        .unwrap(),
    );
    assert_eq!(counts(&unsorted), (7, 0, 0, 0, 7));
    assert_eq!(unsorted.seq, sorted.seq);
    let st = stats(store, "objs");
    assert_eq!((st.rows, st.tombstones), (7, 2));
}

/// A small deterministic generator (the suite needs no randomness crate).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// Rounds of snapshots of a few thousand rows (more than a backend reads of its scope at a
/// time), in random order with some keys repeated, each checked against a model: the live
/// rows, every count of the record, and `_seq` kept by unchanged rows.
pub(crate) fn snapshot_import_matches_a_model(store: &dyn Store) {
    let def = declare(store, OBJS);
    let mut rng = Lcg(7);
    let mut model: BTreeMap<String, i64> = BTreeMap::new();
    let mut seqs: BTreeMap<String, i64> = BTreeMap::new();
    for round in 0..5i64 {
        let mut rows: Vec<(String, i64)> = Vec::new();
        for k in 0..6000 {
            if rng.next(10) < 6 {
                let key = format!("d{}/k{k:05}", k % 7);
                let size = match model.get(&key) {
                    Some(&v) if rng.next(4) != 0 => v,
                    _ => i64::try_from(rng.next(1000)).unwrap(),
                };
                rows.push((key, size));
            }
        }
        for i in (1..rows.len()).rev() {
            let j = usize::try_from(rng.next(u64::try_from(i + 1).unwrap())).unwrap();
            rows.swap(i, j);
        }
        for _ in 0..rows.len() / 100 {
            let i = usize::try_from(rng.next(u64::try_from(rows.len()).unwrap())).unwrap();
            let again = (rows[i].0.clone(), i64::try_from(rng.next(3)).unwrap());
            rows.push(again);
        }
        // What the snapshot must do, occurrence by occurrence.
        let (mut inserted, mut updated, mut unchanged) = (0, 0, 0);
        let mut state: BTreeMap<String, i64> = model.clone();
        let mut touched = std::collections::BTreeSet::new();
        for (key, size) in &rows {
            match state.get(key) {
                None => inserted += 1,
                Some(v) if v == size => unchanged += 1,
                Some(_) => updated += 1,
            }
            if state.get(key) != Some(size) {
                touched.insert(key.clone());
            }
            state.insert(key.clone(), *size);
        }
        let in_snapshot: std::collections::BTreeSet<&String> =
            rows.iter().map(|(k, _)| k).collect();
        let deleted = model.keys().filter(|k| !in_snapshot.contains(k)).count();
        state.retain(|k, _| in_snapshot.contains(k));

        let rec = applied(
            import(
                store,
                &draft("b", "", &format!("round{round}"), round),
                rows.iter().map(|(k, v)| obj("b", k, *v)).collect(),
            )
            .unwrap(),
        );
        assert_eq!(
            counts(&rec),
            (
                u64::try_from(rows.len()).unwrap(),
                inserted,
                updated,
                u64::try_from(deleted).unwrap(),
                unchanged
            ),
            "round {round}"
        );
        let stored = live(store, &def);
        let got: BTreeMap<String, i64> = stored
            .iter()
            .map(|((_, k), (v, _))| match v {
                Value::Int64(n) => (k.clone(), *n),
                other => panic!("size {other:?}"),
            })
            .collect();
        assert_eq!(got, state, "round {round}");
        for ((_, k), (_, seq)) in &stored {
            if !touched.contains(k) {
                assert_eq!(Some(seq), seqs.get(k), "round {round}: {k} kept its _seq");
            }
        }
        seqs = stored
            .into_iter()
            .map(|((_, k), (_, seq))| (k, seq))
            .collect();
        model = state;
    }
}
