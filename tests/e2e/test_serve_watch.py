"""Inventory watchers in `lakeport serve` (issue 5, point 1): a `kind: inventory-watch` file in
the pipelines folder makes the service list its report root on a schedule and import the
complete reports, oldest first, while a delivery task on the same service delivers what they
changed. Checked against the reports' truth (tests/reports.py), the API, the metrics parsed by
prometheus_client, and the lake read by DuckDB. Broken watcher files are reported with every
other problem at start-up (exit 2) and refused by reload."""

import signal
import subprocess
import sys

import re
import urllib.request

from conftest import REPO, call, duck, lake_files, serving, wait_for
from test_inventory import DAY1, DAY2, DAY3, assert_store_equals, bad_corrupt_gzip, db_rows
from test_serve import scrape

sys.path.insert(0, str(REPO / "tests"))
import reports  # noqa: E402  (tests/reports.py, the report generator)

WATCHER = """\
kind: inventory-watch
name: inv-watch
root: reports-root
schedule: "* * * * * *"
"""


def watcher_state(base):
    status, body = call(base, "/api/watchers/inv-watch")
    assert status == 200, body
    return body


def sample(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


def test_watcher_imports_reports_and_the_service_delivers_them(wd):
    root = wd.root / "reports-root"
    a = reports.make_objects(60, seed=201, bucket="srv-a")
    ra = reports.write_s3(root, a, fmt="csv.gz", created=DAY1)
    rc = reports.write_oss(root, reports.make_objects(30, seed=202, bucket="srv-c",
                                                      provider="oss"),
                           created=DAY2, date_style="iso")
    bad = reports.write_s3(root, reports.make_objects(25, seed=203, bucket="srv-bad"),
                           fmt="csv.gz", created=DAY1)
    bad_corrupt_gzip(bad)
    # Not complete yet: its checksum arrives later.
    rd = reports.write_s3(root, reports.make_objects(20, seed=204, bucket="srv-d"),
                          fmt="parquet", created=DAY3)
    checksum = (rd.folder / "manifest.checksum").read_text()
    (rd.folder / "manifest.checksum").unlink()
    wd.write("pipelines/inv-watch.yaml", WATCHER)
    wd.write_task("inv-lake", mode="incremental", schedule="* * * * * *", prefix="",
                  concurrency=1)

    with serving(wd) as (p, base):
        status, body = call(base, "/api/watchers")
        assert status == 200 and [w["watcher"] for w in body["watchers"]] == ["inv-watch"]
        first = wait_for("the complete reports imported",
                         lambda: (w := watcher_state(base))["reports"]["applied"] == 2 and w)
        assert first["reports"]["failed"] == 1, first  # the corrupt one, skipped for good
        assert first["reports"]["waiting"] == 1, first
        assert first["state"] == "idle" and first["error"] is None, first
        assert first["root"] == str(root) and first["schedule"] == "* * * * * *"
        assert first["service"]["rows"] == ra.count + rc.count
        assert_store_equals(wd, ra)
        assert_store_equals(wd, rc)
        assert db_rows(wd, "srv-bad") == {} and db_rows(wd, "srv-d") == {}

        # Later passes do not import anything again, nor retry the corrupt report.
        runs = first["service"]["runs_succeeded"]
        wait_for("two more passes",
                 lambda: watcher_state(base)["service"]["runs_succeeded"] >= runs + 2)
        again = watcher_state(base)
        assert again["reports"]["applied"] == 2 and again["reports"]["failed"] == 1, again

        # The report completes: the next pass applies it.
        (rd.folder / "manifest.checksum").write_text(checksum)
        done = wait_for("the completed report imported",
                        lambda: (w := watcher_state(base))["reports"]["applied"] == 3 and w)
        assert done["reports"]["waiting"] == 0
        assert_store_equals(wd, rd)

        # Run-now of a watcher: 202, or 409 when its every-second pass is going; 404 unknown.
        status, body = call(base, "/api/watchers/inv-watch/run", method="POST")
        assert (status, body.get("watcher")) == (202, "inv-watch") or status == 409, body
        status, body = call(base, "/api/watchers/nope", method="GET")
        assert status == 404 and "inv-watch" in body["error"], body
        status, body = call(base, "/api/watchers/nope/run", method="POST")
        assert status == 404, body

        # The delivery task on the same service catches up with what the imports changed.
        live = ra.count + rc.count + rd.count
        wait_for("the delivery task caught up",
                 lambda: (t := call(base, "/api/tasks/inv-lake")[1])["lag"] is not None
                 and t["lag"]["rows_behind"] == 0 and t["service"]["rows"] >= live)

        m = scrape(base)
        w = watcher_state(base)
        assert sample(m, "lakeport_inventory_imports_total", watcher="inv-watch",
                      outcome="applied") == 3
        assert sample(m, "lakeport_inventory_imports_total", watcher="inv-watch",
                      outcome="failed") == 1
        assert sample(m, "lakeport_inventory_rows_total",
                      watcher="inv-watch") == live == w["service"]["rows"]
        assert sample(m, "lakeport_inventory_reports_waiting", watcher="inv-watch") == 0
        passes = sample(m, "lakeport_inventory_passes_total", watcher="inv-watch",
                        result="succeeded")
        assert passes >= 4 and sample(m, "lakeport_inventory_passes_total",
                                      watcher="inv-watch", result="failed") == 0
        assert sample(m, "lakeport_inventory_last_import_timestamp_seconds",
                      watcher="inv-watch") > 0

        # The status page lists the watcher with the same figures (server-rendered HTML).
        with urllib.request.urlopen(base + "/", timeout=30) as r:
            page = r.read().decode()
        section = page[page.index('<section id="watchers">'):]
        assert re.search(r'<tbody data-task="inv-watch" data-kind="watcher">', section), section
        assert f'data-field="rows" data-value="{live}"' in section, section
        assert 'data-field="applied" data-value="3"' in section, section
        assert 'action="api/watchers/inv-watch/run"' in section, section

        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0

    # What the lake holds, read by DuckDB: every live object of the three applied reports.
    files = [str(wd.destination("inv-lake") / f) for f in lake_files(wd, "inv-lake")]
    got = duck().execute(
        "SELECT count(DISTINCT (bucket, key)) FROM read_parquet(?)", [files]).fetchone()[0]
    assert got == live


def test_broken_watcher_files_stop_start_up_and_reload(wd):
    wd.write_task("inv-lake", mode="incremental", schedule=None, prefix="", concurrency=1)
    (wd.root / "reports-root").mkdir()
    wd.write("pipelines/inv-watch.yaml", WATCHER)
    wd.write("pipelines/w2.yaml", """\
        kind: inventory-watch
        name: w2
        root: no-such-folder
        schedule: "*/5 * * *"
        format: s4
        colour: blue
        """)
    wd.write("pipelines/w3.yaml", "kind: inventory-watcher\nname: w3\n")
    wd.write("pipelines/w5.yaml", "kind: inventory-watch\nname: inv-lake\nroot: reports-root\n"
             "schedule: '@daily'\n")
    r = wd.lakeport("validate", expect=2)
    for expected in (
        'w2.yaml: root: ', "no-such-folder: no such folder",
        "w2.yaml: schedule: ", "w2.yaml: format: \"s4\": expected s3, oss or obs",
        "w2.yaml: colour: unknown key",
        'w5.yaml: name: "inv-lake" is already used by task file',
        "w3.yaml: kind: inventory-watcher: expected delivery or inventory-watch",
    ):
        assert expected in r.err, f"{expected!r} not in\n{r.err}"
    p = wd.spawn("serve", "--listen", "127.0.0.1:0", stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 2, (out, err)
    assert "w2.yaml: format:" in err and "w3.yaml: kind:" in err, err

    # A good set starts; a broken watcher file is then refused by reload, nothing changes.
    (wd.root / "pipelines/w2.yaml").unlink()
    (wd.root / "pipelines/w3.yaml").unlink()
    (wd.root / "pipelines/w5.yaml").unlink()
    wd.ok("validate")
    with serving(wd) as (p, base):
        wd.write("pipelines/w4.yaml", "kind: inventory-watch\nname: inv-hourly\nroot: reports-root\n")
        status, body = call(base, "/api/reload", method="POST")
        assert status == 422 and "w4.yaml: schedule: required" in body["error"], body
        status, body = call(base, "/api/watchers")
        assert [w["watcher"] for w in body["watchers"]] == ["inv-watch"], body
        wd.write("pipelines/w4.yaml",
                 "kind: inventory-watch\nname: inv-hourly\nroot: reports-root\nschedule: '@hourly'\n")
        status, body = call(base, "/api/reload", method="POST")
        assert status == 200 and body["added"] == ["inv-hourly"], body
        status, body = call(base, "/api/watchers/inv-hourly")
        assert status == 200 and body["next_run"].endswith(":00:00.000Z"), body
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
