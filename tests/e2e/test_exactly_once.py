"""Exactly-once incremental delivery, proven against the real binary and read back by DuckDB.

- A random history of inserts, updates, no-op re-loads and deletes, with incremental runs in
  between, is delivered exactly as a Python model of the table (kept by this test, not read
  from lakeport) predicts, and as the store agrees: each run holds the live rows changed since
  the previous run, each in its newest version, nothing else; the union of all runs, keyed by
  (id, `_seq`), has no gap and no duplicate.
- Runs killed with SIGKILL at random moments (before recording their plan, while writing,
  once objects are written) while a writer keeps changing rows, followed by one clean run,
  leave a lake that holds every change once, the store's newest version of every live row,
  only readable objects and exactly the task's live set (no orphan, no partial object); some
  run was really taken over, so the test cannot pass without killing one mid-run.
- Two runs of one task started at the same moment: one delivers and the other is refused
  naming it (or they run one after the other); either way each change is in the lake once.
"""

import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import (delivered, duck, lake_columns, lake_files, load_counts, ms_of,
                      live_objects, newest_run_id, read_lake, run_records, utc_date,
                      wait_for_running_run)

ITEMS = [("id", "int64"), ("name", "string"), ("size", "int64"), ("at", "timestamp_ms")]
DAYS = 12  # rows are spread over this many daily partitions (their `at`, from March 1)
MARCH_1 = ms_of("2024-03-01T00:00:00Z")


def items_task(wd, **keys):
    """Declares table `items` and the incremental task `inc`, partitioned by each row's `at` day
    (dt=yyyy-MM-dd, UTC), two shards; `keys` override the task's."""
    wd.write_table("items", ["id"], ITEMS)
    task = {"source": "items", "mode": "incremental", "prefix": "dt=$yyyy-$MM-$dd",
            "partition_time": {"from": "column", "column": "at", "timezone": "UTC"},
            "concurrency": 2}
    task.update(keys)
    return wd.write_task("inc", **task)


def iso_ms(ms):
    """RFC 3339 (UTC, milliseconds) of epoch ms."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def random_row(rng, i, name, days=DAYS):
    """A row of `items` with a random size and a random `at` (RFC 3339, ms) in the first
    `days` days from 2024-03-01."""
    at = MARCH_1 + rng.randrange(days * 86_400_000)
    return {"id": i, "name": name, "size": rng.randrange(10**9), "at": iso_ms(at)}


def lake_rows(wd, files):
    """Rows of the given objects as dicts (id, name, size, at in epoch ms, _seq, _write_time,
    __file), read by DuckDB."""
    return read_lake(sorted(files), lake_columns(wd, "inc")) if files else []


def footer(path):
    """The lakeport.* key-value metadata of a Parquet object's footer."""
    kv = pq.read_metadata(path).metadata or {}
    return {k.decode(): v.decode() for k, v in kv.items() if k.startswith(b"lakeport.")}


def succeeded_runs(wd):
    """The succeeded run records of task `inc`, oldest first."""
    return [r for r in run_records(wd, "inc") if r["status"] == "succeeded"]


def run_mode(task_mode, nth):
    """The mode recorded for the `nth` (0-based) succeeded run of a task: a differential
    task's first run is its snapshot, every later one incremental."""
    return "differential" if task_mode == "differential" and nth == 0 else "incremental"


def assert_ranges_tile(runs, task_mode="incremental"):
    """The succeeded runs' (seq_from, seq_to] follow each other from 0 with no gap and no
    overlap."""
    upto = 0
    for nth, r in enumerate(runs):
        assert r["mode"] == run_mode(task_mode, nth) and r["seq_from"] == upto, (upto, r)
        assert r["seq_to"] >= r["seq_from"], r
        upto = r["seq_to"]


