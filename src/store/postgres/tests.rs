//! Tests of the PostgreSQL store against a real server: `LAKEPORT_TEST_POSTGRES` names it
//! (`make test` runs the tests under `scripts/with-postgres.sh`, which starts a throwaway
//! cluster). Without the variable these tests fail, saying so: they are never skipped.
//! Each test gets a database of its own.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::store::Store;

/// The server of these tests.
pub(crate) fn server_url() -> String {
    std::env::var("LAKEPORT_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "LAKEPORT_TEST_POSTGRES is not set: run the tests through make test \
             (or scripts/with-postgres.sh cargo test)"
        )
    })
}

/// The URL of a new, empty database on the test server.
pub(crate) fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = server_url();
    let name = format!(
        "lakeport_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A store on a new, empty database.
pub(crate) fn fresh_store() -> PostgresStore {
    PostgresStore::open(&fresh_database()).unwrap()
}

/// A store on a new, empty database with the table declared by `yaml`.
fn store_with_table(yaml: &str) -> PostgresStore {
    let store = fresh_store();
    store
        .ensure_table(&TableDef::from_yaml(yaml, "table.yaml").unwrap())
        .unwrap();
    store
}

/// A database that is not UTF-8 is refused when the store opens, before anything is created.
#[test]
fn a_database_not_in_utf8_is_refused() {
    let url = server_url();
    let name = format!("lakeport_latin1_{}", std::process::id());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' \
             TEMPLATE template0"
        ))
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    match PostgresStore::open(&format!("{base}/{name}")) {
        Err(Error::InvalidConfig(m)) => {
            assert!(
                m.contains("encoding is LATIN1") && m.contains("UTF8"),
                "{m}"
            )
        }
        other => panic!("expected a configuration error, got {:?}", other.err()),
    }
    let mut db = postgres::Client::connect(&format!("{base}/{name}"), postgres::NoTls).unwrap();
    let tables: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE '_lakeport%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing created");
}

fn with_store(test: fn(&dyn Store)) {
    test(&fresh_store());
}

crate::store::conformance::conformance_suite!(with_store);

