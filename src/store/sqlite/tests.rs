//! Tests of the SQLite store: the conformance suite on a temporary file, and what is this
//! backend's own (its on-disk layout and query plans, upgrades of old stores, pinning
//! snapshots, stored values it refuses, processes racing to open a store, `--store` URLs).

use crate::store::Imports;
use crate::store::Runs;
use crate::store::Tables;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::schema::TableSql;
use super::SqliteStore;
use crate::error::{Error, Result};
use crate::model::{ColumnType, TableDef};
use crate::store::conformance;
use crate::store::open_store;
use crate::store::{ApplyOutcome, Change, Store, Value};

/// `EXPLAIN QUERY PLAN` of `sql`, its detail lines joined by ` | `.
pub(super) fn query_plan(conn: &Connection, sql: &str) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let mut rows = stmt.raw_query();
    let mut plan = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        plan.push(row.get::<_, String>(3).unwrap());
    }
    plan.join(" | ")
}

fn with_store(test: fn(&dyn Store)) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    test(&store);
}

crate::store::conformance::conformance_suite!(with_store);

/// The conformance suite again with every snapshot import leaving its rows out of the `_seq`
/// index whenever it may (an empty scope, or a quarter of the snapshot changed), so that the
/// reads below the index's floor are checked as thoroughly as the reads through it; and with
/// the store opened alone, so that every import into an empty scope holds the store alone and
/// writes with a rollback journal when nothing else has it open (`journal`).
mod unindexed_imports {
    use super::*;

    fn with_store(test: fn(&dyn Store)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open_alone(&dir.path().join("store.db")).unwrap();
        store.unindexed_min_rows = 0;
        test(&store);
    }

    crate::store::conformance::conformance_suite!(with_store);
}

const T: &str = "table: t\nprimary_key: [k]\ncolumns:\n  - { name: k, type: string }\n  - { name: n, type: int64 }\n  - { name: f, type: double }\n  - { name: b, type: bool }\n";

fn t_store(dir: &Path) -> (SqliteStore, TableDef) {
    let store = SqliteStore::open(&dir.join("s.db")).unwrap();
    let def = TableDef::from_yaml(T, "t").unwrap();
    store.ensure_table(&def).unwrap();
    (store, def)
}

/// A store made when a task's live objects were kept in its state's JSON gets them moved
/// to their own table when opened; nothing else of the state changes.
#[test]
fn live_objects_move_out_of_old_task_states() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let old = r#"{"task":"daily","next_object_seq":3,"live_objects":[{"path":"dt=1/daily_0_1.parquet","partition":"dt=1","rows":5,"bytes":50},{"path":"dt=2/daily_0_2.parquet","partition":"dt=2","rows":6,"bytes":60}],"pending_removal":[],"checkpoint":9}"#;
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .lock()
            .execute(
                r#"INSERT INTO "_lakeport_tasks" ("task", "state") VALUES ('daily', ?1)"#,
                [old],
            )
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let live = store.live_objects("daily").unwrap();
    assert_eq!(
        live.iter()
            .map(|o| (o.path.as_str(), o.rows))
            .collect::<Vec<_>>(),
        [("dt=1/daily_0_1.parquet", 5), ("dt=2/daily_0_2.parquet", 6)]
    );
    let state = store.task_state("daily").unwrap().unwrap();
    assert_eq!((state.next_object_seq, state.checkpoint), (3, 9));
    let json: String = store
        .lock()
        .query_row(r#"SELECT "state" FROM "_lakeport_tasks""#, [], |r| r.get(0))
        .unwrap();
    assert!(!json.contains("live_objects"), "{json}");
}

