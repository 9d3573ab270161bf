//! Conformance of [`Store::list_objects`] and [`Store::summarize_objects`] (semantics in
//! `store::listing`): plain functions taking `&dyn Store`, each expecting a fresh, empty store,
//! run by one `#[test]` per backend (SQLite: `sqlite/listing.rs`). The expected listings are
//! computed from a `BTreeSet<String>` (Rust orders `str` by UTF-8 bytes, as S3 does) or
//! written out literally; the expected summaries are literal numbers.

use std::collections::BTreeSet;

use crate::error::Error;
use crate::model::schema::{OBJECT_INVENTORY, OBJECT_INVENTORY_YAML};
use crate::model::TableDef;
use crate::store::listing::{
    common_prefix, ListPage, ListQuery, ObjectEntry, SummaryBy, SummaryRow, MAX_LIST_LIMIT,
};
use crate::store::{Change, Store, Value};

/// One row of `object_inventory` by field; everything else NULL.
#[derive(Clone, Default)]
struct Obj {
    bucket: &'static str,
    key: String,
    version: String,
    size: Option<i64>,
    class: Option<&'static str>,
    modified: Option<i64>,
    latest: Option<bool>,
    marker: Option<bool>,
}

fn obj(bucket: &'static str, key: &str) -> Obj {
    Obj {
        bucket,
        key: key.to_string(),
        size: Some(key.len() as i64),
        class: Some("STANDARD"),
        modified: Some(1_700_000_000_000),
        ..Obj::default()
    }
}

fn declare(store: &dyn Store) -> TableDef {
    let def = TableDef::from_yaml(OBJECT_INVENTORY_YAML, OBJECT_INVENTORY).unwrap();
    store.ensure_table(&def).unwrap();
    def
}

fn upsert(def: &TableDef, o: &Obj) -> Change {
    let s = |v: &str| Value::String(v.to_string());
    let opt = |v: Option<Value>| v.unwrap_or(Value::Null);
    let values = def
        .columns
        .iter()
        .map(|c| match c.name.as_str() {
            "bucket" => s(o.bucket),
            "key" => s(&o.key),
            "version_id" => s(&o.version),
            "prefix" => s(o.key.rfind('/').map_or("", |i| &o.key[..=i])),
            "size" => opt(o.size.map(Value::Int64)),
            "storage_class" => opt(o.class.map(s)),
            "last_modified" => opt(o.modified.map(Value::TimestampMs)),
            "is_latest" => opt(o.latest.map(Value::Bool)),
            "is_delete_marker" => opt(o.marker.map(Value::Bool)),
            "etag" => s(&format!("etag-{}", o.key.len())),
            _ => Value::Null,
        })
        .collect();
    Change::Upsert(values)
}

fn put(store: &dyn Store, def: &TableDef, objs: &[Obj]) {
    let mut changes = objs.iter().map(|o| Ok(upsert(def, o)));
    store.apply(OBJECT_INVENTORY, &mut changes).unwrap();
}

fn delete(store: &dyn Store, bucket: &str, keys: &[(&str, &str)]) {
    let mut changes = keys.iter().map(|(k, v)| {
        Ok(Change::Delete(vec![
            Value::String(bucket.into()),
            Value::String((*k).into()),
            Value::String((*v).into()),
        ]))
    });
    store.apply(OBJECT_INVENTORY, &mut changes).unwrap();
}

/// One listed item: an object key or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Key(String),
    Prefix(String),
}

impl Item {
    fn name(&self) -> &str {
        match self {
            Item::Key(k) | Item::Prefix(k) => k,
        }
    }
}

/// The items of one page in key order, checking the page's own invariants.
fn items(page: &ListPage, limit: usize) -> Vec<Item> {
    let mut out: Vec<Item> = page
        .entries
        .iter()
        .map(|e| Item::Key(e.key.clone()))
        .chain(page.common_prefixes.iter().map(|p| Item::Prefix(p.clone())))
        .collect();
    out.sort_by(|a, b| a.name().cmp(b.name()));
    assert!(out.len() <= limit, "{} items, limit {limit}", out.len());
    assert_eq!(page.is_truncated, page.next_continuation_token.is_some());
    if page.is_truncated {
        assert_eq!(out.len(), limit, "a truncated page is full");
    }
    out
}

