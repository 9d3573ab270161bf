//! Tests of the PostgreSQL store against a real server: `LAKEPORT_TEST_POSTGRES` names it
//! (`make test` runs the tests under `scripts/with-postgres.sh`, which starts a throwaway
//! cluster). Without the variable these tests fail, saying so: they are never skipped.
//! Each test gets a database of its own.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::store::conformance;

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
    let mut admin = postgres::Client::connect(&url, NoTls).unwrap();
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

fn with_store(test: fn(&dyn Store)) {
    test(&fresh_store());
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                with_store(conformance::$name);
            }
        )*
    };
}

/// The listing suite (`store::conformance::listing`), run here like the rest.
mod listing {
    use super::with_store;
    use crate::store::conformance::listing as conformance;

    conformance_tests!(
        paging_returns_every_key_once_in_byte_order,
        versions_and_tombstones,
        delimiter_rolls_up_common_prefixes_across_pages,
        pages_resume_after_concurrent_changes,
        limits_and_bad_tokens,
        unknown_bucket_is_empty,
        summaries_group_exactly,
    );
}

conformance_tests!(
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
    runs_and_task_state,
    changes_after_a_checkpoint,
    changes_with_deletes_and_purging,
    runs_of_a_task_never_overlap,
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
);

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
    let err = PostgresStore::open(&url).unwrap_err().to_string();
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
    done.store(true, Ordering::SeqCst);
    let (mut delivered, passes) = reader.join().unwrap();
    let total = delivered.len();
    delivered.sort_unstable();
    let mut expected: Vec<(i64, i64)> = (0..WRITERS)
        .flat_map(|w| {
            (0..TRANSACTIONS)
                .flat_map(move |tx| (0..1 + (w + tx) % 3).map(move |r| (w, tx * 10 + r)))
        })
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
