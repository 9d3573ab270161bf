"""Store faults, injected (issue 18, point 10): the metadata store fails under a delivery run
or an inventory import, and the user sees a clear error, nothing is half-committed, and the
next run after the fault delivers every change exactly once (read back by DuckDB).

- PostgreSQL restarted (`pg_ctl restart -m immediate`) while a run reads the table, while a
  run commits (held there by a row lock this test takes, so the restart hits the commit
  every time) and while an inventory import writes. The cluster is this module's own
  (initdb + start, about a second), never the one `make test` shares between tests.
- SQLite on a full disk: a small tmpfs this test mounts (root only; skipped with the reason
  otherwise) holds the store, and fills up during an import's sort spill (TMPDIR on it),
  while a run encodes its objects into spool files (LAKEPORT_SPOOL_DIR and the lake on it),
  and while a run commits (a store left with too little room for the run's records). Space
  then returns (the tmpfs is remounted bigger, or the filler removed) and the next import or
  run succeeds.

Each test prints where the fault hit (`{"fault": ...}`, pytest -s shows it); a fault that
came before or after the work instead of during it is asserted for what it is.
"""

import base64
import datetime as dt
import glob
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO, Result, Workdir, duck, lake_files, sqlite_dump

sys.path.insert(0, str(REPO / "tests"))
import reports  # noqa: E402  (tests/reports.py, the report generator)

ITEMS = [("id", "int64"), ("name", "string")]
UTC = dt.timezone.utc
DAY1 = dt.datetime(2024, 6, 2, 1, 0, tzinfo=UTC)
DAY2 = dt.datetime(2024, 6, 3, 1, 0, tzinfo=UTC)
# What lakeport says when the disk is full: the OS's words, or SQLite's.
NO_SPACE = re.compile(r"no space left on device|database or disk is full", re.I)
# What a lost PostgreSQL connection looks like from the client.
CONNECTION_LOST = re.compile(r"connection closed|terminating connection|connection reset|"
                             r"broken pipe|unexpected eof|server closed the connection", re.I)


# -- a PostgreSQL cluster of this module's own --------------------------------------------

def pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    if not found or not os.access(os.path.join(found[-1], "initdb"), os.X_OK):
        pytest.fail("PostgreSQL is not installed (make postgresql)")
    return Path(found[-1])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """A throwaway cluster on 127.0.0.1 (trust authentication, fsync off), run as the
    `postgres` user when this process is root (initdb refuses root)."""

    def __init__(self):
        self.bin = pg_bin()
        # In the temp folder itself: pytest's folders are root's alone, and the server runs
        # as `postgres`.
        self.data = Path(tempfile.mkdtemp(prefix="lakeport-faults-pg."))
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_owner:
            shutil.chown(self.data, "postgres", "postgres")
        self.port = None

    def _ctl(self, *args, check=True):
        return subprocess.run([*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(self.data),
                               *args], capture_output=True, text=True, check=check, timeout=120)

    def start(self):
        subprocess.run([*self.as_owner, str(self.bin / "initdb"), "-D", str(self.data),
                        "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
                       capture_output=True, check=True, timeout=120)
        for _ in range(5):
            self.port = free_port()
            started = self._ctl(
                "-l", str(self.data / "server.log"), "-w", "-t", "60", "-o",
                # fsync off (the OS keeps what was written), but synchronous_commit on: a
                # commit must be in the WAL when its answer is sent, or an immediate restart
                # loses it.
                f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start", check=False)
            if started.returncode == 0:
                return
        pytest.fail(f"PostgreSQL did not start: {(self.data / 'server.log').read_text()}")

    def restart_immediately(self):
        """`pg_ctl restart -m immediate`: every backend killed at once, no checkpoint, then
        crash recovery; returns once the server accepts connections again."""
        self._ctl("-l", str(self.data / "server.log"), "-w", "-t", "60", "-m", "immediate",
                  "restart")

    def stop(self):
        self._ctl("-m", "immediate", "-w", "stop", check=False)

    def url(self, db="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db="postgres"):
        """The rows `sql` returns ('|'-separated columns), through PostgreSQL's psql."""
        p = subprocess.run([str(self.bin / "psql"), "-X", "-A", "-t", "-q", "-v",
                            "ON_ERROR_STOP=1", "-d", self.url(db), "-c", sql],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"psql {sql!r}: {p.stderr}"
        return [line for line in p.stdout.splitlines() if line]

    def value(self, sql, db):
        rows = self.psql(sql, db)
        assert len(rows) == 1, (sql, rows)
        return rows[0]

    def new_database(self):
        name = "faults_" + uuid.uuid4().hex[:10]
        self.psql(f"CREATE DATABASE {name}")
        return name


@pytest.fixture(scope="module")
def own_postgres():
    """This module's own cluster (restarted by its tests), stopped and removed at the end."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.data, ignore_errors=True)


@pytest.fixture
def pg(own_postgres, tmp_path, binary):
    """(cluster, database name, Workdir whose store is that new, empty database)."""
    db = own_postgres.new_database()
    wd = Workdir(tmp_path, binary)
    wd.store = own_postgres.url(db)
    return own_postgres, db, wd


# -- a small disk --------------------------------------------------------------------------

class SmallDisk:
    """A tmpfs mounted at `path`: filled up to a few bytes of room, grown, unmounted."""

    def __init__(self, path, size_kib):
        self.path = Path(path)
        self.path.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs",
                            str(self.path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        self.filler = self.path / "filler"

    def room(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave):
        """Writes a filler file that leaves about `leave` bytes free."""
        with open(self.filler, "ab") as f:
            f.write(b"\0" * max(self.room() - leave, 0))
        assert self.room() <= leave + 4096, self.room()

    def empty(self):
        self.filler.unlink(missing_ok=True)

    def grow(self, size_kib):
        subprocess.run(["mount", "-o", f"remount,size={size_kib}k", str(self.path)], check=True)

    def unmount(self):
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """Makes SmallDisk(tmp_path/NAME, size) on demand; every one is unmounted at the end."""
    disks = []

    def make(name, size_kib):
        disk = SmallDisk(tmp_path / name, size_kib)
        disks.append(disk)
        return disk
    yield make
    for disk in disks:
        disk.unmount()


# -- checks --------------------------------------------------------------------------------

def lake_counts(wd, task, key="id"):
    """(rows, distinct keys) of every Parquet object of the task's lake, by DuckDB."""
    files = [str(p) for p in wd.objects(task)]
    if not files:
        return (0, 0)
    con = duck()
    try:
        return con.execute(f"SELECT count(*), count(DISTINCT {key}) FROM read_parquet(?)",
                           [files]).fetchone()
    finally:
        con.close()


def run_products(wd, task):
    """What runs leave in a task's destination for readers: objects and half-written files
    (anything outside `_lakeport/` and `_dirty/`), and run manifests."""
    dest = wd.destination(task)
    manifests = {p.relative_to(dest).as_posix()
                 for p in dest.glob(f"_lakeport/{task}/runs/*.json")}
    return sorted(lake_files(wd, task) | manifests)


def finished(p, timeout=120):
    """Waits for a process started with text pipes; its Result."""
    out, err = p.communicate(timeout=timeout)
    return Result(p.args[1:], p.returncode, out, err)


def assert_clear_error(result, cause, about=None):
    """Exit status 1, one `error:` line naming the cause, no panic, no bare generic text; with
    `about` (a store URL), every line on stderr names it: a log of several stores, or of a
    service, must say which one a failure is about."""
    assert result.code == 1, result
    assert "panicked" not in result.err and "RUST_BACKTRACE" not in result.err, result
    errors = [line for line in result.err_lines if line.startswith("error: ")]
    assert len(errors) == 1, result
    assert cause.search(errors[0]), result
    # Not only "db error" (the postgres crate's display of any server error).
    bare = [line for line in result.err_lines if re.search(r"(^|: )db error$", line.strip())]
    assert not bare, result
    if about is not None:
        unnamed = [line for line in result.err_lines if line.strip() and about not in line]
        assert not unnamed, result
    print(errors[0])
    return errors[0]


def poll(what, check, timeout=60):
    """`check()` every 10 ms until it is true (the fault should come soon after)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def restart_during(cluster, wd, args, what, ready):
    """Starts `lakeport ARGS` and restarts `cluster` at once (`pg_ctl restart -m immediate`)
    when `ready()` says the work is where the fault should hit, unless the process ended
    first; returns the process's Result (killed if the test fails on the way)."""
    p = wd.spawn(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        poll(what, lambda: p.poll() is not None or ready())
        if p.poll() is None:
            cluster.restart_immediately()
        return finished(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def rows(ids):
    return [{"id": i, "name": f"n{i}"} for i in ids]


def items_task(wd, name, **keys):
    task = {"source": "items", "mode": "incremental", "prefix": "",
            "partition_time": {"from": "write_time"}, "concurrency": 2}
    task.update(keys)
    return wd.write_task(name, **task)


# -- PostgreSQL restarted ------------------------------------------------------------------

def pg_runs(cluster, db, task):
    """{run_id: (status, error)} of a task, read with psql."""
    out = {}
    for line in cluster.psql(f"SELECT run_id, status, record FROM _lakeport_runs "
                             f"WHERE task = '{task}' ORDER BY run_id", db):
        run_id, status, record = line.split("|", 2)
        out[int(run_id)] = (status, json.loads(record).get("error"))
    return out


def pg_checkpoint(cluster, db, task):
    """The task's checkpoint as stored (None: the task never committed a run)."""
    got = cluster.psql(f"SELECT state FROM _lakeport_tasks WHERE task = '{task}'", db)
    return json.loads(got[0])["checkpoint"] if got else None


def test_postgres_restart_while_a_run_reads(pg):
    """The server restarts while an incremental run reads the table: the run fails naming the
    read and the lost connection, the failure is recorded, the checkpoint has not moved and the
    lake holds nothing of the run; the next run delivers every row once."""
    cluster, db, wd = pg
    wd.write_table("items", ["id"], ITEMS)
    items_task(wd, "reads")
    wd.load("items", rows(range(1, 50_001)))

    result = restart_during(cluster, wd, ("run", "reads"), "the run recorded as running",
                            lambda: "running" in [s for s, _ in
                                                  pg_runs(cluster, db, "reads").values()])

    if result.code == 0:
        print(json.dumps({"fault": "after the run (it finished first)"}))
        assert lake_counts(wd, "reads") == (50_000, 50_000)
    else:
        print(json.dumps({"fault": "while the run read the table"}))
        # Which operation lost the server depends on the moment: a shard's read mostly.
        assert_clear_error(result, CONNECTION_LOST, about=cluster.url(db))
        runs = pg_runs(cluster, db, "reads")
        assert [s for s, _ in runs.values()] == ["failed"], runs
        assert CONNECTION_LOST.search(next(iter(runs.values()))[1]), runs
        assert pg_checkpoint(cluster, db, "reads") is None
        assert run_products(wd, "reads") == []

    wd.load("items", rows(range(50_001, 51_001)))
    _, summary = wd.run("reads")
    assert summary["rows"] == (51_000 if result.code else 1_000), summary
    assert lake_counts(wd, "reads") == (51_000, 51_000)


def test_postgres_restart_while_a_run_commits(pg):
    """After a first run, this test holds the task's state row locked (`FOR UPDATE`: reads
    pass, writes wait), so the next run delivers every object, writes its manifest, then waits
    inside its commit; the server restarts there. Nothing is committed, so the run removes
    what it wrote and records its failure: no reader of the lake ever sees its objects. The
    next run delivers every new row once."""
    cluster, db, wd = pg
    wd.write_table("items", ["id"], ITEMS)
    items_task(wd, "commits")
    wd.load("items", rows(range(1, 1_001)))
    wd.run("commits")
    before = run_products(wd, "commits")
    checkpoint = pg_checkpoint(cluster, db, "commits")
    wd.load("items", rows(range(1_001, 5_001)))

    holder = subprocess.Popen(
        [str(cluster.bin / "psql"), "-X", "-A", "-t", "-q", "-d", cluster.url(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p = None
    try:
        holder.stdin.write("BEGIN;\nSELECT 'locked' FROM _lakeport_tasks "
                           "WHERE task = 'commits' FOR UPDATE;\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "locked"
        p = wd.spawn("run", "commits", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)

        def waiting_in_commit():
            if p.poll() is not None:
                return True
            waits = cluster.value(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lakeport' "
                "AND wait_event_type = 'Lock'", db)
            return int(waits) > 0
        poll("the run waiting for the lock in its commit", waiting_in_commit)
        assert p.poll() is None, p.communicate()
        written = sorted(set(run_products(wd, "commits")) - set(before))
        assert any(f.endswith(".parquet") for f in written), written
        assert any(f.startswith("_lakeport/") for f in written), written
        cluster.restart_immediately()
        result = finished(p)
    finally:
        for proc in (p, holder):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    print(json.dumps({"fault": "while the run committed", "written": written}))
    line = assert_clear_error(result, CONNECTION_LOST, about=cluster.url(db))
    assert "task commits" in line, line
    runs = pg_runs(cluster, db, "commits")
    assert [s for s, _ in runs.values()] == ["succeeded", "failed"], runs
    assert pg_checkpoint(cluster, db, "commits") == checkpoint
    # Nothing of the run is left for a reader: no object, no manifest.
    assert run_products(wd, "commits") == before

    _, summary = wd.run("commits")
    assert summary["rows"] == 4_000, summary
    assert lake_counts(wd, "commits") == (5_000, 5_000)


def pg_inventory_state(cluster, db):
    """What an import changes: rows (live and all), import records and the store's seq."""
    return cluster.psql(
        "SELECT (SELECT count(*) FROM data_object_inventory), "
        "(SELECT count(*) FROM data_object_inventory WHERE NOT _deleted), "
        "(SELECT count(*) FROM _lakeport_imports), (SELECT seq FROM _lakeport_meta)", db)


def test_postgres_restart_during_an_inventory_import(pg):
    """Day 1's report (1,000 objects) is imported and delivered; the server restarts while
    day 2's (15,000 objects, the first 1,000 unchanged) is being written. The import fails
    naming the report and the lost connection, the store is as day 1 left it, importing day
    2 again applies it whole, and the next run delivers each new object once."""
    cluster, db, wd = pg
    reports_root = wd.root / "reports"
    wd.write_task("inv", mode="incremental", prefix="", partition_time={"from": "write_time"},
                  concurrency=2)
    # Two folders: the generator names data files by its seed alone.
    day1 = reports.write_s3_big(reports_root / "1", n=1_000, files=1, created=DAY1)
    day2 = reports.write_s3_big(reports_root / "2", n=15_000, files=2, created=DAY2)
    wd.ok("inventory", "import", day1.url)
    wd.run("inv")
    before = pg_inventory_state(cluster, db)

    # The import's transaction has sent a batch of rows: its latest statement is the batched
    # upsert (`WITH i AS (SELECT * FROM unnest(...`, src/store/postgres/write.rs).
    def writing():
        n = cluster.value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'lakeport' AND xact_start IS NOT NULL "
            "AND query LIKE 'WITH i AS (SELECT * FROM unnest(%'", db)
        return int(n) > 0
    result = restart_during(cluster, wd, ("inventory", "import", day2.url),
                            "the import writing", writing)

    if result.code == 0:
        print(json.dumps({"fault": "after the import (it finished first)"}))
    else:
        line = assert_clear_error(result, CONNECTION_LOST, about=cluster.url(db))
        assert day2.url in line, line
        if pg_inventory_state(cluster, db) != before:
            # The server committed, then the connection went before its answer came: the
            # import is whole (the import below finds it already imported).
            print(json.dumps({"fault": "at the import's commit (it went through)"}))
            assert cluster.value("SELECT count(*) FROM data_object_inventory", db) == "15000"
        else:
            print(json.dumps({"fault": "while the import wrote"}))
            again = wd.ok("inventory", "import", day2.url)
            assert "14000 inserted, 0 updated, 0 deleted, 1000 unchanged" in again.out, again
    again = wd.ok("inventory", "import", day2.url)
    assert "already imported" in again.out, again
    _, summary = wd.run("inv")
    assert summary["rows"] == 14_000, summary
    assert lake_counts(wd, "inv", key="key") == (15_000, 15_000)


# -- SQLite on a full disk -----------------------------------------------------------------

def acl_report(root, n, created, bucket="spill-bucket"):
    """An S3 CSV.gz report of `n` objects, each with a 1.6 KB ACL (base64 JSON, as S3
    Inventory's ObjectAccessControlList field is) of eight grants to canonical IDs that look
    random (hashes of the object's number): about 1.7 KB a row once decoded, so that 20,000
    rows fill the import sort's 32 MiB buffer and spill, and the IDs keep the sort's
    LZ4-compressed runs near that size."""
    root = Path(root)
    base = f"inventory/{bucket}/daily"

    def acl(i):
        # The same object has the same ACL in every report (unchanged rows stay unchanged).
        grants = [{"permission": "READ", "granteeType": "CanonicalUser",
                   "canonicalId": hashlib.sha256(f"{bucket}/{i}/{g}".encode()).hexdigest()}
                  for g in range(8)]
        return base64.b64encode(json.dumps({"version": "2022-11-10", "status": "AVAILABLE",
                                            "grants": grants}).encode()).decode()

    t = reports.iso_ms(1_717_000_000_000)
    data = gzip.compress("".join(
        f'"{bucket}","logs/app/part-{i:08d}.json.gz","{i}","{t}","{acl(i)}"\n'
        for i in range(n)).encode(), 1)
    key = f"{base}/data/{created:%Y%m%d}.csv.gz"
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    (root / key).write_bytes(data)
    doc = {"sourceBucket": bucket, "destinationBucket": "arn:aws:s3:::inventory",
           "version": "2016-11-30", "creationTimestamp": str(reports.ms_of(created)),
           "fileFormat": "CSV",
           "fileSchema": "Bucket, Key, Size, LastModifiedDate, ObjectAccessControlList",
           "files": [{"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}]}
    manifest = reports._write_manifest(root / base / reports.folder_stamp(created),
                                       reports._json_manifest(doc), True)
    return reports.file_url(manifest)


def test_full_disk_during_an_import_sort_spill(small_disk, tmp_path, binary):
    """The store and the temporary folder (TMPDIR) share a 16 MiB disk. Day 1's report is
    imported and delivered; day 2's, 24,000 rows of 1.7 KB, fills the disk when its sort
    spills: the import fails naming the report, the folder and "no space left on device",
    and the store is as it was. Space returns (the disk grows): the import applies whole and
    the next run delivers each object once."""
    disk = small_disk("disk", 16 * 1024)
    wd = Workdir(disk.path, binary)
    temp = disk.path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    wd.write_task("inv", mode="incremental", prefix="", partition_time={"from": "write_time"},
                  concurrency=2, destination=f"file://{tmp_path / 'lake'}")
    day1 = acl_report(tmp_path / "reports", 1_000, DAY1)
    day2 = acl_report(tmp_path / "reports", 24_000, DAY2)
    wd.lakeport("inventory", "import", day1, env=env, expect=0)
    wd.ok("run", "inv")
    before = sqlite_dump(wd.store_path)

    r = wd.lakeport("inventory", "import", day2, env=env)
    print(json.dumps({"fault": "while the import's sort spilled" if r.code else "none"}))
    line = assert_clear_error(r, NO_SPACE)
    assert day2 in line and str(temp) in line and "sorting" in line, line
    assert sqlite_dump(wd.store_path) == before
    assert list(temp.iterdir()) == [], "the spill left files behind"

    disk.grow(256 * 1024)
    again = wd.lakeport("inventory", "import", day2, env=env, expect=0)
    assert "23000 inserted, 0 updated, 0 deleted, 1000 unchanged" in again.out, again
    _, summary = wd.run("inv")
    assert summary["rows"] == 23_000, summary
    assert lake_counts(wd, "inv", key="key") == (24_000, 24_000)


def test_full_disk_while_a_run_writes_spool_files(small_disk, binary):
    """Store, spool folder and lake on a 24 MiB disk left with 1 MiB of room; the run's
    objects (about 2 MB of random text) fill it while they are encoded: the run fails naming
    the spool file and "no space left on device", records the failure, leaves neither object
    nor spool file, and the checkpoint has not moved. Space returns (the filler is removed):
    the next run delivers every row once."""
    disk = small_disk("disk", 24 * 1024)
    wd = Workdir(disk.path, binary)
    spool = disk.path / "spool"
    spool.mkdir()
    env = {"LAKEPORT_SPOOL_DIR": str(spool)}
    wd.write_table("items", ["id"], ITEMS)
    items_task(wd, "spool", concurrency=1)
    wd.load("items", [{"id": i, "name": os.urandom(100).hex()} for i in range(1, 20_001)])
    disk.fill(leave=1024 * 1024)

    r = wd.lakeport("run", "spool", env=env)
    print(json.dumps({"fault": "while the run wrote spool files" if r.code else "none"}))
    line = assert_clear_error(r, NO_SPACE)
    assert "spool file" in line and str(spool) in line, line
    records = wd.status("spool")
    assert records["last_run"]["status"] == "failed", records
    assert NO_SPACE.search(records["last_run"]["error"]), records
    assert records["checkpoint"] == 0, records
    assert list(spool.iterdir()) == []
    assert run_products(wd, "spool") == []

    disk.empty()
    _, summary = wd.run("spool")
    assert summary["rows"] == 20_000, summary
    assert lake_counts(wd, "spool") == (20_000, 20_000)


def test_full_disk_while_a_run_commits(small_disk, tmp_path, binary):
    """The store sits on a disk with 128 KiB of room: enough to record the run's plan, not
    its commit (300 objects, one per hourly partition, whose records take more). The commit
    fails with "database or disk is full"; the run removes every object and its manifest
    (nothing of an uncommitted run stays in the lake for a reader to find) and records the
    failure. Space returns: the next run delivers every row once."""
    disk = small_disk("disk", 8 * 1024)
    wd = Workdir(disk.path, binary)
    wd.write_table("events", ["id"], [("id", "int64"), ("at", "timestamp_ms")])
    hour = 3_600_000
    wd.write_task("hourly", source="events", mode="incremental", prefix="$yyyy/$MM/$dd/$HH",
                  partition_time={"from": "column", "column": "at", "timezone": "UTC"},
                  concurrency=1, destination=f"file://{tmp_path / 'lake'}")
    wd.load("events", [{"id": i, "at": 1_700_000_000_000 + (i % 300) * hour}
                       for i in range(1, 601)])
    disk.fill(leave=128 * 1024)

    r = wd.lakeport("run", "hourly")
    print(json.dumps({"fault": "while the run committed" if r.code else "none"}))
    line = assert_clear_error(r, NO_SPACE)
    assert "finishing run" in line, line
    assert run_products(wd, "hourly") == []
    disk.empty()
    records = wd.status("hourly")
    assert records["last_run"]["status"] == "failed", records
    assert records["checkpoint"] == 0 and records["live_objects"] == 0, records

    _, summary = wd.run("hourly")
    assert summary["rows"] == 600 and summary["objects"] == 300, summary
    assert lake_counts(wd, "hourly") == (600, 600)
