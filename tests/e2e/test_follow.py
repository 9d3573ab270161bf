"""Continuous delivery (`lakeport run <task> --follow`): changes committed while it runs reach
the lake without another command, each exactly once; SIGTERM while idle and SIGINT during a
run both end it with exit 0 after the run in flight has committed; full-mode tasks cannot
follow."""

import contextlib
import signal
import subprocess
import time

from conftest import delivered, run_records, wait_for_running_run
from test_incremental import rows

COLUMNS = [("id", "int64"), ("name", "string"), ("size", "int64"), ("at", "timestamp_ms")]


def setup(wd, **keys):
    wd.write_table("items", ["id"], COLUMNS)
    wd.write_task("inc", source="items", mode="incremental", prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "at", "timezone": "UTC"},
                  max_delay="1s", **keys)


@contextlib.contextmanager
def following(wd):
    """`lakeport run inc --follow`, started here; killed on the way out if still running."""
    p = wd.spawn("run", "inc", "--follow", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_until_delivered(wd, process, timeout=60):
    """Waits until nothing is behind the checkpoint (True), or the process ends (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        st = wd.status("inc")
        if st["lag"]["rows_behind"] == 0 and st["checkpoint"] == st["lag"]["newest_seq"] > 0:
            return True
        time.sleep(0.1)
    if process.poll() is not None:
        _, err = process.communicate()
        raise AssertionError(f"lakeport run --follow ended with {process.returncode}: {err}")
    return False


def assert_exactly_once(wd):
    union = delivered(wd, wd.objects("inc"))
    keys = [(i, s) for i, _, s, _ in union]
    assert len(keys) == len(set(keys)), "a change was delivered twice"
    newest = {}
    for i, name, s, _ in union:
        if s > newest.get(i, (0, ""))[0]:
            newest[i] = (s, name)
    assert newest == {r["id"]: (r["_seq"], r["name"]) for r in wd.store_rows("items")}


def test_follow_delivers_changes_as_they_come_and_stops_on_sigterm(wd):
    setup(wd)
    with following(wd) as p:
        for k in range(3):
            wd.load("items", rows(range(k * 100 + 1, k * 100 + 101), f"v{k}", k + 1))
            assert wait_until_delivered(wd, p), f"load {k} was not delivered"
        # Updates of earlier rows come through too.
        wd.load("items", rows(range(1, 51), "late", 9))
        assert wait_until_delivered(wd, p)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = out.strip().splitlines()
    assert lines[-1].startswith("inc: stopped after "), out
    runs = [r for r in run_records(wd, "inc") if r["rows"] > 0]
    assert len(runs) >= 4 and len(lines) - 1 == len(runs), (out, runs)
    assert all(r["status"] == "succeeded" and r["mode"] == "incremental" for r in runs)
    assert sum(r["rows"] for r in runs) == 350
    assert_exactly_once(wd)


def test_sigint_during_a_run_lets_it_commit_then_exits(wd):
    setup(wd, concurrency=2)
    wd.load("items", rows(range(1, 150_001), "big", 1))
    with following(wd) as p:
        assert wait_for_running_run(wd, p, 0), "no run started"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    (run,) = run_records(wd, "inc")
    assert (run["status"], run["rows"]) == ("succeeded", 150_000), run
    assert "stopped after 1 runs: 150000 rows" in out, out
    assert wd.status("inc")["lag"]["rows_behind"] == 0
    assert_exactly_once(wd)


def test_full_mode_cannot_follow(wd):
    setup(wd)
    wd.write_task("inc", source="items", mode="full")
    r = wd.lakeport("run", "inc", "--follow", expect=2)
    assert "cannot run continuously" in r.err, r
    wd.write_task("inc", source="items", mode="full", schedule="continuous")
    r = wd.lakeport("validate", expect=2)
    assert "schedule: continuous: needs mode incremental or differential" in r.err, r


def test_a_destination_that_cannot_be_opened_is_a_recorded_failure(wd):
    """`run --follow` whose destination cannot be opened (a credential variable the task names
    is unset) exits 1 naming the variable, and `status` shows the failed run with that
    error, as for a single `run`."""
    setup(wd, destination="s3://lake-bucket/inc",
          storage={"endpoint": "http://127.0.0.1:9", "allow_http": True, "region": "us-east-1",
                   "access_key_id_env": "LAKEPORT_E2E_NO_KEY",
                   "secret_access_key_env": "LAKEPORT_E2E_NO_SECRET"})
    r = wd.lakeport("run", "inc", "--follow", expect=1)
    assert "LAKEPORT_E2E_NO_KEY is not set" in r.err, r
    last = wd.status("inc")["last_run"]
    assert last is not None, f"the failed start was not recorded\n{r}"
    assert last["status"] == "failed" and "LAKEPORT_E2E_NO_KEY is not set" in last["error"], last
