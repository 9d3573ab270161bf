"""Shared helpers of the end-to-end suite.

Every test drives the real `lakeport` binary (env `LAKEPORT_BIN`, default
`<target>/debug/lakeport`) in its own temporary folder with its own `schemas/`, `pipelines/`
and SQLite store, and checks the results with software lakeport did not write: Python's sqlite3
for the store, DuckDB and pyarrow for the Parquet objects, Spark SQL for the DDL.

`Workdir` runs commands and writes files; `verify_delivery` is the one thorough check of a
finished full-mode run (names, status record, footer metadata, types, values, partitions);
the helpers at the end read a task's run records, stored state and lake files (incremental
delivery, runs started in the background with `Workdir.spawn`) and talk to `lakeport serve`
(`serving`, `call`). `s3_server` is a real S3-compatible server (s3s-fs) on 127.0.0.1 for the
whole session.
"""

import contextlib
import datetime as dt
import decimal
import itertools
import json
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import zoneinfo
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import s3s_fs  # noqa: E402  (scripts/s3s_fs.py, shared with the PostgreSQL benchmark)
from s3s_fs import S3sFs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
SUMMARY_RE = re.compile(
    r"^(?P<task>[a-z0-9-]+): (?P<rows>\d+) rows, (?P<objects>\d+) objects, (?P<bytes>\d+) bytes, "
    r"(?P<partitions>\d+) partitions, (?P<dirty>\d+) dirty rows in (?P<secs>\d+\.\d\d)s "
    r"\((?P<rate>[\d.,]+) rows/s\)$"
)
LOAD_RE = re.compile(
    r"^loaded (?P<file>.+): (?P<inserted>\d+) inserted, (?P<updated>\d+) updated, "
    r"(?P<deleted>\d+) deleted, (?P<unchanged>\d+) unchanged \(seq (?P<seq>\d+)\)$"
)
STORE_TYPES = ("string", "int64", "double", "bool", "binary", "timestamp_ms")
# DuckDB's name for each lake type (and for the store types that `schema: auto` delivers).
DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "bool": "BOOLEAN",
    "binary": "BLOB",
    "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ms": "TIMESTAMP WITH TIME ZONE",
    "timestamp_us": "TIMESTAMP WITH TIME ZONE",
}
OBJECT_NAME_RE = r"^{task}_(\d+)_(\d+)\.parquet$"


def lakeport_bin():
    """The binary under test: $LAKEPORT_BIN, else the debug build of this checkout."""
    env = os.environ.get("LAKEPORT_BIN")
    if env:
        return Path(env).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return (target / "debug" / "lakeport").resolve()


@pytest.fixture(scope="session")
def binary():
    path = lakeport_bin()
    if not path.is_file():
        pytest.fail(f"lakeport binary not found at {path}: run `cargo build` or set LAKEPORT_BIN")
    return path


class Result:
    """Exit code, stdout and stderr of one command."""

    def __init__(self, args, code, out, err):
        self.args, self.code, self.out, self.err = args, code, out, err

    @property
    def lines(self):
        return self.out.splitlines()

    @property
    def err_lines(self):
        return self.err.splitlines()

    def __str__(self):
        return (
            f"$ lakeport {' '.join(map(str, self.args))}\nexit {self.code}\n"
            f"--- stdout\n{self.out}--- stderr\n{self.err}"
        )


def load_counts(result):
    """{file: {"inserted", "updated", "deleted", "unchanged", "seq"}} of a `load` output."""
    out = {}
    for line in result.lines:
        m = LOAD_RE.match(line)
        assert m, f"not a load summary line: {line!r}\n{result}"
        out[m["file"]] = {k: int(v) for k, v in m.groupdict().items() if k != "file"}
    assert out, f"load printed nothing\n{result}"
    return out