def assert_lake_is_the_live_set(wd):
    """The task's live set is exactly the objects of its succeeded runs, `status` counts it,
    each of them is in the lake and DuckDB reads it with the rows its record says; and every
    file under the destination (except lakeport's own `_dirty/`, `_lakeport/`) is one of them:
    no orphan, no partial or staged upload. Returns the live set {path: object}."""
    live = live_objects(wd, "inc")
    by_runs = [o["path"] for r in succeeded_runs(wd) for o in r["objects"]]
    assert len(by_runs) == len(set(by_runs)), "two runs recorded the same object"
    assert set(by_runs) == set(live), "the live set is not the succeeded runs' objects"
    assert wd.status("inc")["live_objects"] == len(live)
    files = lake_files(wd, "inc")
    assert not set(live) - files, f"live objects missing from the lake: {sorted(set(live) - files)}"
    dest = wd.destination("inc")
    con = duck()
    try:
        for path, o in sorted(live.items()):
            (n,) = con.execute("SELECT count(*) FROM read_parquet(?)",
                               [str(dest / path)]).fetchone()
            assert n == o["rows"], (path, n, o)
    finally:
        con.close()
    orphans = sorted(files - set(live))
    assert not orphans, f"files in the lake that no run committed: {orphans}"
    return live


# -- 1. incremental runs against a model of the table -----------------------------------

class TableModel:
    """The table `items` as this test believes it is, kept from what it loads: the live rows,
    the `_seq` range of the load that last changed each, and the ids changed since the last run.
    Every load's counts and sequence are checked against the model's prediction."""

    def __init__(self, wd):
        self.wd = wd
        self.live = {}       # id -> {"name", "size", "at" (epoch ms)}
        self.written = {}    # id -> (after, upto]: the _seq range of the load that last wrote it
        self.changed = Counter()  # id -> changes (changing upserts, deletes) since the last run
        self.deleted = set()  # ids deleted since the last run
        self.seq = 0         # the store's newest _seq, as the loads report it
        self.files = 0

    def upsert(self, rows):
        """Loads `rows` (one file, distinct ids) and applies them to the model."""
        want = Counter(inserted=0, updated=0, deleted=0, unchanged=0)
        new = {}
        for r in rows:
            v = {"name": r["name"], "size": r["size"], "at": ms_of(r["at"])}
            old = self.live.get(r["id"])
            want["inserted" if old is None else "unchanged" if old == v else "updated"] += 1
            new[r["id"]] = v
        after, upto = self._load(rows, [], want)
        for i, v in new.items():
            if self.live.get(i) != v:
                self.live[i], self.written[i] = v, (after, upto)
                self.changed[i] += 1

    def delete(self, ids):
        """Deletes `ids` (live or not: deleting an absent key changes nothing)."""
        want = Counter(inserted=0, updated=0, deleted=0, unchanged=0)
        for i in ids:
            want["deleted" if i in self.live else "unchanged"] += 1
        self._load([{"id": i} for i in ids], ["--delete"], want)
        for i in ids:
            if self.live.pop(i, None) is not None:
                self.written.pop(i)
                self.changed[i] += 1
                self.deleted.add(i)

    def _load(self, rows, flags, want):
        """Runs `lakeport load items [flags] FILE`; checks its counts and `_seq` against `want`
        and returns the (after, upto] `_seq` range its changes took."""
        self.files += 1
        rel = f"in/model-{self.files}.ndjson"
        self.wd.write_ndjson(rel, rows)
        (got,) = load_counts(self.wd.ok("load", "items", *flags, rel)).values()
        assert {k: got[k] for k in want} == dict(want), (rel, got, want)
        after = self.seq
        if want["inserted"] + want["updated"] + want["deleted"]:
            assert got["seq"] > after, f"{rel} changed rows but the store's _seq did not move"
        else:
            assert got["seq"] == after, f"{rel} changed nothing but took a _seq"
        self.seq = got["seq"]
        return after, self.seq

    def pending(self):
        """What the next run must deliver: {id: row} of the live rows changed since the last."""
        return {i: self.live[i] for i in self.changed if i in self.live}

    def delivered(self):
        """A run has delivered what was pending."""
        self.changed.clear()
        self.deleted.clear()


def random_changes(rng, model, label):
    """One random batch of changes applied through `model`: mostly upserts (new ids, changed
    rows, re-deleted ids coming back, unchanged re-loads), sometimes deletes."""
    if model.live and rng.random() < 0.35:
        ids = rng.sample(sorted(model.live), min(len(model.live), rng.randint(1, 25)))
        ids += rng.sample(range(1, 401), 3)  # some absent or already deleted
        model.delete(sorted(set(ids)))
        return
    rows = []
    for i in rng.sample(range(1, 401), rng.randint(10, 120)):
        old = model.live.get(i)
        if old is not None and rng.random() < 0.25:  # the same values again: no change
            rows.append({"id": i, "name": old["name"], "size": old["size"],
                         "at": iso_ms(old["at"])})
        else:
            rows.append(random_row(rng, i, f"{label}-{i}"))
    model.upsert(rows)