/// A store made before the `_seq` index was partial (here one older still, whose index held
/// `_seq` alone) gets the partial index on the next declaration of the table: no row is in
/// it, the floor is the table's newest `_seq`, changes from below it are read by key ranges,
/// and the changes written after it are counted through the index alone.
#[test]
fn an_old_seq_index_becomes_partial() {
    let dir = tempfile::tempdir().unwrap();
    let (store, def) = t_store(dir.path());
    for i in 0..5 {
        upsert(&store, &format!("k{i}"), Value::Int64(i), Value::Null).unwrap();
    }
    store
        .lock()
        .execute_batch(
            r#"DROP INDEX "data_t_by_seq"; ALTER TABLE "data_t" DROP COLUMN "_seq_indexed";
               CREATE INDEX "data_t_by_seq" ON "data_t" ("_seq");"#,
        )
        .unwrap();
    // Opened again, as a new release opens an old store.
    drop(store);
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    // Read as it is before the table is declared again.
    let lag = store.lag("t", 0, false).unwrap();
    assert_eq!((lag.newest_seq, lag.rows_behind), (5, 5));
    store.ensure_table(&def).unwrap();
    let conn = store.lock();
    let floor: i64 = conn
        .query_row(
            r#"SELECT "value" FROM "_lakeport_meta" WHERE "key" = 'seq_index_floor:t'"#,
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(floor, 5);
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'data_t_by_seq'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        sql.contains(r#"("_seq", "_deleted", "_seq_indexed") WHERE "_seq_indexed" = 1"#),
        "{sql}"
    );
    drop(conn);
    upsert(&store, "k1", Value::Int64(10), Value::Null).unwrap();
    upsert(&store, "k9", Value::Int64(9), Value::Null).unwrap();
    let indexed: i64 = store
        .lock()
        .query_row(
            r#"SELECT count(*) FROM "data_t" INDEXED BY "data_t_by_seq" WHERE "_seq_indexed" = 1"#,
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 2, "only the rows written since");
    for (after, rows, newest) in [(0, 6, 7), (4, 3, 7), (5, 2, 7), (6, 1, 7)] {
        let lag = store.lag("t", after, false).unwrap();
        assert_eq!(
            (lag.rows_behind, lag.newest_seq),
            (rows, newest),
            "after {after}"
        );
        assert!(lag.oldest_write_ms.is_some());
        assert_eq!(
            read_changes(&store, after, 2).unwrap(),
            rows,
            "after {after}"
        );
    }
    for sql in [
        r#"SELECT count(*) FROM "data_t" WHERE "_seq_indexed" = 1 AND "_deleted" = 0 AND "_seq" >= 6 AND "_seq" < 9"#,
        r#"SELECT max("_seq") FROM "data_t" WHERE "_seq_indexed" = 1 AND 1"#,
    ] {
        let plan = query_plan(&store.lock(), sql);
        assert!(
            plan.contains("COVERING INDEX data_t_by_seq"),
            "{sql}: {plan}"
        );
    }
}

/// A large snapshot import into an empty scope leaves its rows out of the `_seq` index and
/// raises the floor; the next, small import indexes its changes; every change set and lag
/// reads the same either way.
/// A store at `dir/s.db` with `object_inventory` declared, in which a snapshot import of
/// `unindexed_min_rows` rows or more counts as large.
fn inventory_store(dir: &Path, unindexed_min_rows: u64) -> (SqliteStore, TableDef) {
    let mut store = SqliteStore::open(&dir.join("s.db")).unwrap();
    store.unindexed_min_rows = unindexed_min_rows;
    let def = TableDef::from_yaml(
        crate::model::schema::OBJECT_INVENTORY_YAML,
        crate::model::schema::OBJECT_INVENTORY,
    )
    .unwrap();
    store.ensure_table(&def).unwrap();
    (store, def)
}

/// An `object_inventory` row of bucket `b`.
fn inventory_row(def: &TableDef, key: &str, size: i64) -> Change {
    let mut values = vec![Value::Null; def.columns.len()];
    values[def.column_index("bucket").unwrap()] = Value::String("b".into());
    values[def.column_index("key").unwrap()] = Value::String(key.into());
    values[def.column_index("version_id").unwrap()] = Value::String(String::new());
    values[def.column_index("prefix").unwrap()] = Value::String(String::new());
    values[def.column_index("size").unwrap()] = Value::Int64(size);
    Change::Upsert(values)
}

/// Imports `rows` as the snapshot of bucket `b` on day `day`.
fn import_day(store: &SqliteStore, day: i64, rows: Vec<Change>) -> crate::store::ImportOutcome {
    let draft = crate::store::ImportRecord::draft(
        "object_inventory",
        crate::store::ImportScope {
            bucket: "b".into(),
            prefix: String::new(),
        },
        &format!("file:///m{day}.json"),
        &format!("{day:032}"),
        "s3",
        day * 86_400_000,
    );
    store
        .apply_snapshot(&draft, &mut rows.into_iter().map(Ok))
        .unwrap()
}

/// The ETags an inventory holds, one per row `e0`, `e1`, …: only the first, 32 lowercase hex
/// digits, is packed (16 bytes); each reads back as written, through the store and the view.
const ETAGS: [Option<&str>; 7] = [
    Some("7398595fc388905e8749b93673d06024"),
    Some("7398595FC388905E8749B93673D06024"),
    Some("d41d8cd98f00b204e9800998ecf8427e-12"),
    Some("7398595fc388905e8749b93673d0602"),
    Some("7398595fc388905e8749b93673d0602g"),
    Some(""),
    None,
];

/// `object_inventory` rows `e0`.. of bucket `b` with the [`ETAGS`], all of size `size`.
fn etag_rows(def: &TableDef, size: i64) -> Vec<Change> {
    let at = def.column_index("etag").unwrap();
    ETAGS
        .iter()
        .enumerate()
        .map(
            |(i, etag)| match inventory_row(def, &format!("e{i}"), size) {
                Change::Upsert(mut values) => {
                    values[at] = etag.map_or(Value::Null, |e| Value::String(e.into()));
                    Change::Upsert(values)
                }
                other => other,
            },
        )
        .collect()
}

/// What the store holds of rows `e0`..: (the ETag through a snapshot, through the view, the
/// type SQLite stores it as), in key order.
fn stored_etags(store: &SqliteStore) -> Vec<(Option<String>, Option<String>, String)> {
    let mut read = Vec::new();
    let mut snap = store.snapshot("object_inventory", 1).unwrap();
    for shard in &mut snap.shards {
        shard
            .read(100, &mut |batch| {
                let etags = batch
                    .column_by_name("etag")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .unwrap();
                read.extend(etags.iter().map(|e| e.map(String::from)));
                Ok(())
            })
            .unwrap();
    }
    let conn = store.lock();
    let mut stmt = conn
        .prepare(
            r#"SELECT v.etag, typeof(d._etag) FROM object_inventory v JOIN data_object_inventory d
               USING (bucket, key, version_id) ORDER BY key"#,
        )
        .unwrap();
    let viewed: Vec<(Option<String>, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    read.into_iter()
        .zip(viewed)
        .map(|(snap, (view, ty))| (snap, view, ty))
        .collect()
}

/// ETags are packed as they are written (imports and applies alike), read back as written,
/// and compared as written: an unchanged snapshot writes nothing.
#[test]
fn etags_are_packed_and_read_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (store, def) = inventory_store(dir.path(), u64::MAX);
    let want = |types: [&str; 7]| -> Vec<(Option<String>, Option<String>, String)> {
        ETAGS
            .iter()
            .zip(types)
            .map(|(e, ty)| (e.map(String::from), e.map(String::from), ty.to_string()))
            .collect()
    };
    let packed = want(["blob", "text", "text", "text", "text", "text", "null"]);
    import_day(&store, 1, etag_rows(&def, 1));
    assert_eq!(stored_etags(&store), packed);
    let crate::store::ImportOutcome::Applied(again) = import_day(&store, 2, etag_rows(&def, 1))
    else {
        panic!("imported before")
    };
    assert_eq!((again.unchanged, again.updated), (7, 0));
    // Applies: the same rows change nothing; new sizes rewrite every row, packed again.
    let apply_sized = |size: i64| {
        store
            .apply(
                "object_inventory",
                &mut etag_rows(&def, size).into_iter().map(Ok),
            )
            .unwrap()
    };
    let same = apply_sized(1);
    assert_eq!((same.unchanged, same.updated), (7, 0));
    let resized = apply_sized(2);
    assert_eq!(resized.updated, 7);
    assert_eq!(stored_etags(&store), packed);
}

/// A table of the release of 2026-12-08 (ETags stored as text) is rebuilt once by the first
/// declaration: every ETag packed as a write packs it, every value read as before.
#[test]
fn an_inventory_of_text_etags_is_rebuilt_with_packed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (store, def) = inventory_store(dir.path(), u64::MAX);
    import_day(&store, 1, etag_rows(&def, 1));
    let before = stored_etags(&store);
    // The table as that release made it: `etag` a stored column, no `_etag`.
    {
        let conn = store.lock();
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'data_object_inventory'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let generated = sql.find(r#""etag" TEXT GENERATED"#).unwrap();
        let end = generated + sql[generated..].find("VIRTUAL").unwrap() + "VIRTUAL".len();
        let old = format!("{}\"etag\" TEXT{}", &sql[..generated], &sql[end..])
            .replace(r#", "_etag" BLOB"#, "")
            .replace("data_object_inventory", "data_old");
        conn.execute_batch(&format!(
            r#"DROP VIEW object_inventory; {old};
               INSERT INTO data_old (bucket, key, version_id, size, etag, _seq, _write_time,
                   _deleted, _folder_len, _seq_indexed)
               SELECT bucket, key, version_id, size, etag, _seq, _write_time, _deleted,
                   _folder_len, _seq_indexed FROM data_object_inventory;
               DROP TABLE data_object_inventory;
               ALTER TABLE data_old RENAME TO data_object_inventory;"#
        ))
        .unwrap();
        let types: i64 = conn
            .query_row(
                "SELECT count(*) FROM data_object_inventory WHERE typeof(etag) = 'blob'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(types, 0);
    }
    drop(store);
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    store.ensure_table(&def).unwrap();
    assert!(
        super::schema::Layout::of(&store.lock(), &def)
            .unwrap()
            .packed
    );
    assert_eq!(stored_etags(&store), before);
    assert_eq!(before[0].2, "blob");
}

/// A large import into an empty scope of a store opened alone writes with a rollback journal
/// when nothing else has the store open (no WAL frames behind it), through the WAL when another
/// connection has it open, and leaves the store in WAL mode either way, without its marker.
#[test]
fn a_large_import_holds_the_store_alone_only_when_nothing_else_has_it_open() {
    let wal_bytes = |dir: &Path| std::fs::metadata(dir.join("s.db-wal")).map_or(0, |m| m.len());
    let journal_mode = |conn: &Connection| -> String {
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    };
    for other_open in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, def) = inventory_store(dir.path(), 10);
        store.alone = true;
        let rows = |n: usize| {
            (0..n)
                .map(|i| inventory_row(&def, &format!("k{i:03}"), 1))
                .collect()
        };
        let other = Connection::open(dir.path().join("s.db")).unwrap();
        assert_eq!(journal_mode(&other), "wal");
        if !other_open {
            drop(other);
        }
        assert!(
            wal_bytes(dir.path()) > 0,
            "declaring the table wrote to the WAL"
        );
        import_day(&store, 1, rows(20));
        assert_eq!(
            wal_bytes(dir.path()) > 0,
            other_open,
            "another connection open: {other_open}"
        );
        let reader = Connection::open(dir.path().join("s.db")).unwrap();
        assert_eq!(journal_mode(&reader), "wal");
        let live: i64 = reader
            .query_row("SELECT count(*) FROM object_inventory", [], |r| r.get(0))
            .unwrap();
        assert_eq!(live, 20);
        assert!(!super::journal::marker_path(&dir.path().join("s.db")).exists());
        if !other_open {
            // An import into a scope that holds rows goes through the WAL.
            drop(reader);
            import_day(&store, 2, rows(25));
            assert!(wal_bytes(dir.path()) > 0);
        }
    }
}

/// A connection that waited in vain for a store held alone by a large import says which
/// process holds it, as the marker beside the store tells; without a marker, it says nothing
/// of an import.
#[test]
fn waiting_for_a_store_held_alone_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let busy = || {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None)
    };
    let unheld = super::waited_in_vain(&path, "opening", "", busy()).to_string();
    assert!(!unheld.contains("large import"), "{unheld}");
    std::fs::write(
        super::journal::marker_path(&path),
        "process 42 since 2026-12-08 03:41:48 UTC\n",
    )
    .unwrap();
    let held = super::waited_in_vain(&path, "opening", " for reading", busy()).to_string();
    assert!(
        held.contains("for reading (a large import holds the store alone while it writes: process 42 since 2026-12-08 03:41:48 UTC"),
        "{held}"
    );
}

