//! SQLite side of listing and summarising `object_inventory` (semantics in
//! [`crate::store::listing`]): the range queries, the common-prefix skip-scan, the summary
//! queries and the one index they add.
//!
//! Both read on a connection of their own inside one read transaction, so a long summary
//! never holds the write connection. Text comparisons use SQLite's default BINARY collation,
//! which is `memcmp` of the UTF-8 bytes: S3's order.
//!
//! Listing reads the table itself (`WITHOUT ROWID`, clustered on `bucket, key, version_id`):
//! a page is one range read `bucket = ? AND key >= ? AND key < ?`, and after each common
//! prefix a new range read starts at the prefix's successor (`"a/b/"` → `"a/b0"`), so the
//! rows of a folder are never read. Tombstones and non-current versions in the range are
//! stepped over.
//!
//! Summaries read [`CURRENT_INDEX`], a partial covering index of the current live objects:
//! `(bucket, key, size, storage_class, last_modified, is_latest, is_delete_marker, _deleted)
//! WHERE _deleted = 0 AND is_latest IS NOT 0 AND is_delete_marker IS NOT 1` (the flag columns
//! are in it only because SQLite does not otherwise count a partial index as covering). A
//! summary is then one range scan of narrow index entries (no table row is read), whatever the
//! grouping and prefix, folded by a [`Summarizer`] (no sort; memory per group).
//! `ensure_table` creates the index with the table, and builds it once on a store made before
//! it existed. docs/performance.md ("Listing from the store") has its measured cost and gain.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

use super::{db, SqliteStore};
use crate::error::{Error, Result};
use crate::model::schema::OBJECT_INVENTORY;
use crate::model::TableDef;
use crate::store::listing::{
    is_listed_table, prefix_successor, ListPage, ListQuery, ObjectEntry, PageBuilder, Step,
    Summarizer, SummaryBy, SummaryRow,
};
use crate::store::sql::quote;

/// Name of the summaries' partial covering index on `data_object_inventory`.
pub(super) const CURRENT_INDEX: &str = "data_object_inventory_current";

/// The row filter of current live objects; summaries repeat it word for word so that
/// SQLite can use the partial index.
const CURRENT: &str = r#""_deleted" = 0 AND "is_latest" IS NOT 0 AND "is_delete_marker" IS NOT 1"#;

fn create_index_sql() -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} (\"bucket\", \"key\", \"size\", \"storage_class\", \"last_modified\", \"is_latest\", \"is_delete_marker\", \"_deleted\") WHERE {CURRENT}",
        quote(CURRENT_INDEX),
        quote(&format!("data_{OBJECT_INVENTORY}"))
    )
}

/// Creates [`CURRENT_INDEX`] when `def` is the object-inventory table and the index is
/// missing (a store made before listing existed: the index is built once, here). Runs inside
/// `ensure_table`'s write transaction.
pub(super) fn ensure_index(conn: &Connection, def: &TableDef) -> Result<()> {
    if !is_listed_table(def) {
        return Ok(());
    }
    if has_index(conn).map_err(db("looking for the listing index"))? {
        return Ok(());
    }
    let started = std::time::Instant::now();
    conn.execute_batch(&create_index_sql())
        .map_err(db(format_args!("creating index {CURRENT_INDEX}")))?;
    tracing::info!(
        index = CURRENT_INDEX,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "created the listing index"
    );
    Ok(())
}

/// Binds raw bytes as TEXT (a successor bound may not be valid UTF-8; SQLite compares
/// TEXT with `memcmp` and does not check).
struct TextBytes<'a>(&'a [u8]);

impl ToSql for TextBytes<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0)))
    }
}

/// A read connection in a read transaction, after checking `object_inventory` is declared.
fn reader(store: &SqliteStore, what: &str) -> Result<Connection> {
    let conn = store.connect()?;
    store.table_sql(&conn, OBJECT_INVENTORY)?;
    conn.execute_batch("BEGIN")
        .map_err(db(format_args!("{what}: starting a read transaction")))?;
    Ok(conn)
}

