//! PostgreSQL side of listing and summarising `object_inventory` (semantics in
//! [`crate::store::listing`], whose page builder and summarizer do the rest): the range reads,
//! the common-prefix skip-scan, the summary scan and the one index they add.
//!
//! Each page, and each summary, is one REPEATABLE READ read-only transaction on a pooled
//! connection. The data table's text columns are `COLLATE "C"`, so `key` sorts and compares by
//! its UTF-8 bytes: S3's order. Bounds are bound as text, and text must be valid UTF-8 without
//! NUL: a byte bound that is not (a prefix's successor may end in a lone continuation byte)
//! is replaced by the least text at or above it, which no stored key can tell apart
//! ([`least_text_at_or_above`]); a bucket name with NUL names no stored bucket.
//!
//! A page reads the primary key `(bucket, key, version_id)` in order, from the page's start
//! to the prefix's successor, in chunks: each chunk is one query with a `LIMIT` (the next
//! resumes after the last row read, `(key, version_id) > (…)`), and the page's transaction
//! turns sequential and bitmap scans off, so that every chunk is an ordered index scan that
//! stops at its limit. (Fetching a portal of one unlimited query in chunks does not do: the
//! server plans it for the whole range, and measured, a bitmap scan then read every index
//! entry of the bucket for a page of ten.) The first chunk is what the page still needs (one
//! row with a delimiter, whose first row may well be a common prefix), each next one what it
//! still needs plus as many rows as the range has stepped over so far (tombstones are left out
//! by the query; versions that are not current and repeated versions of a key are stepped
//! over). After a common prefix the read starts again at the prefix's successor (`"a/b/"` →
//! `"a/b0"`), so a folder's rows are never read. A page thus reads about `limit` rows plus
//! those it steps over (measured: a page of ten common prefixes of folders of 5,000 keys took
//! 11 index scans of 2 entries each, a key's live row and its dead version not yet vacuumed).
//!
//! Summaries read every current object of the range, so the planner is left free: it picks
//! [`CURRENT_INDEX`], a partial covering index of the current live objects, `(bucket, key)
//! INCLUDE (size, storage_class, last_modified) WHERE NOT _deleted AND is_latest IS NOT FALSE
//! AND is_delete_marker IS NOT TRUE`, when a scan of it alone (index-only, once vacuum has set
//! the visibility map; PostgreSQL needs no column of the predicate in the index) is cheaper
//! than reading the wide table. The rows stream from the server (`query_raw`) into a
//! [`Summarizer`]: memory per group, not per object, and no sort. `ensure_table`
//! creates the index with the table, or once on a store made before it existed (a plain
//! `CREATE INDEX`, which holds off writes to the table while it is built: `CONCURRENTLY`
//! cannot run in `ensure_table`'s transaction).

use chrono::{DateTime, Utc};

use super::postgres::fallible_iterator::FallibleIterator;
use super::postgres::types::ToSql;
use super::postgres::types::Type;
use super::postgres::{IsolationLevel, Row, Transaction};
use super::{quote, Conn, DbFailure, PostgresStore};
use crate::error::{Error, Result};
use crate::model::schema::OBJECT_INVENTORY;
use crate::model::TableDef;
use crate::store::listing::{
    is_listed_table, least_text_at_or_above, prefix_successor, text_lower_bound, ListPage,
    ListQuery, ObjectEntry, PageBuilder, Step, Summarizer, SummaryBy, SummaryRow, MAX_LIST_LIMIT,
};

/// Name of the summaries' partial covering index on `data_object_inventory`.
pub(super) const CURRENT_INDEX: &str = "data_object_inventory_current";

/// The row filter of current live objects: the index's predicate, which summaries repeat
/// word for word so that the planner can use the index.
const CURRENT: &str =
    r#"NOT "_deleted" AND "is_latest" IS NOT FALSE AND "is_delete_marker" IS NOT TRUE"#;

/// Planner settings of a page's transaction: no whole-range plan.
const PAGE_PLAN: &str = "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off";

/// The largest chunk a page fetches at once.
const MAX_FETCH: usize = MAX_LIST_LIMIT + 1;

const LIST_COLUMNS: &str = r#""key", "is_latest", "is_delete_marker", "version_id", "size", "last_modified", "storage_class", "etag""#;

fn data_table() -> String {
    quote(&format!("data_{OBJECT_INVENTORY}"))
}

