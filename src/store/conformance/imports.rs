//! Conformance of snapshot imports ([`Store::apply_snapshot`], [`Store::imports`]): the diff
//! against the scope, atomicity, same-snapshot no-ops and creation order.

use std::collections::BTreeMap;

use super::{declare, read, s, stats};
use crate::error::Error;
use crate::store::{Change, ImportOutcome, ImportRecord, ImportScope, Store, TableDef, Value};

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
/// update (or unchanged when equal), and `_seq` still takes one value per change.
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
        (
            first.rows,
            first.inserted,
            first.updated,
            first.unchanged,
            first.seq
        ),
        (4, 2, 1, 1, 3)
    );
    let rows = live(store, &def);
    assert_eq!(
        rows[&("b".to_string(), "a".to_string())],
        (Value::Int64(10), 3)
    );
    assert_eq!(
        rows[&("b".to_string(), "b".to_string())],
        (Value::Int64(2), 2)
    );
}
