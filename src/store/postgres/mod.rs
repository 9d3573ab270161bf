//! PostgreSQL backend of the metadata store (`--store postgres://user@host:port/db`).
//!
//! Same semantics as the SQLite backend (the conformance suite runs on both); what differs is
//! that PostgreSQL runs writers concurrently, from any number of lakeport processes.
//!
//! # Layout
//! - `_lakeport_meta(id = 1, seq, last_write_ms)`: the store's highest `_seq` and the write
//!   time of its newest transaction; its one row is also the commit lock (below).
//! - `_lakeport_tables(name, definition)`: every declared table, its [`TableDef`] as JSON.
//! - `_lakeport_runs`, `_lakeport_tasks`, `_lakeport_live` (the `runs` submodule) and
//!   `_lakeport_imports` (the `import` submodule): the same records as in SQLite.
//! - `data_<table>`: the declared columns (`TEXT COLLATE "C"`, `BIGINT`, `DOUBLE PRECISION`,
//!   `BOOLEAN`, `BYTEA`, `TIMESTAMPTZ`), then `_seq BIGINT`, `_write_time TIMESTAMPTZ`,
//!   `_deleted BOOLEAN`; primary key = the declared key (its index includes `_deleted`, so
//!   that counting and bounding live rows in key order reads the index alone), an index on
//!   `_seq`. Text sorts by
//!   bytes (`COLLATE "C"`), as S3 lists keys and as SQLite compares.
//!
//! # Change sequence under concurrent writers
//!
//! A `_seq` taken from a counter when a row is written does not commit in order: a slow
//! transaction's lower number can become visible *after* a fast transaction's higher one, and
//! an incremental run that delivered up to the higher one would skip the lower forever.
//!
//! So `_seq` is **allocated at commit**. A write transaction writes its rows with a
//! placeholder `_seq = -ordinal` (negative, so never mistaken for a committed one; no other
//! transaction sees them before commit anyway). As its last statements it locks the meta row
//! (`SELECT … FOR UPDATE`), renumbers its own rows `seq + 1 ..= seq + n` in ordinal order
//! with one write time, stores the new `seq`, and commits. PostgreSQL makes a transaction
//! visible (ProcArrayEndTransaction) *before* it releases its locks, so the next writer reads
//! `seq` only after the previous one is visible: `_seq` order is commit order. A reader whose
//! snapshot sees `seq = S` therefore sees every row with `_seq <= S` and none above: reading
//! `seq` in the same REPEATABLE READ snapshot as the rows gives a bound that never skips a
//! change. The lock serialises only each writer's tail (one `UPDATE` of its own rows and the
//! commit); the rest of concurrent writes runs in parallel. A bulk transaction (a snapshot
//! import, or an apply of [`bulk::BULK_FROM`] changes or more) stages its input first, then
//! takes the lock before its merge writes any row and gives each row its final number as it
//! writes it (the same order argument; see [`bulk`]). Rejected: delivering only up to
//! the oldest in-flight transaction's horizon (needs every writer to publish its floor and a
//! match of `pg_current_snapshot()`'s in-progress list to floors, each step subtle), and one
//! store-wide write lock for the whole transaction (correct, but serialises every writer).
//!
//! # Snapshots
//!
//! The shards of one snapshot read one state: a REPEATABLE READ transaction reads `seq` and
//! exports its snapshot (`pg_export_snapshot()`), and stays open while the first shard lives;
//! every shard's connection `SET TRANSACTION SNAPSHOT`s to it before any query. Each shard's
//! rows stream from the server as they are decoded into Arrow batches (the client holds one
//! network buffer, never the table).
//!
//! # Connections
//!
//! The [`Store`] trait is blocking (its callers run it on blocking threads), so this backend
//! uses the `postgres` crate, tokio-postgres's blocking wrapper by the same authors, pooled by
//! `r2d2_postgres`. The pool holds at most [`POOL_SIZE`] connections (its failed connection
//! attempts are logged at debug level only: the call that needed one reports why); a snapshot holds one of
//! them (the transaction that exported it) until its readers are dropped. Its shards read on
//! connections of their own outside the pool, tokio-postgres clients each driven by a
//! current-thread runtime one batch at a time: the blocking client's trip into its runtime
//! for every row cost about an eighth of a full run's CPU ([`direct`]).

mod bulk;
mod copy;
mod direct;
mod import;
mod listing;
mod read;
mod runs;
mod shards;
pub(crate) mod write;