def check_store(wd, model, checkpoint):
    """The store agrees with the model: same live rows, each `_seq` within the load that wrote
    it, and the rows above the checkpoint are the model's pending ones."""
    store = {r["id"]: r for r in wd.store_rows("items")}
    assert {i: {"name": r["name"], "size": r["size"], "at": r["at"]}
            for i, r in store.items()} == model.live, "the store's live rows are not the model's"
    for i, r in store.items():
        after, upto = model.written[i]
        assert after < r["_seq"] <= upto, (i, r["_seq"], model.written[i])
    behind = {i for i, r in store.items() if r["_seq"] > checkpoint}
    assert behind == set(model.pending()), "the store's rows behind the checkpoint"


@pytest.mark.parametrize("mode", ["incremental", "differential"])
def test_runs_match_a_model_of_the_table(wd, mode):
    """Ten rounds of random changes (a key changed twice, deleted, deleted and back, re-loaded
    unchanged), each followed by a run of an incremental task (or a differential one: its first
    run a snapshot, then incremental): every run delivers exactly the model's pending rows, in
    their newest version, with a `_seq` from the load that wrote them, in the partition of
    their `at`; the lake is the union of the runs, each change once."""
    items_task(wd, mode=mode)
    rng = random.Random(20240301)
    model = TableModel(wd)
    history = []  # (id, _seq) of every row every run delivered
    seen = Counter()  # what the rounds exercised
    checkpoint = 0
    for rnd in range(10):
        # Round 6 changes nothing but re-loads rows as they are: the run delivers nothing.
        for b in range(0 if rnd == 6 else rng.randint(1, 4)):
            random_changes(rng, model, f"r{rnd}b{b}")
        if rnd == 6 and model.live:
            model.upsert([{"id": i, **v, "at": iso_ms(v["at"])}
                          for i, v in sorted(model.live.items())[:30]])
        expect = model.pending()
        seen["changed twice or more between runs"] += sum(model.changed[i] > 1 for i in expect)
        seen["deleted between runs"] += sum(i not in model.live for i in model.changed)
        seen["deleted, then back"] += len(model.deleted & set(model.live))
        seen["runs with nothing to deliver"] += not expect
        check_store(wd, model, checkpoint)
        before = set(wd.objects("inc"))

        _, summary = wd.run("inc")
        run = wd.status("inc")["last_run"]
        assert run["status"] == "succeeded" and run["mode"] == run_mode(mode, rnd), run
        assert (run["seq_from"], run["seq_to"]) == (checkpoint, model.seq), run
        objects = set(wd.objects("inc"))
        assert before <= objects, "an incremental run removed earlier objects"
        new = objects - before
        dest = wd.destination("inc")
        assert sorted(o["path"] for o in run["objects"]) == sorted(
            f.relative_to(dest).as_posix() for f in new), "the run record's objects"
        assert (summary["rows"], summary["objects"]) == (len(expect), len(new)), summary
        for f in new:
            assert footer(f)["lakeport.run_id"] == str(run["run_id"]), f

        got, seqs = {}, {}
        for r in lake_rows(wd, new):
            i = r["id"]
            assert i not in got, f"run {run['run_id']} delivered id {i} twice"
            got[i] = {"name": r["name"], "size": r["size"], "at": r["at"]}
            seqs[i] = r["_seq"]
            assert Path(r["__file"]).parent.name == f"dt={utc_date(r['at'])}", r
        missing = sorted(set(expect) - set(got))
        extra = sorted(set(got) - set(expect))
        assert not missing and not extra, f"round {rnd}: missing {missing}, unexpected {extra}"
        assert got == expect, f"round {rnd}: delivered values are not the newest versions"
        for i, s in seqs.items():
            after, upto = model.written[i]
            assert after < s <= upto and checkpoint < s <= run["seq_to"], (i, s, run)
        history += seqs.items()
        model.delivered()
        checkpoint = run["seq_to"]
        assert wd.status("inc")["lag"]["rows_behind"] == 0

    assert len(history) > 300 and len(model.live) > 50 and min(seen.values()) > 0, seen
    union = delivered(wd, wd.objects("inc"))
    keys = [(i, s) for i, _, s, _ in union]
    assert len(keys) == len(set(keys)), "a change is in the lake twice"
    assert sorted(keys) == sorted(history), "the lake is not the union of the runs"
    newest = {}
    for i, name, s, _ in union:
        if s > newest.get(i, (0, ""))[0]:
            newest[i] = (s, name)
    store = {r["id"]: (r["_seq"], r["name"]) for r in wd.store_rows("items")}
    assert {i: newest[i] for i in store} == store
    assert {i: n for i, (_, n) in store.items()} == {i: v["name"] for i, v in model.live.items()}
    assert_ranges_tile(succeeded_runs(wd), mode)
    assert_lake_is_the_live_set(wd)


