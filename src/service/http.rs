//! The service's HTTP API (axum), JSON throughout but for the status page and the metrics:
//!
//! - `GET /`: the status page, HTML rendered here from the same task views as `/api/tasks`
//!   (`page.rs` beside this file).
//! - `GET /healthz`: the process answers (200).
//! - `GET /readyz`: the store answers a read (200), else 503.
//! - `GET /api/tasks`: every task's status (below). What comes from the store is read at
//!   most once a second per task, however many requests ask, and again as soon as a run of
//!   the task starts or ends ([`crate::service::STATUS_TTL`]); `/metrics` and `/` share it.
//! - `GET /api/tasks/{name}`: one task: mode, schedule, the timezone it is read in and the
//!   next runs (`next_runs`, RFC 3339 in that zone), next run, whether a run is in flight,
//!   last run, last success, state (`idle`, `running`, `failing`) with the last error,
//!   checkpoint, lag, live objects and partitions, and the service's counters since it started
//!   (runs, rows, objects, bytes, dirty rows, skipped ticks).
//! - `GET /api/tasks/{name}/runs?limit=N`: its newest run records (default 20, at most 1000).
//! - `GET /api/tasks/{name}/ddl`: its Hive DDL statements.
//! - `POST /api/tasks/{name}/run`: start a run now: 202, or 409 while one is in flight.
//! - `GET /metrics`: Prometheus metrics (OpenMetrics text; see [`super::metrics`]).
//! - `GET /api/openapi.json`: the OpenAPI 3 document of all this (`openapi.json` beside this
//!   file, written by hand; a unit test sends every documented request to the router and
//!   checks that a handler, not the fallback, answers it).
//! - `GET /api/watchers`, `GET /api/watchers/{name}`: the inventory watchers: root, format,
//!   scope, schedule with its timezone and next passes, state with the last error, and what
//!   their passes did since the service started (passes, reports applied / already imported /
//!   failed / waiting, rows).
//! - `POST /api/watchers/{name}/run`: start a pass now: 202, or 409 while one is in flight.
//! - `POST /api/reload`: read the task files again: 200 with what was added, removed and
//!   updated, or 422 with every problem (the running set is then unchanged).
//!
//! With `LAKEPORT_API_TOKEN` set, every mutating call needs `Authorization: Bearer <token>`
//! (401 otherwise), and so does every call but `/healthz` and `/readyz` (kept open for
//! probes) when the service listens on a non-loopback address; without a token it listens
//! on loopback only. The status page is a read like the others: open on loopback, and where
//! every call needs the token it does too (a browser must then send the header, e.g. through
//! a proxy that adds it); its "Run now" buttons ask for the token when a POST gets a 401.
//! No call takes a request body: a body over 64 KiB (`BODY_LIMIT`) is refused with 413 on
//! every path, declared by `Content-Length` or sent chunked, before any handler runs (see
//! `limit_body`).
//!
//! An unknown task or path is a 404 with `{"error": …}`; so are all other errors (400 for a
//! bad query, 503 while stopping or when the store fails). Names in paths are only looked up
//! among the loaded tasks: nothing from a request reaches the file system.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::delivery::ddl::live_ddl;
use crate::error::Error;
use crate::service::views::{view, watcher_view, WatcherView};
use crate::service::{NotStarted, Service};
use crate::store::{blocking, RunRecord};

/// Run records `…/runs` returns unless `limit` says otherwise, and at most.
const DEFAULT_RUNS: usize = 20;
const MAX_RUNS: usize = 1000;

/// The OpenAPI document of the API.
const OPENAPI: &str = include_str!("openapi.json");

/// Largest request body accepted (no endpoint takes one today).
const BODY_LIMIT: usize = 64 * 1024;

/// Who may call what: with a token, mutating calls (and, when `every_call`, all calls but
/// the health probes) need `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Access {
    /// The token (`LAKEPORT_API_TOKEN`), if any.
    pub token: Option<String>,
    /// Whether reads need it too (the service listens on a non-loopback address).
    pub every_call: bool,
}