def task_yaml(name, **keys):
    """A complete task (every key of DESIGN.md) with test defaults, overridden by `keys`."""
    task = {
        "name": name,
        "source": "object_inventory",
        "destination": f"lake/{name}",
        "prefix": "dt=$yyyy-$MM-$dd",
        "partition_time": {"from": "write_time", "timezone": "UTC"},
        "mode": "full",
        "schema": "auto",
        "parquet": {"compression": "zstd", "target_file_size": "128MiB", "buffer_size": "256MiB"},
        "concurrency": 2,
        "schedule": "0 0 2 * * *",
        "deletes": "ignore",
        "dirty": {"keep": True},
        "catalog": {"dialect": "hive", "table": name.replace("-", "_")},
    }
    task.update(keys)
    return task


class Workdir:
    """One test's folder: `schemas/`, `pipelines/`, `lakeport.db`, and the lake below it."""

    def __init__(self, root, binary):
        self.root = Path(root)
        self.binary = binary
        (self.root / "schemas").mkdir(exist_ok=True)
        (self.root / "pipelines").mkdir(exist_ok=True)
        self.store_path = self.root / "lakeport.db"
        # The --store URL; a PostgreSQL test points it at its own database.
        self.store = "sqlite:lakeport.db"
        self.tasks = {}

    # -- running the binary ---------------------------------------------------------------
    def command(self, *args, env=None):
        """argv (without the binary) and environment of `lakeport --store ... ARGS` here
        (`env`: variables to add to this process's environment)."""
        argv = ["--store", self.store, "--pipelines", "pipelines",
                "--schemas", "schemas", *map(str, args)]
        full = dict(os.environ)
        full.pop("LAKEPORT_STORE", None)
        full.setdefault("RUST_BACKTRACE", "1")
        full.update(env or {})
        return argv, full

    def spawn(self, *args, env=None, **popen):
        """Starts `lakeport ARGS` here without waiting for it (a `subprocess.Popen`; the caller
        waits for it or kills it)."""
        argv, env = self.command(*args, env=env)
        return subprocess.Popen([str(self.binary), *argv], cwd=self.root, env=env, **popen)

    def lakeport(self, *args, expect=None, timeout=600, env=None):
        """Runs `lakeport --store ... --pipelines pipelines --schemas schemas ARGS` here."""
        argv, env = self.command(*args, env=env)
        p = subprocess.run([str(self.binary), *argv], cwd=self.root, capture_output=True,
                           text=True, timeout=timeout, env=env)
        r = Result(argv, p.returncode, p.stdout, p.stderr)
        if expect is not None:
            assert r.code == expect, f"expected exit {expect}\n{r}"
        return r

    def ok(self, *args):
        return self.lakeport(*args, expect=0)

    def bare(self, *args, cwd=None, expect=None, env=None):
        """`lakeport ARGS` with only the options in ARGS (no --store, --pipelines or
        --schemas: the defaults apply), run from `cwd` (default: this folder)."""
        full = {k: v for k, v in os.environ.items() if k != "LAKEPORT_STORE"}
        full.update(env or {})
        p = subprocess.run([str(self.binary), *map(str, args)], cwd=cwd or self.root,
                           capture_output=True, text=True, timeout=300, env=full)
        r = Result(list(map(str, args)), p.returncode, p.stdout, p.stderr)
        if expect is not None:
            assert r.code == expect, f"expected exit {expect} (in {cwd or self.root})\n{r}"
        return r

    # -- files ----------------------------------------------------------------------------
    def write(self, rel, text):
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def write_bytes(self, rel, data):
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def write_table(self, table, primary_key, columns):
        """Declares a store table: columns as [(name, type), ...]."""
        doc = {"table": table, "primary_key": list(primary_key),
               "columns": [{"name": n, "type": t} for n, t in columns]}
        self.write(f"schemas/{table}.yaml", yaml.safe_dump(doc, sort_keys=False))

    def write_schema(self, name, columns):
        """A delivery schema file schemas/NAME.yaml: columns as [(source, name, type), ...]."""
        doc = {"columns": [{"source": s, "name": n, "type": t} for s, n, t in columns]}
        return self.write(f"schemas/{name}.yaml", yaml.safe_dump(doc, sort_keys=False))

    def write_task(self, name, **keys):
        task = task_yaml(name, **keys)
        self.tasks[name] = task
        self.write(f"pipelines/{name}.yaml",
                   yaml.safe_dump(task, sort_keys=False, allow_unicode=True))
        return task

    def write_ndjson(self, rel, rows):
        return self.write(rel, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def load(self, table, rows, name=None):
        """Loads rows (dicts) as one NDJSON file; returns the command result."""
        self._loads = getattr(self, "_loads", 0) + 1
        rel = name or f"in/{table}-{self._loads}.ndjson"
        self.write_ndjson(rel, rows)
        return self.ok("load", table, rel)

    # -- reading state --------------------------------------------------------------------
    def store_rows(self, table, live_only=True):
        """Rows of data_<table> straight from SQLite (dicts, raw SQLite values)."""
        con = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            where = " WHERE _deleted = 0" if live_only else ""
            return [dict(r) for r in con.execute(f'SELECT * FROM "data_{table}"{where}')]
        finally:
            con.close()

    def tables_json(self):
        r = self.ok("tables", "--json")
        return json.loads(r.out)

    def status(self, task):
        r = self.ok("status", task, "--json")
        doc = json.loads(r.out)
        entries = [t for t in doc["tasks"] if t["task"] == task]
        assert len(entries) == 1, f"status --json has no single entry for {task}: {r.out}"
        return entries[0]

    def run(self, task, expect=0):
        """`lakeport run TASK`; returns (result, parsed summary line)."""
        r = self.lakeport("run", task, expect=expect)
        if expect != 0:
            return r, None
        assert r.lines, f"no summary line\n{r}"
        m = SUMMARY_RE.match(r.lines[-1])
        assert m, f"last line is not the run summary\n{r}"
        assert m["task"] == task
        return r, {k: (v if k in ("task", "rate") else float(v) if k == "secs" else int(v))
                   for k, v in m.groupdict().items()}

    def ddl(self, task):
        """`lakeport ddl TASK` split into statements (without the final `;`)."""
        r = self.ok("ddl", task)
        text = r.out.strip()
        assert text.endswith(";"), f"DDL does not end with ';'\n{r}"
        return [s.strip() for s in text[:-1].split(";\n")]

    def destination(self, task):
        dest = self.tasks[task]["destination"]
        if dest.startswith("file://"):
            return Path(dest[len("file://"):])
        return self.root / dest

    def objects(self, task):
        """Every Parquet object of a task's destination (not the dirty-data folder)."""
        dest = self.destination(task)
        if not dest.exists():
            return []
        return sorted(p for p in dest.rglob("*.parquet") if "_dirty" not in p.relative_to(dest).parts)


@pytest.fixture
def wd(tmp_path, binary):
    return Workdir(tmp_path, binary)


# -- time and partitions ------------------------------------------------------------------

def render_prefix(template, ms, tz):
    """The prefix a row with time `ms` (epoch ms) gets in timezone `tz`."""
    t = (EPOCH + dt.timedelta(milliseconds=ms)).astimezone(zoneinfo.ZoneInfo(tz))
    out = template
    for var, val in (("$yyyy", f"{t.year:04d}"), ("$MM", f"{t.month:02d}"),
                     ("$dd", f"{t.day:02d}"), ("$HH", f"{t.hour:02d}"),
                     ("$mm", f"{t.minute:02d}")):
        out = out.replace(var, val)
    return out


def ms_of(iso):
    """Epoch ms of an RFC 3339 string."""
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def utc_date(ms):
    return (EPOCH + dt.timedelta(milliseconds=ms)).date().isoformat()


# -- the columns a task delivers ----------------------------------------------------------

def table_columns(wd, table):
    """[(name, store type)] of a table: schemas/<table>.yaml or the built-in inventory."""
    path = wd.root / "schemas" / f"{table}.yaml"
    if not path.exists():
        path = REPO / "schemas" / f"{table}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(c["name"], c["type"]) for c in doc["columns"]], list(doc["primary_key"])


def lake_columns(wd, task):
    """[(source, lake name, lake type, store type)] a task delivers, in lake order."""
    t = wd.tasks[task]
    cols, _ = table_columns(wd, t["source"])
    store = dict(cols)
    store["_seq"] = "int64"
    store["_write_time"] = "timestamp_ms"
    if t["schema"] == "auto":
        return [(n, n, ty, ty) for n, ty in cols] + [
            ("_seq", "_seq", "int64", "int64"),
            ("_write_time", "_write_time", "timestamp_ms", "timestamp_ms"),
        ]
    doc = yaml.safe_load((wd.root / t["schema"]).read_text(encoding="utf-8"))
    out = []
    for c in doc["columns"]:
        src = c["source"]
        out.append((src, c.get("name", src), c.get("type", store[src]), store[src]))
    return out


def duckdb_type(lake_type):
    lt = lake_type.strip().lower().replace(" ", "")
    if lt.startswith("decimal"):
        p, s = (lt[len("decimal("):-1].split(",") + ["0"])[:2]
        return f"DECIMAL({p},{s})"
    return DUCKDB_TYPES[lt]


def normalize_sql(name, lake_type):
    """A DuckDB expression giving a plain Python value of a lake column."""
    q = f'"{name}"'
    ty = duckdb_type(lake_type)
    if ty.startswith("TIMESTAMP"):
        return f"epoch_ms({q})"
    if ty == "DATE":
        return f"CAST({q} AS VARCHAR)"
    if ty == "FLOAT":
        return f"CAST({q} AS DOUBLE)"
    return q


def expected_value(v, store_type, lake_type):
    """The Python value `normalize_sql` should give for store value `v` (raw SQLite)."""
    if v is None:
        return None
    lt = lake_type.strip().lower().replace(" ", "")
    if store_type == "bool":
        v = bool(v)
    if lt.startswith("decimal"):
        return decimal.Decimal(str(v))
    if lt == "date":
        return utc_date(v) if store_type == "timestamp_ms" else v
    if lt == "float":
        return struct.unpack("f", struct.pack("f", float(v)))[0]
    if lt in ("int32", "int64") and store_type in ("string", "double"):
        return int(v) if store_type == "string" else int(v)
    if lt == "double" and store_type in ("string", "int64"):
        return float(v)
    if lt in ("boolean", "bool") and store_type == "string":
        return v.lower() == "true"
    return v


# -- the thorough check of one run --------------------------------------------------------

def duck():
    return duckdb.connect()


def read_lake(files, columns):
    """Rows of `files` as dicts keyed by lake name (normalized values) plus `__file`."""
    con = duck()
    try:
        sel = ", ".join(f"{normalize_sql(n, t)} AS \"{n}\"" for _, n, t, _ in columns)
        flist = "[" + ", ".join(f"'{f}'" for f in files) + "]"
        cur = con.execute(
            f"SELECT {sel}, filename AS __file FROM read_parquet({flist}, "
            f"hive_partitioning=false, filename=true)")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def describe_lake(files):
    """[(column name, DuckDB type)] of the objects, as DuckDB reads them."""
    con = duck()
    try:
        flist = "[" + ", ".join(f"'{f}'" for f in files) + "]"
        rows = con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({flist}, hive_partitioning=false)").fetchall()
        return [(r[0], r[1]) for r in rows]
    finally:
        con.close()


def verify_delivery(wd, task, summary=None):
    """Checks the last run of a full-mode task against the store; returns what it found:

    {"files", "run", "rows_by_partition": Counter(partition -> rows), "partitions"}.
    """
    t = wd.tasks[task]
    table = t["source"]
    entry = wd.status(task)
    run = entry["last_run"]
    assert run is not None, f"status has no last_run for {task}: {entry}"
    assert run["status"] == "succeeded", run
    assert run["task"] == task and run["mode"] == "full", run
    dest = wd.destination(task)
    files = wd.objects(task)
    store = wd.store_rows(table)
    columns = lake_columns(wd, task)
    conc = t.get("concurrency", 1)

    # Names: <prefix>/<task>_<cid>_<seq>.parquet, cid < concurrency, seq from the plan, and
    # one object per partition per shard.
    name_re = re.compile(OBJECT_NAME_RE.format(task=re.escape(task)))
    per_shard = Counter()
    for f in files:
        m = name_re.match(f.name)
        assert m, f"object name {f.name} is not {task}_<cid>_<seq>.parquet"
        cid, seq = int(m[1]), int(m[2])
        assert 0 <= cid < conc, f"{f}: concurrent id {cid} not below concurrency {conc}"
        assert run["first_object_seq"] <= seq < run["next_object_seq"], (f, run)
        per_shard[(f.parent, cid)] += 1
    assert all(n == 1 for n in per_shard.values()), f"more than one object per partition per shard: {per_shard}"

    # The run record lists exactly the objects on disk, with their rows and bytes.
    rel = sorted(f.relative_to(dest).as_posix() for f in files)
    listed = sorted(o["path"] for o in run["objects"])
    assert len(listed) == len(rel), (listed, rel)
    for path, r in zip(listed, rel):
        assert path == r or path.endswith("/" + r), f"status object path {path} is not {r}"
    by_rel = {o["path"]: o for o in run["objects"]}
    for f in files:
        r = f.relative_to(dest).as_posix()
        o = next(v for k, v in by_rel.items() if k == r or k.endswith("/" + r))
        assert o["bytes"] == f.stat().st_size, (o, f.stat().st_size)
        assert o["rows"] == pq.read_metadata(f).num_rows, (o, f)
        assert o["partition"].strip("/") == f.parent.relative_to(dest).as_posix(), (o, f)
    assert run["rows"] == len(store), (run["rows"], len(store))
    assert run["bytes"] == sum(f.stat().st_size for f in files)
    assert entry["live_objects"] == len(files), entry
    partitions = {f.parent for f in files}
    assert entry["live_partitions"] == len(partitions), entry
    if summary is not None:
        assert summary["rows"] == len(store)
        assert summary["objects"] == len(files)
        assert summary["bytes"] == run["bytes"]
        assert summary["partitions"] == len(partitions)
        assert summary["dirty"] == sum(run["dirty"].values())

    # Footer metadata names the task, run and sequence range.
    for f in files:
        kv = {k.decode(): v.decode() for k, v in (pq.read_metadata(f).metadata or {}).items()}
        assert kv.get("lakeport.task") == task, (f, kv)
        assert kv.get("lakeport.run_id") == str(run["run_id"]), (f, kv, run["run_id"])
        assert kv.get("lakeport.seq_from") == str(run["seq_from"]), (f, kv)
        assert kv.get("lakeport.seq_to") == str(run["seq_to"]), (f, kv)

    if not store:
        assert files == []
        return {"files": files, "run": run, "rows_by_partition": Counter(), "partitions": set()}

    # Column names and types as DuckDB reads them; timestamp units as pyarrow reads them.
    got_types = describe_lake(files)
    want_types = [(n, duckdb_type(lt)) for _, n, lt, _ in columns]
    assert got_types == want_types
    schema = pq.read_schema(files[0])
    for _, n, lt, _ in columns:
        lt = lt.lower()
        if lt.startswith("timestamp"):
            ft = schema.field(n).type
            assert ft.unit == ("us" if lt == "timestamp_us" else "ms"), (n, ft)
            assert ft.tz in ("UTC", "+00:00"), (n, ft)

    # Values: the lake equals the store's live rows, row for row, by primary key.
    _, pk = table_columns(wd, table)
    key_names = [next(n for s, n, _, _ in columns if s == k) for k in pk]
    lake = read_lake(files, columns)
    assert len(lake) == len(store), (len(lake), len(store))
    lake_by_key = {tuple(r[k] for k in key_names): r for r in lake}
    assert len(lake_by_key) == len(lake), "duplicate keys in the lake"
    time_source = t.get("partition_time", {}).get("from", "write_time")
    tz = t.get("partition_time", {}).get("timezone", "UTC")
    rows_by_partition = Counter()
    for s in store:
        want = {n: expected_value(s[src], st, lt) for src, n, lt, st in columns}
        key = tuple(want[k] for k in key_names)
        got = lake_by_key.get(key)
        assert got is not None, f"store row {key} is not in the lake"
        f = Path(got.pop("__file"))
        assert got == want, f"row {key} differs"
        # The row sits in the partition its time says.
        if time_source == "column":
            ms = s[t["partition_time"]["column"]]
        elif time_source == "run_time":
            ms = run["started_ms"]
        else:
            ms = s["_write_time"]
        part = render_prefix(t["prefix"], ms, tz)
        assert f.parent.relative_to(dest).as_posix() == part, (key, ms, f)
        rows_by_partition[part] += 1
    return {"files": files, "run": run, "rows_by_partition": rows_by_partition,
            "partitions": partitions}


# -- runs, task state and the lake of a task (incremental delivery) ----------------------

def delivered(wd, files):
    """(id, name, _seq, dt partition) of every row of the given objects, by `_seq`."""
    if not files:
        return []
    con = duck()
    try:
        got = con.execute(
            "SELECT id, name, _seq, regexp_extract(filename, 'dt=([0-9-]+)', 1) FROM "
            "read_parquet(?, filename = true) ORDER BY _seq", [[str(f) for f in files]]).fetchall()
    finally:
        con.close()
    return [tuple(r) for r in got]


def sqlite_dump(path):
    """Every row of every table of the SQLite store at `path` (None when there is none), for
    "the store did not change"."""
    if not Path(path).exists():
        return None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [t for (t,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"'))) for t in tables}
    finally:
        con.close()


def store_connection(wd):
    """A read-only sqlite3 connection to the test's store (waits for writers' locks)."""
    return sqlite3.connect(f"file:{wd.store_path}?mode=ro", uri=True, timeout=10)


def newest_run_id(wd, running=False, task="inc"):
    """The highest run id of `task` (only runs recorded as running if `running`), else 0."""
    con = store_connection(wd)
    try:
        where = " AND status = 'running'" if running else ""
        (n,) = con.execute("SELECT coalesce(max(run_id), 0) FROM _lakeport_runs "
                           f"WHERE task = ?{where}", [task]).fetchone()
        return n
    finally:
        con.close()


def wait_for_running_run(wd, process, after, task="inc", timeout=60):
    """Waits until `task` has a run newer than `after` recorded as running (True), or the
    process ends (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if newest_run_id(wd, running=True, task=task) > after:
            return True
        time.sleep(0.005)
    return False


def run_records(wd, task):
    """Every run record of `task` as stored (dicts, by run id), with the row's own status."""
    con = store_connection(wd)
    try:
        rows = con.execute("SELECT run_id, status, record FROM _lakeport_runs WHERE task = ? "
                           "ORDER BY run_id", [task]).fetchall()
    finally:
        con.close()
    out = []
    for run_id, status, record in rows:
        r = json.loads(record)
        assert r["run_id"] == run_id and r["status"] == status, (run_id, status, record)
        out.append(r)
    return out


def live_objects(wd, task):
    """The live set of `task` as the store keeps it: {path: object}."""
    con = store_connection(wd)
    try:
        rows = con.execute('SELECT path, object FROM "_lakeport_live" WHERE task = ?',
                           [task]).fetchall()
    finally:
        con.close()
    return {path: json.loads(obj) for path, obj in rows}


def lake_files(wd, task):
    """Every file under a task's destination (relative POSIX paths), whatever its name, except
    lakeport's own folders (`_dirty/`, `_lakeport/`): what a reader of the lake would find.
    Safe while a run writes or removes objects (a folder that vanishes meanwhile is skipped)."""
    dest = wd.destination(task)
    out = set()
    for folder, subfolders, names in os.walk(dest):
        rel = Path(folder).relative_to(dest)
        if rel == Path("."):
            subfolders[:] = [d for d in subfolders if d not in ("_dirty", "_lakeport")]
        out.update((rel / n).as_posix() for n in names)
    return out


# -- lakeport serve ------------------------------------------------------------------------

@contextlib.contextmanager
def serving(wd, listen="127.0.0.1:0", env=None):
    """`lakeport serve --listen LISTEN` here (with extra environment variables `env`); yields
    (process, base URL on 127.0.0.1); killed on the way out if still running. Its log (stderr)
    goes to a file, `process.log` (a pipe nobody reads would stop the server once full); a
    test that fails inside the block prints the log's end."""
    log = wd.root / f"serve-{next(SERVE_LOGS)}.log"
    with open(log, "w") as sink:
        p = wd.spawn("serve", "--listen", listen, env=env, stdout=subprocess.PIPE,
                     stderr=sink, text=True)
    p.log = log
    try:
        line = p.stdout.readline()
        m = re.search(r"http://[0-9.]+:(\d+)/", line)
        if not m:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
            raise AssertionError(f"serve printed {line!r}, exit {p.poll()}; stderr: {log.read_text()}")
        yield p, f"http://127.0.0.1:{m.group(1)}"
    except BaseException:
        print(f"--- the end of {log} (pid {p.pid}):\n{log.read_text()[-20_000:]}")
        raise
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


SERVE_LOGS = itertools.count(1)


# -- a real S3-compatible server on 127.0.0.1 ---------------------------------------------

class S3Server(S3sFs):
    """The tests' s3s-fs (`scripts/s3s_fs.py`) on a fixed port (a restart keeps it), with the
    checks the tests make of the server's state. A server that does not start fails the test."""

    ACCESS_KEY = "lakeport-e2e-key"
    SECRET_KEY = "lakeport-e2e-secret"
    REGION = s3s_fs.REGION

    def __init__(self, binary, root, port):
        root = Path(root)
        super().__init__(binary, root, port, root.parent / "s3s-fs.log",
                         self.ACCESS_KEY, self.SECRET_KEY)

    def start(self, timeout=15):
        try:
            super().start(timeout)
        except s3s_fs.StartError as e:
            pytest.fail(str(e))

    def create_bucket(self, name):
        self.fs().create_dir(name)
        return name

    def credentials_env(self, key_var="LAKEPORT_E2E_S3_KEY", secret_var="LAKEPORT_E2E_S3_SECRET"):
        return {key_var: self.ACCESS_KEY, secret_var: self.SECRET_KEY}

    def storage(self, key_var="LAKEPORT_E2E_S3_KEY", secret_var="LAKEPORT_E2E_S3_SECRET"):
        """A task file's `storage:` section for this server (credentials by variable name)."""
        return {"endpoint": self.endpoint, "region": self.REGION, "path_style": True,
                "allow_http": True, "access_key_id_env": key_var,
                "secret_access_key_env": secret_var}

    def uploads_in_progress(self):
        """Ids of the multipart uploads the server holds open (started, neither completed
        nor aborted)."""
        return sorted(p.name[len(".upload-"):-len(".json")]
                      for p in self.root.glob(".upload-*.json"))

    def parts_uploaded(self):
        """How many parts of open multipart uploads the server holds."""
        return len(list(self.root.glob(".upload_id-*.part-*")))

    def etag(self, bucket, key):
        """The ETag the server recorded for an object (`<md5>-<parts>` after multipart)."""
        import base64

        def b64(text):
            return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        meta = self.root / f".bucket-{b64(bucket)}.object-{b64(key)}.internal.json"
        return json.loads(meta.read_text())["e_tag"]


@pytest.fixture(scope="session")
def s3_server():
    """One s3s-fs for the session on a free 127.0.0.1 port with a temporary data folder,
    stopped at the end whatever happened. A test that needs it fails (never skips) when it
    cannot start."""
    binary = s3s_fs.binary()
    if not binary.is_file():
        pytest.fail(f"s3s-fs not found at {binary}: run `make s3s-fs` (or set LAKEPORT_S3S_FS)")
    folder = Path(tempfile.mkdtemp(prefix="lakeport-s3-"))
    (folder / "data").mkdir()
    server = S3Server(binary, folder / "data", s3s_fs.free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def call(base, path, method="GET", token=None):
    """(status, JSON body) of one request (with `Authorization: Bearer token` if given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(base + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(what, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
