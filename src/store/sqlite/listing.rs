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
//! Summaries read the table too: one range scan of the bucket's key range, of only the columns
//! the grouping needs, folded by a [`Summarizer`] (no sort; memory per group). Stores made
//! before 2026-12-08 also kept [`OLD_SUMMARY_INDEX`], a partial covering index of the current
//! objects for summaries; measured on the scale benchmark's 10M-object store it made `du` no
//! faster (from a cold cache 12.2 s against 12.5 s for the table, although the index is 0.6 of
//! the table's size; warm 1.16 s against 1.10 s) and cost 127 bytes an object and a third
//! b-tree on every import, so `ensure_table` drops it (docs/store.md).

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

/// The summaries' partial covering index that stores made before 2026-12-08 have; dropped.
pub(super) const OLD_SUMMARY_INDEX: &str = "data_object_inventory_current";

/// The row filter of current live objects.
const CURRENT: &str = r#""_deleted" = 0 AND "is_latest" IS NOT 0 AND "is_delete_marker" IS NOT 1"#;

/// Drops [`OLD_SUMMARY_INDEX`] when `def` is the object-inventory table and the store has it.
/// Runs inside `ensure_table`'s write transaction.
pub(super) fn drop_old_index(conn: &Connection, def: &TableDef) -> Result<()> {
    if !is_listed_table(def) {
        return Ok(());
    }
    if !has_old_index(conn).map_err(db("looking for the old summary index"))? {
        return Ok(());
    }
    conn.execute_batch(&format!("DROP INDEX {}", quote(OLD_SUMMARY_INDEX)))
        .map_err(db(format_args!("dropping index {OLD_SUMMARY_INDEX}")))?;
    tracing::info!(
        index = OLD_SUMMARY_INDEX,
        "dropped the summary index of an older store: du reads the table"
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

/// The summary scan of the current objects in a key range: `size`, then the one column the
/// grouping reads (`key` by prefix, `storage_class`, `last_modified`), if any.
fn summary_sql(prefix: &str, by: SummaryBy) -> String {
    let grouped = match by {
        SummaryBy::Prefix => ", \"key\"",
        SummaryBy::StorageClass => ", \"storage_class\"",
        SummaryBy::Month => ", \"last_modified\"",
        SummaryBy::SizeBucket => "",
    };
    format!(
        "SELECT \"size\"{grouped} FROM {} WHERE {} AND {CURRENT}",
        quote(&format!("data_{OBJECT_INVENTORY}")),
        range_where(true, !prefix.is_empty())
    )
}

/// Whether the store still has [`OLD_SUMMARY_INDEX`].
fn has_old_index(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = ?1",
        [OLD_SUMMARY_INDEX],
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
/// scan of the table folded by a [`Summarizer`] (no sort, memory per group).
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
    let mut stmt = conn.prepare(&summary_sql(prefix, by)).map_err(at)?;
    let upper = prefix_successor(prefix.as_bytes());
    bind_range(&mut stmt, bucket, prefix.as_bytes(), upper.as_deref()).map_err(at)?;
    let mut rows = stmt.raw_query();
    let mut summary = Summarizer::new(by, prefix);
    while let Some(row) = rows.next().map_err(at)? {
        let size: Option<i64> = row.get(0).map_err(at)?;
        match by {
            SummaryBy::Prefix => {
                let key = text(row, 1, &what)?.unwrap_or_default();
                summary.add(key, size, None, None);
            }
            SummaryBy::StorageClass => summary.add("", size, text(row, 1, &what)?, None),
            SummaryBy::Month => summary.add("", size, None, row.get(1).map_err(at)?),
            SummaryBy::SizeBucket => summary.add("", size, None, None),
        }
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
    fn listings_and_summaries_seek_the_primary_key() {
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
            for by in [
                SummaryBy::StorageClass,
                SummaryBy::Prefix,
                SummaryBy::SizeBucket,
                SummaryBy::Month,
            ] {
                let sql = summary_sql(prefix, by);
                let p = plan(&conn, &sql);
                let want = format!("SEARCH data_{OBJECT_INVENTORY} USING PRIMARY KEY");
                assert!(p.contains(&want), "{sql}: {p}");
                assert!(!p.contains("TEMP B-TREE"), "{sql}: {p}");
            }
        }
    }

    #[test]
    fn the_summary_index_of_an_older_store_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        drop(inventory_store(dir.path()));
        let count = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1",
                [format!("data_{OBJECT_INVENTORY}")],
                |r| r.get(0),
            )
            .unwrap()
        };
        let conn = Connection::open(dir.path().join("s.db")).unwrap();
        assert_eq!(count(&conn), 1, "only the _seq index");
        // The index as the release of 2026-12-07 created it.
        conn.execute_batch(&format!(
            "CREATE INDEX {} ON {} (\"bucket\", \"key\", \"size\", \"storage_class\", \"last_modified\", \"is_latest\", \"is_delete_marker\", \"_deleted\") WHERE {CURRENT}",
            quote(OLD_SUMMARY_INDEX),
            quote(&format!("data_{OBJECT_INVENTORY}"))
        ))
        .unwrap();
        assert_eq!(count(&conn), 2);
        // Declaring the (unchanged) table again is the migration.
        drop(inventory_store(dir.path()));
        assert_eq!(count(&conn), 1);
        assert!(!has_old_index(&conn).unwrap());
    }

    /// Times summaries and listings on an existing store, as the store is (an older one may still
    /// have its summary index, which summaries no longer read);
    /// run with `LAKEPORT_LISTING_DB=path/to/store.db LAKEPORT_LISTING_BUCKET=b cargo test
    /// --lib listing_speed -- --ignored --nocapture` (the store is opened, not migrated).
    #[test]
    #[ignore]
    fn listing_speed() {
        let path = std::env::var("LAKEPORT_LISTING_DB").unwrap();
        let bucket = std::env::var("LAKEPORT_LISTING_BUCKET").unwrap();
        let store = SqliteStore::open(std::path::Path::new(&path)).unwrap();
        let conn = store.connect().unwrap();
        eprintln!(
            "old summary index present: {}",
            has_old_index(&conn).unwrap()
        );
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
