"""The status page of `lakeport serve` (`GET /`) in headless Chromium (Debian's `chromium`,
installed by `make chromium`; driven by the PyPI `playwright` package, whose own browser
downloads are never used): the task rows and their values in the DOM agree with the API and
the lake, a task's error is shown as text, the page refreshes itself but not while a DDL is
open, "Run now" asks once for the API token and the run appears, and on a phone-sized screen
the table becomes cards. Screenshots go to the test's folder and to tests/e2e/output/."""

import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from conftest import REPO, call, duck, live_objects, serving, wait_for

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = REPO / "tests" / "e2e" / "output"
TOKEN = "s3cret"
COLUMNS = [("id", "int64"), ("name", "string"), ("at", "timestamp_ms")]
ROWS = 1_000

# Everything the test reads from the page, per task (one <tbody data-task> each). Scripts given
# to the page are functions: its CSP forbids evaluating a bare string (Playwright would eval).
READ_ROWS = """() => [...document.querySelectorAll('tbody[data-task]')].map(t => {
  const f = (n) => t.querySelector(`[data-field="${n}"]`);
  const value = (n) => f(n) ? f(n).getAttribute('data-value') : null;
  const time = (n) => { const e = f(n).querySelector('time'); return e && e.getAttribute('datetime'); };
  const error = f('error') && f('error').querySelector('pre');
  return {
    task: t.dataset.task, state: t.dataset.state, name: f('name').textContent,
    badge: f('state').textContent, mode: f('mode').textContent,
    last_sync: time('last-sync'), last_sync_ms: value('last-sync'),
    lag_rows: f('lag').getAttribute('data-rows'), rows: value('rows'), last_run: value('last-run'),
    live: value('live'), runs: value('runs'), service_rows: value('service-rows'),
    next_run: value('next-run'), next_run_time: time('next-run'),
    error: error && error.textContent, error_elements: error && error.children.length,
    ddl_open: f('ddl').open, ddl: f('ddl').querySelector('pre').textContent,
    button: t.querySelector('button').textContent.trim(),
    button_disabled: t.querySelector('button').disabled,
  };
})"""


def setup(wd):
    """Table `items` (ROWS rows); `delivered` (full, daily at 02:00, run once before the
    service starts), `manual` (full, on request only), `broken` (a file stands where its
    partition folder goes, so its run fails; the path holds markup, which the page must show
    as text), `stream` (continuous: the service delivers the table once, then waits)."""
    wd.write_table("items", ["id"], COLUMNS)
    common = {"source": "items", "prefix": "dt=$yyyy-$MM-$dd", "concurrency": 1,
              "partition_time": {"from": "column", "column": "at", "timezone": "UTC"}}
    wd.write_task("delivered", mode="full", schedule="0 0 2 * * *", **common)
    wd.write_task("manual", mode="full", schedule=None, **common)
    # A file where the run's partition folder would go; the folder's name holds markup.
    wd.write("lake/<i>broken</i>/dt=2023-11-14", "a file, not a folder\n")
    wd.write_task("broken", mode="full", schedule=None, destination="lake/<i>broken</i>",
                  retry={"initial": "10ms", "max_interval": "10ms", "max_elapsed": "50ms"},
                  **common)
    wd.write_task("stream", mode="incremental", schedule="continuous", max_delay="1s",
                  **common)
    day = 86_400_000
    wd.load("items", [{"id": i, "name": f"n{i}", "at": 1_700_000_000_000 + (i % 3) * day}
                      for i in range(1, ROWS + 1)])
    wd.run("delivered")
    wd.lakeport("run", "broken", expect=1)


def lake_rows(wd, task):
    files = [str(wd.destination(task) / f) for f in live_objects(wd, task)]
    return duck().execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()[0]