#[test]
fn large_imports_leave_the_seq_index_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (store, def) = inventory_store(dir.path(), 10);
    let row = |key: &str, size: i64| inventory_row(&def, key, size);
    let import = |day: i64, rows: Vec<Change>| import_day(&store, day, rows);
    let indexed = |store: &SqliteStore| -> i64 {
        store
            .lock()
            .query_row(
                r#"SELECT count(*) FROM "data_object_inventory" WHERE "_seq_indexed" = 1"#,
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let floor = |store: &SqliteStore| -> i64 {
        super::schema::read_seq_index_floor(&store.lock(), "object_inventory").unwrap()
    };
    import(1, (0..20).map(|i| row(&format!("k{i:02}"), i)).collect());
    assert_eq!((indexed(&store), floor(&store)), (0, 20));
    // 1 resized, 1 gone, 1 new: 3 changes, below a quarter of the snapshot.
    let mut next: Vec<Change> = (1..20).map(|i| row(&format!("k{i:02}"), i)).collect();
    next[0] = row("k01", 100);
    next.push(row("k20", 20));
    import(2, next);
    assert_eq!((indexed(&store), floor(&store)), (3, 20));
    for (after, rows) in [(0, 21), (19, 4), (20, 3), (22, 1), (23, 0)] {
        let lag = store.lag("object_inventory", after, true).unwrap();
        assert_eq!(
            (lag.rows_behind, lag.newest_seq),
            (rows, 23),
            "after {after}"
        );
        let snap = store.changes("object_inventory", after, 2, true).unwrap();
        let mut n = 0;
        for mut s in snap.shards {
            n += s.read(7, &mut |_| Ok(())).unwrap();
        }
        assert_eq!(n, rows, "after {after}");
    }
    // Asked again, a lag below the floor is the same (kept), and it follows the next change.
    let behind_19 = |store: &SqliteStore| store.lag("object_inventory", 19, true).unwrap();
    assert_eq!(behind_19(&store).rows_behind, 4);
    // A snapshot that changes most of the scope leaves the rest of its changes out too.
    import(
        3,
        (0..21)
            .map(|i| row(&format!("k{i:02}"), 1000 + i))
            .collect(),
    );
    assert_eq!(floor(&store), 44);
    assert_eq!(
        indexed(&store),
        10,
        "the first 10 changes, before a quarter was passed"
    );
    assert_eq!(
        store.lag("object_inventory", 23, true).unwrap().rows_behind,
        21
    );
    assert_eq!(behind_19(&store).rows_behind, 21);
    // A purge changes rows without a new seq: the kept lag is read again.
    assert_eq!(store.purge_tombstones("object_inventory", 44).unwrap(), 0);
    import(
        4,
        (1..21)
            .map(|i| row(&format!("k{i:02}"), 1000 + i))
            .collect(),
    );
    assert_eq!(behind_19(&store).rows_behind, 21);
    assert_eq!(store.purge_tombstones("object_inventory", 45).unwrap(), 1);
    assert_eq!(behind_19(&store).rows_behind, 20);
}

fn upsert(store: &SqliteStore, k: &str, n: Value, f: Value) -> Result<ApplyOutcome> {
    let row = Change::Upsert(vec![Value::String(k.into()), n, f, Value::Bool(true)]);
    store.apply("t", &mut std::iter::once(Ok(row)))
}

fn read_changes(store: &SqliteStore, after: u64, shards: usize) -> Result<u64> {
    let mut snap = store.changes("t", after, shards, false)?;
    let mut n = 0;
    for s in &mut snap.shards {
        n += s.read(10, &mut |_| Ok(()))?;
    }
    Ok(n)
}

fn read_all(store: &SqliteStore, shards: usize) -> Result<u64> {
    let mut snap = store.snapshot("t", shards)?;
    let mut n = 0;
    for s in &mut snap.shards {
        n += s.read(10, &mut |_| Ok(()))?;
    }
    Ok(n)
}

/// The changes tests again, with every change set read by key ranges.
#[test]
fn changes_read_by_key_ranges() {
    for test in [
        conformance::changes_after_a_checkpoint,
        conformance::changes_with_deletes_and_purging,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        store.key_scan_min_rows = 0;
        test(&store);
    }
}

/// The consistency test again, with snapshots always holding off writers while they pin.
#[test]
fn snapshot_consistent_under_writer_when_holding_off_writers() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    store.optimistic_pins = 0;
    conformance::snapshot_consistent_under_writer(&store);
}

