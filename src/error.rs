//! The crate-level error: one enum whose variants callers branch on.
//!
//! Every module keeps its own precise wording and converts into [`Error`]; the binary maps a
//! variant to an exit status with [`Error::exit_code`] (2 for bad usage or configuration, 1 for
//! work that failed). Messages say where (file, line, key) and what was expected.
//!
//! A failure caused by another error keeps it as its `source()` and displays only its own
//! words (`store: opening /data/lakeport.db`); whoever shows an error to a person (the CLI,
//! a run record, the HTTP API, a log line) shows it with [`Error::chain`], which adds each
//! cause (`…: unable to open database file`).

use std::fmt;
use std::path::Path;

/// Result with the crate [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error underneath an [`Error`]: a library's error (rusqlite, object_store, serde_json,
/// a task's join error…), kept whole so that its own causes show too.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in lakeport, grouped by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task, schema or table file (or a command-line value) is wrong; nothing was done.
    /// The message lists every problem, one per line, each with its file and key.
    #[error("{0}")]
    InvalidConfig(String),
    /// Input data is wrong (`file:line: column: what was expected`); nothing of it was applied.
    #[error("{0}")]
    InvalidInput(String),
    /// A named thing (table, task, run) does not exist (exit 2: the command named it wrongly).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what the store already holds (e.g. a table redeclared differently).
    #[error("{0}")]
    Conflict(String),
    /// The work is being done elsewhere: another run of the task holds its lease (in this or
    /// another lakeport process), or finished first and moved the checkpoint. Nothing was
    /// done; a later run continues from where that one ends.
    #[error("{0}")]
    Busy(String),
    /// The task's destination belongs to another store (or its owner cannot be told): the
    /// run or command was refused before it wrote or deleted anything. The message names
    /// both stores and how to move the task deliberately (`lakeport claim`).
    #[error("{0}")]
    NotOwner(String),
    /// The metadata store failed.
    #[error("store: {context}")]
    Store {
        /// The operation (`opening /data/lakeport.db`), or the whole problem when no other
        /// error caused it.
        context: String,
        /// The database's (or encoder's, or thread's) error, if one caused it.
        #[source]
        source: Option<Cause>,
    },
    /// Object storage failed in a way a retry may fix (timeout, 5xx, throttling).
    #[error("object storage (transient): {context}")]
    Transient {
        /// The operation and the object's URL (or object_store's own words for the failure).
        context: String,
        /// The object_store (or task) error, if one caused it.
        #[source]
        source: Option<Cause>,
    },
    /// Object storage refused in a way only the operator can fix (no bucket, no permission).
    #[error("object storage: {context}")]
    Permanent {
        /// The operation, the object's URL and what to fix (or object_store's own words).
        context: String,
        /// The object_store error, if one caused it.
        #[source]
        source: Option<Cause>,
    },
    /// Local I/O failed.
    #[error("{context}")]
    Io {
        /// What was being done, and to which path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding Parquet or building Arrow data failed.
    #[error("encoding: {context}")]
    Encode {
        /// What was being encoded (or Arrow's or Parquet's own words for the failure).
        context: String,
        /// The encoder's error, if one caused it.
        #[source]
        source: Option<Cause>,
    },
}