/// Refuses a request that needs the token and lacks it (401, JSON error).
async fn authorize(
    State(access): State<Arc<Access>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = &access.token else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    let probe = path == "/healthz" || path == "/readyz";
    let mutating =
        request.method() != axum::http::Method::GET && request.method() != axum::http::Method::HEAD;
    if !(mutating || access.every_call && !probe) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let allowed = given.is_some_and(|g| {
        use subtle::ConstantTimeEq;
        bool::from(g.as_bytes().ct_eq(token.as_bytes()))
    });
    if allowed {
        next.run(request).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "this call needs Authorization: Bearer <LAKEPORT_API_TOKEN>".into(),
        )
    }
}

/// Refuses a request whose body is over [`BODY_LIMIT`] with 413 (JSON error), whatever its
/// path and method: at once when its `Content-Length` says so, else after reading at most
/// one chunk past the limit (a chunked body has no length to check). A body within the limit
/// is read whole and handed on.
///
/// axum's `DefaultBodyLimit`, and tower-http's `RequestBodyLimitLayer` for a chunked body,
/// act only when a handler reads the body; no handler here does, so a 50 MB POST to run-now
/// was answered 202 and the run started. Reading the body here, bounded, holds the limit for
/// every route.
async fn limit_body(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request bodies are limited to {} KiB (no call of this API takes one)",
                BODY_LIMIT / 1024
            ),
        )
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let mut chunks = body.into_data_stream();
    let mut read = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body: {e}"),
                )
            }
        };
        if read.len() + chunk.len() > BODY_LIMIT {
            return too_large();
        }
        read.extend_from_slice(&chunk);
    }
    let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(read));
    next.run(request).await
}

/// The API's routes over `service`, behind `access`; request bodies are limited (to 64 KiB)
/// before the token is checked.
pub fn router(service: Arc<Service>, access: Access) -> Router {
    Router::new()
        .route("/", get(super::page::status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/tasks", get(list_tasks))
        .route("/api/tasks/{name}", get(one_task))
        .route("/api/tasks/{name}/runs", get(task_runs))
        .route("/api/tasks/{name}/ddl", get(task_ddl))
        .route("/api/tasks/{name}/run", post(run_now))
        .route("/api/watchers", get(list_watchers))
        .route("/api/watchers/{name}", get(one_watcher))
        .route("/api/watchers/{name}/run", post(watch_now))
        .route("/metrics", get(metrics))
        .route("/api/workers", get(list_workers))
        .route("/api/reload", post(reload))
        .route("/api/openapi.json", get(openapi))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such path".into()) })
        .with_state(service)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            authorize,
        ))
        .layer(axum::middleware::from_fn(limit_body))
}

/// An error response: `{"error": message}`.
fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// 404 for a task the service does not have.
fn unknown(service: &Service, name: &str) -> Response {
    not_among("task", name, service.slots().keys())
}

/// 404 for a watcher the service does not have.
fn unknown_watcher(service: &Service, name: &str) -> Response {
    not_among("watcher", name, service.watchers().keys())
}

fn not_among<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a String>) -> Response {
    let known: Vec<&str> = known.map(String::as_str).collect();
    error(
        StatusCode::NOT_FOUND,
        format!("no {kind} named {name:?} ({kind}s: {})", known.join(", ")),
    )
}

/// A store failure as a response.
fn failed(e: Error) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, e.chain().to_string())
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(service): State<Arc<Service>>) -> Response {
    let store = Arc::clone(service.store());
    match blocking(move || store.runs(None, 1)).await {
        Ok(_) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store does not answer: {}", e.chain()),
        ),
    }
}

async fn list_tasks(State(service): State<Arc<Service>>) -> Response {
    let mut out = Vec::new();
    for slot in service.slots().values() {
        match view(&service, slot).await {
            Ok(v) => out.push(v),
            Err(e) => return failed(e),
        }
    }
    Json(json!({ "tasks": out })).into_response()
}

async fn one_task(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Response {
    let Some(slot) = service.slot(&name) else {
        return unknown(&service, &name);
    };
    match view(&service, &slot).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => failed(e),
    }
}

