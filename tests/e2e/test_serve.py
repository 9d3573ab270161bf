"""`lakeport serve` driven over HTTP: tasks on second-level schedules run by themselves; a
task slower than its schedule never overlaps itself (ticks are skipped and counted); run-now
starts a run (202) or is refused while one is in flight (409); unknown tasks and paths are
404 with a JSON error; SIGTERM during a run lets it commit and exits 0, leaving no partial or
duplicate object."""

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import call, duck, lake_files, live_objects, run_records, serving, wait_for

COLUMNS = [("id", "int64"), ("name", "string"), ("at", "timestamp_ms")]
BIG = 150_000


def rows(ids, name):
    return [{"id": i, "name": f"{name}-{i}", "at": 1_700_000_000_000 + i} for i in ids]


def setup(wd):
    """Table `items` (BIG rows); `fast` (incremental, every second), `slow` (full over the
    whole table with gzip, every second: slower than its schedule), `manual` (full, no
    schedule)."""
    wd.write_table("items", ["id"], COLUMNS)
    common = {"source": "items", "prefix": "", "partition_time": {"from": "write_time"},
              "concurrency": 1, "dirty": {"keep": False}}
    wd.write_task("fast", mode="incremental", schedule="* * * * * *", **common)
    # gzip makes a full run of the table take well over the one-second tick (1.8 s here).
    wd.write_task("slow", mode="full", schedule="* * * * * *",
                  parquet={"compression": "gzip"}, **common)
    wd.write_task("manual", mode="full", schedule=None, **common)
    wd.load("items", rows(range(1, BIG + 1), "a"))


def scrape(base):
    """`GET /metrics` parsed by prometheus_client's OpenMetrics parser: {(name, labels): value}
    of every sample."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text"), r.headers
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def check_metrics(wd, base):
    """The metrics agree with the API and with the lake."""
    before = {t: call(base, f"/api/tasks/{t}")[1] for t in ("fast", "slow", "manual")}
    m = scrape(base)
    after = {t: call(base, f"/api/tasks/{t}")[1] for t in ("fast", "slow", "manual")}

    def value(name, task, **labels):
        return m[(name, tuple(sorted({"task": task, **labels}.items())))]

    # The manual task ran once, and nothing runs it meanwhile: exact agreement.
    manual = after["manual"]
    lake_rows = duck().execute("SELECT count(*) FROM read_parquet(?)", [[
        str(wd.destination("manual") / f) for f in live_objects(wd, "manual")]]).fetchone()[0]
    assert value("lakeport_rows_delivered_total", "manual") == manual["service"]["rows"] \
        == lake_rows == BIG
    assert value("lakeport_objects_written_total", "manual") == manual["service"]["objects"]
    assert value("lakeport_bytes_written_total", "manual") == manual["service"]["bytes"]
    assert value("lakeport_runs_total", "manual", result="succeeded") == 1
    assert value("lakeport_runs_total", "manual", result="failed") == 0
    assert value("lakeport_run_duration_seconds_count", "manual") == 1
    assert abs(value("lakeport_last_success_timestamp_seconds", "manual")
               - manual["last_success_ms"] / 1000) < 0.001
    # The scheduled tasks run on: their counters lie between the API's before and after.
    for t in ("fast", "slow"):
        for metric, field in (("lakeport_runs_total", "runs_succeeded"),
                              ("lakeport_skipped_overlaps_total", "skipped_overlaps")):
            labels = {"result": "succeeded"} if metric == "lakeport_runs_total" else {}
            got = value(metric, t, **labels)
            assert before[t]["service"][field] <= got <= after[t]["service"][field], (t, metric)
    assert value("lakeport_skipped_overlaps_total", "slow") >= 1
    assert value("lakeport_lag_rows", "fast") == 0 and value("lakeport_lag_seconds", "fast") == 0


def assert_no_overlap(wd, task):
    """The task's runs, by start time, each ended before the next started."""
    runs = sorted(run_records(wd, task), key=lambda r: r["started_ms"])
    for a, b in zip(runs, runs[1:]):
        assert a["ended_ms"] is not None and a["ended_ms"] <= b["started_ms"], (a, b)
    return runs