fn create_index_sql() -> String {
    format!(
        r#"CREATE INDEX IF NOT EXISTS {} ON {} ("bucket", "key") INCLUDE ("size", "storage_class", "last_modified") WHERE {CURRENT}"#,
        quote(CURRENT_INDEX),
        data_table()
    )
}

/// Creates [`CURRENT_INDEX`] when `def` is the object-inventory table and the index is
/// missing (on a store made before listing existed it is built once, here). Runs inside
/// `ensure_table`'s transaction, under its lock. An index that exists is not touched: even
/// `CREATE INDEX IF NOT EXISTS` would first lock the table against writes.
pub(super) fn ensure_index(
    s: &PostgresStore,
    tx: &mut Transaction<'_>,
    def: &TableDef,
) -> Result<()> {
    if !is_listed_table(def) {
        return Ok(());
    }
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&quote(CURRENT_INDEX)],
        )
        .map_err(s.db("looking for the listing index"))?
        .get(0);
    if exists {
        return Ok(());
    }
    let started = std::time::Instant::now();
    tx.batch_execute(&create_index_sql())
        .map_err(s.db(format_args!("creating index {CURRENT_INDEX}")))?;
    tracing::info!(
        index = CURRENT_INDEX,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "created the listing index"
    );
    Ok(())
}

/// A read-only REPEATABLE READ transaction on `conn`, after checking `object_inventory` is
/// declared.
fn reader<'c>(s: &PostgresStore, conn: &'c mut Conn, what: &str) -> Result<Transaction<'c>> {
    s.table_sql(&mut **conn, OBJECT_INVENTORY)?;
    conn.build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(s.db(format_args!("{what}: starting a read transaction")))
}

/// The summary scan: key, size, storage class, last modified of the current objects in a key
/// range.
fn summary_sql(upper: bool) -> String {
    format!(
        "SELECT \"key\", \"size\", \"storage_class\", \"last_modified\" FROM {} \
         WHERE \"bucket\" = $1 AND \"key\" >= $2{} AND {CURRENT}",
        data_table(),
        if upper { " AND \"key\" < $3" } else { "" }
    )
}

fn entry(key: &str, row: &Row) -> Result<ObjectEntry> {
    let at = |e: super::postgres::Error| {
        Error::store_caused(
            format!("listing {OBJECT_INVENTORY}: reading the row of key {key:?}"),
            DbFailure::new(&e),
        )
    };
    let version_id: Option<String> = row.try_get(3).map_err(at)?;
    let modified: Option<DateTime<Utc>> = row.try_get(5).map_err(at)?;
    Ok(ObjectEntry {
        key: key.to_string(),
        version_id: version_id.filter(|v| !v.is_empty()),
        size: row.try_get(4).map_err(at)?,
        last_modified_ms: modified.map(|t| t.timestamp_millis()),
        storage_class: row.try_get(6).map_err(at)?,
        etag: row.try_get(7).map_err(at)?,
    })
}

/// Where the next read of a page starts.
enum Start {
    /// At a key bound, inclusive or not (the page's start, or past a common prefix).
    Key(String, bool),
    /// After this row (key, version id): the rest of a range a chunk did not reach.
    Row(String, String),
}

impl Start {
    /// The read's SQL: parameters `$1` bucket, `$2` key, `$3` rows at most, `$4` version
    /// id (`Row`), `$5` upper bound (with `upper`).
    fn sql(&self, upper: bool) -> String {
        let lower = match self {
            Start::Key(_, true) => r#""key" >= $2"#,
            Start::Key(_, false) => r#""key" > $2"#,
            Start::Row(..) => r#"("key", "version_id") > ($2, $4)"#,
        };
        format!(
            "SELECT {LIST_COLUMNS} FROM {} WHERE \"bucket\" = $1 AND {lower}{} AND NOT \"_deleted\" \
             ORDER BY \"key\", \"version_id\" LIMIT $3",
            data_table(),
            if upper { " AND \"key\" < $5" } else { "" }
        )
    }
}