/// `WHERE` of a key range in one bucket: `?1` bucket, `?2` lower bound, `?3` upper bound.
fn range_where(inclusive: bool, upper: bool) -> String {
    format!(
        "\"bucket\" = ?1 AND \"key\" {} ?2{}",
        if inclusive { ">=" } else { ">" },
        if upper { " AND \"key\" < ?3" } else { "" }
    )
}

fn bind_range(
    stmt: &mut rusqlite::Statement<'_>,
    bucket: &str,
    lower: &[u8],
    upper: Option<&[u8]>,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(1, bucket)?;
    stmt.raw_bind_parameter(2, TextBytes(lower))?;
    if let Some(u) = upper {
        stmt.raw_bind_parameter(3, TextBytes(u))?;
    }
    Ok(())
}

const LIST_COLUMNS: &str = "\"key\", \"is_latest\", \"is_delete_marker\", \"version_id\", \"size\", \"last_modified\", \"storage_class\", \"etag\"";

fn entry(key: &str, row: &rusqlite::Row<'_>) -> Result<ObjectEntry> {
    let at = |e: rusqlite::Error| {
        Error::store_caused(
            format!("listing {OBJECT_INVENTORY}: reading the row of key {key:?}"),
            e,
        )
    };
    let version_id: Option<String> = row.get(3).map_err(at)?;
    Ok(ObjectEntry {
        key: key.to_string(),
        version_id: version_id.filter(|v| !v.is_empty()),
        size: row.get(4).map_err(at)?,
        last_modified_ms: row.get(5).map_err(at)?,
        storage_class: row.get(6).map_err(at)?,
        etag: row.get(7).map_err(at)?,
    })
}

/// [`Store::list_objects`](crate::store::Store::list_objects) for SQLite.
pub(super) fn list_objects(store: &SqliteStore, q: &ListQuery) -> Result<ListPage> {
    let (mut lower, mut inclusive) = q.start()?;
    let what = format!("listing {OBJECT_INVENTORY} bucket {:?}", q.bucket);
    let conn = reader(store, &what)?;
    let at = |e: rusqlite::Error| Error::store_caused(what.to_string(), e);
    let upper = prefix_successor(q.prefix.as_bytes());
    let data = quote(&format!("data_{OBJECT_INVENTORY}"));
    let sql = |inclusive: bool| {
        format!(
            "SELECT {LIST_COLUMNS} FROM {data} WHERE {} AND \"_deleted\" = 0 ORDER BY \"key\", \"version_id\"",
            range_where(inclusive, upper.is_some())
        )
    };
    let (from_sql, after_sql) = (sql(true), sql(false));
    let mut page = PageBuilder::new(q);
    'seek: loop {
        let mut stmt = conn
            .prepare_cached(if inclusive { &from_sql } else { &after_sql })
            .map_err(at)?;
        bind_range(&mut stmt, &q.bucket, &lower, upper.as_deref()).map_err(at)?;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(at)? {
            let key = match row.get_ref(0).map_err(at)? {
                ValueRef::Text(t) => std::str::from_utf8(t).map_err(|_| {
                    Error::store(format!(
                        "{what}: key {:?} is not UTF-8",
                        String::from_utf8_lossy(t)
                    ))
                })?,
                other => {
                    return Err(Error::store(format!(
                        "{what}: expected a TEXT key, found {:?}",
                        other.data_type()
                    )))
                }
            };
            let is_latest: Option<bool> = row.get(1).map_err(at)?;
            let is_delete_marker: Option<bool> = row.get(2).map_err(at)?;
            match page.take(key, is_latest, is_delete_marker, || entry(key, row))? {
                Step::Next => {}
                Step::Seek(next) => {
                    (lower, inclusive) = (next, true);
                    continue 'seek;
                }
                Step::Stop => break 'seek,
            }
        }
        break;
    }
    Ok(page.finish())
}