#[test]
fn passwords_are_not_shown() {
    assert_eq!(
        without_password("postgres://u:secret@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(without_password("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(
        without_password("host=h user=u password=secret"),
        "host=h user=u password=***"
    );
}

/// A server that does not answer is an error naming the URL (without its password) and the
/// reason, at once rather than after the pool's wait.
#[test]
fn unreachable_server_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("postgres://u:secret@127.0.0.1:{port}/db");
    let started = std::time::Instant::now();
    let err = PostgresStore::open(&url).unwrap_err().chain().to_string();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{err}"
    );
    assert!(
        err.contains(&format!("postgres://u:***@127.0.0.1:{port}/db")),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

/// A connection cut short (tokio-util's "bytes remaining on stream") is said in plain words;
/// other causes pass unchanged.
#[test]
fn a_connection_cut_short_says_so() {
    let cut = std::io::Error::other("bytes remaining on stream");
    assert_eq!(
        cause_text(&cut),
        "connection closed in the middle of a message"
    );
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert_eq!(cause_text(&refused), refused.to_string());
}

/// The pool's failed connection attempts are kept with their reason (the `postgres` crate's
/// display of a server's refusal is only "db error") until a connection is made.
#[test]
fn the_pool_keeps_why_its_last_connection_failed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let refused = format!("postgres://u@127.0.0.1:{port}/db")
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .err()
        .unwrap();
    let errors = ConnectErrors {
        shown: "postgres://u@127.0.0.1/db".into(),
        last: Arc::new(Mutex::new(None)),
    };
    r2d2::HandleError::handle_error(&errors, refused);
    let kept = errors.last.lock().unwrap().clone().unwrap();
    assert!(kept.to_lowercase().contains("refused"), "{kept}");
    assert!(kept.starts_with("error connecting to server: "), "{kept}");
    r2d2::HandleEvent::handle_acquire(&errors, acquire_event());
    assert_eq!(*errors.last.lock().unwrap(), None);
}

/// An `AcquireEvent` (its fields are private: taken from a pool that opens a connection).
fn acquire_event() -> r2d2::event::AcquireEvent {
    #[derive(Debug)]
    struct Catch(Arc<Mutex<Option<r2d2::event::AcquireEvent>>>);
    impl r2d2::HandleEvent for Catch {
        fn handle_acquire(&self, event: r2d2::event::AcquireEvent) {
            *self.0.lock().unwrap() = Some(event);
        }
    }
    let caught = Arc::new(Mutex::new(None));
    let manager = PostgresConnectionManager::new(server_url().parse().unwrap(), postgres::NoTls);
    let pool = r2d2::Pool::builder()
        .max_size(1)
        .event_handler(Box::new(Catch(Arc::clone(&caught))))
        .build(manager)
        .unwrap();
    drop(pool);
    let event = caught.lock().unwrap().take();
    event.unwrap()
}

/// Many writers, slow and fast, commit while a reader delivers incrementally ("every change
/// above my checkpoint, up to the snapshot's `seq`", then the checkpoint moves to that `seq`).
/// A slow transaction holds its rows for up to 25 ms before it commits, so fast ones commit
/// meanwhile: were `_seq` taken when a row is written, the slow transaction's lower numbers
/// would become visible after the reader moved past them and be skipped. Every row must be
/// delivered exactly once.
#[test]
fn no_change_is_skipped_under_concurrent_writers() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    const WRITERS: i64 = 8;
    const TRANSACTIONS: i64 = 30;
    let store = Arc::new(fresh_store());
    let def = TableDef::from_yaml(
        "table: events\nprimary_key: [writer, n]\ncolumns:\n  - { name: writer, type: int64 }\n  - { name: n, type: int64 }\n",
        "events.yaml",
    )
    .unwrap();
    store.ensure_table(&def).unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for tx in 0..TRANSACTIONS {
                    // One to three rows per transaction; a pause before the last one.
                    let rows = 1 + (w + tx) % 3;
                    let pause = Duration::from_millis(((w * 31 + tx * 7919) % 26) as u64);
                    let mut changes = (0..rows).map(move |r| {
                        if r == rows - 1 {
                            std::thread::sleep(pause);
                        }
                        Ok(Change::Upsert(vec![
                            Value::Int64(w),
                            Value::Int64(tx * 10 + r),
                        ]))
                    });
                    store.apply("events", &mut changes).unwrap();
                }
            })
        })
        .collect();

    // One bulk writer too: transactions of 5,000 changes, which take the bulk path (staged
    // while the others commit, then merged under the meta row's lock with final numbers;
    // writer 99).
    const BULK_ROWS: i64 = 5_000;
    const BULK_TRANSACTIONS: i64 = 3;
    let bulk = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for tx in 0..BULK_TRANSACTIONS {
                let mut changes = (0..BULK_ROWS).map(move |r| {
                    if r % 1000 == 999 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Ok(Change::Upsert(vec![
                        Value::Int64(99),
                        Value::Int64(100_000 + tx * BULK_ROWS + r),
                    ]))
                });
                store.apply("events", &mut changes).unwrap();
            }
        })
    };
    let reader = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut delivered: Vec<(i64, i64)> = Vec::new();
            let mut checkpoint = 0u64;
            let mut passes = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let snap = store.changes("events", checkpoint, 2, false).unwrap();
                for mut shard in snap.shards {
                    shard
                        .read(100, &mut |batch| {
                            let w = batch.column(0).as_any();
                            let n = batch.column(1).as_any();
                            let w = w.downcast_ref::<arrow::array::Int64Array>().unwrap();
                            let n = n.downcast_ref::<arrow::array::Int64Array>().unwrap();
                            for i in 0..batch.num_rows() {
                                delivered.push((w.value(i), n.value(i)));
                            }
                            Ok(())
                        })
                        .unwrap();
                }
                checkpoint = snap.seq;
                passes += 1;
                if finished {
                    return (delivered, passes);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    bulk.join().unwrap();
    done.store(true, Ordering::SeqCst);
    let (mut delivered, passes) = reader.join().unwrap();
    let total = delivered.len();
    delivered.sort_unstable();
    let mut expected: Vec<(i64, i64)> = (0..WRITERS)
        .flat_map(|w| {
            (0..TRANSACTIONS)
                .flat_map(move |tx| (0..1 + (w + tx) % 3).map(move |r| (w, tx * 10 + r)))
        })
        .chain((0..BULK_TRANSACTIONS * BULK_ROWS).map(|n| (99, 100_000 + n)))
        .collect();
    expected.sort_unstable();
    assert!(
        passes > 10,
        "the reader ran only {passes} passes: no interleaving was tested"
    );
    assert_eq!(
        total,
        expected.len(),
        "a change was delivered twice or skipped"
    );
    assert_eq!(
        delivered, expected,
        "a change was skipped or delivered twice"
    );
}