/// Walks every page of `q` (from its first page), returning the items in order and the
/// number of pages.
fn walk(store: &dyn Store, q: &ListQuery) -> (Vec<Item>, usize) {
    let mut q = q.clone();
    q.continuation_token = None;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list_objects(&q).unwrap();
        pages += 1;
        all.extend(items(&page, q.limit));
        match page.next_continuation_token {
            Some(t) => q.continuation_token = Some(t),
            None => break,
        }
        assert!(pages < 100_000, "paging does not end");
    }
    (all, pages)
}

/// What a listing of `keys` (all current) must return.
fn expected(keys: &BTreeSet<String>, prefix: &str, delimiter: Option<char>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    for k in keys.iter().filter(|k| k.starts_with(prefix)) {
        match delimiter.and_then(|d| common_prefix(k, prefix, d)) {
            Some(cp) => {
                if out.last() != Some(&Item::Prefix(cp.to_string())) {
                    out.push(Item::Prefix(cp.to_string()));
                }
            }
            None => out.push(Item::Key(k.clone())),
        }
    }
    out
}

fn query(bucket: &str, prefix: &str, delimiter: Option<char>, limit: usize) -> ListQuery {
    ListQuery {
        bucket: bucket.into(),
        prefix: prefix.into(),
        delimiter,
        limit,
        continuation_token: None,
    }
}

/// Keys that trip up naive orderings and decoders.
const TRICKY: &[&str] = &[
    "a",
    "a/",
    "a/b",
    "a/b/c",
    "a!",
    "a!/x",
    "a0",
    "a.b",
    "a b",
    "a+b",
    "a%2Bb",
    "a%20b",
    "A",
    "Z/z",
    "~",
    "\u{7f}",
    "é/x",
    "e\u{301}/x",
    "日本語/ファイル.txt",
    "日本語/フォルダ/中.txt",
    "a\u{FF61}",
    "a\u{1F600}",
    "a\u{1F600}/x",
    "données clients/q1/r.csv",
    "tab\there",
    "new\nline/x",
    "ends with space ",
    "//double",
    "/leading",
    "x/",
    "x//y",
];

fn tricky_set() -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = TRICKY.iter().map(|k| k.to_string()).collect();
    for i in 0..1500 {
        keys.insert(format!("logs/2024/{:02}/part-{i:05}.gz", i % 12 + 1));
        keys.insert(format!(
            "photos/{}/IMG {i}.jpg",
            ["été", "winter", "été 2"][i % 3]
        ));
    }
    for i in 0..300 {
        keys.insert(format!("top-{i:04}"));
    }
    keys
}

/// Recursive paging with tokens over a few thousand keys (tricky ones included) returns every
/// key exactly once, in UTF-8 byte order, for several page sizes and prefixes; other buckets
/// and keys outside the prefix never show.
pub(crate) fn paging_returns_every_key_once_in_byte_order(store: &dyn Store) {
    let def = declare(store);
    let keys = tricky_set();
    let objs: Vec<Obj> = keys.iter().map(|k| obj("b1", k)).collect();
    put(store, &def, &objs);
    put(
        store,
        &def,
        &[obj("b0", "a/zzz"), obj("b2", "a"), obj("b10", "a/b")],
    );

    for limit in [7, 1000, MAX_LIST_LIMIT] {
        let (all, pages) = walk(store, &query("b1", "", None, limit));
        assert_eq!(all, expected(&keys, "", None), "limit {limit}");
        assert_eq!(pages, keys.len().div_ceil(limit).max(1), "limit {limit}");
    }
    for prefix in [
        "a",
        "a/",
        "a/b",
        "日本語/",
        "photos/été",
        "logs/2024/1",
        "nothing",
    ] {
        let (all, _) = walk(store, &query("b1", prefix, None, 3));
        assert_eq!(all, expected(&keys, prefix, None), "prefix {prefix:?}");
    }
    // The order is byte order: U+FF61 before U+1F600, '!' < '/' < '0'.
    let (all, _) = walk(store, &query("b1", "a", None, 1));
    let names: Vec<&str> = all.iter().map(Item::name).collect();
    assert_eq!(
        names,
        [
            "a",
            "a b",
            "a!",
            "a!/x",
            "a%20b",
            "a%2Bb",
            "a+b",
            "a.b",
            "a/",
            "a/b",
            "a/b/c",
            "a0",
            "a\u{FF61}",
            "a\u{1F600}",
            "a\u{1F600}/x",
        ]
    );
    // Entries carry the row's fields.
    let page = store.list_objects(&query("b1", "a+b", None, 10)).unwrap();
    assert_eq!(
        page.entries,
        [ObjectEntry {
            key: "a+b".into(),
            version_id: None,
            size: Some(3),
            last_modified_ms: Some(1_700_000_000_000),
            storage_class: Some("STANDARD".into()),
            etag: Some("etag-3".into()),
        }]
    );
    assert!(!page.is_truncated);
}