/// A snapshot taken while a long write transaction is open does not wait for it: it sees
/// the state before.
#[test]
fn snapshot_does_not_wait_for_an_open_write() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = t_store(dir.path());
    for i in 0..10 {
        upsert(&store, &format!("k{i}"), Value::Int64(i), Value::Null).unwrap();
    }
    let (yielded_tx, yielded) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let store = &store;
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let mut changes = (0..2).map(|i| {
                if i == 1 {
                    yielded_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                }
                let row = vec![
                    Value::String(format!("new{i}")),
                    Value::Int64(i),
                    Value::Null,
                    Value::Null,
                ];
                Ok(Change::Upsert(row))
            });
            store.apply("t", &mut changes).unwrap()
        });
        yielded.recv().unwrap();
        let started = std::time::Instant::now();
        let snap = store.snapshot("t", 3);
        go.send(()).unwrap();
        let snap = snap.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!((snap.seq, snap.rows, snap.shards.len()), (10, 10, 3));
        assert_eq!(writer.join().unwrap().seq, 12);
    });
}

#[test]
fn layout_uses_the_documented_names() {
    let dir = tempfile::tempdir().unwrap();
    let (store, def) = t_store(dir.path());
    assert_eq!(store.table_def("t").unwrap(), Some(def));
    assert_eq!(store.table_def("u").unwrap(), None);
    let conn = Connection::open(dir.path().join("s.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for want in [
        "_lakeport_meta",
        "_lakeport_runs",
        "_lakeport_tables",
        "_lakeport_tasks",
        "data_t",
        "data_t_by_seq",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let cols: Vec<(String, String, bool, i64)> = conn
        .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info('data_t') ORDER BY cid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let cols: Vec<(&str, &str, bool, i64)> = cols
        .iter()
        .map(|(n, t, nn, pk)| (n.as_str(), t.as_str(), *nn, *pk))
        .collect();
    assert_eq!(
        cols,
        [
            ("k", "TEXT", true, 1),
            ("n", "INTEGER", false, 0),
            ("f", "REAL", false, 0),
            ("b", "INTEGER", false, 0),
            ("_seq", "INTEGER", true, 0),
            ("_write_time", "INTEGER", true, 0),
            ("_deleted", "INTEGER", true, 0),
            ("_seq_indexed", "INTEGER", false, 0),
        ]
    );
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'data_t'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.ends_with("WITHOUT ROWID"), "{sql}");

    upsert(&store, "a", Value::Int64(1), Value::Null).unwrap();
    let meta: Vec<(String, i64)> = conn
        .prepare("SELECT key, value FROM _lakeport_meta ORDER BY key")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(meta[1], ("seq".to_string(), 1));
    assert_eq!(meta[0].0, "last_write_time");
    assert!(meta[0].1 > 1_600_000_000_000);
}

#[test]
fn range_reads_use_the_primary_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let def = TableDef::from_yaml(conformance_pairs(), "p").unwrap();
    store.ensure_table(&def).unwrap();
    let t = TableSql::new(
        def,
        super::schema::Layout {
            computed: false,
            partial_seq_index: true,
            packed: false,
        },
    );
    let conn = store.lock();
    for sql in [
        t.range_sql(true, true, None),
        t.range_sql(false, true, None),
        // Changes read by key ranges walk the key, not the _seq index.
        t.range_sql(true, true, Some(false)),
        t.range_sql(false, true, Some(true)),
        t.lookup.clone(),
    ] {
        let plan = query_plan(&conn, &sql);
        assert!(
            plan.contains("SEARCH") && plan.contains("PRIMARY KEY"),
            "{sql}: {plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
    }
}

fn conformance_pairs() -> &'static str {
    "table: p\nprimary_key: [a, b]\ncolumns:\n  - { name: a, type: string }\n  - { name: b, type: int64 }\n"
}