/// A bulk apply numbers the rows it writes consecutively above the store's `seq`; an
/// unchanged row keeps its number, and `seq` ends at the highest number written.
#[test]
fn bulk_writes_number_rows_consecutively() {
    let store = store_with_table(
        "table: big\nprimary_key: [id]\ncolumns:\n  - { name: id, type: int64 }\n  - { name: v, type: int64 }\n",
    );
    let n = (bulk::BULK_FROM * 2 + 10) as i64;
    let rows = |changed: i64| {
        (0..n).map(move |i| {
            let v = if i < changed { i + 1000 } else { i };
            Ok(Change::Upsert(vec![Value::Int64(i), Value::Int64(v)]))
        })
    };
    let first = store.apply("big", &mut rows(0)).unwrap();
    assert_eq!((first.inserted, first.seq), (n as u64, n as u64));
    let seqs = |store: &PostgresStore| -> Vec<i64> {
        let mut conn = store.conn().unwrap();
        conn.query(r#"SELECT "_seq" FROM "data_big" ORDER BY "id""#, &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let mut sorted = seqs(&store);
    let before = sorted.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=n).collect::<Vec<_>>());
    // Ten rows change: they take the ten numbers above n; the rest keep theirs.
    let second = store.apply("big", &mut rows(10)).unwrap();
    assert_eq!((second.updated, second.unchanged), (10, n as u64 - 10));
    let after = seqs(&store);
    let mut changed = after[..10].to_vec();
    changed.sort_unstable();
    assert_eq!(changed, (n + 1..=n + 10).collect::<Vec<_>>());
    assert_eq!(&after[10..], &before[10..]);
    assert_eq!(second.seq as i64, n + 10);
    let stats = store.table_stats().unwrap();
    assert_eq!(stats[0].max_seq, second.seq);
}