/// Versioned rows list each key once (from its `is_latest` row); non-current versions,
/// delete markers and tombstones never show, not even as common prefixes.
pub(crate) fn versions_and_tombstones(store: &dyn Store) {
    let def = declare(store);
    let v = |key: &str, version: &str, latest: Option<bool>, marker: Option<bool>, size| Obj {
        version: version.into(),
        latest,
        marker,
        size: Some(size),
        ..obj("b", key)
    };
    put(
        store,
        &def,
        &[
            // Two versions: the latest one is listed.
            v("k1", "v1", Some(false), Some(false), 1),
            v("k1", "v2", Some(true), Some(false), 2),
            v("k1", "v0", Some(false), Some(false), 3),
            // Latest is a delete marker: gone.
            v("k2", "v1", Some(false), Some(false), 4),
            v("k2", "v2", Some(true), Some(true), 0),
            // Unversioned (NULL flags) and an unversioned row next to a latest version.
            v("k3", "", None, None, 5),
            v("k4", "", None, None, 6),
            v("k4", "v9", Some(true), None, 7),
            // A folder holding only old versions and markers is not a common prefix.
            v("gone/x", "v1", Some(false), Some(false), 8),
            v("gone/x", "v2", Some(true), Some(true), 0),
            v("gone/y/z", "v1", Some(false), None, 9),
            // A folder whose first rows are not current still is one.
            v("half/a", "v1", Some(false), None, 10),
            v("half/b", "v1", Some(true), None, 11),
            // Deleted below.
            v("k5", "", None, None, 12),
            v("dead/x", "", None, None, 13),
            v("k6", "v1", Some(true), None, 14),
        ],
    );
    delete(store, "b", &[("k5", ""), ("dead/x", ""), ("k6", "v1")]);

    for limit in [1, 2, 1000] {
        let (all, _) = walk(store, &query("b", "", None, limit));
        let names: Vec<&str> = all.iter().map(Item::name).collect();
        assert_eq!(names, ["half/b", "k1", "k3", "k4"], "limit {limit}");
        let (all, _) = walk(store, &query("b", "", Some('/'), limit));
        assert_eq!(
            all,
            [
                Item::Prefix("half/".into()),
                Item::Key("k1".into()),
                Item::Key("k3".into()),
                Item::Key("k4".into()),
            ],
            "limit {limit}"
        );
    }
    let page = store.list_objects(&query("b", "k", None, 10)).unwrap();
    let got: Vec<(&str, Option<&str>, Option<i64>)> = page
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.version_id.as_deref(), e.size))
        .collect();
    assert_eq!(
        got,
        [
            ("k1", Some("v2"), Some(2)),
            ("k3", None, Some(5)),
            ("k4", Some("v9"), Some(7)),
        ]
    );
    // A page that ends exactly where only non-current rows follow is not truncated.
    let page = store.list_objects(&query("b", "k", None, 3)).unwrap();
    assert!(!page.is_truncated && page.next_continuation_token.is_none());
}