use crate::store::Imports;
use crate::store::Listing;
use crate::store::Runs;
use crate::store::Tables;
use crate::store::Workers;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use r2d2_postgres::postgres::config::SslMode;
use r2d2_postgres::postgres::Row;
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};
use crate::model::schema::DerivedFolder;
use crate::model::{ColumnType, DeliveredObject, TableDef};
use crate::store::checks::{
    check_def, check_key, check_row, decode_workers, differences, worker_json,
};
use crate::store::sql::{data_columns, data_table, non_negative, now_ms, quote, to_i64};
use crate::store::{
    ApplyOutcome, Change, ClaimFrom, ImportOutcome, ImportRecord, Lag, LiveSet, OwnerGone,
    RunRecord, ShardClaim, ShardOffer, ShardReader, ShardResult, ShardStatus, Snapshot, StartedRun,
    StoreIdentity, TableStats, TaskState, Value, WorkerRecord,
};

pub use r2d2_postgres::postgres;

/// Connections a store keeps open at most.
pub const POOL_SIZE: u32 = 16;

/// How long a caller waits for a free connection, and for a server to answer a connect.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// An advisory lock (one 64-bit key: "lakeport" in ASCII) that serialises the creation of
/// lakeport's tables and declarations across processes.
const DDL_LOCK: i64 = 0x6c61_6b65_706f_7274;

/// lakeport's own tables (the submodules add theirs).
const CREATE_META: &str = r#"
CREATE TABLE IF NOT EXISTS "_lakeport_meta" (
    "id" INTEGER PRIMARY KEY CHECK ("id" = 1),
    "seq" BIGINT NOT NULL,
    "last_write_ms" BIGINT NOT NULL
);
INSERT INTO "_lakeport_meta" ("id", "seq", "last_write_ms") VALUES (1, 0, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS "_lakeport_tables" ("name" TEXT PRIMARY KEY, "definition" TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS "_lakeport_workers" (
    "worker_id" TEXT PRIMARY KEY,
    "heartbeat_ms" BIGINT NOT NULL,
    "record" TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS "_lakeport_store" (
    "one" INTEGER PRIMARY KEY CHECK ("one" = 1),
    "id" TEXT NOT NULL,
    "created_ms" BIGINT NOT NULL
);
"#;

/// Gives a store its id when it has none (a new store, or one made before ids existed).
const MAKE_IDENTITY: &str = r#"INSERT INTO "_lakeport_store" ("one", "id", "created_ms")
    VALUES (1, $1, $2) ON CONFLICT DO NOTHING"#;

const READ_SEQ: &str = r#"SELECT "seq" FROM "_lakeport_meta" WHERE "id" = 1"#;

/// A pool of connections to one PostgreSQL database.
pub type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;
/// One pooled connection.
pub(crate) type Conn = r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>;

/// Owns something that holds connections and drops it off the async runtime's threads.
///
/// The `postgres` client is tokio-postgres driven by a small runtime of its own: closing a
/// connection blocks on that runtime, which panics on a thread that drives another runtime
/// (lakeport's). Store calls run on blocking threads, but a store or a snapshot shard may be
/// dropped anywhere: when the dropping thread is inside a runtime, the value is dropped on a
/// thread of its own (joined, so the connections are closed when the drop returns).
pub(crate) struct OffRuntime<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffRuntime<T> {
    pub(crate) fn new(value: T) -> Self {
        OffRuntime(Some(value))
    }

    /// Drops `value` now, on a thread of its own if this one is inside a tokio runtime.
    pub(crate) fn drop_now(value: T) {
        if tokio::runtime::Handle::try_current().is_ok() {
            if std::thread::spawn(move || drop(value)).join().is_err() {
                tracing::warn!("closing PostgreSQL connections panicked");
            }
        } else {
            drop(value);
        }
    }
}

impl<T: Send + 'static> std::ops::Deref for OffRuntime<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.0 {
            Some(v) => v,
            None => unreachable!("an OffRuntime is emptied only when dropped"),
        }
    }
}

impl<T: Send + 'static> std::ops::DerefMut for OffRuntime<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.0 {
            Some(v) => v,
            None => unreachable!("an OffRuntime is emptied only when dropped"),
        }
    }
}

impl<T: Send + 'static> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            Self::drop_now(value);
        }
    }
}