# -- 2. runs killed at random moments while a writer changes rows -------------------------

class Writer(threading.Thread):
    """Keeps changing rows of `items` with `lakeport load` until `stop()`: random upserts of
    a few hundred ids, every fourth load a delete of random ids. Counts its loads and keeps the
    output of any load that failed."""

    def __init__(self, wd, seed, ids, days):
        super().__init__(name="writer", daemon=True)
        self.wd, self.rng, self.ids, self.days = wd, random.Random(seed), ids, days
        self.halt = threading.Event()
        self.loads = Counter()
        self.failures = []

    def run(self):
        n = 0
        while not self.halt.is_set():
            n += 1
            rel = f"in/writer-{n}.ndjson"
            if n % 4 == 0:
                kind, flags = "delete", ["--delete"]
                rows = [{"id": i} for i in self.rng.sample(self.ids, 50)]
            else:
                kind, flags = "upsert", []
                rows = [random_row(self.rng, i, f"w{n}-{i}", self.days)
                        for i in self.rng.sample(self.ids, self.rng.randint(200, 1200))]
            try:
                self.wd.write_ndjson(rel, rows)
                r = self.wd.lakeport("load", "items", *flags, rel, timeout=120)
            except Exception as e:  # noqa: BLE001 - reported by the test, not lost in a thread
                self.failures.append(f"{rel}: {e!r}")
                return
            if r.code:
                self.failures.append(str(r))
            else:
                self.loads[kind] += 1
            self.halt.wait(self.rng.uniform(0.01, 0.06))

    def stop(self):
        self.halt.set()
        self.join(timeout=150)
        assert not self.is_alive(), "the writer did not stop"


def new_files(wd, before):
    """Files under the destination that were not there before (staged uploads included)."""
    return lake_files(wd, "inc") - before


def kill_at_random(wd, p, plan, before_run, before_files, rng):
    """Kills run process `p` with SIGKILL at a moment chosen by `plan` (an upper bound; the
    process may finish first): "start" a few ms after it starts (mostly before it records its
    plan), "writing" at a random moment after its run is recorded, "written" as soon as one
    of its objects appears in the lake, "finish" never."""
    if plan == "start":
        time.sleep(rng.uniform(0.0, 0.03))
    elif plan == "writing":
        if not wait_for_running_run(wd, p, before_run):
            return
        time.sleep(rng.uniform(0.0, 0.025))
    elif plan == "written":
        deadline = time.time() + 30
        while p.poll() is None and time.time() < deadline and not new_files(wd, before_files):
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.01))
    else:
        return
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)


def kill_outcome(wd, before_run, before_files):
    """Where a killed run had got to, judged from the store and the lake after its death:
    "before its plan" (no run record), "while writing" (recorded, none of its objects in the
    lake), "after writing objects" (some in the lake, not committed), "after its commit"."""
    runs = [r for r in run_records(wd, "inc") if r["run_id"] > before_run]
    if not runs:
        return "before its plan"
    (run,) = runs
    if run["status"] == "succeeded":
        return "after its commit"
    assert run["status"] == "running", run
    return "after writing objects" if new_files(wd, before_files) else "while writing"


def wait_out_lease(wd, lease_s):
    """If a killed run is still recorded as running, sleeps until it has been silent for just
    over the lease, so the next run takes it over instead of being refused."""
    running = [r for r in run_records(wd, "inc") if r["status"] == "running"]
    if running:
        heard = max(r["heartbeat_ms"] or r["started_ms"] for r in running) / 1000
        time.sleep(max(0.0, heard + lease_s + 0.1 - time.time()))