/// With a delimiter, keys below a further delimiter roll up into common prefixes, each once,
/// in key order, also when a folder spans page boundaries and for every page size.
pub(crate) fn delimiter_rolls_up_common_prefixes_across_pages(store: &dyn Store) {
    let def = declare(store);
    let keys = tricky_set();
    let objs: Vec<Obj> = keys.iter().map(|k| obj("b", k)).collect();
    put(store, &def, &objs);

    for prefix in [
        "",
        "a",
        "a/",
        "logs/",
        "logs/2024/",
        "photos/",
        "x/",
        "日本語/",
    ] {
        let want = expected(&keys, prefix, Some('/'));
        for limit in [1, 2, 3, 1000] {
            let (all, pages) = walk(store, &query("b", prefix, Some('/'), limit));
            assert_eq!(all, want, "prefix {prefix:?} limit {limit}");
            assert_eq!(pages, want.len().div_ceil(limit).max(1));
        }
    }
    // Spelled out around '/': "a!/" < "a/" < "a0"; the key "a/" rolls up into the common
    // prefix "a/" with the keys below it.
    let page = store
        .list_objects(&query("b", "a", Some('/'), 100))
        .unwrap();
    assert_eq!(
        items(&page, 100),
        [
            Item::Key("a".into()),
            Item::Key("a b".into()),
            Item::Key("a!".into()),
            Item::Prefix("a!/".into()),
            Item::Key("a%20b".into()),
            Item::Key("a%2Bb".into()),
            Item::Key("a+b".into()),
            Item::Key("a.b".into()),
            Item::Prefix("a/".into()),
            Item::Key("a0".into()),
            Item::Key("a\u{FF61}".into()),
            Item::Key("a\u{1F600}".into()),
            Item::Prefix("a\u{1F600}/".into()),
        ]
    );
    // "x/" lists the key "x/" itself (nothing after the prefix) and the empty-named folder "x//".
    let page = store
        .list_objects(&query("b", "x/", Some('/'), 100))
        .unwrap();
    assert_eq!(
        items(&page, 100),
        [Item::Key("x/".into()), Item::Prefix("x//".into())]
    );
    // Another delimiter works the same way.
    let (all, _) = walk(store, &query("b", "logs/2024/0", Some('-'), 2));
    assert_eq!(all, expected(&keys, "logs/2024/0", Some('-')));
    assert_eq!(all.len(), 9, "{all:?}");
}

/// A page resumes after its token as the store is at the next call: keys added behind it are
/// not seen, keys added ahead are, removed keys are not, and nothing repeats.
pub(crate) fn pages_resume_after_concurrent_changes(store: &dyn Store) {
    let def = declare(store);
    let keys: Vec<String> = (0..100).map(|i| format!("k{i:03}")).collect();
    let objs: Vec<Obj> = keys.iter().map(|k| obj("b", k)).collect();
    put(store, &def, &objs);

    let q = query("b", "", None, 10);
    let first = store.list_objects(&q).unwrap();
    assert_eq!(first.entries.last().unwrap().key, "k009");
    // Behind the token, at it, and ahead of it.
    put(store, &def, &[obj("b", "k0005"), obj("b", "k050x")]);
    delete(
        store,
        "b",
        &[("k009", ""), ("k010", ""), ("k011", ""), ("k099", "")],
    );

    let mut seen: Vec<String> = first.entries.iter().map(|e| e.key.clone()).collect();
    let mut q = q.clone();
    q.continuation_token = first.next_continuation_token.clone();
    while q.continuation_token.is_some() {
        let page = store.list_objects(&q).unwrap();
        seen.extend(page.entries.iter().map(|e| e.key.clone()));
        q.continuation_token = page.next_continuation_token;
    }
    let mut want: Vec<String> = keys[..10].to_vec();
    want.extend(
        keys[12..99]
            .iter()
            .cloned()
            .chain(std::iter::once("k050x".to_string())),
    );
    want[10..].sort();
    assert_eq!(seen, want);

    // A token that ended on a common prefix stays valid when that folder is removed.
    put(
        store,
        &def,
        &[obj("b", "f/a/1"), obj("b", "f/b/1"), obj("b", "f/c/1")],
    );
    let q = query("b", "f/", Some('/'), 1);
    let page = store.list_objects(&q).unwrap();
    assert_eq!(page.common_prefixes, ["f/a/"]);
    delete(store, "b", &[("f/a/1", ""), ("f/b/1", "")]);
    put(store, &def, &[obj("b", "f/a/2")]);
    let next = store
        .list_objects(&ListQuery {
            continuation_token: page.next_continuation_token,
            ..q
        })
        .unwrap();
    assert_eq!(next.common_prefixes, ["f/c/"]);
    assert!(!next.is_truncated);
}