/// [`Store::list_objects`](crate::store::Store::list_objects) for PostgreSQL.
pub(super) fn list_objects(s: &PostgresStore, q: &ListQuery) -> Result<ListPage> {
    let (lower, inclusive) = q.start()?;
    let what = format!("listing {OBJECT_INVENTORY} bucket {:?}", q.bucket);
    let at = |e: super::postgres::Error| s.db(&what)(e);
    let mut conn = s.conn()?;
    let mut tx = reader(s, &mut conn, &what)?;
    let mut page = PageBuilder::new(q);
    if q.bucket.contains('\0') {
        return Ok(page.finish());
    }
    // The one right plan of a read is the ordered scan of the primary key that stops at its
    // LIMIT; left free, the planner may read a whole range into a bitmap and sort it.
    tx.batch_execute(PAGE_PLAN).map_err(at)?;
    let upper = prefix_successor(q.prefix.as_bytes()).and_then(|b| least_text_at_or_above(&b));
    let mut from = text_lower_bound(&lower, inclusive).map(|(k, inc)| Start::Key(k, inc));
    // Rows read since the last seek, and items they made.
    let (mut read, mut made) = (0, 0);
    'read: while let Some(f) = from.take() {
        let need = q.limit + 1 - page.items();
        let chunk = if read == 0 && q.delimiter.is_some() {
            1
        } else {
            (need + (read - made)).min(MAX_FETCH)
        };
        let (key, version) = match &f {
            Start::Key(k, _) => (k.as_str(), ""),
            Start::Row(k, v) => (k.as_str(), v.as_str()),
        };
        let rows = tx
            .query_typed(
                &f.sql(upper.is_some()),
                &[
                    (&q.bucket, Type::TEXT),
                    (&key, Type::TEXT),
                    (&i64::try_from(chunk).unwrap_or(i64::MAX), Type::INT8),
                    (&version, Type::TEXT),
                    (&upper, Type::TEXT),
                ],
            )
            .map_err(at)?;
        for row in &rows {
            read += 1;
            let items = page.items();
            let key: &str = row.try_get(0).map_err(at)?;
            let is_latest: Option<bool> = row.try_get(1).map_err(at)?;
            let is_delete_marker: Option<bool> = row.try_get(2).map_err(at)?;
            let step = page.take(key, is_latest, is_delete_marker, || entry(key, row))?;
            made += page.items() - items;
            match step {
                Step::Next => {}
                Step::Seek(next) => {
                    from = text_lower_bound(&next, true).map(|(k, inc)| Start::Key(k, inc));
                    (read, made) = (0, 0);
                    continue 'read;
                }
                Step::Stop => break 'read,
            }
        }
        if rows.len() == chunk {
            if let Some(last) = rows.last() {
                from = Some(Start::Row(
                    last.try_get(0).map_err(at)?,
                    last.try_get(3).map_err(at)?,
                ));
            }
        }
    }
    tx.commit().map_err(at)?;
    Ok(page.finish())
}

/// [`Store::summarize_objects`](crate::store::Store::summarize_objects) for PostgreSQL: one
/// range scan of [`CURRENT_INDEX`], streamed from the server into a [`Summarizer`].
pub(super) fn summarize_objects(
    s: &PostgresStore,
    bucket: &str,
    prefix: &str,
    by: SummaryBy,
) -> Result<Vec<SummaryRow>> {
    let what = format!(
        "summarising {OBJECT_INVENTORY} bucket {bucket:?} by {}",
        by.as_str()
    );
    let at = |e: super::postgres::Error| s.db(&what)(e);
    let mut conn = s.conn()?;
    let mut tx = reader(s, &mut conn, &what)?;
    let mut summary = Summarizer::new(by, prefix);
    let lower = text_lower_bound(prefix.as_bytes(), true);
    let (Some((lower, _)), false) = (lower, bucket.contains('\0')) else {
        return Ok(summary.finish());
    };
    let upper = prefix_successor(prefix.as_bytes()).and_then(|b| least_text_at_or_above(&b));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&bucket, &lower];
    if let Some(u) = &upper {
        params.push(u);
    }
    let mut rows = tx
        .query_raw(&summary_sql(upper.is_some()), params)
        .map_err(at)?;
    while let Some(row) = rows.next().map_err(at)? {
        let key: &str = row.try_get(0).map_err(at)?;
        let size: Option<i64> = row.try_get(1).map_err(at)?;
        let class: Option<&str> = row.try_get(2).map_err(at)?;
        let modified: Option<DateTime<Utc>> = row.try_get(3).map_err(at)?;
        summary.add(key, size, class, modified.map(|t| t.timestamp_millis()));
    }
    drop(rows);
    tx.commit().map_err(at)?;
    Ok(summary.finish())
}