/// Every stored row of `table` (tombstones too) as (key, values, deleted), in key order.
fn stored_rows(store: &PostgresStore, table: &str) -> Vec<(i64, Option<String>, bool)> {
    let mut conn = store.conn().unwrap();
    conn.query(
        &format!(r#"SELECT "id", "v", "_deleted" FROM "data_{table}" ORDER BY "id""#),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Two stores with `table` declared, on databases of their own: one whose applies all take the
/// batched statements, one whose applies all take the bulk path.
fn batched_and_bulk(table: &str) -> (PostgresStore, PostgresStore) {
    let mut batched = store_with_table(table);
    batched.bulk_from = usize::MAX;
    let mut bulk = store_with_table(table);
    bulk.bulk_from = 0;
    (batched, bulk)
}

/// The bulk path gives the same outcomes and rows as the batched statements of small applies
/// (the path every apply took before it), round after round of random changes over a few
/// keys: repeated keys (upserts and deletes mixed), unchanged rows, revived tombstones,
/// deletes of absent and deleted keys, NULLs. Rows that no change touched keep their `_seq`
/// on both paths; `_seq` stays consecutive.
#[test]
fn bulk_and_batched_applies_agree() {
    const TABLE: &str = "table: kv\nprimary_key: [id]\ncolumns:\n  - { name: id, type: int64 }\n  - { name: v, type: string }\n";
    let (batched, bulk) = batched_and_bulk(TABLE);
    let mut state = 12345u64;
    let mut next = |below: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % below
    };
    for round in 0..40 {
        let len = next(60);
        let changes: Vec<Change> = (0..len)
            .map(|_| {
                let id = Value::Int64(next(25) as i64);
                match next(10) {
                    0..=1 => Change::Delete(vec![id]),
                    2 => Change::Upsert(vec![id, Value::Null]),
                    _ => Change::Upsert(vec![id, Value::String(format!("v{}", next(3)))]),
                }
            })
            .collect();
        let before = (stored_seqs(&batched), stored_seqs(&bulk));
        let a = batched
            .apply("kv", &mut changes.clone().into_iter().map(Ok))
            .unwrap();
        let b = bulk
            .apply("kv", &mut changes.clone().into_iter().map(Ok))
            .unwrap();
        let counts = |o: &ApplyOutcome| (o.inserted, o.updated, o.deleted, o.unchanged);
        assert_eq!(counts(&a), counts(&b), "round {round}: {changes:?}");
        assert_eq!(
            stored_rows(&batched, "kv"),
            stored_rows(&bulk, "kv"),
            "round {round}: {changes:?}"
        );
        let touched: std::collections::BTreeSet<i64> = changes
            .iter()
            .map(|c| match c {
                Change::Upsert(v) | Change::Delete(v) => match v[0] {
                    Value::Int64(id) => id,
                    _ => unreachable!(),
                },
            })
            .collect();
        for (path, before, after) in [
            ("batched", &before.0, stored_seqs(&batched)),
            ("bulk", &before.1, stored_seqs(&bulk)),
        ] {
            for (id, seq) in &after {
                if !touched.contains(id) {
                    assert_eq!(before.get(id), Some(seq), "{path} round {round}: {id}");
                }
            }
            let max = after.values().max().copied().unwrap_or(0);
            let seq = if path == "bulk" { b.seq } else { a.seq };
            assert_eq!(max.max(0) as u64, seq, "{path} round {round}");
        }
        // The bulk path writes each changed key once: its numbers are consecutive.
        let written = b.inserted + b.updated + b.deleted;
        let prev_max = before.1.values().max().copied().unwrap_or(0) as u64;
        assert!(b.seq <= prev_max + written, "round {round}");
    }
}

/// `_seq` of every stored row (tombstones too) of `data_kv`, by key.
fn stored_seqs(store: &PostgresStore) -> std::collections::BTreeMap<i64, i64> {
    let mut conn = store.conn().unwrap();
    conn.query(r#"SELECT "id", "_seq" FROM "data_kv""#, &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The conformance tests that apply changes, again with every apply taking the bulk path
/// (imports always do). Left out: `changes_with_deletes_and_purging`, which expects the rows
/// of one transaction numbered in input order; a bulk transaction numbers them in the order
/// its statements write them (tombstones, revivals, updates, inserts), which the store's
/// contract leaves open (it fixes the order across transactions).
mod bulk_path {
    use super::*;

    fn with_store(test: fn(&dyn Store)) {
        let mut store = fresh_store();
        store.bulk_from = 0;
        test(&store);
    }

    crate::store::conformance::conformance_suite!(@applies with_store);
    crate::store::conformance::conformance_suite!(@listing with_store);
}

/// Whether the store's connections use TLS, as the server sees it.
fn uses_tls(store: &PostgresStore) -> bool {
    let mut conn = store.conn().unwrap();
    conn.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .unwrap()
    .get(0)
}

/// `sslmode=require` connects over TLS, the server's certificate checked against
/// `sslrootcert` (the test server's throwaway CA); one the trusted roots do not sign is
/// refused with the reason; a URL that does not ask for TLS stays plain (libpq's `prefer`
/// would try TLS without checking the certificate; here TLS always checks it).
#[test]
fn tls_is_used_when_asked_and_the_certificate_checked() {
    let ca = std::env::var("LAKEPORT_TEST_POSTGRES_CA").unwrap_or_else(|_| {
        panic!("LAKEPORT_TEST_POSTGRES_CA is not set: scripts/with-postgres.sh sets it (openssl)")
    });
    let url = fresh_database();
    let encoded: String =
        percent_encoding::utf8_percent_encode(&ca, percent_encoding::NON_ALPHANUMERIC).to_string();
    let checked =
        PostgresStore::open(&format!("{url}?sslmode=require&sslrootcert={encoded}")).unwrap();
    assert!(uses_tls(&checked));
    assert!(!uses_tls(&PostgresStore::open(&url).unwrap()));
    let err = PostgresStore::open(&format!("{url}?sslmode=require"))
        .unwrap_err()
        .chain()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    let missing = PostgresStore::open(&format!(
        "{url}?sslmode=require&sslrootcert=/nonexistent.pem"
    ))
    .unwrap_err();
    assert!(matches!(missing, Error::InvalidConfig(_)), "{missing}");
    assert!(
        missing.to_string().contains("/nonexistent.pem"),
        "{missing}"
    );
}

#[test]
fn root_certificates_are_taken_out_of_urls() {
    assert_eq!(
        take_root_cert("postgres://u@h/db?sslmode=require&sslrootcert=%2Fetc%2Fca.pem"),
        (
            "postgres://u@h/db?sslmode=require".to_string(),
            Some("/etc/ca.pem".into())
        )
    );
    assert_eq!(
        take_root_cert("postgres://u@h/db?sslrootcert=ca.pem"),
        ("postgres://u@h/db".to_string(), Some("ca.pem".into()))
    );
    assert_eq!(
        take_root_cert("host=h sslrootcert=/ca.pem dbname=d"),
        ("host=h dbname=d".to_string(), Some("/ca.pem".into()))
    );
    assert_eq!(
        take_root_cert("postgres://u@h/db"),
        ("postgres://u@h/db".to_string(), None)
    );
}

/// A full snapshot of a large table is split by page ranges: every live row of the snapshot
/// exactly once over the shards, of about equal sizes, none of what writers commit after it
/// (updates, inserts, deletes), and a shard opened from its ticket by another connection reads
/// the same rows as the snapshot's own reader.
#[test]
fn large_snapshots_are_split_by_pages() {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;
    use std::collections::BTreeMap;

    const ROWS: i64 = 60_000;
    const SHARDS: usize = 4;
    let store = store_with_table(
        "table: wide\nprimary_key: [id]\ncolumns:\n  - { name: id, type: int64 }\n  - { name: pad, type: string }\n  - { name: gen, type: int64 }\n",
    );
    // Keys written in a shuffled order, so that storage order is not key order: in bulk
    // applies of 5,000 rows (each inserts its rows in key order).
    const CHUNK: i64 = 5_000;
    for chunk in 0..ROWS / CHUNK {
        let changes = (chunk * CHUNK..(chunk + 1) * CHUNK).map(|i| {
            let id = (i * 7_919) % ROWS;
            Ok(Change::Upsert(vec![
                Value::Int64(id),
                Value::String(format!("{id:0>120}")),
                Value::Int64(0),
            ]))
        });
        store.apply("wide", &mut changes.into_iter()).unwrap();
    }
    // The row count of a snapshot read by pages is the planner's estimate (not a scan).
    let mut conn = store.conn().unwrap();
    conn.batch_execute("ANALYZE data_wide").unwrap();
    drop(conn);
    let mut snap = store.snapshot("wide", SHARDS).unwrap();
    assert!(snap.rows_estimated);
    assert!(
        snap.rows.abs_diff(ROWS as u64) <= ROWS as u64 / 10,
        "{}",
        snap.rows
    );
    assert_eq!(snap.shards.len(), SHARDS);
    let tickets: Vec<String> = snap.shards.iter().map(|r| r.ticket().unwrap()).collect();
    assert!(
        tickets.iter().all(|t| t.contains("\"Pages\"")),
        "{tickets:?}"
    );

    // After the snapshot: every tenth row updated, new rows, some deleted.
    let later = (0..ROWS)
        .step_by(10)
        .map(|id| {
            Ok(Change::Upsert(vec![
                Value::Int64(id),
                Value::String("x".into()),
                Value::Int64(1),
            ]))
        })
        .chain((ROWS..ROWS + 500).map(|id| {
            Ok(Change::Upsert(vec![
                Value::Int64(id),
                Value::String("y".into()),
                Value::Int64(1),
            ]))
        }))
        .chain(
            (1..ROWS)
                .step_by(10)
                .map(|id| Ok(Change::Delete(vec![Value::Int64(id)]))),
        );
    store.apply("wide", &mut later.into_iter()).unwrap();

    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    let mut sizes = Vec::new();
    let mut first_shard = Vec::new();
    for (s, reader) in snap.shards.iter_mut().enumerate() {
        let mut n = 0;
        reader
            .read(4096, &mut |b| {
                let ids: &Int64Array = b.column(0).as_primitive::<Int64Type>();
                let gens = b.column(2).as_primitive::<Int64Type>();
                for r in 0..b.num_rows() {
                    assert_eq!(gens.value(r), 0, "a change after the snapshot");
                    *seen.entry(ids.value(r)).or_default() += 1;
                    if s == 0 {
                        first_shard.push(ids.value(r));
                    }
                }
                n += b.num_rows();
                Ok(())
            })
            .unwrap();
        sizes.push(n);
    }
    assert_eq!(seen.len(), ROWS as usize);
    assert!(seen.values().all(|&n| n == 1));
    assert_eq!(seen.keys().next_back(), Some(&(ROWS - 1)));
    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(hi - lo <= ROWS as usize / SHARDS / 10, "{sizes:?}");
    assert!(
        first_shard.windows(2).any(|w| w[0] > w[1]),
        "storage order, not key order"
    );

    let mut opened = store.open_shard(&tickets[0]).unwrap();
    let mut again = Vec::new();
    opened
        .read(4096, &mut |b| {
            again.extend(
                b.column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(again, first_shard);

    // (A table of fewer pages is split by keys: the conformance suite's tables, whose shards
    // it checks are in key order.)
}

/// A small table `t(id int64 key, n int64, at timestamp)` with three rows, on a new store.
fn store_with_three_rows() -> PostgresStore {
    let store = store_with_table(
        "table: t\nprimary_key: [id]\ncolumns:\n  - { name: id, type: int64 }\n  - { name: n, type: int64 }\n  - { name: at, type: timestamp_ms }\n",
    );
    let rows = (0..3).map(|i| {
        Ok(Change::Upsert(vec![
            Value::Int64(i),
            Value::Int64(i * 10),
            Value::TimestampMs(1_700_000_000_123 + i),
        ]))
    });
    store.apply("t", &mut rows.into_iter()).unwrap();
    store
}

/// Reads a whole snapshot of table `t`, or the first error.
fn read_all(store: &PostgresStore) -> Result<usize> {
    let mut snap = store.snapshot("t", 1)?;
    let mut rows = 0;
    for shard in &mut snap.shards {
        shard.read(2, &mut |b| {
            rows += b.num_rows();
            Ok(())
        })?;
    }
    Ok(rows)
}

/// A column whose type was changed behind the store's back, or a value the store's types
/// cannot hold (an infinite timestamp), is an error that names the table and the column.
#[test]
fn snapshot_values_of_the_wrong_type_are_errors_that_name_the_column() {
    let store = store_with_three_rows();
    assert_eq!(read_all(&store).unwrap(), 3);

    let mut conn = store.conn().unwrap();
    conn.batch_execute(r#"UPDATE data_t SET "at" = 'infinity' WHERE "id" = 1"#)
        .unwrap();
    let err = read_all(&store).unwrap_err().chain().to_string();
    assert!(
        err.contains("table t: column at: expected timestamp") && err.contains("infinity"),
        "{err}"
    );

    conn.batch_execute(r#"ALTER TABLE data_t ALTER COLUMN "n" TYPE TEXT USING "n"::text"#)
        .unwrap();
    let err = read_all(&store).unwrap_err().chain().to_string();
    assert!(
        err.contains("table t: column n: expected int64, the server has text"),
        "{err}"
    );
}

/// A shard whose batch handler fails mid-read can read again on the same connection (its
/// transaction is still open, the rest of the failed query is drained) and sees every row.
#[test]
fn a_shard_reads_again_after_a_failed_batch() {
    let store = store_with_three_rows();
    let mut snap = store.snapshot("t", 1).unwrap();
    let shard = &mut snap.shards[0];
    let mut calls = 0;
    let failed = shard.read(1, &mut |_| {
        calls += 1;
        Err(Error::store("the handler failed"))
    });
    assert_eq!(calls, 1);
    assert!(failed
        .unwrap_err()
        .to_string()
        .contains("the handler failed"));
    let mut rows = 0;
    let read = shard
        .read(1, &mut |b| {
            rows += b.num_rows();
            Ok(())
        })
        .unwrap();
    assert_eq!((read, rows), (3, 3));
}

/// Where the bulk path starts to pay: applies of n new rows, then of the same n rows again
/// (unchanged), through each path, median of five (ms). Run by hand:
/// `scripts/with-postgres.sh cargo test --release --lib bulk_threshold -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn bulk_threshold_timings() {
    const TABLE: &str = "table: kv\nprimary_key: [id]\ncolumns:\n  - { name: id, type: int64 }\n  - { name: v, type: string }\n  - { name: n, type: int64 }\n";
    let (batched, bulk) = batched_and_bulk(TABLE);
    let mut next_id = 0i64;
    for n in [1i64, 10, 100, 1_000, 4_096, 20_000] {
        let mut line = format!("{n:>6} rows:");
        for (name, store) in [("batched", &batched), ("bulk", &bulk)] {
            let (mut new, mut same) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                let first = next_id;
                next_id += n;
                let rows = move || {
                    (first..first + n).map(|i| {
                        Ok(Change::Upsert(vec![
                            Value::Int64(i),
                            Value::String(format!("value {i}")),
                            Value::Int64(i),
                        ]))
                    })
                };
                let t = std::time::Instant::now();
                store.apply("kv", &mut rows()).unwrap();
                new.push(t.elapsed().as_secs_f64() * 1000.0);
                let t = std::time::Instant::now();
                let out = store.apply("kv", &mut rows()).unwrap();
                same.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(out.unchanged, n as u64);
            }
            new.sort_by(f64::total_cmp);
            same.sort_by(f64::total_cmp);
            line += &format!(
                "  {name} {:.1} ms new, {:.1} ms unchanged;",
                new[2], same[2]
            );
        }
        println!("{line}");
    }
}