async fn task_runs(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if service.slot(&name).is_none() {
        return unknown(&service, &name);
    }
    // Read as pairs, so that no query string makes the extractor answer in plain text.
    let limits: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "limit")
        .map(|(_, v)| v.as_str())
        .collect();
    if limits.len() > 1 {
        return error(
            StatusCode::BAD_REQUEST,
            "limit: given more than once".into(),
        );
    }
    let limit = match limits.first().map(|v| v.parse::<usize>()) {
        None => DEFAULT_RUNS,
        Some(Ok(n)) if (1..=MAX_RUNS).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit: expected a whole number from 1 to {MAX_RUNS}"),
            )
        }
    };
    let store = Arc::clone(service.store());
    match blocking(move || store.runs(Some(&name), limit)).await {
        Ok(runs) => Json::<Vec<RunRecord>>(runs).into_response(),
        Err(e) => failed(e),
    }
}

async fn task_ddl(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Response {
    let Some(slot) = service.slot(&name) else {
        return unknown(&service, &name);
    };
    match live_ddl(service.store(), &slot.task()).await {
        Ok(ddl) => Json(json!({ "task": name, "statements": ddl })).into_response(),
        Err(e) => failed(e),
    }
}

async fn run_now(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Response {
    let started = service.run_now(&name);
    started_response(&service, "task", &name, started)
}

async fn watch_now(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Response {
    let started = service.watch_now(&name);
    started_response(&service, "watcher", &name, started)
}

/// 202 for a run (or pass) started, else why not.
fn started_response(
    service: &Service,
    kind: &str,
    name: &str,
    started: Result<(), NotStarted>,
) -> Response {
    match started {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ kind: name, "started": true })),
        )
            .into_response(),
        Err(NotStarted::Unknown) if kind == "task" => unknown(service, name),
        Err(NotStarted::Unknown) => unknown_watcher(service, name),
        Err(NotStarted::Busy(why)) => error(StatusCode::CONFLICT, why),
        Err(NotStarted::Stopping) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is shutting down".into(),
        ),
    }
}

async fn list_watchers(State(service): State<Arc<Service>>) -> Response {
    let out: Vec<WatcherView> = service
        .watchers()
        .values()
        .map(|slot| watcher_view(slot))
        .collect();
    Json(json!({ "watchers": out })).into_response()
}

async fn list_workers(State(service): State<Arc<Service>>) -> Response {
    let store = Arc::clone(service.store());
    match blocking(move || super::workers::workers(store.as_ref())).await {
        Ok((workers, unowned)) => {
            Json(json!({ "workers": workers, "unowned_runs": unowned })).into_response()
        }
        Err(e) => failed(e),
    }
}

