//! A connection of its own for streaming one snapshot shard, driven a batch at a time.
//!
//! The pooled connections are the `postgres` crate's blocking clients: every row a query
//! returns costs a trip into the client's runtime (`block_on`), which polls the socket, the
//! connection and the row stream for that one row. A shard reads hundreds of thousands of
//! rows, so it reads on a tokio-postgres connection of its own instead, with a current-thread
//! runtime of its own: [`DirectConn::block_on`] drives the connection together with a future
//! that gathers a whole batch of rows, one runtime entry per batch.
//!
//! The connection is not pooled: a shard keeps it (and its transaction) for as long as it
//! lives, and closes it when dropped, off any async runtime's threads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio_postgres::Client;

use super::{describe, DbFailure, OffRuntime, PostgresStore};
use crate::error::{Error, Result};

/// How long closing a connection may wait for the server to take the goodbye.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The connection's own future (it does the socket I/O); `None` once it has ended.
type Driver =
    Option<Pin<Box<dyn Future<Output = std::result::Result<(), tokio_postgres::Error>> + Send>>>;

/// The parts of a [`DirectConn`], taken out when it is dropped.
struct Parts {
    runtime: tokio::runtime::Runtime,
    client: Arc<Client>,
    driver: Driver,
}

/// A tokio-postgres connection outside the pool with the runtime that drives it.
pub(super) struct DirectConn {
    /// Always `Some` until dropped.
    parts: Option<Parts>,
    /// The store's URL without its password, for messages.
    shown: String,
}

impl DirectConn {
    /// Connects with the store's settings.
    pub(super) fn connect(store: &PostgresStore) -> Result<DirectConn> {
        let shown = store.shown.clone();
        let failed = || format!("connecting to {shown} for a snapshot shard");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::store_caused(failed(), e))?;
        let (client, connection) = runtime
            .block_on(store.direct.connect(store.tls.clone()))
            .map_err(|e| Error::store_caused(failed(), DbFailure::new(&e)))?;
        Ok(DirectConn {
            parts: Some(Parts {
                runtime,
                client: Arc::new(client),
                driver: Some(Box::pin(connection)),
            }),
            shown,
        })
    }

    /// The client, for the futures given to [`block_on`](Self::block_on).
    pub(super) fn client(&self) -> Arc<Client> {
        match &self.parts {
            Some(parts) => Arc::clone(&parts.client),
            None => unreachable!("a DirectConn's parts are taken only when it is dropped"),
        }
    }

    /// Runs `work` (a future on [`client`](Self::client)) to its end while driving the
    /// connection: one entry into the runtime for all the messages `work` waits for. `what`
    /// says what was being done should the connection fail.
    pub(super) fn block_on<T>(
        &mut self,
        what: &str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(Parts {
            runtime, driver, ..
        }) = &mut self.parts
        else {
            unreachable!("a DirectConn's parts are taken only when it is dropped")
        };
        let shown = &self.shown;
        let mut work = std::pin::pin!(work);
        runtime.block_on(std::future::poll_fn(|cx| {
            if let Some(running) = driver {
                match running.as_mut().poll(cx) {
                    Poll::Pending => {}
                    Poll::Ready(ended) => {
                        *driver = None;
                        if let Err(e) = ended {
                            return Poll::Ready(Err(Error::store_caused(
                                format!("{what} ({shown})"),
                                DbFailure::new(&e),
                            )));
                        }
                        // Closed by the server: `work` fails on the closed client next.
                    }
                }
            }
            work.as_mut().poll(cx)
        }))
    }
}

impl Drop for DirectConn {
    fn drop(&mut self) {
        if let Some(parts) = self.parts.take() {
            OffRuntime::drop_now(Close(Some(parts)));
        }
    }
}

/// Closes a connection when dropped: the client goes first, so that the connection says
/// goodbye to the server (which rolls back an open transaction) and ends.
struct Close(Option<Parts>);

impl Drop for Close {
    fn drop(&mut self) {
        let Some(Parts {
            runtime,
            client,
            driver,
        }) = self.0.take()
        else {
            return;
        };
        drop(client);
        if let Some(driver) = driver {
            let closed = runtime.block_on(async { tokio::time::timeout(CLOSE_WAIT, driver).await });
            match closed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %describe(&e), "closing a snapshot shard's connection")
                }
                Err(_) => tracing::debug!("closing a snapshot shard's connection timed out"),
            }
        }
    }
}