/// The summary scan: key, size, storage class, last modified of the current objects in a
/// key range; through [`CURRENT_INDEX`] when `indexed` (SQLite's planner, without statistics,
/// may pick the wider primary key for the same range).
fn summary_sql(prefix: &str, indexed: bool) -> String {
    let index = if indexed {
        format!(" INDEXED BY {}", quote(CURRENT_INDEX))
    } else {
        String::new()
    };
    format!(
        "SELECT \"key\", \"size\", \"storage_class\", \"last_modified\" FROM {}{index} WHERE {} AND {CURRENT}",
        quote(&format!("data_{OBJECT_INVENTORY}")),
        range_where(true, !prefix.is_empty())
    )
}

/// Whether [`CURRENT_INDEX`] exists (a store whose `object_inventory` was declared by an older
/// build and not since lacks it; summaries then read the table).
fn has_index(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = ?1",
        [CURRENT_INDEX],
        |r| r.get(0),
    )
}

/// A TEXT column as `&str` (None for NULL); anything else is an error naming the column.
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize, what: &str) -> Result<Option<&'r str>> {
    match row
        .get_ref(i)
        .map_err(|e| Error::store_caused(what.to_string(), e))?
    {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => std::str::from_utf8(t).map(Some).map_err(|_| {
            Error::store(format!(
                "{what}: column {i} holds text that is not UTF-8: {:?}",
                String::from_utf8_lossy(t)
            ))
        }),
        other => Err(Error::store(format!(
            "{what}: column {i}: expected TEXT, found {:?}",
            other.data_type()
        ))),
    }
}