#[test]
fn nan_is_refused_and_signed_zero_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = t_store(dir.path());
    let err = upsert(&store, "a", Value::Int64(1), Value::Double(f64::NAN)).unwrap_err();
    assert!(
        err.to_string()
            .contains("column f: expected double, found double NaN"),
        "{err}"
    );
    upsert(&store, "a", Value::Int64(1), Value::Double(-0.0)).unwrap();
    let again = upsert(&store, "a", Value::Int64(1), Value::Double(0.0)).unwrap();
    assert_eq!((again.unchanged, again.seq), (1, 1));
    let inf = upsert(&store, "a", Value::Int64(1), Value::Double(f64::INFINITY)).unwrap();
    assert_eq!(inf.updated, 1);
    let again = upsert(&store, "a", Value::Int64(1), Value::Double(f64::INFINITY)).unwrap();
    assert_eq!(again.unchanged, 1);
}

#[test]
fn foreign_storage_class_is_an_error_naming_table_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = t_store(dir.path());
    upsert(&store, "a", Value::Int64(1), Value::Double(1.5)).unwrap();
    upsert(&store, "b/c", Value::Int64(2), Value::Double(2.5)).unwrap();
    assert_eq!(read_all(&store, 2).unwrap(), 2);
    let conn = Connection::open(dir.path().join("s.db")).unwrap();
    conn.execute("UPDATE data_t SET n = 'twelve' WHERE k = 'b/c'", [])
        .unwrap();
    let err = read_all(&store, 2).unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    let msg = err.chain().to_string();
    assert!(
        msg.contains("table t: column n of row (k=\"b/c\"): expected int64, found TEXT \"twelve\""),
        "{msg}"
    );
    conn.execute("UPDATE data_t SET n = 2, b = 7 WHERE k = 'b/c'", [])
        .unwrap();
    let msg = read_all(&store, 1).unwrap_err().chain().to_string();
    assert!(
        msg.contains("column b of row (k=\"b/c\"): expected bool, found INTEGER 7"),
        "{msg}"
    );
    // Text that is not UTF-8 (a lone continuation byte) is named with its row.
    conn.execute(
        "UPDATE data_t SET b = 1, k = CAST(X'622F80' AS TEXT) WHERE k = 'b/c'",
        [],
    )
    .unwrap();
    let msg = read_all(&store, 1).unwrap_err().chain().to_string();
    assert!(
        msg.contains("table t: column k of row (k=") && msg.contains("expected string"),
        "{msg}"
    );
}