def test_scheduled_runs_run_now_and_errors(wd):
    setup(wd)
    with serving(wd) as (p, base):
        assert call(base, "/healthz") == (200, {"status": "ok"})
        assert call(base, "/readyz") == (200, {"status": "ready"})
        status, body = call(base, "/api/tasks")
        assert status == 200 and [t["task"] for t in body["tasks"]] == ["fast", "manual", "slow"]

        # Scheduled runs happen by themselves; the slow task skips the ticks it overlaps.
        wait_for("fast to run twice",
                 lambda: call(base, "/api/tasks/fast")[1]["service"]["runs_succeeded"] >= 2)
        slow = wait_for("slow to skip a tick", lambda: (
            lambda t: t if t["service"]["skipped_overlaps"] >= 1
            and t["service"]["runs_succeeded"] >= 1 else None)(call(base, "/api/tasks/slow")[1]))
        assert slow["schedule"] == "* * * * * *" and slow["next_run_ms"] > 0, slow
        fast = call(base, "/api/tasks/fast")[1]
        assert fast["checkpoint"] == fast["lag"]["newest_seq"] == BIG, fast
        assert fast["last_run"]["status"] == "succeeded" and fast["state"] in ("idle", "running")

        # Run now: started, then refused while in flight; the manual task never ran before.
        assert call(base, "/api/tasks/manual")[1]["last_run"] is None
        status, body = call(base, "/api/tasks/manual/run", "POST")
        assert (status, body) == (202, {"task": "manual", "started": True})
        status, body = call(base, "/api/tasks/manual/run", "POST")
        assert status == 409 and "manual is running" in body["error"], body
        wait_for("the manual run to succeed", lambda: (
            lambda t: t["last_run"] and t["last_run"]["status"] == "succeeded"
            and not t["running"])(call(base, "/api/tasks/manual")[1]))
        status, runs = call(base, "/api/tasks/manual/runs?limit=5")
        assert status == 200 and len(runs) == 1 and runs[0]["rows"] == BIG, runs

        check_metrics(wd, base)

        # Errors are JSON.
        status, body = call(base, "/api/tasks/nope")
        assert status == 404 and "no task named \"nope\"" in body["error"], body
        assert call(base, "/api/tasks/nope/run", "POST")[0] == 404
        assert call(base, "/no/such/path")[0] == 404
        status, body = call(base, "/api/tasks/fast/runs?limit=0")
        assert status == 400 and "limit" in body["error"], body
        status, body = call(base, "/api/tasks/manual/ddl")
        assert status == 200 and body["statements"][0].startswith("CREATE EXTERNAL TABLE")

        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
        err = p.log.read_text()
    assert p.returncode == 0, err
    assert "stopped (0 runs cancelled" in out, out
    for task in ("fast", "slow", "manual"):
        runs = assert_no_overlap(wd, task)
        assert all(r["status"] == "succeeded" for r in runs), (task, runs)


def test_sigterm_during_a_run_lets_it_commit(wd):
    setup(wd)
    with serving(wd) as (p, base):
        assert call(base, "/api/tasks/manual/run", "POST")[0] == 202
        wait_for("the manual run to be recorded",
                 lambda: any(r["status"] == "running" for r in run_records(wd, "manual")))
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
        err = p.log.read_text()
    assert p.returncode == 0, err
    manual = run_records(wd, "manual")
    assert [r["status"] for r in manual] == ["succeeded"], manual
    live = live_objects(wd, "manual")
    assert set(live) == lake_files(wd, "manual"), "a partial or stray object is in the lake"
    con = duck()
    (n, distinct) = con.execute(
        "SELECT count(*), count(DISTINCT id) FROM read_parquet(?)",
        [[str(wd.destination("manual") / f) for f in live]]).fetchone()
    assert n == distinct == BIG


def test_token_guards_mutating_calls_and_non_loopback_addresses(wd, monkeypatch):
    setup_small(wd)
    # Without a token, a non-loopback address is refused.
    monkeypatch.delenv("LAKEPORT_API_TOKEN", raising=False)
    r = wd.lakeport("serve", "--listen", "0.0.0.0:0", expect=2)
    assert "not a loopback address; set LAKEPORT_API_TOKEN" in r.err, r

    monkeypatch.setenv("LAKEPORT_API_TOKEN", "s3cret")
    with serving(wd) as (p, base):
        # Loopback: reads are open, mutating calls need the token.
        assert call(base, "/api/tasks")[0] == 200
        status, body = call(base, "/api/tasks/manual/run", "POST")
        assert status == 401 and "Bearer" in body["error"], body
        assert call(base, "/api/tasks/manual/run", "POST", token="wrong")[0] == 401
        assert call(base, "/api/tasks/manual/run", "POST", token="s3cret")[0] == 202
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
    assert p.returncode == 0

    with serving(wd, listen="0.0.0.0:0") as (p, base):
        # Any address: every call needs it, but the health probes.
        assert call(base, "/api/tasks")[0] == 401
        assert call(base, "/metrics")[0] == 401
        assert call(base, "/api/tasks", token="s3cret")[0] == 200
        assert call(base, "/healthz") == (200, {"status": "ok"})
        assert call(base, "/readyz")[0] == 200
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
    assert p.returncode == 0


def setup_small(wd):
    """Table `items` with a few rows and one task, `manual`, without a schedule."""
    wd.write_table("items", ["id"], COLUMNS)
    wd.write_task("manual", source="items", mode="full", schedule=None, prefix="",
                  partition_time={"from": "write_time"}, concurrency=1)
    wd.load("items", rows(range(1, 11), "a"))


