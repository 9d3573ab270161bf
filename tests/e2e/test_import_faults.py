"""Inventory imports that do not finish change nothing (issue 20, point 5): a SIGKILL at random
moments of an import, in both of its phases (reading and sorting the report; writing the
store), leaves the SQLite store exactly as it was before that import, and the import then runs
to the end. The big bucket's first import holds the store alone and writes with a rollback
journal (src/store/sqlite/journal.rs): a kill while it writes leaves a hot journal, which the
next connection rolls back, and the store goes back to WAL mode. A temporary folder that fills up during the sort's spill is a clear error that
names the folder, and changes nothing either.

The reports are the scale benchmark's (scripts/bench_scale.py: S3 CSV.gz, form-encoded keys
with spaces, `+` and non-ASCII, random order): a first report, imported whole, then the
next-day report with 1% of the objects resized, 0.5% deleted and 0.5% new, whose import is
killed. Size and kills: LAKEPORT_KILL_IMPORT_ROWS (default 100,000 objects) and
LAKEPORT_KILL_IMPORT_KILLS (default 10); `LAKEPORT_KILL_IMPORT_ROWS=10000000` with a release
binary (LAKEPORT_BIN) is the issue's 10M run."""

import datetime as dt
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import bench_scale  # noqa: E402  (the scale benchmark's report generator)
from bench import reports  # noqa: E402  (tests/reports.py)

ROWS = int(os.environ.get("LAKEPORT_KILL_IMPORT_ROWS", 100_000))
KILLS = int(os.environ.get("LAKEPORT_KILL_IMPORT_KILLS", 10))
DAY = dt.timedelta(days=1)