#[cfg(test)]
mod tests {
    use crate::store::Listing;
    use crate::store::Tables;
    use std::collections::BTreeSet;

    use super::super::tests::fresh_store;
    use super::*;
    use crate::model::schema::{parent_folder, OBJECT_INVENTORY_YAML};
    use crate::store::listing::{common_prefix, Cursor};
    use crate::store::{Change, Value};

    fn inventory_def() -> TableDef {
        TableDef::from_yaml(OBJECT_INVENTORY_YAML, OBJECT_INVENTORY).unwrap()
    }

    fn inventory_store() -> PostgresStore {
        let store = fresh_store();
        store.ensure_table(&inventory_def()).unwrap();
        store
    }

    /// Current objects `keys` in `bucket`, each `size` 1.
    fn put(store: &PostgresStore, bucket: &str, keys: &[&str]) {
        let def = inventory_def();
        let mut changes = keys.iter().map(|k| {
            Ok(Change::Upsert(
                def.columns
                    .iter()
                    .map(|c| match c.name.as_str() {
                        "bucket" => Value::String(bucket.into()),
                        "key" => Value::String((*k).into()),
                        "prefix" => Value::String(parent_folder(k).into()),
                        "version_id" => Value::String(String::new()),
                        "size" => Value::Int64(1),
                        _ => Value::Null,
                    })
                    .collect(),
            ))
        });
        store.apply(OBJECT_INVENTORY, &mut changes).unwrap();
    }