#[test]
fn shard_readers_can_read_again_and_on_other_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = t_store(dir.path());
    for i in 0..50 {
        upsert(&store, &format!("k{i:02}"), Value::Int64(i), Value::Null).unwrap();
    }
    let snap = store.snapshot("t", 3).unwrap();
    upsert(&store, "k00", Value::Int64(-1), Value::Null).unwrap();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = snap
            .shards
            .into_iter()
            .map(|mut r| {
                s.spawn(move || {
                    let first = r.read(7, &mut |_| Ok(())).unwrap();
                    let second = r.read(1000, &mut |_| Ok(())).unwrap();
                    assert_eq!(first, second);
                    first
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(counts, [16, 17, 17]);
    // An error from the callback stops the read and comes back as is.
    let mut snap = store.snapshot("t", 1).unwrap();
    let err = snap.shards[0]
        .read(10, &mut |_| Err(Error::encode("full")))
        .unwrap_err();
    assert_eq!(err.to_string(), "encoding: full");
}

/// A rough timing of loading and reading the object-inventory table; run with
/// `cargo test --lib store_speed -- --ignored --nocapture` (`LAKEPORT_SPEED_ROWS` rows).
#[test]
#[ignore]
fn store_speed() {
    let rows: i64 = std::env::var("LAKEPORT_SPEED_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let def = TableDef::from_yaml(
        crate::model::schema::OBJECT_INVENTORY_YAML,
        "object_inventory",
    )
    .unwrap();
    store.ensure_table(&def).unwrap();
    let row = |i: i64, size: i64| {
        let mut v: Vec<Value> = def
            .columns
            .iter()
            .map(|c| match c.ty {
                ColumnType::String => Value::String(format!("{}-{i}", c.name)),
                ColumnType::Int64 => Value::Int64(size),
                ColumnType::Bool => Value::Bool(i % 2 == 0),
                ColumnType::TimestampMs => Value::TimestampMs(1_700_000_000_000 + i),
                _ => Value::Null,
            })
            .collect();
        v[0] = Value::String("bucket".into());
        v[1] = Value::String(format!("logs/2024/{i:09}.gz"));
        v[2] = Value::String(String::new());
        Change::Upsert(v)
    };
    let time = |what: &str, f: &mut dyn FnMut() -> ApplyOutcome| {
        let t = std::time::Instant::now();
        let out = f();
        eprintln!("{what}: {:?} {out:?}", t.elapsed());
    };
    time("load", &mut || {
        store
            .apply("object_inventory", &mut (0..rows).map(|i| Ok(row(i, i))))
            .unwrap()
    });
    time("reload unchanged", &mut || {
        store
            .apply("object_inventory", &mut (0..rows).map(|i| Ok(row(i, i))))
            .unwrap()
    });
    time("update all", &mut || {
        store
            .apply(
                "object_inventory",
                &mut (0..rows).map(|i| Ok(row(i, i + 1))),
            )
            .unwrap()
    });
    let t = std::time::Instant::now();
    let mut snap = store.snapshot("object_inventory", 4).unwrap();
    eprintln!("snapshot: {:?}", t.elapsed());
    let mut n = 0;
    for s in &mut snap.shards {
        n += s.read(8192, &mut |_| Ok(())).unwrap();
    }
    eprintln!("read {n} rows: {:?}", t.elapsed());
    assert_eq!(n, rows as u64);
}

/// Processes racing to create and open store files all succeed. SQLite refuses some
/// openers at once with "database is locked" while another process switches a new file
/// to WAL (threads of one process do not race this way); `open_wal` retries those. The
/// test runs eight copies of `race_opener_child` (this test binary, run again) over the
/// same 100 new files. The race is rare (here about one opening in 150 of a new file by
/// three processes failed before the retry), so this guards more than it proves.
#[test]
fn racing_processes_all_open_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "store::sqlite::tests::race_opener_child",
                    "--ignored",
                    "--nocapture",
                ])
                .env("LAKEPORT_RACE_DIR", dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("1 passed"),
            "the child test did not run:\n{text}"
        );
    }
}