/// Limit edges (exactly full, one more, the maximum), refused limits and bad tokens.
pub(crate) fn limits_and_bad_tokens(store: &dyn Store) {
    let def = declare(store);
    let objs: Vec<Obj> = (0..25).map(|i| obj("b", &format!("k{i:02}"))).collect();
    put(store, &def, &objs);

    let page = store.list_objects(&query("b", "", None, 25)).unwrap();
    assert_eq!((page.entries.len(), page.is_truncated), (25, false));
    assert_eq!(page.next_continuation_token, None);
    let page = store.list_objects(&query("b", "", None, 24)).unwrap();
    assert_eq!((page.entries.len(), page.is_truncated), (24, true));
    let last = store
        .list_objects(&ListQuery {
            continuation_token: page.next_continuation_token,
            ..query("b", "", None, 24)
        })
        .unwrap();
    assert_eq!(last.entries.len(), 1);
    assert_eq!(last.entries[0].key, "k24");
    assert!(!last.is_truncated);
    let page = store
        .list_objects(&query("b", "", None, MAX_LIST_LIMIT))
        .unwrap();
    assert_eq!(page.entries.len(), 25);

    for limit in [0, MAX_LIST_LIMIT + 1] {
        let err = store
            .list_objects(&query("b", "", None, limit))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        assert!(err.to_string().contains("limit"), "{err}");
    }
    for token in ["garbage!", "", "AQ"] {
        let err = store
            .list_objects(&ListQuery {
                continuation_token: Some(token.into()),
                ..query("b", "", None, 10)
            })
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{token}: {err:?}");
        assert!(err.to_string().contains("continuation token"), "{err}");
    }
    // A real token used under another prefix.
    let page = store.list_objects(&query("b", "k0", None, 2)).unwrap();
    let err = store
        .list_objects(&ListQuery {
            continuation_token: page.next_continuation_token,
            ..query("b", "k1", None, 2)
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

/// An unknown bucket is empty, as a listing and as a summary.
pub(crate) fn unknown_bucket_is_empty(store: &dyn Store) {
    let def = declare(store);
    put(store, &def, &[obj("b", "a/b")]);
    for d in [None, Some('/')] {
        let page = store.list_objects(&query("nope", "", d, 10)).unwrap();
        assert_eq!(page, ListPage::default());
    }
    for by in [
        SummaryBy::StorageClass,
        SummaryBy::Prefix,
        SummaryBy::SizeBucket,
        SummaryBy::Month,
    ] {
        assert!(store.summarize_objects("nope", "", by).unwrap().is_empty());
        assert!(store.summarize_objects("b", "zz", by).unwrap().is_empty());
    }
}

const KIB: i64 = 1024;
const MIB: i64 = 1024 * KIB;
const GIB: i64 = 1024 * MIB;

fn rows(want: &[(&str, u64, u64)]) -> Vec<SummaryRow> {
    want.iter()
        .map(|(g, o, b)| SummaryRow {
            group: g.to_string(),
            objects: *o,
            bytes: *b,
        })
        .collect()
}

/// Summaries count current objects only and group them exactly, with the documented names,
/// edges and order.
pub(crate) fn summaries_group_exactly(store: &dyn Store) {
    let def = declare(store);
    // 2024-03-31T23:59:59.999Z, and the next millisecond.
    let end_of_march = 1_711_929_599_999;
    let o =
        |key: &str, size: Option<i64>, class: Option<&'static str>, modified: Option<i64>| Obj {
            size,
            class,
            modified,
            ..obj("b", key)
        };
    put(
        store,
        &def,
        &[
            o("top.txt", Some(0), Some("STANDARD"), Some(end_of_march)),
            o("data/a", Some(1), Some("STANDARD"), Some(end_of_march + 1)),
            o("data/b", Some(KIB - 1), Some("GLACIER"), Some(-1)),
            o("data/sub/c", Some(KIB), None, None),
            o("data/sub/d", Some(MIB), Some("STANDARD_IA"), Some(0)),
            o(
                "logs/e",
                Some(16 * MIB),
                Some("STANDARD"),
                Some(end_of_march),
            ),
            o(
                "logs/x/f",
                Some(128 * MIB),
                Some("STANDARD"),
                Some(end_of_march),
            ),
            o(
                "logs/x/g",
                Some(GIB - 1),
                Some("GLACIER"),
                Some(end_of_march),
            ),
            o(
                "logs/y/h",
                Some(5 * GIB - 1),
                Some("GLACIER"),
                Some(end_of_march),
            ),
            o(
                "logs/y/i",
                Some(5 * GIB),
                Some("STANDARD"),
                Some(end_of_march),
            ),
            o("nosize", None, Some("STANDARD"), Some(end_of_march)),
            // Not counted: an old version, a delete marker, a tombstone, another bucket.
            Obj {
                version: "v1".into(),
                latest: Some(false),
                ..o("data/a", Some(999), Some("STANDARD"), Some(0))
            },
            Obj {
                version: "v2".into(),
                latest: Some(true),
                marker: Some(true),
                ..o("marker", Some(0), None, Some(0))
            },
            o("dead", Some(777), Some("STANDARD"), Some(0)),
            Obj {
                bucket: "other",
                ..o("data/z", Some(1), Some("STANDARD"), Some(0))
            },
        ],
    );
    delete(store, "b", &[("dead", "")]);

    let sum = |sizes: &[i64]| sizes.iter().sum::<i64>() as u64;
    let by_class = store
        .summarize_objects("b", "", SummaryBy::StorageClass)
        .unwrap();
    assert_eq!(
        by_class,
        rows(&[
            ("GLACIER", 3, sum(&[KIB - 1, GIB - 1, 5 * GIB - 1])),
            ("STANDARD", 6, sum(&[0, 1, 16 * MIB, 128 * MIB, 5 * GIB])),
            ("STANDARD_IA", 1, MIB as u64),
            ("(none)", 1, KIB as u64),
        ])
    );
    let total: u64 = by_class.iter().map(|r| r.objects).sum();
    assert_eq!(total, 11);

    assert_eq!(
        store
            .summarize_objects("b", "", SummaryBy::SizeBucket)
            .unwrap(),
        rows(&[
            ("0 B", 1, 0),
            ("1 B .. 1 KiB", 2, sum(&[1, KIB - 1])),
            ("1 KiB .. 1 MiB", 1, KIB as u64),
            ("1 MiB .. 16 MiB", 1, MIB as u64),
            ("16 MiB .. 128 MiB", 1, 16 * MIB as u64),
            ("128 MiB .. 1 GiB", 2, sum(&[128 * MIB, GIB - 1])),
            ("1 GiB .. 5 GiB", 1, 5 * GIB as u64 - 1),
            (">= 5 GiB", 1, 5 * GIB as u64),
            ("(unknown)", 1, 0),
        ])
    );

    assert_eq!(
        store.summarize_objects("b", "", SummaryBy::Month).unwrap(),
        rows(&[
            ("1969-12", 1, KIB as u64 - 1),
            ("1970-01", 1, MIB as u64),
            (
                "2024-03",
                7,
                sum(&[0, 16 * MIB, 128 * MIB, GIB - 1, 5 * GIB - 1, 5 * GIB])
            ),
            ("2024-04", 1, 1),
            ("(unknown)", 1, KIB as u64),
        ])
    );

    assert_eq!(
        store.summarize_objects("b", "", SummaryBy::Prefix).unwrap(),
        rows(&[
            ("(files at this level)", 2, 0),
            ("data/", 4, sum(&[1, KIB - 1, KIB, MIB])),
            (
                "logs/",
                5,
                sum(&[16 * MIB, 128 * MIB, GIB - 1, 5 * GIB - 1, 5 * GIB])
            ),
        ])
    );
    assert_eq!(
        store
            .summarize_objects("b", "logs/", SummaryBy::Prefix)
            .unwrap(),
        rows(&[
            ("(files at this level)", 1, 16 * MIB as u64),
            ("logs/x/", 2, sum(&[128 * MIB, GIB - 1])),
            ("logs/y/", 2, sum(&[5 * GIB - 1, 5 * GIB])),
        ])
    );
    // A prefix that is not a folder: "d" covers "data/…" and "dead" (deleted).
    assert_eq!(
        store
            .summarize_objects("b", "d", SummaryBy::Prefix)
            .unwrap(),
        rows(&[("data/", 4, sum(&[1, KIB - 1, KIB, MIB]))])
    );
    assert_eq!(
        store
            .summarize_objects("b", "data/", SummaryBy::StorageClass)
            .unwrap(),
        rows(&[
            ("GLACIER", 1, KIB as u64 - 1),
            ("STANDARD", 1, 1),
            ("STANDARD_IA", 1, MIB as u64),
            ("(none)", 1, KIB as u64),
        ])
    );
    // Non-ASCII folders: grouping counts characters, not bytes.
    put(
        store,
        &def,
        &[
            o("été/日本/a", Some(3), None, None),
            o("été/日本/b", Some(4), None, None),
            o("été/x", Some(5), None, None),
        ],
    );
    assert_eq!(
        store
            .summarize_objects("b", "été/", SummaryBy::Prefix)
            .unwrap(),
        rows(&[("(files at this level)", 1, 5), ("été/日本/", 2, 7)])
    );
}