def test_reload_applies_a_good_set_and_refuses_a_broken_one(wd):
    setup_small(wd)
    small = {"source": "items", "mode": "full", "schedule": None, "prefix": "",
             "partition_time": {"from": "write_time"}, "concurrency": 1}
    wd.write_task("other", **small)
    with serving(wd) as (p, base):
        def names():
            return [t["task"] for t in call(base, "/api/tasks")[1]["tasks"]]

        assert names() == ["manual", "other"]
        # A good set: one task added, one removed, one read again.
        wd.write_task("added", **small)
        (wd.root / "pipelines" / "other.yaml").unlink()
        status, body = call(base, "/api/reload", "POST")
        assert (status, body) == (200, {"added": ["added"], "removed": ["other"],
                                        "updated": ["manual"]}), body
        assert names() == ["added", "manual"]
        assert call(base, "/api/tasks/other/run", "POST")[0] == 404
        assert call(base, "/api/tasks/added/run", "POST")[0] == 202
        wait_for("the added task's run", lambda: (
            lambda t: t["last_run"] and t["last_run"]["status"] == "succeeded"
        )(call(base, "/api/tasks/added")[1]))

        # A broken file: refused with the file named, nothing changes.
        wd.write("pipelines/broken.yaml", "name: [unclosed\n")
        status, body = call(base, "/api/reload", "POST")
        assert status == 422 and "broken.yaml" in body["error"], body
        assert names() == ["added", "manual"]
        p.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert names() == ["added", "manual"] and p.poll() is None

        # SIGHUP with the file fixed.
        (wd.root / "pipelines" / "broken.yaml").unlink()
        wd.write_task("via-hup", **small)
        p.send_signal(signal.SIGHUP)
        wait_for("SIGHUP to load via-hup", lambda: "via-hup" in names())
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
        err = p.log.read_text()
    assert p.returncode == 0, err
    assert "reload refused" in err, err


def send_body(base, method, path, size, chunked):
    """(status, JSON body) of `METHOD path` with a body of `size` bytes, sent in 64 KiB pieces
    with `Content-Length` or chunked (no length), over a raw socket: a server that answers
    before reading the whole body may close the connection while the body is still being
    sent, and the answer is read all the same."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{length}\r\n\r\n".encode())
        try:
            for start in range(0, size, 64 * 1024):
                piece = b"x" * min(64 * 1024, size - start)
                s.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: read its answer
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < int(
                re.search(rb"(?i)content-length: *(\d+)", answer).group(1)):
            data = s.recv(65536)
            assert data, f"connection closed after {answer!r}"
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_request_bodies_over_64_kib_get_413_on_every_route(wd):
    """No call takes a body: one over 64 KiB is refused with 413 on every route, whether its
    Content-Length says so or it comes chunked (50 MB), and run-now does not start a run."""
    setup_small(wd)
    with serving(wd) as (p, base):
        for method, path in [("POST", "/api/tasks/manual/run"), ("POST", "/api/reload"),
                             ("GET", "/api/tasks"), ("GET", "/healthz")]:
            for size, chunked in [(1 << 20, False), (50 << 20, True), (64 * 1024 + 1, True)]:
                status, body = send_body(base, method, path, size, chunked)
                assert status == 413 and "64 KiB" in body["error"], (method, path, size, body)
        # Nothing was started, and a body within the limit still reaches the handler.
        assert run_records(wd, "manual") == []
        assert send_body(base, "GET", "/healthz", 64 * 1024, True) == (200, {"status": "ok"})
        status, body = send_body(base, "POST", "/api/tasks/manual/run", 100, False)
        assert status == 202, body
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
    assert p.returncode == 0


def test_schemathesis_finds_no_server_error(wd):
    """schemathesis generates requests from /api/openapi.json (a task named as the document's
    example exists, so paths reach it too): none gets a 5xx, and the answers fit the
    document's schemas as far as schemathesis checks them."""
    wd.write_table("items", ["id"], COLUMNS)
    wd.write_task("inventory-daily", source="items", mode="full", schedule=None, prefix="",
                  partition_time={"from": "write_time"}, concurrency=1)
    wd.load("items", rows(range(1, 11), "a"))
    schemathesis = Path(sys.executable).parent / "schemathesis"
    with serving(wd) as (p, base):
        r = subprocess.run([str(schemathesis), "run", f"{base}/api/openapi.json",
                            "--checks", "not_a_server_error,response_schema_conformance,"
                            "status_code_conformance,content_type_conformance",
                            "--max-examples", "30", "--seed", "1"],
                           capture_output=True, text=True, timeout=600, cwd=wd.root)
        assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
        assert "passed" in r.stdout and "API Operations" in r.stdout, r.stdout[-3000:]
        assert call(base, "/api/tasks/inventory-daily")[0] == 200
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
    assert p.returncode == 0