    /// EXPLAIN of `sql` with typed parameters.
    fn plan(conn: &mut Conn, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> String {
        conn.query_typed(&format!("EXPLAIN {sql}"), params)
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A page's reads are ordered scans of the primary key that stop at their limit (no
    /// sort, no bitmap of the whole range), even reading a whole bucket; summaries can scan
    /// the covering index alone.
    #[test]
    fn pages_seek_the_primary_key_and_summaries_scan_the_covering_index() {
        let store = inventory_store();
        let keys: Vec<String> = (0..20_000)
            .map(|i| format!("f{}/k{i:05}", i % 20))
            .collect();
        put(
            &store,
            "b",
            &keys.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let mut conn = store.conn().unwrap();
        // As autovacuum leaves it: statistics, and the visibility map index-only scans use.
        conn.batch_execute(&format!("VACUUM ANALYZE {}", data_table()))
            .unwrap();
        let starts = [
            Start::Key(String::new(), true),
            Start::Key("f1/".into(), false),
            Start::Row("f1/k00001".into(), String::new()),
        ];
        for start in &starts {
            for upper in [None, Some("f2")] {
                let sql = start.sql(upper.is_some());
                let p = plan(
                    &mut conn,
                    &sql,
                    &[
                        (&"b", Type::TEXT),
                        (&"", Type::TEXT),
                        (&11i64, Type::INT8),
                        (&"", Type::TEXT),
                        (&upper, Type::TEXT),
                    ],
                );
                assert!(
                    p.contains("Index Scan using data_object_inventory_pkey"),
                    "{sql}: {p}"
                );
                assert!(!p.contains("Sort") && !p.contains("Bitmap"), "{sql}: {p}");
            }
        }
        // A summary of most of a table this narrow may rightly read the table itself, or its
        // primary key when the table is in key order (as bulk writes leave it); what matters
        // is that the covering index can serve one alone: with the primary key dropped (in a
        // transaction rolled back after the EXPLAIN) and no table scans, it does.
        conn.batch_execute(
            "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; \
             ALTER TABLE \"data_object_inventory\" DROP CONSTRAINT \"data_object_inventory_pkey\"",
        )
        .unwrap();
        for upper in [None, Some("f2")] {
            let sql = summary_sql(upper.is_some());
            let p = plan(
                &mut conn,
                &sql,
                &[
                    (&"b", Type::TEXT),
                    (&"f1", Type::TEXT),
                    (&upper, Type::TEXT),
                ],
            );
            assert!(
                p.contains(&format!("Index Only Scan using {CURRENT_INDEX}")),
                "{sql}: {p}"
            );
        }
        conn.batch_execute("ROLLBACK").unwrap();
    }

    #[test]
    fn the_index_is_built_once_and_only_for_object_inventory() {
        let store = inventory_store();
        let mut conn = store.conn().unwrap();
        let count = |conn: &mut Conn| -> i64 {
            conn.query_one(
                "SELECT count(*) FROM pg_indexes WHERE indexname = $1",
                &[&CURRENT_INDEX],
            )
            .unwrap()
            .get(0)
        };
        assert_eq!(count(&mut conn), 1);
        conn.batch_execute(&format!("DROP INDEX {}", quote(CURRENT_INDEX)))
            .unwrap();
        assert_eq!(count(&mut conn), 0);
        // Declaring the (unchanged) table again is the migration.
        store.ensure_table(&inventory_def()).unwrap();
        assert_eq!(count(&mut conn), 1);
        store.ensure_table(&inventory_def()).unwrap();
        assert_eq!(count(&mut conn), 1);
        let other = TableDef::from_yaml(
            "table: other\nprimary_key: [k]\ncolumns:\n  - { name: k, type: string }\n",
            "other",
        )
        .unwrap();
        store.ensure_table(&other).unwrap();
        let n: i64 = conn
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'data_other'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 2, "the primary key and data_other_by_seq");
    }

    /// Every page of `q`, from the first: the keys and common prefixes in order.
    fn walk(store: &PostgresStore, q: &ListQuery) -> Vec<String> {
        let mut q = q.clone();
        let mut out = Vec::new();
        loop {
            let page = store.list_objects(&q).unwrap();
            let mut items: Vec<String> = page.entries.iter().map(|e| e.key.clone()).collect();
            items.extend(page.common_prefixes.iter().cloned());
            items.sort();
            out.extend(items);
            match page.next_continuation_token {
                Some(t) => q.continuation_token = Some(t),
                None => return out,
            }
        }
    }

    /// Prefixes, common prefixes and tokens whose byte bounds are not text (a successor that
    /// is not UTF-8, a NUL) list exactly what they would in byte order.
    #[test]
    fn bounds_that_are_not_text_list_in_byte_order() {
        let store = inventory_store();
        let keys = [
            "a",
            "\u{7f}",
            "\u{7f}x",
            "\u{7f}/y",
            "\u{80}",
            "ÿ",
            "ÿ/a",
            "ÿ/b",
            "ÿa",
            "ÿÿ/c",
            "\u{100}",
            "\u{FFFF}",
            "\u{FFFF}/z",
            "\u{10000}",
            "\u{10FFFF}",
            "\u{10FFFF}/q",
            "z",
        ];
        put(&store, "b", &keys);
        let keys: BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
        for prefix in [
            "",
            "\u{7f}",
            "ÿ",
            "ÿ/",
            "\u{FFFF}",
            "\u{10FFFF}",
            "a\0",
            "\0",
        ] {
            for delimiter in [None, Some('/'), Some('ÿ')] {
                for limit in [1, 2, 100] {
                    let mut q = ListQuery::new("b");
                    q.prefix = prefix.into();
                    q.delimiter = delimiter;
                    q.limit = limit;
                    let mut want: Vec<String> = Vec::new();
                    for k in keys.iter().filter(|k| k.starts_with(prefix)) {
                        let item = delimiter
                            .and_then(|d| common_prefix(k, prefix, d))
                            .unwrap_or(k);
                        if want.last().map(String::as_str) != Some(item) {
                            want.push(item.to_string());
                        }
                    }
                    assert_eq!(walk(&store, &q), want, "{prefix:?} {delimiter:?} {limit}");
                }
            }
            let objects: u64 = store
                .summarize_objects("b", prefix, SummaryBy::SizeBucket)
                .unwrap()
                .iter()
                .map(|r| r.objects)
                .sum();
            let want = keys.iter().filter(|k| k.starts_with(prefix)).count();
            assert_eq!(objects, want as u64, "{prefix:?}");
        }
        // A token after a key no text can be: the keys after it.
        let mut q = ListQuery::new("b");
        q.continuation_token = Some(Cursor::AfterKey("ÿ\0".into()).encode());
        let after: Vec<String> = keys
            .iter()
            .filter(|k| k.as_str() > "ÿ\0")
            .cloned()
            .collect();
        assert_eq!(walk(&store, &q), after);
        // A bucket no text can name is empty.
        assert_eq!(
            store.list_objects(&ListQuery::new("b\0")).unwrap(),
            ListPage::default()
        );
        assert!(store
            .summarize_objects("b\0", "", SummaryBy::Month)
            .unwrap()
            .is_empty());
    }
}