impl Error {
    /// The process exit status for this error: 2 for bad usage or configuration, else 1.
    /// A name that does not exist (task, table) is bad usage too.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidConfig(_) | Error::NotFound(_) => 2,
            _ => 1,
        }
    }

    /// This error followed by each of its causes, for showing to a person (see [`Chain`]).
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }

    /// An [`Error::Io`] that names the path and what was being done to it.
    pub fn io(action: &str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            context: format!("{action} {}", path.display()),
            source,
        }
    }

    /// An [`Error::Store`] that no other error caused; `context` says it all.
    pub fn store(context: impl Into<String>) -> Self {
        Error::Store {
            context: context.into(),
            source: None,
        }
    }

    /// An [`Error::Store`]: `source` failed while doing `context`.
    pub fn store_caused(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Store {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// An [`Error::Transient`] that no other error caused; `context` says it all.
    pub fn transient(context: impl Into<String>) -> Self {
        Error::Transient {
            context: context.into(),
            source: None,
        }
    }

    /// An [`Error::Transient`]: `source` failed while doing `context`.
    pub fn transient_caused(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Transient {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// An [`Error::Permanent`] that no other error caused; `context` says it all.
    pub fn permanent(context: impl Into<String>) -> Self {
        Error::Permanent {
            context: context.into(),
            source: None,
        }
    }

    /// An [`Error::Permanent`]: `source` failed while doing `context`.
    pub fn permanent_caused(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Permanent {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// An [`Error::Encode`] that no other error caused; `context` says it all.
    pub fn encode(context: impl Into<String>) -> Self {
        Error::Encode {
            context: context.into(),
            source: None,
        }
    }

    /// An [`Error::Encode`]: `source` failed while encoding `context`.
    pub fn encode_caused(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Encode {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// object_store's error `e`, met while doing `context` (`put s3://bucket/key`), as an
    /// [`Error::Permanent`] or [`Error::Transient`] (see the `From` impl for which is which),
    /// with `e` as its source.
    pub fn object_storage(context: impl Into<String>, e: object_store::Error) -> Self {
        let context = context.into();
        if is_permanent(&e) {
            Error::permanent_caused(context, e)
        } else {
            Error::transient_caused(context, e)
        }
    }
}

/// An error followed by each of its causes (its `source()`, that one's `source()`, …), joined
/// with ": ", as [`Error::chain`] and [`chain`] display it.
///
/// Many libraries' errors display their cause and also return it from `source()` (rusqlite's
/// `SqliteFailure` without a message of its own, object_store's `Generic`, …), and some return
/// as their cause their own words with a code in front (rusqlite's `file is not a database`
/// has the cause `Error code 26: file is not a database`). So a cause is left out when its
/// text is already contained in the text so far (or is empty), or when it ends with the text
/// of the error it is the cause of; the causes beneath it are still visited.
#[derive(Clone, Copy)]
pub struct Chain<'a>(&'a (dyn std::error::Error + 'static));

/// Any error followed by each of its causes (see [`Chain`]).
pub fn chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> Chain<'a> {
    Chain(e)
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut above = text.clone();
        let mut next = self.0.source();
        while let Some(cause) = next {
            let part = cause.to_string();
            let restates = !above.is_empty() && part.ends_with(&above);
            if !text.contains(&part) && !restates {
                text.push_str(": ");
                text.push_str(&part);
            }
            above = part;
            next = cause.source();
        }
        f.write_str(&text)
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// A conversion without a caller's words keeps the library's own text as the context (so the
// error displays as it always did) and the library's error as the source; [`Chain`] does not
// repeat a source whose text the context already holds, but shows the causes beneath it.

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::encode_caused(e.to_string(), e)
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Error::encode_caused(e.to_string(), e)
    }
}

impl From<object_store::Error> for Error {
    /// An [`Error::Permanent`] or [`Error::Transient`] (see [`is_permanent`]) displaying
    /// object_store's own words; [`Error::object_storage`] names the operation instead.
    fn from(e: object_store::Error) -> Self {
        Error::object_storage(e.to_string(), e)
    }
}

/// Whether object_store's error `e` is a refusal only the operator can fix.
///
/// Refusals (not found, access denied, bad credentials, unsupported, bad path, and a
/// cloud store's other 4xx answers except 408, 409 and 429; any failure of the in-memory
/// store) are permanent, and so is a local file system's failure (a full disk or a read-only
/// folder does not heal by retrying) unless it timed out or was interrupted; everything else
/// (timeouts, 5xx and throttling that outlasted the client's own retries, broken
/// connections) is transient.
fn is_permanent(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::NotFound { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::InvalidPath { .. } => true,
        E::Generic { store, source } if *store == "LocalFileSystem" => !matches!(
            io_kind(source.as_ref()),
            Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted)
        ),
        // Nothing in memory heals by waiting (an unknown upload id, say).
        E::Generic { store, .. } if *store == "InMemory" => true,
        E::Generic { .. } => http_refusal(e).is_some_and(|refusal| refusal.is_permanent()),
        _ => false,
    }
}

/// The HTTP answer a cloud store's error carries: its status and, from S3's XML error body,
/// the error code (`NoSuchBucket`, `SignatureDoesNotMatch`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpRefusal {
    /// The HTTP status.
    pub(crate) status: u16,
    /// S3's `<Code>` (Azure's and GCS's XML errors use the same element).
    pub(crate) code: Option<String>,
}

impl HttpRefusal {
    /// A 4xx that a retry cannot change (not 408 Request Timeout, 409 Conflict or 429 Too
    /// Many Requests).
    pub(crate) fn is_permanent(&self) -> bool {
        (400..500).contains(&self.status) && !matches!(self.status, 408 | 409 | 429)
    }
}

/// The HTTP status (and S3 error code) of a cloud store's error. object_store classifies a
/// refused get, put or delete (`NotFound`, `PermissionDenied`, …) but reports a refused
/// listing as `Generic`, with the status only in the message of its (private) retry error,
/// `Server returned non-2xx status code: 404 Not Found: <body>`; this reads it from there.
pub(crate) fn http_refusal(e: &object_store::Error) -> Option<HttpRefusal> {
    let text = e.to_string();
    const MARK: &str = "non-2xx status code: ";
    let at = text.find(MARK)? + MARK.len();
    let status: u16 = text.get(at..at + 3)?.parse().ok()?;
    let code = text[at..].split_once("<Code>").and_then(|(_, rest)| {
        rest.split_once("</Code>")
            .map(|(code, _)| code.trim().to_string())
    });
    Some(HttpRefusal { status, code })
}

/// The kind of the first I/O error in `e`'s source chain.
pub(crate) fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.to_string().into(),
        }
    }

    #[test]
    fn refusals_inside_generic_errors_are_permanent() {
        let no_bucket = generic(
            "Error performing list request: Error performing GET http://127.0.0.1:1/b?list-type=2 \
             in 2ms - Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?>\
             <Error><Code>NoSuchBucket</Code></Error>",
        );
        assert_eq!(
            http_refusal(&no_bucket),
            Some(HttpRefusal {
                status: 404,
                code: Some("NoSuchBucket".into())
            })
        );
        assert!(matches!(Error::from(no_bucket), Error::Permanent { .. }));
        let throttled = generic("Server returned non-2xx status code: 429 Too Many Requests: ");
        assert!(matches!(Error::from(throttled), Error::Transient { .. }));
        let down = generic("Error performing GET http://127.0.0.1:1/b - error sending request");
        assert_eq!(http_refusal(&down), None);
        assert!(matches!(Error::from(down), Error::Transient { .. }));
        let server = generic("Server returned non-2xx status code: 503 Service Unavailable: ");
        assert!(matches!(Error::from(server), Error::Transient { .. }));
    }

    /// An error that displays its cause and also returns it, as many libraries' do.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl fmt::Display for Repeats {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "reading the journal: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// An error that only returns its cause, as the API guidelines ask.
    #[derive(Debug)]
    struct Returns(Repeats);

    impl fmt::Display for Returns {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("replaying the journal")
        }
    }

    impl std::error::Error for Returns {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// A message whose cause is the same words with a code in front, as rusqlite's
    /// `SqliteFailure` and its `ffi::Error`.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl fmt::Display for Coded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Coded {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&CODE_5)
        }
    }

    #[derive(Debug)]
    struct Code5;

    static CODE_5: Code5 = Code5;

    impl fmt::Display for Code5 {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Error code 5: database is locked")
        }
    }

    impl std::error::Error for Code5 {}

    #[test]
    fn the_chain_shows_every_cause_once() {
        let refused = || std::io::Error::other("connection refused");
        let e = Error::store_caused("opening s3://b/store", Returns(Repeats(refused())));
        assert_eq!(e.to_string(), "store: opening s3://b/store");
        assert_eq!(
            e.chain().to_string(),
            "store: opening s3://b/store: replaying the journal: \
             reading the journal: connection refused"
        );
        // A cause displayed by the error above it is not repeated.
        assert_eq!(
            chain(&Repeats(refused())).to_string(),
            "reading the journal: connection refused"
        );
        // Io displays its context; the chain adds the I/O error.
        let io = Error::io("reading", Path::new("/x"), refused());
        assert_eq!(io.to_string(), "reading /x");
        assert_eq!(io.chain().to_string(), "reading /x: connection refused");
        // A cause that only puts a code in front of its error's words is left out; one that
        // says more is shown.
        let locked = Error::store_caused("writing rows", Coded("database is locked"));
        assert_eq!(
            locked.chain().to_string(),
            "store: writing rows: database is locked"
        );
        let missing = Error::store_caused("writing rows", Coded("no such table: t"));
        assert_eq!(
            missing.chain().to_string(),
            "store: writing rows: no such table: t: Error code 5: database is locked"
        );
        // Nothing to add without a cause.
        let alone = Error::store("snapshot batch has no column key");
        assert_eq!(alone.chain().to_string(), alone.to_string());
    }

    #[test]
    fn a_converted_error_reads_as_before() {
        let e = Error::from(generic(
            "Server returned non-2xx status code: 503 Service Unavailable",
        ));
        let text = "object storage (transient): Generic S3 error: Server returned non-2xx status \
                    code: 503 Service Unavailable";
        assert_eq!(e.to_string(), text);
        assert_eq!(e.chain().to_string(), text);
        let named = Error::object_storage("put s3://b/k", generic("denied"));
        assert_eq!(
            named.chain().to_string(),
            "object storage (transient): put s3://b/k: Generic S3 error: denied"
        );
    }
}