/// One racer of `racing_processes_all_open_the_store` (run by it, ignored otherwise).
#[test]
#[ignore = "run by racing_processes_all_open_the_store"]
fn race_opener_child() {
    let dir = std::path::PathBuf::from(std::env::var_os("LAKEPORT_RACE_DIR").unwrap());
    for n in 0..100 {
        let store = SqliteStore::open(&dir.join(format!("race-{n}.db"))).unwrap();
        store.table_stats().unwrap();
    }
}

#[test]
fn open_store_urls() {
    let dir = tempfile::tempdir().unwrap();
    let abs = dir.path().join("a.db");
    let store = open_store(&format!("sqlite://{}", abs.display())).unwrap();
    assert!(store.table_stats().unwrap().is_empty());
    assert!(abs.exists());
    open_store(&format!("sqlite:{}", abs.display())).unwrap();

    // Nothing listens there: a store error naming the URL without its password.
    let pg = open_store("postgres://u:secret@127.0.0.1:1/db")
        .err()
        .unwrap();
    assert!(matches!(&pg, Error::Store { .. }), "{pg}");
    assert!(
        pg.chain()
            .to_string()
            .contains("postgres://u:***@127.0.0.1:1/db"),
        "{pg}"
    );
    assert!(!pg.chain().to_string().contains("secret"), "{pg}");
    let other = open_store("mysql://x").err().unwrap();
    assert_eq!(
        other.to_string(),
        "--store: expected sqlite:PATH or postgres://…, got \"mysql://x\""
    );
    assert!(matches!(
        open_store("sqlite:"),
        Err(Error::InvalidConfig(_))
    ));

    let missing = dir.path().join("no/such/dir/x.db");
    let err = open_store(&format!("sqlite:{}", missing.display()))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    let not_db = dir.path().join("text.db");
    std::fs::write(
        &not_db,
        "this is not a database, just some text of some length......",
    )
    .unwrap();
    let err = SqliteStore::open(&not_db).unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&not_db.display().to_string()),
        "{err}"
    );
}