def keep(path, capsys):
    """Copies a screenshot to tests/e2e/output/ and prints both paths."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    kept = OUTPUT / path.name
    shutil.copyfile(path, kept)
    with capsys.disabled():
        print(f"\nscreenshot: {path}\n        and {kept}")


def rendered_ms(page):
    return page.get_attribute("main", "data-rendered-ms")


def test_status_page_in_headless_chromium(wd, monkeypatch, tmp_path, capsys):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    setup(wd)
    # On loopback with a token: the page (a read) is open, run-now (a POST) needs the token.
    monkeypatch.setenv("LAKEPORT_API_TOKEN", TOKEN)
    with serving(wd) as (p, base), sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"])
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 900})
            page = context.new_page()
            requests, problems, dialogs = [], [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))

            def answer(dialog):
                dialogs.append(dialog.message)
                dialog.accept(TOKEN)
            page.on("dialog", answer)

            wait_for("the continuous task's first run", lambda: (
                lambda t: t["last_run"] and t["last_run"]["status"] == "succeeded"
                and t["lag"]["rows_behind"] == 0)(call(base, "/api/tasks/stream")[1]))
            response = page.goto(base + "/")
            assert response.status == 200, response.status
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            shown = {r["task"]: r for r in page.evaluate(READ_ROWS)}
            api = {t["task"]: t for t in call(base, "/api/tasks")[1]["tasks"]}
            assert list(shown) == list(api) == ["broken", "delivered", "manual", "stream"], shown
            for name, row in shown.items():
                t = api[name]
                assert (row["name"], row["state"], row["badge"], row["mode"]) == \
                    (name, t["state"], t["state"], t["mode"]), row
                assert row["last_sync"] == t["last_success"], (row, t)
                assert row["runs"] == str(t["service"]["runs_started"]), (row, t)
                assert row["service_rows"] == str(t["service"]["rows"]), (row, t)
                assert row["live"] == str(t["live_objects"]), row
                assert row["lag_rows"] == str(t["lag"]["rows_behind"]), row
                assert not row["ddl_open"], "the DDL is collapsed at first"
                ddl = call(base, f"/api/tasks/{name}/ddl")[1]["statements"]
                assert row["ddl"] == "\n".join(ddl), row
                assert row["button"] == "Run now", row
                assert row["button_disabled"] == (name == "stream"), row

            # The delivered task: its rows are the lake's, its next run the API's.
            d = shown["delivered"]
            assert d["state"] == "idle" and d["error"] is None, d
            assert int(d["rows"]) == api["delivered"]["last_run"]["rows"] \
                == lake_rows(wd, "delivered") == ROWS, d
            assert d["last_run"] == str(api["delivered"]["last_run"]["run_id"]), d
            assert int(d["last_sync_ms"]) == api["delivered"]["last_success_ms"], d
            assert d["lag_rows"] == "0", d
            assert d["next_run"] == str(api["delivered"]["next_run_ms"]), d
            assert d["next_run_time"] == api["delivered"]["next_run"], d
            # The manual task never ran and runs only when asked.
            m = shown["manual"]
            assert (m["state"], m["rows"], m["last_run"], m["last_sync"], m["next_run"]) == \
                ("idle", None, None, None, "on request"), m
            assert m["lag_rows"] == str(ROWS), m
            # The continuous task delivered the table by itself and cannot be run on request.
            st = shown["stream"]
            assert (st["state"], st["next_run"], st["runs"], st["service_rows"]) == \
                ("idle", "continuous", "1", str(ROWS)), st
            assert int(st["rows"]) == lake_rows(wd, "stream") == ROWS, st
            # The broken task fails; its error, path markup and all, is text.
            b = shown["broken"]
            assert b["state"] == "failing" and b["error"] == api["broken"]["error"], b
            assert "<i>broken</i>" in b["error"] and b["error_elements"] == 0, b
            assert page.locator("tbody[data-task=broken] pre i").count() == 0

            shot = tmp_path / "status-page.png"
            page.screenshot(path=str(shot), full_page=True)
            keep(shot, capsys)

            # The page refreshes itself every 5 s, but not while a DDL is open.
            before = rendered_ms(page)
            page.click("tbody[data-task=delivered] details summary")
            time.sleep(6.5)
            assert page.locator("tbody[data-task=delivered] details").get_attribute("open") \
                is not None, "a refresh closed the DDL being read"
            assert rendered_ms(page) == before, "the page refreshed while a DDL was open"
            assert "Paused" in page.text_content("#refresh")
            page.click("tbody[data-task=delivered] details summary")
            page.wait_for_function(
                "(before) => document.querySelector('main').dataset.renderedMs !== before",
                arg=before, timeout=15_000)

            # Run now: the POST needs the token; the page asks once, then the run appears.
            page.click("tbody[data-task=manual] button")
            outcome = "tbody[data-task=manual] [data-field=outcome]"
            page.wait_for_function(
                "(outcome) => document.querySelector(outcome).textContent === 'Run started'",
                arg=outcome, timeout=15_000)
            assert len(dialogs) == 1 and "LAKEPORT_API_TOKEN" in dialogs[0], dialogs
            page.wait_for_function("""() => {
                const t = document.querySelector('tbody[data-task=manual]');
                return t.dataset.state === 'idle'
                    && t.querySelector('[data-field=runs]').dataset.value === '1'
                    && t.querySelector('[data-field=last-run]') !== null; }""", timeout=30_000)
            runs = call(base, "/api/tasks/manual/runs")[1]
            assert len(runs) == 1 and runs[0]["status"] == "succeeded", runs
            m = next(r for r in page.evaluate(READ_ROWS) if r["task"] == "manual")
            assert m["last_run"] == str(runs[0]["run_id"]), (m, runs)
            assert int(m["rows"]) == int(m["service_rows"]) == runs[0]["rows"] \
                == lake_rows(wd, "manual") == ROWS, m
            assert int(m["last_sync_ms"]) == runs[0]["ended_ms"], (m, runs)
            assert m["lag_rows"] == "0", m
            # The outcome stays shown across refreshes; a second click needs no new prompt.
            assert page.text_content(outcome) == "Run started"
            page.click("tbody[data-task=manual] button")
            page.wait_for_function(
                "() => document.querySelector('tbody[data-task=manual] [data-field=runs]')"
                ".dataset.value === '2'", timeout=30_000)
            assert len(dialogs) == 1, dialogs
            wait_for("the second run to succeed", lambda: (
                lambda runs: len(runs) == 2 and runs[0]["status"] == "succeeded"
            )(call(base, "/api/tasks/manual/runs")[1]))
            shot = tmp_path / "status-page-after-run.png"
            page.screenshot(path=str(shot), full_page=True)
            keep(shot, capsys)

            # A phone: one card per task, nothing wider than the screen.
            phone = browser.new_context(viewport={"width": 390, "height": 844},
                                        device_scale_factor=2, is_mobile=True, has_touch=True)
            small = phone.new_page()
            small.on("request", lambda r: requests.append(r.url))
            small.on("console", lambda m: m.type == "error" and problems.append(m.text))
            small.goto(base + "/")
            layout = small.evaluate("""() => ({
                thead: getComputedStyle(document.querySelector('thead')).display,
                card: getComputedStyle(document.querySelector('tbody[data-task]')).display,
                width: document.documentElement.scrollWidth,
                button: document.querySelector('tbody[data-task] button').offsetWidth})""")
            # Cards, nothing wider than the screen, buttons across the card (easy to tap).
            assert layout["button"] > 300, layout
            del layout["button"]
            assert layout == {"thead": "none", "card": "block", "width": 390}, layout
            shot = tmp_path / "status-page-phone.png"
            small.screenshot(path=str(shot), full_page=True)
            keep(shot, capsys)

            # Nothing was loaded from elsewhere, and nothing went wrong in the page (no CSP
            # violation, no script error) but the first POST's 401.
            assert requests and all(u.startswith(base + "/") for u in requests), requests
            assert problems == ["Failed to load resource: the server responded with a status "
                                "of 401 (Unauthorized)"], "\n".join(problems)
        finally:
            browser.close()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err


def test_status_page_needs_the_token_where_every_call_does(wd, monkeypatch):
    """Listening beyond loopback, the page is a read like the others: 401 without the token."""
    wd.write_table("items", ["id"], COLUMNS)
    wd.write_task("manual", source="items", mode="full", schedule=None, prefix="",
                  partition_time={"from": "write_time"}, concurrency=1)
    monkeypatch.setenv("LAKEPORT_API_TOKEN", TOKEN)
    with serving(wd, listen="0.0.0.0:0") as (p, base):
        def get(token=None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            req = urllib.request.Request(base + "/", headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
        status, body = get()
        assert status == 401 and "Bearer" in body, (status, body)
        status, body = get(TOKEN)
        assert status == 200 and 'data-task="manual"' in body, status
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
    assert p.returncode == 0
