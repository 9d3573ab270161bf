//! `lakeport serve`: runs every task and watcher of the pipelines folder on its schedule and
//! answers the HTTP API (see [`crate::service`]) until SIGTERM or SIGINT, then stops
//! gracefully: no new runs, runs in flight get `--grace` to finish, exit 0. `LAKEPORT_API_TOKEN` guards the API
//! (see [`crate::service::http`]); without it only loopback addresses are served.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use std::sync::Arc;

use crate::cli::inventory::INVENTORY_TABLE;
use crate::cli::{print, stop_signal, Context};
use crate::config::parse_duration;
use crate::delivery::dispatch::help_with_shards;
use crate::error::{Error, Result};
use crate::pipelines::load_project;
use crate::service::{http, workers, Declared, Loader, Service};

/// The environment variable holding the API token.
const TOKEN_ENV: &str = "LAKEPORT_API_TOKEN";

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How long runs in flight may take to finish after SIGTERM/SIGINT before they are
    /// cancelled (safe: the next run takes them over).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    grace: Duration,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> Result<()> {
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let every_call = !args.listen.ip().is_loopback();
    if every_call && token.is_none() {
        return Err(Error::InvalidConfig(format!(
            "--listen {}: not a loopback address; set {TOKEN_ENV} (every call but the health \
             probes then needs Authorization: Bearer <token>) or listen on 127.0.0.1",
            args.listen
        )));
    }
    let (pipelines, schemas) = (ctx.pipelines()?.to_path_buf(), ctx.schemas()?.to_path_buf());
    // Every problem of every file, before the store is opened (which declares the tables).
    load_project(&pipelines, &schemas)?;
    let store = ctx.store().await?;
    let loader: Loader = Arc::new(move || {
        let (mut tables, pipelines) = load_project(&pipelines, &schemas)?;
        let inventory_table = tables
            .remove(INVENTORY_TABLE)
            .ok_or_else(|| Error::NotFound(format!("table {INVENTORY_TABLE} is not declared")))?;
        Ok(Declared {
            pipelines,
            inventory_table,
        })
    });
    let service = Service::new(store, loader)?;
    let (tasks, watchers) = (service.slots().len(), service.watchers().len());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            Error::io(
                "listen on",
                std::path::Path::new(&args.listen.to_string()),
                e,
            )
        })?;
    let bound = listener.local_addr().map_err(|e| {
        Error::io(
            "read the address of",
            std::path::Path::new("the listener"),
            e,
        )
    })?;
    service.start().await?;
    print(&format!(
        "lakeport serve: {tasks} tasks, {watchers} watchers, API on http://{bound}/ (SIGTERM or \
         Ctrl-C stops)"
    ))?;
    let app = http::router(service.clone(), http::Access { token, every_call });
    let reloads = tokio::spawn(reload_on_sighup(Arc::clone(&service)));
    let me = workers::this_worker(&bound.to_string());
    let reports = tokio::spawn(workers::report(Arc::clone(service.store()), me.clone()));
    // Shards that other workers' runs offer (a store that shares them: PostgreSQL).
    let (stop_helping, helping_stops) = tokio::sync::watch::channel(false);
    let helping = service.store().shares_shards().then(|| {
        let declared = Arc::clone(&service);
        let tasks = move || declared.slots().values().map(|s| s.task()).collect();
        tokio::spawn(help_with_shards(
            Arc::clone(service.store()),
            tasks,
            helping_stops,
        ))
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await
        .map_err(|e| Error::io("serve HTTP on", std::path::Path::new(&bound.to_string()), e))?;
    reloads.abort();
    tracing::info!("stopping: no new runs; runs in flight get {:?}", args.grace);
    let _ = stop_helping.send(true);
    // Other workers' shards in hand get the same grace (then they are claimed again later).
    let helped = async {
        if let Some(helping) = helping {
            if tokio::time::timeout(args.grace, helping).await.is_err() {
                tracing::warn!("stopped delivering other workers' shards after the grace period");
            }
        }
    };
    let (cancelled, ()) = tokio::join!(service.shutdown(args.grace), helped);
    reports.abort();
    workers::leave(Arc::clone(service.store()), &me).await;
    print(&format!(
        "lakeport serve: stopped ({cancelled} runs cancelled after the grace period)"
    ))
}

/// Reloads the tasks at every SIGHUP; a broken file leaves the running set as it is (logged).
async fn reload_on_sighup(service: Arc<Service>) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(e) => {
            tracing::error!("cannot listen for SIGHUP: {e}");
            return;
        }
    };
    while hup.recv().await.is_some() {
        match service.reload().await {
            Ok(done) => tracing::warn!(added = ?done.added, removed = ?done.removed,
                updated = ?done.updated, "SIGHUP: tasks reloaded"),
            Err(e) => {
                tracing::error!(
                    "SIGHUP: reload refused, the running tasks are unchanged:\n{}",
                    e.chain()
                )
            }
        }
    }
}