#[test]
fn relative_sqlite_url() {
    let dir = tempfile::tempdir().unwrap();
    let rel = dir
        .path()
        .strip_prefix(std::env::current_dir().unwrap())
        .map(Path::to_path_buf);
    // Only meaningful when the temp dir is under the working directory; otherwise use a
    // relative path of our own inside the crate's target folder.
    let rel = rel.unwrap_or_else(|_| {
        let p = PathBuf::from("target/tmp-store-test");
        std::fs::create_dir_all(&p).unwrap();
        p
    });
    let file = rel.join(format!("rel-{}.db", std::process::id()));
    let store = open_store(&format!("sqlite:{}", file.display())).unwrap();
    drop(store);
    assert!(file.exists());
    let _ = std::fs::remove_file(&file);
}

#[test]
fn apply_from_another_connection_is_seen() {
    // Two stores on one file (two processes, in effect) share seq and see each other's tables.
    let dir = tempfile::tempdir().unwrap();
    let (one, _) = t_store(dir.path());
    let two = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    upsert(&one, "a", Value::Int64(1), Value::Null).unwrap();
    let row = Change::Upsert(vec![
        Value::String("b".into()),
        Value::Int64(2),
        Value::Null,
        Value::Null,
    ]);
    let out = two.apply("t", &mut std::iter::once(Ok(row))).unwrap();
    assert_eq!(out.seq, 2);
    assert_eq!(one.table_stats().unwrap()[0].rows, 2);
}