async fn one_watcher(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Response {
    match service.watcher(&name) {
        Some(slot) => Json(watcher_view(&slot)).into_response(),
        None => unknown_watcher(&service, &name),
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    for slot in service.slots().values() {
        match slot.status(service.store()).await {
            Ok(status) => service.metrics().set_status(&status),
            Err(e) => return failed(e),
        }
    }
    match service.metrics().render() {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                super::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.chain().to_string()),
    }
}

async fn reload(State(service): State<Arc<Service>>) -> Response {
    match service.reload().await {
        Ok(done) => Json(done).into_response(),
        Err(e @ (Error::InvalidConfig(_) | Error::NotFound(_))) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, e.chain().to_string())
        }
        Err(e) => failed(e),
    }
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// Every path and method of the OpenAPI document reaches a handler of the router (the
    /// fallback would answer "no such path"), and an undocumented path does not.
    #[tokio::test]
    async fn every_documented_route_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn crate::store::Store> =
            Arc::new(crate::store::SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let service = Service::new(store, crate::service::nothing_declared()).unwrap();
        service.start().await.unwrap();
        let app = router(
            Arc::clone(&service),
            Access {
                token: None,
                every_call: false,
            },
        );
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut seen = 0;
        let ask = |method: &str, path: &str| {
            axum::http::Request::builder()
                .method(method.to_ascii_uppercase().as_str())
                .uri(path.replace("{name}", "nope"))
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let fallback = |body: &[u8]| String::from_utf8_lossy(body).contains("no such path");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method == "parameters" {
                    continue;
                }
                let response = app.clone().oneshot(ask(method, path)).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                assert!(!fallback(&body), "{method} {path}: {status}");
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                seen += 1;
            }
        }
        assert_eq!(seen, 15);
        let response = app.oneshot(ask("get", "/api/nothing")).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(fallback(&body));
        service.shutdown(std::time::Duration::from_secs(1)).await;
    }

    /// A body over 64 KiB gets 413 on every route, whether its `Content-Length` says so or it
    /// comes chunked (then it is read no further than the limit); a body within the limit
    /// reaches the handler.
    #[tokio::test]
    async fn request_bodies_over_the_limit_are_refused_on_every_route() {
        use futures::StreamExt;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn crate::store::Store> =
            Arc::new(crate::store::SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let service = Service::new(store, crate::service::nothing_declared()).unwrap();
        let app = router(
            Arc::clone(&service),
            Access {
                token: None,
                every_call: false,
            },
        );
        let send = |method: &str, path: &str, length: Option<usize>, body: axum::body::Body| {
            let mut request = axum::http::Request::builder().method(method).uri(path);
            if let Some(n) = length {
                request = request.header(axum::http::header::CONTENT_LENGTH, n);
            }
            app.clone().oneshot(request.body(body).unwrap())
        };
        let error_of = |response: Response| async move {
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        // 50 MiB in 64 KiB chunks, made only as they are read; counts the chunks read.
        let chunked = |chunks: usize, read: Arc<AtomicUsize>| {
            axum::body::Body::from_stream(futures::stream::iter(0..chunks).map(move |_| {
                read.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 64 * 1024]))
            }))
        };
        let routes = [
            ("POST", "/api/tasks/nope/run"),
            ("POST", "/api/reload"),
            ("POST", "/api/watchers/nope/run"),
            ("GET", "/healthz"),
            ("GET", "/api/tasks"),
            ("GET", "/no/such/path"),
        ];
        for (method, path) in routes {
            let over = vec![b'x'; BODY_LIMIT + 1];
            let response = send(method, path, Some(over.len()), over.into())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            assert!(error_of(response).await.contains("64 KiB"), "{path}");

            let read = Arc::new(AtomicUsize::new(0));
            let body = chunked(800, Arc::clone(&read));
            let response = send(method, path, None, body).await.unwrap();
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            assert!(
                read.load(Ordering::SeqCst) <= 2,
                "{path}: read the whole body"
            );
        }
        // Exactly the limit, chunked: the handlers answer.
        let at_limit = || chunked(1, Arc::new(AtomicUsize::new(0)));
        let response = send("GET", "/healthz", None, at_limit()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let response = send("POST", "/api/tasks/nope/run", None, at_limit())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(error_of(response).await.contains("no task named"));
    }

    /// `GET /` is the HTML status page, its inline script allowed by the nonce of its CSP;
    /// it follows the read rule: open on loopback, behind the token when every call needs it.
    #[tokio::test]
    async fn the_status_page_is_html_and_follows_the_read_rule() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn crate::store::Store> =
            Arc::new(crate::store::SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let service = Service::new(store, crate::service::nothing_declared()).unwrap();
        let get = |token: Option<&str>| {
            let mut request = axum::http::Request::builder().uri("/");
            if let Some(t) = token {
                request = request.header("Authorization", format!("Bearer {t}"));
            }
            request.body(axum::body::Body::empty()).unwrap()
        };
        let token = Some("s3cret".to_string());
        for (every_call, given, want) in [
            (false, None, StatusCode::OK),
            (true, None, StatusCode::UNAUTHORIZED),
            (true, Some("wrong"), StatusCode::UNAUTHORIZED),
            (true, Some("s3cret"), StatusCode::OK),
        ] {
            let access = Access {
                token: token.clone(),
                every_call,
            };
            let response = router(Arc::clone(&service), access)
                .oneshot(get(given))
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                want,
                "every_call {every_call}, {given:?}"
            );
            if want != StatusCode::OK {
                continue;
            }
            let header = |name| response.headers()[name].to_str().unwrap().to_string();
            assert_eq!(header("content-type"), "text/html; charset=utf-8");
            let csp = header("content-security-policy");
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let html = String::from_utf8(body.to_vec()).unwrap();
            let nonce = csp
                .split("script-src 'nonce-")
                .nth(1)
                .and_then(|rest| rest.split('\'').next())
                .unwrap();
            assert!(nonce.len() >= 32, "{csp}");
            assert!(
                html.contains(&format!("<script nonce=\"{nonce}\">")),
                "{csp}"
            );
            assert!(html.contains("No tasks"));
        }
    }
}
