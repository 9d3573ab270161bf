"""`status` tells the truth about dead and refused runs (issue 18, point 4), against the real
binary.

- A run killed mid-delivery stays recorded `running`; its process is gone, so `status`,
  `status --json`, `/api/tasks` and the status page show it `interrupted` until the next run
  takes it over (which records it failed and delivers everything once).
- A run that fails before it writes anything (its destination cannot be created) is recorded
  as a failed run with its error: `status` shows it, not "never ran".
"""

import signal
import subprocess
import sys
import urllib.request

from conftest import (REPO, call, newest_run_id, run_records, serving,
                      wait_for_running_run)

ROWS = 300_000


def big_inventory(wd):
    """A task `big` delivering ROWS generated inventory rows (one shard, small row groups so
    the run takes a while)."""
    wd.write_task("big", concurrency=1)
    out = wd.root / "in/inv.ndjson"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(REPO / "scripts/gen_inventory.py"), "--rows", str(ROWS),
                    "--days", "30", "--buckets", "2", "--seed", "7", "--out", str(out)],
                   check=True, capture_output=True)
    wd.ok("load", "object_inventory", "in/inv.ndjson")


def kill_mid_run(wd):
    """Starts `run big`, kills it (SIGKILL) once its run is recorded running; returns the
    run's id. Retries with a fresh run when one finished before it could be killed."""
    for _ in range(5):
        before = newest_run_id(wd, task="big")
        p = wd.spawn("run", "big", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running = wait_for_running_run(wd, p, before, task="big")
        if running:
            p.send_signal(signal.SIGKILL)
        p.wait()
        if running and p.returncode == -signal.SIGKILL:
            return newest_run_id(wd, task="big")
    raise AssertionError("no run could be killed while it ran")


def test_a_killed_run_shows_as_interrupted_until_taken_over(wd):
    big_inventory(wd)
    run_id = kill_mid_run(wd)
    st = wd.status("big")
    assert st["last_run"]["run_id"] == run_id
    assert st["last_run"]["status"] == "interrupted", st["last_run"]
    r = wd.ok("status", "big")
    assert f"last run {run_id} interrupted" in r.out, r
    with serving(wd) as (_, base):
        code, tasks = call(base, "/api/tasks")
        assert code == 200
        big = next(t for t in tasks["tasks"] if t["task"] == "big")
        assert big["last_run"]["status"] == "interrupted", big
        with urllib.request.urlopen(base + "/", timeout=30) as page:
            html = page.read().decode()
        assert "interrupted" in html
    # The next run takes it over: recorded failed ("interrupted"), everything delivered once.
    _, summary = wd.run("big")
    assert summary["rows"] == ROWS
    assert wd.status("big")["last_run"]["status"] == "succeeded"
    taken_over = [r for r in run_records(wd, "big") if r["run_id"] == run_id][0]
    assert taken_over["status"] == "failed", taken_over


def test_a_run_that_fails_before_writing_is_recorded(wd):
    wd.write("blocked", "a file where the destination's folder would be\n")
    wd.write_task("stuck", destination="blocked/lake/stuck")
    wd.load("object_inventory", [{"bucket": "b", "key": "k", "version_id": ""}])
    r = wd.lakeport("run", "stuck", expect=1)
    st = wd.status("stuck")
    last = st["last_run"]
    assert last is not None, f"the failed run was not recorded\n{r}"
    assert last["status"] == "failed" and last["rows"] == 0 and last["objects"] == []
    assert "blocked" in last["error"], last
    text = wd.ok("status", "stuck").out
    assert "failed" in text and "error:" in text and "never ran" not in text, text
