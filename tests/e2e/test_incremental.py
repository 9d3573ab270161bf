"""Incremental delivery read back by DuckDB: each run delivers exactly the rows whose `_seq`
is above the task's checkpoint, up to the store's sequence when it started, into the partition
of each row's own time; the union of every run's objects is the store's change history as the
runs saw it (no gap, no duplicate); deletes are ignored; a task switched from full to
incremental continues from the full run's sequence; a run left running by a killed process
holds the task until its lease runs out, then is taken over and what it wrote is removed.
Runs killed at random moments, racing runs and a random model of changes are in
test_exactly_once.py."""

import json
import signal
import sqlite3
import subprocess
import time

from conftest import delivered, newest_run_id, run_records, utc_date, wait_for_running_run

COLUMNS = [("id", "int64"), ("name", "string"), ("size", "int64"), ("at", "timestamp_ms")]


def rows(ids, name, day):
    return [{"id": i, "name": f"{name}-{i}", "size": i * 10,
             "at": f"2024-05-{day:02d}T{i % 24:02d}:00:00Z"} for i in ids]


def setup(wd, mode="incremental"):
    wd.write_table("items", ["id"], COLUMNS)
    wd.write_task("inc", source="items", mode=mode, prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "at", "timezone": "UTC"})


def store_changes(wd, after, upto):
    """Live rows of the store with `_seq` in (after, upto]: (id, name, _seq, partition)."""
    out = []
    for r in wd.store_rows("items"):
        if after < r["_seq"] <= upto:
            out.append((r["id"], r["name"], r["_seq"], utc_date(r["at"])))
    return sorted(out, key=lambda t: t[2])


def last_run(wd):
    return wd.status("inc")["last_run"]


def test_incremental_runs_deliver_each_change_once(wd):
    setup(wd)
    wd.load("items", rows(range(1, 41), "a", 1))
    _, first = wd.run("inc")
    assert first["rows"] == 40, first
    files1 = set(wd.objects("inc"))
    run1 = last_run(wd)
    assert (run1["mode"], run1["seq_from"]) == ("incremental", 0), run1
    got1 = delivered(wd, files1)
    assert got1 == store_changes(wd, 0, run1["seq_to"])
    assert {p for *_, p in got1} == {"2024-05-01"}

    # Changes: 10 updates (a later day: a late row goes to its own partition), 5 inserts,
    # 3 deletes (ignored by default), 5 unchanged re-loads (no new _seq).
    wd.load("items", rows(range(1, 11), "b", 3) + rows(range(41, 46), "a", 2)
            + rows(range(20, 25), "a", 1))
    wd.ok("load", "items", "--delete", wd.write_ndjson("in/del.ndjson",
                                                       [{"id": 30}, {"id": 31}, {"id": 32}]))
    st = wd.status("inc")
    assert st["checkpoint"] == run1["seq_to"] and st["lag"]["rows_behind"] == 15, st
    assert st["lag"]["newest_seq"] > run1["seq_to"] and st["lag_seconds"] >= 0, st
    _, second = wd.run("inc")
    run2 = last_run(wd)
    st = wd.status("inc")
    assert st["checkpoint"] == run2["seq_to"] == st["lag"]["newest_seq"], (st, run2)
    assert st["lag"]["rows_behind"] == 0 and st["lag_seconds"] is None, st
    assert "up to date" in wd.ok("status", "inc").out
    assert run2["seq_from"] == run1["seq_to"], (run1, run2)
    files2 = set(wd.objects("inc")) - files1
    got2 = delivered(wd, files2)
    assert second["rows"] == 15 and len(got2) == 15, (second, got2)
    assert got2 == store_changes(wd, run1["seq_to"], run2["seq_to"])
    assert {p for *_, p in got2} == {"2024-05-02", "2024-05-03"}
    assert not files1 - set(wd.objects("inc")), "an incremental run removed earlier objects"

    # Nothing changed: nothing delivered, the checkpoint holds.
    _, third = wd.run("inc")
    run3 = last_run(wd)
    assert (third["rows"], third["objects"]) == (0, 0), third
    assert run3["seq_from"] == run3["seq_to"] == run2["seq_to"], run3

    # The union of all runs, keyed by (id, _seq): every change the runs saw, exactly once.
    union = delivered(wd, wd.objects("inc"))
    keys = [(i, s) for i, _, s, _ in union]
    assert len(keys) == len(set(keys)) == 55
    live = {r["id"]: r["_seq"] for r in wd.store_rows("items")}
    latest = {}
    for i, _, s, _ in union:
        latest[i] = max(latest.get(i, 0), s)
    assert {i: latest[i] for i in live} == live, "the newest delivered version is the store's"