def store_digest(path, tables_like="%", skip_columns=()):
    """(rows, hash) of each table of the SQLite store at `path` whose name is LIKE
    `tables_like`: every row, in a fixed order, without the columns named in `skip_columns`."""
    con = sqlite3.connect(path)
    try:
        tables = [t for (t,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name LIKE ? ORDER BY name", (tables_like,))]
        out = {}
        for t in tables:
            info = con.execute("SELECT name, pk FROM pragma_table_info(?)", (t,)).fetchall()
            cols = ", ".join(f'"{c}"' for c, _ in info if c not in skip_columns)
            # In primary-key order (an index scan, no sort), else by every column.
            key = ", ".join(f'"{c}"' for c, pk in sorted(info, key=lambda i: i[1]) if pk)
            h = hashlib.sha256()
            rows = 0
            for row in con.execute(f'SELECT {cols} FROM "{t}" ORDER BY {key or cols}'):
                h.update(repr(row).encode())
                rows += 1
            out[t] = (rows, h.hexdigest())
        return out
    finally:
        con.close()


def data_digest(path):
    """The data tables' rows without their write times: what any whole import of the same
    report leaves, whenever it ran."""
    return store_digest(path, "data_%", ("_write_time",))


def store_files(wd):
    """The store's files: the database and, while a connection is open, its WAL and index;
    while a large import holds the store alone, its rollback journal and the marker that names
    the process (src/store/sqlite/journal.rs)."""
    return [Path(f"{wd.store_path}{s}")
            for s in ("", "-wal", "-shm", "-journal", "-lakeport-import")]


def save_store(wd, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for f in store_files(wd):
        if f.exists():
            shutil.copy2(f, folder / f.name)


def restore_store(wd, folder):
    for f in store_files(wd):
        f.unlink(missing_ok=True)
        saved = folder / f.name
        if saved.exists():
            shutil.copy2(saved, f)


def import_cmd(report):
    return ("inventory", "import", report.url, "--json")


@pytest.fixture(scope="module")
def day_reports(tmp_path_factory):
    """The first report and the changed next-day report (and its counts), made once for the
    module's tests; none imported."""
    root = tmp_path_factory.mktemp("reports")
    files = max(4, ROWS // 1_000_000)
    day1, _, _ = bench_scale.write_report(root, ROWS, files, bench_scale.CREATED)
    day2, totals, _ = bench_scale.write_report(root, ROWS, files, bench_scale.CREATED + DAY,
                                               change=True)
    assert totals["resized"] > 0 and totals["deleted"] > 0 and totals["new"] > 0, totals
    return day1, day2, totals


def import_day1(wd, day1):
    rec = json.loads(wd.ok(*import_cmd(day1)).out)
    assert rec["rows"] == ROWS and rec["inserted"] == ROWS, rec
    return rec


# The debug line the SQLite store logs when the report is read and sorted, and the merge with
# the store (its write transaction) begins.
MERGE_BEGINS = "snapshot read and sorted; merging with the stored scope"
LOG = {"RUST_LOG": "lakeport::store::sqlite::import=debug"}


class Import:
    """`lakeport inventory import` started in the background; `merge_at` is when (seconds
    after the start) it logged that its write transaction began, None until then."""

    def __init__(self, wd, report, env):
        self.started = time.monotonic()
        self.merge_at = None
        self.stderr = []
        self.p = wd.spawn(*import_cmd(report), env={**env, **LOG}, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()

    def _read_log(self):
        for line in self.p.stderr:
            self.stderr.append(line)
            if self.merge_at is None and MERGE_BEGINS in line:
                self.merge_at = time.monotonic() - self.started

    def elapsed(self):
        return time.monotonic() - self.started

    def running(self):
        return self.p.poll() is None

    def finish(self):
        out = self.p.stdout.read()
        self.p.wait()
        self.reader.join()
        return out

    def kill(self):
        """SIGKILL; whether it was still running, and in which phase (0 reading, 1 writing)."""
        phase = 0 if self.merge_at is None else 1
        running = self.running()
        self.p.kill()
        self.finish()
        return running, phase


@pytest.mark.parametrize("case", ["first-import", "next-day"])
def test_sigkill_during_import_leaves_the_store_as_before(wd, day_reports, case):
    day1, day2, totals = day_reports
    if case == "first-import":
        # The store already holds another bucket; the killed import is the big bucket's first.
        other = reports.write_s3(wd.root / "other", reports.make_objects(50, bucket="other"))
        wd.ok(*import_cmd(other))
        killed_report = day1
    else:
        import_day1(wd, day1)
        killed_report = day2
    before = store_digest(wd.store_path)
    saved = wd.root / "saved-store"
    save_store(wd, saved)
    tmp = wd.root / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}

    # One whole import, timed by phase; its end state is what a finished import leaves.
    run = Import(wd, killed_report, env)
    out = run.finish()
    whole = run.elapsed()
    assert run.p.returncode == 0, "".join(run.stderr)
    rec = json.loads(out)
    if case == "next-day":
        assert (rec["updated"], rec["deleted"]) == (totals["resized"], totals["deleted"]), rec
    else:
        assert rec["inserted"] == ROWS, rec
    assert run.merge_at is not None, "".join(run.stderr)
    reading, writing = run.merge_at, whole - run.merge_at
    after = data_digest(wd.store_path)
    assert after != data_digest(saved / "lakeport.db")

    # Kills: alternately while the report is read and sorted and while the store is written,
    # at a random moment of the phase.
    rng = random.Random(f"{case}/20")
    killed = [0, 0]
    # Kills while writing that left a rollback journal behind (the import held the store alone).
    hot_journals = 0
    finished_first = 0
    attempts = 0
    while sum(killed) < KILLS or min(killed) < KILLS // 3:
        attempts += 1
        assert attempts <= 4 * KILLS, f"only {killed} kills hit a running import"
        restore_store(wd, saved)
        aim = 0 if killed[0] <= killed[1] else 1
        run = Import(wd, killed_report, env)
        if aim == 0:
            time.sleep(rng.uniform(0.05, 0.9) * reading)
        else:
            while run.merge_at is None and run.running():
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.9) * writing)
        running, phase = run.kill()
        if Path(f"{wd.store_path}-journal").exists():
            hot_journals += 1
            # A command that only reads rolls the journal back first: it sees the store as
            # before the import (never the half-written file).
            # (Before its first import the big bucket holds nothing: du lists no group.)
            du = json.loads(wd.ok("du", bench_scale.BUCKET, "--json").out)
            assert du == [], du
            # No hot journal is left (a read-only connection refuses to read past one); a
            # journal the import had not written yet may stay, which SQLite ignores.
            ro = sqlite3.connect(f"file:{wd.store_path}?mode=ro", uri=True)
            try:
                ro.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                ro.close()
        if store_digest(wd.store_path) == before:
            killed[phase] += running
        else:
            # Committed before the kill (finished, or killed between its commit and its exit:
            # this run was faster than the timed one): the import is whole.
            assert data_digest(wd.store_path) == after, (
                f"a kill at {run.elapsed():.2f}s (phase {phase}; whole import {whole:.2f}s) "
                "left the store neither as before nor as after the import")
            finished_first += 1
        leftovers = sorted(tmp.iterdir())
        assert not leftovers, f"temporary files left behind: {leftovers}"

    # After every kill, the import runs to the end and leaves what a whole import leaves.
    restore_store(wd, saved)
    wd.lakeport(*import_cmd(killed_report), expect=0, env=env)
    assert data_digest(wd.store_path) == after
    # Only an import into an empty scope takes the store alone; afterwards it is in WAL mode
    # again and the marker is gone.
    if case == "first-import":
        assert hot_journals > 0, f"no kill of {killed[1]} while writing left a rollback journal"
    else:
        assert hot_journals == 0, "a re-import wrote with a rollback journal"
    con = sqlite3.connect(wd.store_path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()
    assert not Path(f"{wd.store_path}-lakeport-import").exists()
    print(f"{case}, {ROWS:,} objects: {killed[0]} kills while reading ({reading:.2f}s), "
          f"{killed[1]} while writing ({writing:.2f}s), {hot_journals} of them left a rollback "
          f"journal; {finished_first} imports had committed before their kill")


def mount_tmpfs(folder, size):
    """Mounts a tmpfs of `size` bytes on `folder` (mounting needs root; skips otherwise)."""
    folder.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")


def test_a_full_temporary_folder_during_the_sort_is_a_clear_error(wd, day_reports):
    day1, day2, _ = day_reports
    import_day1(wd, day1)
    before = store_digest(wd.store_path)
    # A 1 MiB temporary folder and 1 MiB of sort memory: the sort's runs fill it (a report in
    # a local folder is read in place, nothing else goes there).
    small = wd.root / "small-tmp"
    mount_tmpfs(small, 1 << 20)
    try:
        r = wd.lakeport(*import_cmd(day2), env={"TMPDIR": str(small),
                                                "LAKEPORT_SORT_MEMORY_MB": "1"})
        assert r.code != 0, r
        assert f"sorting rows in a temporary file in {small} (the temporary folder: TMPDIR)" \
            in r.err, r
        assert "No space left on device" in r.err, r
        assert store_digest(wd.store_path) == before
        assert not list(small.iterdir())
    finally:
        subprocess.run(["umount", str(small)], check=True)
    # The same import with room to sort goes through.
    wd.lakeport(*import_cmd(day2), expect=0, env={"LAKEPORT_SORT_MEMORY_MB": "1"})
    assert store_digest(wd.store_path) != before


def test_a_bad_sort_memory_setting_is_refused_before_anything(wd, day_reports):
    day1, day2, _ = day_reports
    import_day1(wd, day1)
    before = store_digest(wd.store_path)
    r = wd.lakeport(*import_cmd(day2), env={"LAKEPORT_SORT_MEMORY_MB": "64MB"})
    assert r.code != 0, r
    assert 'LAKEPORT_SORT_MEMORY_MB="64MB": expected a whole number of MiB' in r.err, r
    assert store_digest(wd.store_path) == before