def test_runs_killed_at_random_while_rows_change_deliver_each_change_once(wd, monkeypatch):
    """A writer changes rows all along while 36 runs (lease 1s, two shards, rows spread over
    40 daily partitions by a row column) are killed with SIGKILL at random moments or left to
    finish; after the writer stops and one clean run: every (id, _seq) in the lake is unique
    and lies in the range of the succeeded run that wrote it, the ranges tile the history, the
    lake's newest version of every live row is the store's, every file of the lake is a
    readable object of the live set, nothing is behind, and some run was taken over."""
    days, lease = 40, 1.0
    items_task(wd, lease="1s")
    # Spool files of killed runs stay in the test's folder, not in the system temp folder.
    monkeypatch.setenv("LAKEPORT_SPOOL_DIR", str(wd.root / "spool"))
    (wd.root / "spool").mkdir()
    (wd.root / "logs").mkdir()
    rng = random.Random(1129)
    ids = list(range(1, 6001))
    wd.load("items", [random_row(rng, i, f"seed-{i}", days) for i in ids[:3000]])

    outcomes = Counter()
    failed = []
    writer = Writer(wd, 1130, ids, days)
    procs = []
    writer.start()
    try:
        for loop in range(36):
            plan = rng.choices(["start", "writing", "written", "finish"], [2, 4, 4, 2])[0]
            before_run, before_files = newest_run_id(wd), lake_files(wd, "inc")
            with open(wd.root / "logs" / f"run-{loop}.err", "w") as log:
                p = wd.spawn("run", "inc", stdout=subprocess.DEVNULL, stderr=log)
            procs.append(p)
            kill_at_random(wd, p, plan, before_run, before_files, rng)
            code = p.wait(timeout=120)
            if code == -signal.SIGKILL:
                outcomes["killed " + kill_outcome(wd, before_run, before_files)] += 1
            elif code == 0:
                outcomes["finished"] += 1
            else:
                failed.append((wd.root / "logs" / f"run-{loop}.err").read_text())
            wait_out_lease(wd, lease)
    finally:
        writer.stop()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert not writer.failures, writer.failures
    assert not failed, f"runs that failed on their own: {failed}"
    assert writer.loads["upsert"] >= 10 and writer.loads["delete"] >= 3, writer.loads
    spooled = list((wd.root / "spool").iterdir())
    wd.run("inc")
    # The clean run removed the spool files the killed runs left; each succeeded run has its
    # manifest, no other run has one.
    assert not list((wd.root / "spool").iterdir()), f"spool files left ({len(spooled)} before)"
    manifests = wd.destination("inc") / "_lakeport" / "inc" / "runs"
    assert sorted(p.name for p in manifests.iterdir()) == sorted(
        f"{r['run_id']}.json" for r in run_records(wd, "inc") if r["status"] == "succeeded")

    # Every run either succeeded or was taken over; some were taken over.
    runs = run_records(wd, "inc")
    errors = [r["error"] for r in runs if r["status"] != "succeeded"]
    assert all(e and e.startswith("interrupted") for e in errors), errors
    assert errors, f"no run was taken over: {outcomes}"
    assert len(errors) == (outcomes["killed while writing"]
                           + outcomes["killed after writing objects"]), (errors, outcomes)
    assert sum(outcomes.values()) == 36 and all(outcomes[k] for k in (
        "killed before its plan", "killed while writing", "killed after writing objects",
        "finished")), outcomes
    succeeded = succeeded_runs(wd)
    assert_ranges_tile(succeeded)

    # The lake: each change once, in the partition of its own time and in its run's range.
    files = wd.objects("inc")
    rows = lake_rows(wd, files)
    keys = Counter((r["id"], r["_seq"]) for r in rows)
    dup = [k for k, n in keys.items() if n > 1]
    assert not dup, f"changes delivered more than once (id, _seq): {dup[:10]} of {len(dup)}"
    by_id = {r["run_id"]: r for r in succeeded}
    run_of = {str(f): int(footer(f)["lakeport.run_id"]) for f in files}
    for r in rows:
        run = by_id.get(run_of[r["__file"]])
        assert run is not None, f"{r['__file']} was written by run {run_of[r['__file']]}"
        assert run["seq_from"] < r["_seq"] <= run["seq_to"], (r, run)
        assert Path(r["__file"]).parent.name == f"dt={utc_date(r['at'])}", r

    # The newest version of every live row is the store's; a deleted row's newest delivered
    # version is older than its tombstone.
    newest = {}
    for r in rows:
        if r["_seq"] > newest.get(r["id"], {"_seq": 0})["_seq"]:
            newest[r["id"]] = r
    fields = ("name", "size", "at", "_seq")
    store = {r["id"]: r for r in wd.store_rows("items", live_only=False)}
    live = {i: tuple(r[k] for k in fields) for i, r in store.items() if not r["_deleted"]}
    assert not set(live) - set(newest), "live rows missing from the lake"
    assert {i: tuple(newest[i][k] for k in fields) for i in live} == live, \
        "the lake's newest versions are not the store's"
    for i, r in newest.items():
        assert i in store, f"id {i} is in the lake but was never in the store"
        if store[i]["_deleted"]:
            assert r["_seq"] < store[i]["_seq"], (r, store[i])
    st = wd.status("inc")
    assert st["lag"]["rows_behind"] == 0 and st["checkpoint"] == st["lag"]["newest_seq"], st
    assert_lake_is_the_live_set(wd)