/// The PostgreSQL metadata store: a pool of connections and the layout of each table in use.
pub struct PostgresStore {
    pool: OffRuntime<Pool>,
    /// The pool's connection settings (for a direct attempt that says why it failed).
    config: postgres::Config,
    /// The same settings for connections outside the pool (snapshot shards: [`direct`]).
    direct: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// The URL without its password, for messages.
    shown: String,
    tables: Mutex<HashMap<String, Arc<TableSql>>>,
    /// Why the pool's latest attempt to connect failed (see [`ConnectErrors`]).
    last_connect_error: Arc<Mutex<Option<String>>>,
    /// An apply of this many changes or more takes the [`bulk`] path ([`bulk::BULK_FROM`];
    /// tests lower it to run small applies through that path too).
    bulk_from: usize,
}

/// Hears why the pool fails to open or reuse a connection (it retries in the background
/// while a caller waits, e.g. while a restarted server starts up). Each failure goes to
/// lakeport's debug log with the store and the server's reason (which the `postgres` crate's
/// display of a server error, "db error", leaves out), not to r2d2's own `ERROR r2d2` line:
/// the caller that waited reports it once ([`PostgresStore::conn`] names the store and the
/// latest reason, kept here; a connection made forgets it).
#[derive(Debug, Clone)]
struct ConnectErrors {
    shown: String,
    last: Arc<Mutex<Option<String>>>,
}