def test_switching_from_full_to_incremental_continues_from_the_full_run(wd):
    setup(wd, mode="full")
    wd.load("items", rows(range(1, 21), "a", 1))
    _, full = wd.run("inc")
    assert full["rows"] == 20
    seq_full = last_run(wd)["seq_to"]
    before = set(wd.objects("inc"))

    setup(wd, mode="incremental")
    wd.load("items", rows(range(15, 26), "c", 4))
    _, inc = wd.run("inc")
    run = last_run(wd)
    assert (run["seq_from"], inc["rows"]) == (seq_full, 11), (run, inc)
    got = delivered(wd, set(wd.objects("inc")) - before)
    assert got == store_changes(wd, seq_full, run["seq_to"])
    assert set(wd.objects("inc")) >= before


def fake_running_run(wd, heartbeat_ms):
    """Records a run of task inc as still running, heard from at `heartbeat_ms`, as a process
    killed on another host would leave it (its plan copied from the last run); returns (run id, the object
    sequence id it would have numbered its objects from)."""
    con = sqlite3.connect(wd.store_path)
    try:
        (state,) = con.execute(
            "SELECT state FROM _lakeport_tasks WHERE task = 'inc'").fetchone()
        next_seq = json.loads(state)["next_object_seq"]
        (record,) = con.execute(
            "SELECT record FROM _lakeport_runs WHERE task = 'inc' ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        run = json.loads(record)
        run.update(status="running", ended_ms=None, objects=[], rows=0, bytes=0,
                   first_object_seq=next_seq, next_object_seq=next_seq,
                   started_ms=heartbeat_ms, heartbeat_ms=heartbeat_ms)
        # Its process is not known (as for a run on another host): only the lease decides.
        run.pop("owner", None)
        cur = con.execute(
            "INSERT INTO _lakeport_runs (task, status, started_ms, record) "
            "VALUES ('inc', 'running', ?, '{}')", [heartbeat_ms])
        run["run_id"] = cur.lastrowid
        con.execute("UPDATE _lakeport_runs SET record = ? WHERE run_id = ?",
                    [json.dumps(run), cur.lastrowid])
        con.commit()
        return cur.lastrowid, next_seq
    finally:
        con.close()


def test_a_run_left_running_is_taken_over_and_its_objects_removed(wd):
    setup(wd)
    wd.load("items", rows(range(1, 11), "a", 1))
    wd.run("inc")
    before = set(wd.objects("inc"))

    # A run heard from just now holds the task: the next run is refused, names it.
    now_ms = int(time.time() * 1000)
    busy, _ = fake_running_run(wd, now_ms)
    r = wd.lakeport("run", "inc", expect=1)
    assert f"run {busy} is still running" in r.err, r
    con = sqlite3.connect(wd.store_path)
    con.execute("UPDATE _lakeport_runs SET status = 'failed' WHERE run_id = ?", [busy])
    con.commit()
    con.close()

    # A run silent for long (killed mid-way) left a partial object and one of another shard.
    dead, next_seq = fake_running_run(wd, now_ms - 3_600_000)
    dest = wd.destination("inc")
    leftovers = [dest / "dt=2024-05-01" / f"inc_0_{next_seq}.parquet",
                 dest / "dt=2024-05-09" / f"inc_7_{next_seq + 3}.parquet"]
    for f in leftovers:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"PAR1 half written")
    wd.load("items", rows(range(11, 16), "a", 2))
    _, summary = wd.run("inc")
    assert summary["rows"] == 5, summary
    assert not leftovers[1].exists() and not (dest / "dt=2024-05-09").exists()
    objects = set(wd.objects("inc"))
    assert objects >= before
    # Every object is readable (a leftover would not be) and the lake holds each change once.
    union = delivered(wd, objects)
    assert union == store_changes(wd, 0, last_run(wd)["seq_to"])
    con = sqlite3.connect(wd.store_path)
    (status, record) = con.execute(
        "SELECT status, record FROM _lakeport_runs WHERE run_id = ?", [dead]).fetchone()
    con.close()
    assert status == "failed" and json.loads(record)["error"].startswith("interrupted"), record


def test_a_killed_run_is_taken_over_at_once_on_the_same_host(wd):
    """A run killed with SIGKILL holds its task for its whole lease (60 s here) only when its
    process might still be alive: on the same host, the next run sees the process is gone and
    takes the run over at once."""
    setup(wd)
    wd.load("items", rows(range(1, 100_001), "a", 1))
    p = wd.spawn("run", "inc", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_running_run(wd, p, 0), "the run did not start"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    killed = newest_run_id(wd)
    _, summary = wd.run("inc")
    assert summary["rows"] == 100_000, summary
    (dead,) = [r for r in run_records(wd, "inc") if r["run_id"] == killed]
    assert dead["status"] == "failed", dead
    assert dead["error"].startswith(f"interrupted: its process {p.pid} on "), dead
    union = delivered(wd, wd.objects("inc"))
    assert len(union) == 100_000 == len({(i, s) for i, _, s, _ in union})