/// [`Store::summarize_objects`](crate::store::Store::summarize_objects) for SQLite: one range
/// scan of [`CURRENT_INDEX`] folded by a [`Summarizer`] (no sort, memory per group).
pub(super) fn summarize_objects(
    store: &SqliteStore,
    bucket: &str,
    prefix: &str,
    by: SummaryBy,
) -> Result<Vec<SummaryRow>> {
    let what = format!(
        "summarising {OBJECT_INVENTORY} bucket {bucket:?} by {}",
        by.as_str()
    );
    let conn = reader(store, &what)?;
    let at = |e: rusqlite::Error| Error::store_caused(what.to_string(), e);
    let indexed = has_index(&conn).map_err(at)?;
    let mut stmt = conn.prepare(&summary_sql(prefix, indexed)).map_err(at)?;
    let upper = prefix_successor(prefix.as_bytes());
    bind_range(&mut stmt, bucket, prefix.as_bytes(), upper.as_deref()).map_err(at)?;
    let mut rows = stmt.raw_query();
    let mut summary = Summarizer::new(by, prefix);
    while let Some(row) = rows.next().map_err(at)? {
        let key = text(row, 0, &what)?.unwrap_or_default();
        let size: Option<i64> = row.get(1).map_err(at)?;
        let class = text(row, 2, &what)?;
        let modified: Option<i64> = row.get(3).map_err(at)?;
        summary.add(key, size, class, modified);
    }
    Ok(summary.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::tests::query_plan as plan;
    use crate::store::{Listing, Tables};

    fn inventory_store(dir: &std::path::Path) -> SqliteStore {
        let store = SqliteStore::open(&dir.join("s.db")).unwrap();
        let def = TableDef::from_yaml(
            crate::model::schema::OBJECT_INVENTORY_YAML,
            OBJECT_INVENTORY,
        )
        .unwrap();
        store.ensure_table(&def).unwrap();
        store
    }

    #[test]
    fn listing_seeks_the_primary_key_and_summaries_scan_the_covering_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = inventory_store(dir.path());
        let conn = store.connect().unwrap();
        let data = quote(&format!("data_{OBJECT_INVENTORY}"));
        for (inclusive, upper) in [(true, true), (false, true), (true, false), (false, false)] {
            let sql = format!(
                "SELECT {LIST_COLUMNS} FROM {data} WHERE {} AND \"_deleted\" = 0 ORDER BY \"key\", \"version_id\"",
                range_where(inclusive, upper)
            );
            let p = plan(&conn, &sql);
            assert!(
                p.contains("SEARCH") && p.contains("PRIMARY KEY"),
                "{sql}: {p}"
            );
            assert!(!p.contains("TEMP B-TREE"), "{sql}: {p}");
        }
        for prefix in ["", "logs/"] {
            let sql = summary_sql(prefix, true);
            let p = plan(&conn, &sql);
            let want =
                format!("SEARCH data_{OBJECT_INVENTORY} USING COVERING INDEX {CURRENT_INDEX}");
            assert!(p.contains(&want), "{sql}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{sql}: {p}");
        }
    }

    #[test]
    fn index_is_built_once_on_an_older_store() {
        let dir = tempfile::tempdir().unwrap();
        drop(inventory_store(dir.path()));
        let count = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                [CURRENT_INDEX],
                |r| r.get(0),
            )
            .unwrap()
        };
        let conn = Connection::open(dir.path().join("s.db")).unwrap();
        assert_eq!(count(&conn), 1);
        conn.execute_batch(&format!("DROP INDEX {}", quote(CURRENT_INDEX)))
            .unwrap();
        assert_eq!(count(&conn), 0);
        // Declaring the (unchanged) table again is the migration.
        drop(inventory_store(dir.path()));
        assert_eq!(count(&conn), 1);
        // Other tables get no such index.
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let other = TableDef::from_yaml(
            "table: other\nprimary_key: [k]\ncolumns:\n  - { name: k, type: string }\n",
            "other",
        )
        .unwrap();
        store.ensure_table(&other).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'data_other'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "only data_other_by_seq");
    }

    /// Times summaries and listings on an existing store, with the index as the store has it;
    /// run with `LAKEPORT_LISTING_DB=path/to/store.db LAKEPORT_LISTING_BUCKET=b cargo test
    /// --lib listing_speed -- --ignored --nocapture` (the store is opened, not migrated).
    #[test]
    #[ignore]
    fn listing_speed() {
        let path = std::env::var("LAKEPORT_LISTING_DB").unwrap();
        let bucket = std::env::var("LAKEPORT_LISTING_BUCKET").unwrap();
        let store = SqliteStore::open(std::path::Path::new(&path)).unwrap();
        let conn = store.connect().unwrap();
        eprintln!("index present: {}", has_index(&conn).unwrap());
        for by in [
            SummaryBy::StorageClass,
            SummaryBy::Prefix,
            SummaryBy::SizeBucket,
            SummaryBy::Month,
        ] {
            let t = std::time::Instant::now();
            let rows = store.summarize_objects(&bucket, "", by).unwrap();
            let n: u64 = rows.iter().map(|r| r.objects).sum();
            eprintln!("du by {}: {n} objects in {:?}", by.as_str(), t.elapsed());
        }
        for delimiter in [None, Some('/')] {
            let mut q = ListQuery::new(bucket.clone());
            q.delimiter = delimiter;
            let t = std::time::Instant::now();
            let page = store.list_objects(&q).unwrap();
            eprintln!(
                "ls first page (delimiter {delimiter:?}): {} entries, {} prefixes in {:?}",
                page.entries.len(),
                page.common_prefixes.len(),
                t.elapsed()
            );
        }
    }

    #[test]
    fn binary_collation_is_utf8_byte_order() {
        let conn = Connection::open_in_memory().unwrap();
        // U+FF61 sorts before U+1F600 in UTF-8 bytes (EF.. < F0..) but after it in UTF-16
        // (FF61 > D83D); '/' (2F) sorts between '!' (21) and '0' (30).
        let mut keys = vec![
            "a\u{1F600}",
            "a\u{FF61}",
            "a0",
            "a/",
            "a!",
            "a",
            "A",
            "é",
            "z",
        ];
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY) WITHOUT ROWID")
            .unwrap();
        for k in &keys {
            conn.execute("INSERT INTO t VALUES (?1)", [k]).unwrap();
        }
        let stored: Vec<String> = conn
            .prepare("SELECT k FROM t ORDER BY k")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        keys.sort();
        assert_eq!(stored, keys);
        assert!(
            keys.iter().position(|k| *k == "a\u{FF61}")
                < keys.iter().position(|k| *k == "a\u{1F600}")
        );
    }
}