impl r2d2::HandleError<postgres::Error> for ConnectErrors {
    fn handle_error(&self, e: postgres::Error) {
        let reason = describe(&e);
        tracing::debug!(
            "store {}: a connection failed (retrying): {reason}",
            self.shown
        );
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
}

impl r2d2::HandleEvent for ConnectErrors {
    fn handle_acquire(&self, _: r2d2::event::AcquireEvent) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`, or the key=value
    /// form) and creates lakeport's tables if needed. A malformed URL is an
    /// [`Error::InvalidConfig`]; a server that does not answer or refuses is an
    /// [`Error::Store`]; both name the URL without its password.
    pub fn open(url: &str) -> Result<PostgresStore> {
        let shown = without_password(url);
        let (url, root_cert) = take_root_cert(url);
        let mut config = url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| Error::InvalidConfig(format!("--store {shown}: {e}")))?;
        if !url.contains("sslmode") {
            // libpq's default (`prefer`) tries TLS without checking the certificate; here
            // TLS always checks it, so it is used only when the URL asks for it.
            config.ssl_mode(SslMode::Disable);
        }
        let tls = tls_connector(root_cert.as_deref(), &shown)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("lakeport");
        let direct = config.clone();
        let config = postgres::Config::from(config);
        let manager = PostgresConnectionManager::new(config.clone(), tls.clone());
        let last_connect_error = Arc::new(Mutex::new(None));
        let errors = ConnectErrors {
            shown: shown.clone(),
            last: Arc::clone(&last_connect_error),
        };
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(POOL_WAIT)
            .error_handler(Box::new(errors.clone()))
            .event_handler(Box::new(errors))
            .build_unchecked(manager);
        let store = PostgresStore {
            pool: OffRuntime::new(pool),
            config,
            direct,
            tls,
            shown,
            tables: Mutex::new(HashMap::new()),
            last_connect_error,
            bulk_from: bulk::BULK_FROM,
        };
        let mut conn = store.conn_now()?;
        // Keys are UTF-8 and sort by their bytes (`COLLATE "C"`): a database of another
        // encoding would refuse some keys, or store them converted, in the middle of a load.
        let encoding: String = conn
            .query_one(
                "SELECT pg_encoding_to_char(encoding) FROM pg_database \
                        WHERE datname = current_database()",
                &[],
            )
            .map_err(store.db("reading the database's encoding"))?
            .get(0);
        if encoding != "UTF8" {
            return Err(Error::InvalidConfig(format!(
                "--store {}: the database's encoding is {encoding}; lakeport needs UTF8 (CREATE \
                 DATABASE … ENCODING 'UTF8' TEMPLATE template0)",
                store.shown
            )));
        }
        let mut tx = conn.transaction().map_err(store.db("opening the store"))?;
        // CREATE … IF NOT EXISTS races with itself across processes: serialise on a lock.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
            .map_err(store.db("opening the store"))?;
        tx.batch_execute(&format!(
            "{CREATE_META}{}{}{}",
            runs::CREATE_RUNS,
            import::CREATE_IMPORTS,
            shards::CREATE_SHARDS
        ))
        .map_err(store.db("creating lakeport's tables"))?;
        tx.execute(
            MAKE_IDENTITY,
            &[
                &uuid::Uuid::new_v4().to_string(),
                &crate::store::sql::now_ms(),
            ],
        )
        .map_err(store.db("giving the store its id"))?;
        tx.commit().map_err(store.db("opening the store"))?;
        Ok(store)
    }

    /// A connection from the pool, waiting up to [`POOL_WAIT`] for a free one.
    pub(crate) fn conn(&self) -> Result<Conn> {
        self.pool.get().map_err(|e| {
            let last = self.last_connect_error.lock();
            match last.unwrap_or_else(PoisonError::into_inner).as_deref() {
                Some(reason) => Error::store(format!(
                    "connecting to {}: no connection within {}s; the last attempt: {reason}",
                    self.shown,
                    POOL_WAIT.as_secs()
                )),
                None => Error::store_caused(format!("connecting to {}", self.shown), e),
            }
        })
    }

    /// A connection, failing at once (with the server's own reason) when the server cannot
    /// be reached: used when opening, so that a wrong URL does not wait for the pool.
    fn conn_now(&self) -> Result<Conn> {
        if let Some(conn) = self.pool.try_get() {
            return Ok(conn);
        }
        // `try_get` gives no reason; one direct attempt does.
        match self.config.connect(self.tls.clone()) {
            Ok(client) => drop(client),
            Err(e) => {
                return Err(Error::store_caused(
                    format!("connecting to {}", self.shown),
                    DbFailure::new(&e),
                ))
            }
        }
        self.conn()
    }

    /// Maps a database error to [`Error::Store`], saying what was being done.
    pub(crate) fn db(&self, what: impl fmt::Display) -> impl FnOnce(postgres::Error) -> Error {
        let shown = self.shown.clone();
        move |e| Error::store_caused(format!("{what} ({shown})"), DbFailure::new(&e))
    }

    /// The layout of table `name`, read through `conn` on first use.
    pub(crate) fn table_sql(
        &self,
        conn: &mut impl postgres::GenericClient,
        name: &str,
    ) -> Result<Arc<TableSql>> {
        let cache = || self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = cache().get(name) {
            return Ok(Arc::clone(t));
        }
        let def = stored_def(self, conn, name)?.ok_or_else(|| {
            Error::NotFound(format!(
                "table {name:?} is not in the store (declare it under schemas/)"
            ))
        })?;
        let sql = Arc::new(TableSql::new(def));
        cache().insert(name.to_string(), Arc::clone(&sql));
        Ok(sql)
    }
}

/// A `postgres` client error as the cause of an [`Error::Store`], in [`describe`]'s words:
/// the server's message and detail, or the client's words and their causes. Those words
/// already hold the error's whole chain, so it returns no `source()` of its own.
#[derive(Debug)]
pub(crate) struct DbFailure(String);

impl DbFailure {
    pub(crate) fn new(e: &postgres::Error) -> Self {
        DbFailure(describe(e))
    }
}

impl fmt::Display for DbFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbFailure {}

/// A database error with its server message and detail when it has them (the `postgres`
/// crate's own display is only "db error").
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                let _ = write!(s, " ({detail})");
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let _ = write!(s, ": {}", cause_text(cause));
                source = cause.source();
            }
            s
        }
    }
}

/// tokio-util's words (`Decoder::decode_eof`) for a stream that ended inside a message.
const CUT_SHORT: &str = "bytes remaining on stream";

/// One cause of a client error, in words a user can act on: a connection that ended in the
/// middle of a message (the server went away: a restart, a crash, a network cut) says so.
fn cause_text(cause: &(dyn std::error::Error + 'static)) -> String {
    let text = cause.to_string();
    if text == CUT_SHORT {
        "connection closed in the middle of a message".to_string()
    } else {
        text
    }
}

/// `url` without its `sslrootcert` setting (libpq's name for the file of the certificates that
/// sign the server's; the `postgres` crate does not know it) and the file it names.
fn take_root_cert(url: &str) -> (String, Option<std::path::PathBuf>) {
    let decode = |v: &str| {
        percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned()
    };
    if let Some((base, query)) = url.split_once('?') {
        let mut root = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| match kv.strip_prefix("sslrootcert=") {
                Some(v) => {
                    root = Some(std::path::PathBuf::from(decode(v)));
                    false
                }
                None => true,
            })
            .collect();
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (url, root);
    }
    if url.contains("://") {
        return (url.to_string(), None);
    }
    let mut root = None;
    let kept: Vec<&str> = url
        .split_whitespace()
        .filter(|kv| match kv.strip_prefix("sslrootcert=") {
            Some(v) => {
                root = Some(std::path::PathBuf::from(v));
                false
            }
            None => true,
        })
        .collect();
    (kept.join(" "), root)
}

/// The TLS connector of a store: rustls, the server's certificate checked against
/// `root_cert` (a PEM file) when given, else against the system's trusted roots.
fn tls_connector(root_cert: Option<&std::path::Path>, shown: &str) -> Result<MakeRustlsConnect> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                Error::InvalidConfig(format!(
                    "--store {shown}: sslrootcert {}: expected PEM certificates: {e}",
                    path.display()
                ))
            };
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?;
            for cert in certs {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"the file holds none"));
            }
        }
        None => {
            // Certificates the system holds but rustls cannot parse are skipped.
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(roots = added, "system roots for TLS to PostgreSQL");
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `url` with the password of its user part replaced by `***`.
fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if user.contains(':') => {
                let name = user.split(':').next().unwrap_or_default();
                format!("{scheme}://{name}:***@{host}")
            }
            _ => url.to_string(),
        },
        None if url.contains("password") => url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => url.to_string(),
    }
}

/// The SQL type of a column (text sorts by bytes).
fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "TEXT COLLATE \"C\"",
        ColumnType::Int64 => "BIGINT",
        ColumnType::Double => "DOUBLE PRECISION",
        ColumnType::Bool => "BOOLEAN",
        ColumnType::Binary => "BYTEA",
        ColumnType::TimestampMs => "TIMESTAMPTZ",
    }
}

/// The array type an `unnest` parameter of a column has.
fn array_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "text[]",
        ColumnType::Int64 => "int8[]",
        ColumnType::Double => "float8[]",
        ColumnType::Bool => "bool[]",
        ColumnType::Binary => "bytea[]",
        ColumnType::TimestampMs => "timestamptz[]",
    }
}

fn stored_def(
    store: &PostgresStore,
    conn: &mut impl postgres::GenericClient,
    name: &str,
) -> Result<Option<TableDef>> {
    let row = conn
        .query_opt(
            r#"SELECT "definition" FROM "_lakeport_tables" WHERE "name" = $1"#,
            &[&name],
        )
        .map_err(store.db(format_args!("reading the definition of table {name}")))?;
    row.map(|r| {
        let json: String = r.get(0);
        serde_json::from_str(&json).map_err(|e| {
            Error::store_caused(
                format!("the stored definition of table {name} is not valid"),
                e,
            )
        })
    })
    .transpose()
}

/// One table's layout and SQL texts, built once per table.
#[derive(Debug)]
pub(crate) struct TableSql {
    def: TableDef,
    schema: SchemaRef,
    /// `schema` with a last, non-null Boolean `_deleted`.
    schema_with_deleted: SchemaRef,
    /// Column indexes of the key, in key order.
    key_idx: Vec<usize>,
    /// Column indexes of the other columns, in table order.
    other_idx: Vec<usize>,
    /// Whether column i is part of the key.
    is_key: Vec<bool>,
    /// The column derived from the key ([`TableDef::derived_folder`]; stored here as given,
    /// after the check that it is the key's folder).
    derived: Option<DerivedFolder>,
    /// `"data_<table>"`.
    data: String,
    /// `"k1", "k2"`.
    key_list: String,
    /// Every column, then `_seq`, `_write_time`.
    select_list: String,
}

/// Locks the meta row until the transaction ends (no other writer can commit meanwhile) and
/// returns the store's `seq` and the write time this transaction takes: now, but never below
/// the previous transaction's.
fn lock_meta(
    store: &PostgresStore,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
) -> Result<(i64, i64)> {
    let meta = tx
        .query_one(
            r#"SELECT "seq", "last_write_ms" FROM "_lakeport_meta" WHERE "id" = 1 FOR UPDATE"#,
            &[],
        )
        .map_err(store.db(format!("allocating the _seq of a write to table {table}")))?;
    Ok((meta.get(0), now_ms().max(meta.get(1))))
}

impl TableSql {
    fn new(def: TableDef) -> TableSql {
        let data = data_table(&def.table);
        let key_idx = def.key_indexes();
        let n = def.columns.len();
        let other_idx: Vec<usize> = (0..n).filter(|i| !key_idx.contains(i)).collect();
        let col = |i: usize| quote(&def.columns[i].name);
        let key_list = key_idx
            .iter()
            .map(|&i| col(i))
            .collect::<Vec<_>>()
            .join(", ");
        let all = (0..n).map(col).collect::<Vec<_>>().join(", ");
        TableSql {
            schema: def.arrow_schema(),
            schema_with_deleted: def.arrow_schema_with_deleted(),
            is_key: (0..n).map(|i| key_idx.contains(&i)).collect(),
            select_list: format!("{all}, \"_seq\", \"_write_time\""),
            derived: def.derived_folder(),
            def,
            key_idx,
            other_idx,
            data,
            key_list,
        }
    }

    fn name(&self) -> &str {
        &self.def.table
    }

    fn col(&self, i: usize) -> String {
        quote(&self.def.columns[i].name)
    }

    /// The columns `idx`, each after `prefix` (`"s."`), comma-separated.
    fn columns_of(&self, idx: &[usize], prefix: &str) -> String {
        idx.iter()
            .map(|&i| format!("{prefix}{}", self.col(i)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `(a."c1", …) IS DISTINCT FROM (b."c1", …)` over the non-key columns (`false` when
    /// there are none).
    fn differs(&self, a: &str, b: &str) -> String {
        if self.other_idx.is_empty() {
            return "false".into();
        }
        format!(
            "({}) IS DISTINCT FROM ({})",
            self.columns_of(&self.other_idx, &format!("{a}.")),
            self.columns_of(&self.other_idx, &format!("{b}."))
        )
    }

    fn check_row(&self, values: &[Value]) -> Result<()> {
        check_row(&self.def, &self.is_key, self.derived, values)
    }

    fn check_key(&self, key: &[Value]) -> Result<()> {
        check_key(&self.def, &self.key_idx, key)
    }

    /// `d."k1" = i."k1" AND …`: the key of `d` equals the key of `i`.
    fn key_join(&self, d: &str, i: &str) -> String {
        self.key_idx
            .iter()
            .map(|&k| format!("{d}.{c} = {i}.{c}", c = self.col(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

fn create_table_sql(def: &TableDef) -> String {
    let data = data_table(&def.table);
    let (columns, key) = data_columns(
        def,
        sql_type,
        &[],
        &[
            "\"_seq\" BIGINT NOT NULL",
            "\"_write_time\" TIMESTAMPTZ NOT NULL",
            "\"_deleted\" BOOLEAN NOT NULL DEFAULT false",
        ],
    );
    format!(
        "CREATE TABLE {data} ({columns}, PRIMARY KEY ({key}) INCLUDE (\"_deleted\"));\n\
         CREATE INDEX {} ON {data} (\"_seq\") INCLUDE (\"_deleted\");",
        quote(&format!("data_{}_by_seq", def.table)),
    )
}

/// The condition that leaves tombstones out, unless changes are read with their deletes.
fn unless_deletes(deletes: bool) -> &'static str {
    if deletes {
        ""
    } else {
        "NOT \"_deleted\" AND "
    }
}

/// Reads a count or `_seq` column that must not be negative.
fn count(row: &Row, i: usize, what: &str) -> Result<u64> {
    non_negative(row.get::<_, i64>(i), what)
}

impl Tables for PostgresStore {
    fn identity(&self) -> Result<StoreIdentity> {
        let row = self
            .conn()?
            .query_opt(
                r#"SELECT "id", "created_ms" FROM "_lakeport_store" WHERE "one" = 1"#,
                &[],
            )
            .map_err(self.db("reading the store's id"))?;
        let row = row.ok_or_else(|| Error::NotFound(format!("store {} has no id", self.shown)))?;
        Ok(StoreIdentity {
            id: row.get(0),
            created_ms: row.get(1),
            location: self.shown.clone(),
        })
    }

    fn ensure_table(&self, def: &TableDef) -> Result<()> {
        check_def(def)?;
        let name = &def.table;
        let mut conn = self.conn()?;
        let mut tx = conn
            .transaction()
            .map_err(self.db(format_args!("declaring table {name}")))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
            .map_err(self.db(format_args!("declaring table {name}")))?;
        if let Some(stored) = stored_def(self, &mut tx, name)? {
            if stored == *def {
                listing::ensure_index(self, &mut tx, def)?;
                return tx
                    .commit()
                    .map_err(self.db(format_args!("declaring table {name}")));
            }
            return Err(Error::Conflict(format!(
                "table {name} exists in the store with a different definition: {}",
                differences(&stored, def).join("; ")
            )));
        }
        let json = serde_json::to_string(def).map_err(|e| {
            Error::store_caused(format!("encoding the definition of table {name}"), e)
        })?;
        tx.execute(
            r#"INSERT INTO "_lakeport_tables" ("name", "definition") VALUES ($1, $2)"#,
            &[name, &json],
        )
        .map_err(self.db(format_args!("declaring table {name}")))?;
        tx.batch_execute(&create_table_sql(def))
            .map_err(self.db(format_args!("creating table {name}")))?;
        listing::ensure_index(self, &mut tx, def)?;
        tx.commit()
            .map_err(self.db(format_args!("declaring table {name}")))
    }

    fn table_stats(&self) -> Result<Vec<TableStats>> {
        let mut conn = self.conn()?;
        let names: Vec<String> = conn
            .query(
                r#"SELECT "name" FROM "_lakeport_tables" ORDER BY "name" COLLATE "C""#,
                &[],
            )
            .map_err(self.db("listing tables"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for table in names {
            let sql = format!(
                "SELECT count(*) FILTER (WHERE NOT \"_deleted\"), \
                 count(*) FILTER (WHERE \"_deleted\"), coalesce(max(\"_seq\"), 0) FROM {}",
                data_table(&table)
            );
            let row = conn
                .query_one(&sql, &[])
                .map_err(self.db(format_args!("counting rows of table {table}")))?;
            out.push(TableStats {
                rows: count(&row, 0, "a row count")?,
                tombstones: count(&row, 1, "a tombstone count")?,
                max_seq: count(&row, 2, "a _seq")?,
                table,
            });
        }
        Ok(out)
    }

    fn apply(
        &self,
        table: &str,
        changes: &mut dyn Iterator<Item = Result<Change>>,
    ) -> Result<ApplyOutcome> {
        write::apply(self, table, changes)
    }

    fn snapshot(&self, table: &str, shards: usize) -> Result<Snapshot> {
        read::snapshot(self, table, shards)
    }

    fn changes(
        &self,
        table: &str,
        after_seq: u64,
        shards: usize,
        deletes: bool,
    ) -> Result<Snapshot> {
        read::changes(self, table, after_seq, shards, deletes)
    }

    fn lag(&self, table: &str, after_seq: u64, deletes: bool) -> Result<Lag> {
        let mut conn = self.conn()?;
        let t = self.table_sql(&mut *conn, table)?;
        let what = format!("lag of table {table}");
        let after = to_i64(after_seq, "a checkpoint")?;
        let mut tx = conn
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(self.db(&what))?;
        let behind = format!(
            "FROM {} WHERE {}\"_seq\" > $1",
            t.data,
            unless_deletes(deletes)
        );
        let row = tx
            .query_one(
                &format!(
                    "SELECT (SELECT coalesce(max(\"_seq\"), 0) FROM {}), \
                     (SELECT count(*) {behind}), \
                     (SELECT (extract(epoch FROM \"_write_time\") * 1000)::bigint {behind} \
                      ORDER BY \"_seq\" LIMIT 1)",
                    t.data
                ),
                &[&after],
            )
            .map_err(self.db(&what))?;
        let lag = Lag {
            newest_seq: count(&row, 0, "a _seq")?,
            rows_behind: count(&row, 1, "a row count")?,
            oldest_write_ms: row.get(2),
        };
        tx.commit().map_err(self.db(&what))?;
        Ok(lag)
    }

    fn purge_tombstones(&self, table: &str, up_to_seq: u64) -> Result<u64> {
        let mut conn = self.conn()?;
        let t = self.table_sql(&mut *conn, table)?;
        conn.execute(
            &format!(
                "DELETE FROM {} WHERE \"_deleted\" AND \"_seq\" > 0 AND \"_seq\" <= $1",
                t.data
            ),
            &[&i64::try_from(up_to_seq).unwrap_or(i64::MAX)],
        )
        .map_err(self.db(format!("purging tombstones of table {table}")))
    }
}

impl Runs for PostgresStore {
    fn start_run(
        &self,
        record: &RunRecord,
        lease: Duration,
        gone: OwnerGone<'_>,
    ) -> Result<StartedRun> {
        runs::start_run(self, record, lease, gone)
    }

    fn heartbeat(&self, run_id: u64) -> Result<()> {
        runs::heartbeat(self, run_id)
    }

    fn finish_run(&self, record: &RunRecord, live: LiveSet) -> Result<()> {
        runs::finish_run(self, record, live)
    }

    fn record_failed_run(&self, record: &RunRecord) -> Result<u64> {
        runs::record_failed_run(self, record)
    }

    fn clear_pending_removal(&self, task: &str, removed: &[DeliveredObject]) -> Result<()> {
        runs::clear_pending_removal(self, task, removed)
    }

    fn task_state(&self, task: &str) -> Result<Option<TaskState>> {
        runs::task_state(self, task)
    }

    fn adopt_task(
        &self,
        task: &str,
        objects: &[DeliveredObject],
        next_object_seq: u64,
    ) -> Result<()> {
        runs::adopt_task(self, task, objects, next_object_seq)
    }

    fn live_objects(&self, task: &str) -> Result<Vec<DeliveredObject>> {
        runs::live_objects(self, task)
    }

    fn live_partitions(&self, task: &str) -> Result<Vec<(String, u64)>> {
        runs::live_partitions(self, task)
    }

    fn runs(&self, task: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        runs::runs(self, task, limit)
    }
}

impl Imports for PostgresStore {
    fn apply_snapshot(
        &self,
        draft: &ImportRecord,
        changes: &mut dyn Iterator<Item = Result<Change>>,
    ) -> Result<ImportOutcome> {
        import::apply_snapshot(self, draft, changes)
    }

    fn imports(&self, limit: usize) -> Result<Vec<ImportRecord>> {
        import::imports(self, limit)
    }
}

impl Workers for PostgresStore {
    fn worker_heartbeat(&self, worker: &WorkerRecord, forget_after: Duration) -> Result<()> {
        let (now, json) = worker_json(worker)?;
        let forget_ms = i64::try_from(forget_after.as_millis()).unwrap_or(i64::MAX);
        let mut conn = self.conn()?;
        let at = || self.db(format!("recording worker {}", worker.worker_id));
        let mut tx = conn.transaction().map_err(at())?;
        tx.execute(
            r#"INSERT INTO "_lakeport_workers" ("worker_id", "heartbeat_ms", "record")
               VALUES ($1, $2, $3)
               ON CONFLICT ("worker_id") DO UPDATE SET "heartbeat_ms" = excluded."heartbeat_ms",
                   "record" = excluded."record""#,
            &[&worker.worker_id, &now, &json],
        )
        .map_err(at())?;
        tx.execute(
            r#"DELETE FROM "_lakeport_workers" WHERE "heartbeat_ms" < $1"#,
            &[&now.saturating_sub(forget_ms)],
        )
        .map_err(at())?;
        tx.commit().map_err(at())
    }

    fn workers(&self) -> Result<Vec<WorkerRecord>> {
        let mut conn = self.conn()?;
        let records: Vec<String> = conn
            .query(r#"SELECT "record" FROM "_lakeport_workers""#, &[])
            .map_err(self.db("reading the workers"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        decode_workers(&records)
    }

    fn remove_worker(&self, worker_id: &str) -> Result<()> {
        let mut conn = self.conn()?;
        conn.execute(
            r#"DELETE FROM "_lakeport_workers" WHERE "worker_id" = $1"#,
            &[&worker_id],
        )
        .map_err(self.db(format!("forgetting worker {worker_id}")))?;
        Ok(())
    }

    fn shares_shards(&self) -> bool {
        true
    }

    fn open_shard(&self, ticket: &str) -> Result<Box<dyn ShardReader>> {
        read::open_shard(self, ticket)
    }

    fn offer_shards(
        &self,
        run_id: u64,
        fingerprint: &str,
        lease: Duration,
        offers: &[ShardOffer],
    ) -> Result<()> {
        shards::offer(self, run_id, fingerprint, lease, offers)
    }

    fn claim_shard(&self, worker: &str, from: ClaimFrom<'_>) -> Result<Option<ShardClaim>> {
        shards::claim(self, worker, from)
    }

    fn renew_shard_claims(&self, worker: &str) -> Result<Vec<(u64, u32, u32)>> {
        shards::renew(self, worker)
    }

    fn finish_shard(
        &self,
        worker: &str,
        run_id: u64,
        concurrent_id: u32,
        attempt: u32,
        outcome: std::result::Result<&ShardResult, &str>,
    ) -> Result<bool> {
        shards::finish(self, worker, run_id, concurrent_id, attempt, outcome)
    }

    fn release_shard(&self, run_id: u64, concurrent_id: u32, attempt: u32) -> Result<bool> {
        shards::release(self, run_id, concurrent_id, attempt)
    }

    fn shards(&self, run_id: Option<u64>) -> Result<Vec<ShardStatus>> {
        shards::list(self, run_id)
    }
}

impl Listing for PostgresStore {
    fn list_objects(&self, q: &crate::store::ListQuery) -> Result<crate::store::ListPage> {
        listing::list_objects(self, q)
    }

    fn summarize_objects(
        &self,
        bucket: &str,
        prefix: &str,
        by: crate::store::SummaryBy,
    ) -> Result<Vec<crate::store::SummaryRow>> {
        listing::summarize_objects(self, bucket, prefix, by)
    }
}

#[cfg(test)]
pub(crate) mod tests;
