//! The status page of `lakeport serve`: `GET /` as one HTML page rendered on the server, for a
//! person with a browser (a phone will do). It shows what `GET /api/tasks` returns, from the
//! same code ([`super::http::view`], [`super::http::ddl`]): per task its mode and schedule, a
//! state badge (idle, running, failing), the last successful sync (RFC 3339 UTC and how long
//! ago), the lag (rows and seconds), the last run (rows, objects, bytes) and the live set, the
//! service's counters since it started, the last error in full, the next run (in the
//! schedule's timezone, named when it is not UTC), a "Run now" button and the task's DDL
//! (collapsed).
//!
//! The page has no build step and loads nothing from elsewhere: the CSS and a small script are
//! inline, allowed by a per-response nonce in its Content-Security-Policy. Without JavaScript
//! it is a static page whose buttons post a plain form to the API. With it, the buttons call
//! `POST /api/tasks/{name}/run` and show the answer in the row (asking once for the API token
//! on a 401 and keeping it in `sessionStorage`), and the page fetches itself every 5 s and
//! swaps its `<main>`, except while a DDL is open or a button's call is pending.
//!
//! Rendering is pure ([`render`] over [`TaskRow`]s and an instant) and escapes every value
//! (maud's `html!`); the handler only gathers the rows. Cells carry stable `data-task` /
//! `data-field` attributes (raw numbers in `data-value`) for tests and scripts.
//!
//! Who may load it is decided by [`super::http`]'s access rule for reads: open on a loopback
//! address, behind the token when the service listens elsewhere.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::config::schedule::rfc3339_local;
use crate::delivery::ddl::live_ddl;
use crate::error::Error;
use crate::service::views::{view, watcher_view, TaskView, WatcherView};
use crate::service::Service;

/// How often the page fetches itself, in milliseconds (the script reads it from the page).
const REFRESH_MS: i64 = 5_000;

/// The page's style sheet (inline: the page loads nothing from elsewhere).
const CSS: &str = include_str!("page.css");

/// The page's script: run-now buttons and the refresh (inline, see [`CSS`]).
const SCRIPT: &str = include_str!("page.js");

/// The page when the store fails: 503 with `{"error": …}`, as the API answers.
fn store_failed(e: Error) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": e.chain().to_string() })),
    )
        .into_response()
}

/// One task as the page shows it: its view (what the API returns) and its DDL statements, or
/// why they could not be made.
#[derive(Debug)]
pub(crate) struct TaskRow {
    pub(crate) view: TaskView,
    pub(crate) ddl: Result<Vec<String>, String>,
}