# -- 3. two runs started at once -------------------------------------------------------

def test_two_runs_started_at_once_deliver_each_change_once(wd):
    """Five rounds of new and changed rows, each delivered by two `lakeport run inc` started
    at the same moment: either one succeeds and the other is refused (exit 1) naming the
    running run (or saying that the checkpoint moved under it), having recorded and written
    nothing, or both succeed one after the other, the second delivering nothing; each round's
    changes are in the lake exactly once."""
    items_task(wd)
    rng = random.Random(77)
    seen = Counter()
    history = []  # (id, _seq) of every change the rounds made
    checkpoint = 0
    for rnd in range(5):
        ids = rng.sample(range(1, 8001), 3000)
        rows = [random_row(rng, i, f"r{rnd}-{i}", 30) for i in ids]
        (loaded,) = load_counts(wd.load("items", rows)).values()
        assert loaded["inserted"] + loaded["updated"] == len(rows), loaded
        assert loaded["seq"] - checkpoint >= len(rows), (loaded, checkpoint)
        before_run, before_files = newest_run_id(wd), set(wd.objects("inc"))

        procs = [wd.spawn("run", "inc", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) for _ in range(2)]
        try:
            outs = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        codes = [p.returncode for p in procs]
        new_runs = [r for r in run_records(wd, "inc") if r["run_id"] > before_run]
        assert all(r["status"] == "succeeded" for r in new_runs), new_runs
        detail = f"round {rnd}: exit codes {codes}\n{outs}\nruns {new_runs}"
        if sorted(codes) == [0, 1]:
            (run,) = new_runs
            err = outs[codes.index(1)][1]
            if f"run {run['run_id']} is still running" in err:
                seen["refused: still running"] += 1
            elif "another run finished meanwhile" in err:
                seen["refused: the checkpoint moved"] += 1
            else:
                raise AssertionError(f"the refused run does not say why: {detail}")
        else:
            assert codes == [0, 0], detail
            first, second = new_runs
            assert second["seq_from"] == first["seq_to"] == second["seq_to"], detail
            assert second["rows"] == 0 and not second["objects"], detail
            seen["one after the other"] += 1
        run = new_runs[0]
        assert (run["seq_from"], run["seq_to"]) == (checkpoint, loaded["seq"]), run

        # The round's changes are in the lake once, written by the winning run only.
        new = set(wd.objects("inc")) - before_files
        assert {int(footer(f)["lakeport.run_id"]) for f in new} == {run["run_id"]}, new
        got = Counter((r["id"], r["name"]) for r in lake_rows(wd, new))
        assert got == Counter((r["id"], r["name"]) for r in rows), f"round {rnd}"
        store = {r["id"]: r["_seq"] for r in wd.store_rows("items")}
        assert all(checkpoint < store[i] <= loaded["seq"] for i in ids), "not this load's _seq"
        history += [(i, store[i]) for i in ids]
        checkpoint = run["seq_to"]

        union = [(i, s) for i, _, s, _ in delivered(wd, wd.objects("inc"))]
        assert sorted(union) == sorted(history), f"round {rnd}: the lake is not every change once"
        assert_lake_is_the_live_set(wd)
        assert wd.status("inc")["lag"]["rows_behind"] == 0
    assert sum(seen.values()) == 5, seen