/// `GET /`: the status page of every task, or the API's 503 when the store fails.
pub(crate) async fn status_page(State(service): State<Arc<Service>>) -> Response {
    let mut rows = Vec::new();
    for slot in service.slots().values() {
        let view = match view(&service, slot).await {
            Ok(v) => v,
            Err(e) => return store_failed(e),
        };
        let ddl = live_ddl(service.store(), &slot.task())
            .await
            .map_err(|e| e.chain().to_string());
        rows.push(TaskRow { view, ddl });
    }
    let watchers: Vec<WatcherView> = service
        .watchers()
        .values()
        .map(|slot| watcher_view(slot))
        .collect();
    let now = chrono::Utc::now().timestamp_millis();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; \
         connect-src 'self'; form-action 'self'; img-src data:; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    (
        [
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        render(&rows, &watchers, now, service.started_ms, &nonce),
    )
        .into_response()
}

/// The whole page at instant `now_ms` (ms since epoch UTC) for a service started at
/// `started_ms`; `nonce` lets its inline style and script run under the page's CSP.
///
/// The page is a header and a list of sections: [`tasks_section`], then
/// [`watchers_section`] when the service runs inventory watchers.
pub(crate) fn render(
    tasks: &[TaskRow],
    watchers: &[WatcherView],
    now_ms: i64,
    started_ms: i64,
    nonce: &str,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { "lakeport status" }
                link rel="icon" href="data:,";
                style nonce=(nonce) { (PreEscaped(CSS)) }
            }
            body {
                header.top {
                    div.brand {
                        h1 { "lakeport" }
                        span.muted { "status" }
                    }
                    div.refresh {
                        span #refresh data-period-ms=(REFRESH_MS) {
                            "Live: refreshes every " (REFRESH_MS / 1000) " s"
                        }
                        noscript { "JavaScript is off: reload to refresh." }
                    }
                }
                main data-rendered-ms=(now_ms) {
                    (tasks_section(tasks, now_ms))
                    @if !watchers.is_empty() {
                        (watchers_section(watchers, now_ms))
                    }
                    footer {
                        "Rendered " (utc_seconds(now_ms)) " · service up " (span(now_ms - started_ms))
                        " · JSON: " a href="api/tasks" { "/api/tasks" }
                        " · " a href="metrics" { "/metrics" }
                        " · " a href="api/openapi.json" { "OpenAPI" }
                    }
                }
                script nonce=(nonce) { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// The tasks: a table on a wide screen, one card per task on a narrow one.
pub(crate) fn tasks_section(rows: &[TaskRow], now_ms: i64) -> Markup {
    let count = |state: &str| rows.iter().filter(|t| t.view.state == state).count();
    html! {
        section #tasks {
            div.heading {
                h2 { "Tasks" }
                div.summary data-field="summary" {
                    span { strong { (counted(rows.len() as u64, "task")) } }
                    span.dot.idle { (count("idle")) " idle" }
                    span.dot.running { (count("running")) " running" }
                    span.dot.failing { (count("failing")) " failing" }
                }
            }
            @if rows.is_empty() {
                p.empty { "No tasks: the pipelines folder holds none." }
            } @else {
                table {
                    (head(&[
                        "Task",
                        "State",
                        "Last sync",
                        "Lag",
                        "Last run",
                        "Since start",
                        "Next run",
                    ]))
                    @for row in rows {
                        (task_rows(row, now_ms))
                    }
                }
            }
        }
    }
}

/// A table head of `columns`, then the (unlabelled) column of the row's button.
fn head(columns: &[&str]) -> Markup {
    html! {
        thead {
            tr {
                @for column in columns {
                    th { (column) }
                }
                th { span.visually-hidden { "Action" } }
            }
        }
    }
}

/// The inventory watchers: per watcher its root and schedule, state, what its passes did
/// with reports, the rows applied, the next pass and a "Pass now" button.
pub(crate) fn watchers_section(watchers: &[WatcherView], now_ms: i64) -> Markup {
    html! {
        section #watchers {
            div.heading {
                h2 { "Inventory watchers" }
                div.summary { span { strong { (counted(watchers.len() as u64, "watcher")) } } }
            }
            table {
                (head(&["Watcher", "State", "Reports", "Rows applied", "Next pass"]))
                @for w in watchers {
                    tbody data-task=(w.watcher) data-kind="watcher" {
                        tr.main {
                            td data-label="Watcher" {
                                div {
                                    strong data-field="name" { (w.watcher) }
                                    span.sub { code data-field="root" { (w.root) } }
                                    span.sub { code data-field="schedule" { (w.schedule) } }
                                }
                            }
                            td data-label="State" {
                                div { span.badge.(w.state) data-field="state" { (w.state) } }
                            }
                            td data-label="Reports" data-field="applied"
                                data-value=(w.reports.applied) {
                                div {
                                    span { (grouped(w.reports.applied)) " applied" }
                                    span.sub data-field="failed" data-value=(w.reports.failed) {
                                        (grouped(w.reports.failed)) " failed · "
                                        (grouped(w.reports.waiting)) " waiting · "
                                        (grouped(w.reports.already_imported)) " seen before"
                                    }
                                    @if let Some(ms) = w.reports.last_applied_ms {
                                        span.sub { "last " (ago(now_ms, ms)) }
                                    }
                                }
                            }
                            td data-label="Rows applied" data-field="rows"
                                data-value=(w.service.rows) {
                                div {
                                    span { (grouped(w.service.rows)) }
                                    span.sub { (counted(w.service.runs_succeeded, "scan")) }
                                }
                            }
                            td data-label="Next pass" data-field="next-run" {
                                div {
                                    @if let (Some(ms), Some(text)) = (w.next_run_ms, &w.next_run) {
                                        (next_time(ms, text, Some(&w.schedule_timezone), now_ms))
                                    }
                                }
                            }
                            td.action data-label="" {
                                div {
                                    form method="post" action={ "api/watchers/" (w.watcher) "/run" }
                                        data-run=(w.watcher) {
                                        button type="submit" { "Pass now" }
                                    }
                                    span.outcome data-field="outcome" role="status" {}
                                }
                            }
                        }
                        @if let Some(error) = &w.error {
                            tr.detail {
                                td colspan="6" {
                                    div.error data-field="error" {
                                        strong { "Last error" }
                                        pre { (error) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One task: its row of values, then a row with its last error and DDL.
fn task_rows(row: &TaskRow, now_ms: i64) -> Markup {
    let v = &row.view;
    let s = &v.status;
    let name = s.task.as_str();
    let stats = &v.service;
    html! {
        tbody.task id={ "task-" (name) } data-task=(name) data-state=(v.state) {
            tr.main {
                td.name data-label="Task" {
                    div {
                        strong data-field="name" { (name) }
                        span.sub {
                            span.chip data-field="mode" { (s.mode) }
                            @if let Some(schedule) = &s.schedule {
                                " " code data-field="schedule" { (schedule) }
                            }
                        }
                    }
                }
                td data-label="State" {
                    div { span.badge.(v.state) data-field="state" { (v.state) } }
                }
                td data-label="Last sync" data-field="last-sync"
                    data-value=[s.last_success_ms] {
                    div {
                        @if let (Some(ms), Some(text)) = (s.last_success_ms, &v.last_success) {
                            time datetime=(text) { (utc_seconds(ms)) }
                            span.sub { (ago(now_ms, ms)) }
                        } @else {
                            span.muted { "never" }
                        }
                    }
                }
                td data-label="Lag" data-field="lag"
                    data-rows=[s.lag.map(|l| l.rows_behind)] data-seconds=[s.lag_seconds] {
                    div { (lag(v)) }
                }
                td data-label="Last run" data-field="rows"
                    data-value=[s.last_run.as_ref().map(|r| r.rows)] {
                    div {
                        @if let Some(run) = &s.last_run {
                            span.num { (counted(run.rows, "row")) }
                            span.sub data-field="last-run" data-value=(run.run_id) {
                                "#" (run.run_id) " " (run.status.as_str()) " · "
                                (counted(run.objects.len() as u64, "object")) " · " (bytes(run.bytes))
                            }
                        } @else {
                            span.muted { "no run yet" }
                        }
                        span.sub data-field="live" data-value=(s.live_objects) {
                            "live: " (counted(s.live_objects as u64, "object")) " in "
                            (counted(s.live_partitions as u64, "partition"))
                        }
                    }
                }
                td data-label="Since start" data-field="runs" data-value=(stats.runs_started) {
                    div {
                        span.num {
                            (counted(stats.runs_started, "run"))
                            @if stats.runs_failed > 0 {
                                " (" (grouped(stats.runs_failed)) " failed)"
                            }
                        }
                        span.sub data-field="service-rows" data-value=(stats.rows) {
                            (counted(stats.rows, "row")) " · " (bytes(stats.bytes))
                        }
                        @if stats.dirty_rows > 0 || stats.skipped_overlaps > 0 {
                            span.sub {
                                (counted(stats.dirty_rows, "dirty row")) " · "
                                (counted(stats.skipped_overlaps, "tick")) " skipped"
                            }
                        }
                    }
                }
                td data-label="Next run" data-field="next-run"
                    data-value=(next_run_value(v)) {
                    div {
                        @if let (Some(ms), Some(text)) = (v.next_run_ms, &v.next_run) {
                            (next_time(ms, text, s.schedule_timezone.as_deref(), now_ms))
                        } @else if v.continuous {
                            span { "continuous" }
                        } @else {
                            span.muted { "on request" }
                        }
                    }
                }
                td.action data-label="" {
                    div {
                        form method="post" action={ "api/tasks/" (name) "/run" } data-run=(name) {
                            @if v.continuous {
                                button type="submit" disabled
                                    title="A continuous task delivers changes by itself" {
                                    "Run now"
                                }
                            } @else {
                                button type="submit" { "Run now" }
                            }
                        }
                        span.outcome data-field="outcome" role="status" {}
                    }
                }
            }
            tr.detail {
                td colspan="8" {
                    @if let Some(error) = &v.error {
                        div.error data-field="error" {
                            strong { "Last error" }
                            pre { (error) }
                        }
                    }
                    details data-field="ddl" {
                        @match &row.ddl {
                            Ok(statements) => {
                                summary { "DDL (" (counted(statements.len() as u64, "statement")) ")" }
                                pre { code {
                                    @for (i, statement) in statements.iter().enumerate() {
                                        @if i > 0 { "\n" }
                                        (statement)
                                    }
                                } }
                            }
                            Err(why) => {
                                summary { "DDL (unavailable)" }
                                pre.error { (why) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The lag cell: rows behind and the age of the oldest of them.
fn lag(v: &TaskView) -> Markup {
    let s = &v.status;
    html! {
        @match s.lag {
            None => { span.muted { "—" } span.sub { "no table yet" } }
            Some(l) if l.rows_behind == 0 => {
                span.num { "0 rows" }
                span.sub { "up to date" }
            }
            Some(l) => {
                span.num { (counted(l.rows_behind, "row")) }
                span.sub {
                    @if let Some(secs) = s.lag_seconds {
                        (seconds(secs)) " behind"
                    }
                }
            }
        }
    }
}

/// The next-run cell's `data-value`: ms since epoch, `continuous` or `on request`.
fn next_run_value(v: &TaskView) -> String {
    match v.next_run_ms {
        Some(ms) => ms.to_string(),
        None if v.continuous => "continuous".into(),
        None => "on request".into(),
    }
}

/// A next run at `ms` (`utc`: RFC 3339 UTC) read in `zone`: the time with the zone's offset
/// (UTC when there is no zone, or it is UTC), then the zone's name if not UTC and how soon.
fn next_time(ms: i64, utc: &str, zone: Option<&str>, now_ms: i64) -> Markup {
    let zoned = zone
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        .filter(|z| *z != chrono_tz::UTC)
        .and_then(|z| Some((z, chrono::DateTime::from_timestamp_millis(ms)?)));
    html! {
        @if let Some((zone, t)) = zoned {
            time datetime=(utc) { (rfc3339_local(&t.with_timezone(&zone))) }
            span.sub { (zone.name()) " · " (until(now_ms, ms)) }
        } @else {
            time datetime=(utc) { (utc_seconds(ms)) }
            span.sub { (until(now_ms, ms)) }
        }
    }
}

/// `ms` since epoch as RFC 3339 UTC to the second, e.g. `2026-11-28T06:40:12Z`.
fn utc_seconds(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// A duration in ms, whole and in the largest fitting unit: `42 s`, `5 min`, `3 h`, `2 d`
/// (hours up to 48, so "yesterday" reads as hours). Negative counts as 0.
fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3_599 => format!("{} min", s / 60),
        3_600..=172_799 => format!("{} h", s / 3_600),
        _ => format!("{} d", s / 86_400),
    }
}

/// How long before `now_ms` the instant `then_ms` was: `42 s ago`.
fn ago(now_ms: i64, then_ms: i64) -> String {
    format!("{} ago", span(now_ms - then_ms))
}

/// How long after `now_ms` the instant `then_ms` is: `in 42 s` (`due now` when past).
fn until(now_ms: i64, then_ms: i64) -> String {
    if then_ms <= now_ms {
        "due now".into()
    } else {
        format!("in {}", span(then_ms - now_ms))
    }
}

/// Seconds with a tenth below 10 s (`0.5 s`), else as [`span`].
fn seconds(secs: f64) -> String {
    if secs < 10.0 {
        format!("{:.1} s", secs.max(0.0))
    } else {
        span((secs * 1000.0) as i64)
    }
}

/// `n` with thousands separated by commas: `150,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` and a noun, plural unless `n` is 1: `1 row`, `150,000 rows`.
fn counted(n: u64, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {noun}{s}", grouped(n))
}

/// Bytes in binary units: `1.2 MiB`.
fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::status::TaskStatus;
    use crate::service::SlotStats;
    use crate::store::{Lag, RunRecord, RunStatus};
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000_000;

    fn run(status: RunStatus, error: Option<&str>) -> RunRecord {
        RunRecord {
            run_id: 7,
            task: "daily".into(),
            status,
            mode: "full".into(),
            started_ms: NOW - 90_000,
            ended_ms: Some(NOW - 89_000),
            seq_to: 10,
            seq_from: 0,
            first_object_seq: 1,
            next_object_seq: 2,
            shards: 1,
            rows: 150_000,
            bytes: 2048,
            objects: Vec::new(),
            dirty: BTreeMap::new(),
            error: error.map(str::to_string),
            heartbeat_ms: None,
            new_partitions: Vec::new(),
            owner: None,
        }
    }

    fn row(name: &str, error: Option<&str>, ddl: Result<Vec<String>, String>) -> TaskRow {
        let last_run = run(
            if error.is_some() {
                RunStatus::Failed
            } else {
                RunStatus::Succeeded
            },
            error,
        );
        TaskRow {
            view: TaskView {
                status: TaskStatus {
                    task: name.into(),
                    mode: "full".into(),
                    schedule: Some("0 0 2 * * *".into()),
                    schedule_timezone: Some("UTC".into()),
                    next_runs: vec!["2027-01-16T02:00:00+00:00".into()],
                    last_run: Some(last_run),
                    last_success_ms: Some(NOW - 89_000),
                    live_objects: 3,
                    live_partitions: 2,
                    checkpoint: 10,
                    lag: Some(Lag {
                        newest_seq: 12,
                        rows_behind: 2,
                        oldest_write_ms: Some(NOW - 4_500),
                    }),
                    lag_seconds: Some(4.5),
                },
                state: if error.is_some() { "failing" } else { "idle" },
                error: error.map(str::to_string),
                running: false,
                continuous: false,
                next_run: Some(crate::service::rfc3339(NOW + 125_000)),
                next_run_ms: Some(NOW + 125_000),
                last_success: Some(crate::service::rfc3339(NOW - 89_000)),
                service: SlotStats {
                    runs_started: 4,
                    runs_succeeded: 3,
                    runs_failed: 1,
                    rows: 1_234_567,
                    ..SlotStats::default()
                },
            },
            ddl,
        }
    }

    #[test]
    fn task_values_from_errors_and_ddl_are_escaped() {
        let evil = "bad <script>alert('x')</script> & \"quoted\"";
        let rows = [row(
            "daily",
            Some(evil),
            Ok(vec![
                "CREATE TABLE `t` (a STRING COMMENT '<b>x</b>');".into()
            ]),
        )];
        let html = render(&rows, &[], NOW, NOW - 1000, "n0nce").into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>x</b>"), "{html}");
        assert!(
            html.contains("bad &lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;quoted&quot;")
        );
        assert!(html.contains("COMMENT '&lt;b&gt;x&lt;/b&gt;');"));
        // The only scripts are the page's own, carrying the nonce.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains("<script nonce=\"n0nce\">"));
        let broken = [row("daily", None, Err("no <destination>".into()))];
        let html = render(&broken, &[], NOW, NOW, "n").into_string();
        assert!(html.contains("no &lt;destination&gt;") && !html.contains("<destination>"));
    }

    /// The style and script are inlined raw: nothing in them may end their element early.
    #[test]
    fn the_inline_style_and_script_stay_inside_their_elements() {
        for (text, end) in [(CSS, "</style"), (SCRIPT, "</script"), (SCRIPT, "<script")] {
            assert!(!text.to_ascii_lowercase().contains(end), "{end}");
        }
    }

    #[test]
    fn cells_carry_stable_names_and_raw_values() {
        let rows = [row("daily", Some("boom"), Ok(vec!["CREATE;".into()]))];
        let html = render(&rows, &[], NOW, NOW - 1000, "n").into_string();
        for part in [
            r#"<tbody class="task" id="task-daily" data-task="daily" data-state="failing">"#,
            r#"<span class="badge failing" data-field="state">failing</span>"#,
            r#"data-field="rows" data-value="150000""#,
            "150,000 rows",
            r#"data-field="runs" data-value="4""#,
            r#"data-field="service-rows" data-value="1234567">1,234,567 rows"#,
            r#"data-field="lag" data-rows="2" data-seconds="4.5""#,
            "4.5 s behind",
            &format!(r#"data-field="next-run" data-value="{}""#, NOW + 125_000),
            "in 2 min",
            "1 min ago",
            r#"<div class="error" data-field="error"><strong>Last error</strong><pre>boom</pre>"#,
            r#"<details data-field="ddl"><summary>DDL (1 statement)</summary>"#,
            r#"action="api/tasks/daily/run""#,
        ] {
            assert!(html.contains(part), "{part} not in {html}");
        }
        // A task without an error has no error block; an on-request task says so.
        let mut calm = row("calm", None, Ok(Vec::new()));
        calm.view.next_run_ms = None;
        calm.view.next_run = None;
        let html = render(&[calm], &[], NOW, NOW, "n").into_string();
        assert!(!html.contains(r#"data-field="error""#));
        assert!(html.contains(r#"data-value="on request""#));
    }

    #[test]
    fn the_next_run_reads_in_the_schedules_timezone() {
        let utc = row("daily", None, Ok(Vec::new()));
        let html = render(&[utc], &[], NOW, NOW, "n").into_string();
        assert!(
            html.contains(r#"<time datetime="2027-01-15T08:02:05.000Z">2027-01-15T08:02:05Z</time><span class="sub">in 2 min</span>"#),
            "{html}"
        );
        let mut tokyo = row("tokyo", None, Ok(Vec::new()));
        tokyo.view.status.schedule_timezone = Some("Asia/Tokyo".into());
        let html = render(&[tokyo], &[], NOW, NOW, "n").into_string();
        assert!(
            html.contains(r#"<time datetime="2027-01-15T08:02:05.000Z">2027-01-15T17:02:05+09:00</time><span class="sub">Asia/Tokyo · in 2 min</span>"#),
            "{html}"
        );
    }

    #[test]
    fn durations_read_in_the_largest_whole_unit() {
        assert_eq!(ago(NOW, NOW), "0 s ago");
        assert_eq!(ago(NOW, NOW - 59_999), "59 s ago");
        assert_eq!(ago(NOW, NOW - 60_000), "1 min ago");
        assert_eq!(ago(NOW, NOW - 3_599_999), "59 min ago");
        assert_eq!(ago(NOW, NOW - 3_600_000), "1 h ago");
        assert_eq!(ago(NOW, NOW - 47 * 3_600_000), "47 h ago");
        assert_eq!(ago(NOW, NOW - 48 * 3_600_000), "2 d ago");
        assert_eq!(
            ago(NOW, NOW + 5_000),
            "0 s ago",
            "a clock skew is not negative"
        );
        assert_eq!(until(NOW, NOW + 90_000), "in 1 min");
        assert_eq!(until(NOW, NOW - 1), "due now");
        assert_eq!(seconds(0.04), "0.0 s");
        assert_eq!(seconds(9.94), "9.9 s");
        assert_eq!(seconds(75.0), "1 min");
        assert_eq!(utc_seconds(NOW + 123), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(150_000), "150,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(counted(1, "row"), "1 row");
        assert_eq!(counted(0, "row"), "0 rows");
        assert_eq!(counted(2_000, "dirty row"), "2,000 dirty rows");
    }
}
