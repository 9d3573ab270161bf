#!/usr/bin/env python3
"""Benchmark: lakeport vs DuckDB delivering the same SQLite store to Parquet.

One run: generate N object-inventory rows (scripts/gen_inventory.py), load them into a fresh
store with `lakeport load`, then deliver the store twice, timed:

  (a) lakeport: `lakeport run` of a full-mode task, daily partitions `dt=$yyyy-$MM-$dd` on
      last_modified (UTC), zstd, concurrency 2, schema auto; peak RSS of that process.
  (a') lakeport, incremental: the same task in incremental mode from checkpoint 0 (every row
      is a change), one run; rows/s printed beside (a).
  (b) DuckDB: the sqlite extension from the PyPI package duckdb-ext-sqlite scans the same
      store file (`sqlite_scan(..., 'object_inventory')`, the view of the live rows) and
      `COPY ... TO (FORMAT parquet, PARTITION_BY (dt), COMPRESSION zstd)` with the same columns
      and types (timestamps as TIMESTAMPTZ, booleans as BOOLEAN, _seq and _write_time too).

Both outputs are counted back with DuckDB (each must hold N rows). Prints rows/s of each, the
ratio lakeport/DuckDB, lakeport's peak RSS, objects per partition of each, and a table.

Ingest case (issue 3): tests/reports.py writes an S3 Inventory CSV.gz report of N objects
(BENCH_INGEST_ROWS, default 1,000,000) in 10 files; then, timed in the same run:

  (a) lakeport: `lakeport inventory import <manifest> --json` into a fresh SQLite store;
      wall time including start-up, and the process's peak RSS;
  (b) Python baseline: read the same manifest, check each file's MD5, gunzip + csv module,
      form-decode the keys (urllib.parse.unquote_plus), parse sizes, booleans and dates, and
      `sqlite3.executemany` every row into a fresh SQLite file holding a table of the same shape
      as lakeport's (same columns and types, _seq/_write_time/_deleted, the same primary key,
      WITHOUT ROWID, the _seq index; WAL, synchronous=NORMAL, the same cache), one commit;
  (c) lakeport again on the unchanged next-day report (the same data files under a new
      manifest with a later creation time): its rows/s, the rows it wrote
      (inserted + updated + deleted from --json) and its speed-up over (a).

Prints PASS/FAIL beside each target: (a) >= 3x (b); peak RSS <= 256 MB; (c) writes 0 rows and
is >= 2x faster than (a). Both stores are counted back (N live rows each).

Latency case (issue 4): see scripts/bench_latency.py (BENCH_CASE=latency).

Serve case (issue 5): see scripts/bench_serve.py (BENCH_CASE=serve): `GET /api/tasks` and
`/metrics` under wrk while five tasks deliver, beside delivery rows/s without that load.

    .venv/bin/python scripts/bench.py --bin target/release/lakeport      # BENCH_ROWS=1000000
    BENCH_CASE=ingest .venv/bin/python scripts/bench.py                   # only the ingest case
"""

import argparse
import csv
import gzip
import hashlib
import importlib.metadata
import io
import sqlite3
import urllib.parse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import reports  # noqa: E402  (tests/reports.py: the inventory report generator)
from bench_latency import latency  # noqa: E402  (scripts/bench_latency.py)
from bench_serve import serve, settings as serve_settings  # noqa: E402  (scripts/bench_serve.py)

TASK = "bench-daily"
TASK_INC = "bench-inc"
SUMMARY_RE = re.compile(r"^(?P<task>\S+): (?P<rows>\d+) rows, (?P<objects>\d+) objects, "
                        r"(?P<bytes>\d+) bytes, (?P<partitions>\d+) partitions, "
                        r"(?P<dirty>\d+) dirty rows in")

TASK_YAML = """\
name: {task}
source: object_inventory
destination: {dest}
prefix: "dt=$yyyy-$MM-$dd"
partition_time: {{ from: column, column: last_modified, timezone: UTC }}
mode: full
schema: auto
parquet: {{ compression: zstd, target_file_size: 128MiB }}
concurrency: {concurrency}
schedule: "0 0 2 * * *"
deletes: ignore
dirty: {{ keep: true }}
catalog: {{ dialect: hive, table: bench_daily }}
"""


def sqlite_extension():
    """Path of the sqlite_scanner extension shipped by the duckdb-ext-sqlite package."""
    try:
        files = importlib.metadata.files("duckdb-ext-sqlite") or []
    except importlib.metadata.PackageNotFoundError:
        sys.exit("bench: the PyPI package duckdb-ext-sqlite is not installed (make bench installs it)")
    for f in files:
        if str(f).endswith(".duckdb_extension"):
            return Path(f.locate())
    sys.exit("bench: no .duckdb_extension file in duckdb-ext-sqlite")


def lakeport_command(lakeport, store):
    """The argv prefix and environment of `lakeport --store STORE` run in a work folder that
    has its own pipelines/ and schemas/ (LAKEPORT_STORE of this process left out)."""
    env = dict(os.environ)
    env.pop("LAKEPORT_STORE", None)
    return [str(lakeport), "--store", str(store), "--pipelines", "pipelines",
            "--schemas", "schemas"], env


def generate_inventory(rows, out, days=90):
    """`rows` object-inventory rows as NDJSON in `out`, in random key order
    (scripts/gen_inventory.py with the delivery case's arguments: 8 buckets, seed 42)."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_inventory.py"), "--rows",
                    str(rows), "--days", str(days), "--buckets", "8", "--seed", "42",
                    "--quiet", "--out", str(out)], check=True)


def in_throwaway_postgres(server, script):
    """Runs `script` (this process's command line) again inside a throwaway PostgreSQL cluster
    (scripts/with-postgres.sh, which removes it at the end), unless `server` names one or this
    process already runs inside such a cluster."""
    if server or os.environ.get("LAKEPORT_BENCH_PG_CLUSTER"):
        return
    env = dict(os.environ, LAKEPORT_BENCH_PG_CLUSTER="1")
    wrapper = str(REPO / "scripts" / "with-postgres.sh")
    os.execvpe(wrapper, [wrapper, sys.executable, str(Path(script).resolve()), *sys.argv[1:]],
               env)


def measured(cmd, usage_file):
    """cmd wrapped so that, when it ends, `usage_file` holds its peak RSS in KiB and its user
    and system CPU seconds: "RSS USER SYS". GNU time when the machine has it, else a fresh
    Python whose only child is cmd (its RUSAGE_CHILDREN figures are cmd's; a child started
    straight from this Python would report this Python's peak RSS too)."""
    time_bin = shutil.which("time", path="/usr/bin:/bin")
    cmd = [str(c) for c in cmd]
    if time_bin:
        return [time_bin, "-q", "-f", "%M %U %S", "-o", str(usage_file), *cmd]
    return [sys.executable, "-c",
            "import resource, subprocess, sys\n"
            "r = subprocess.run(sys.argv[2:]).returncode\n"
            "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "open(sys.argv[1], 'w').write(f'{u.ru_maxrss} {u.ru_utime} {u.ru_stime}')\n"
            "sys.exit(r)", str(usage_file), *cmd]


def timed(cmd, cwd, env=None):
    """Runs cmd; returns (seconds, peak RSS in KiB, stdout). Fails loudly on non-zero exit."""
    rss_file = cwd / ".rss"
    full = measured(cmd, rss_file)
    t0 = time.perf_counter()
    p = subprocess.run(full, cwd=cwd, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    rss = int(rss_file.read_text().split()[-3])
    rss_file.unlink()
    return secs, rss, p.stdout


def objects_per_partition(root):
    """Counter(partition dir -> number of Parquet objects) under root (not _dirty)."""
    c = Counter()
    for p in root.rglob("*.parquet"):
        if "_dirty" not in p.relative_to(root).parts:
            c[p.parent.relative_to(root).as_posix()] += 1
    return c


def count_rows(con, root):
    return con.execute(
        f"SELECT count(*) FROM read_parquet('{root}/**/*.parquet', hive_partitioning=false)"
    ).fetchone()[0]


def describe_lake(con, root):
    return con.execute(
        f"DESCRIBE SELECT * FROM read_parquet('{root}/**/*.parquet', hive_partitioning=false)"
    ).fetchall()


def describe(c):
    vals = list(c.values()) or [0]
    return f"{min(vals)}..{max(vals)} (mean {statistics.mean(vals):.2f}) over {len(c)} partitions"


def main():
    ap = argparse.ArgumentParser(description="lakeport benchmarks: delivery vs DuckDB, "
                                             "inventory ingest vs Python sqlite3")
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "lakeport"),
                    help="lakeport binary (default target/release/lakeport)")
    ap.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 1_000_000)),
                    help="rows to generate (env BENCH_ROWS, default 1000000)")
    ap.add_argument("--days", type=int, default=int(os.environ.get("BENCH_DAYS", 90)),
                    help="last_modified spread, i.e. daily partitions (env BENCH_DAYS, default 90)")
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", str(REPO / "bench-out")),
                    help="work folder, emptied first (env BENCH_DIR, default bench-out/)")
    ap.add_argument("--threads", type=int, default=0,
                    help="DuckDB threads (default: DuckDB's own choice)")
    ap.add_argument("--case", default=os.environ.get("BENCH_CASE", "all"),
                    choices=["all", "delivery", "ingest", "latency", "serve"],
                    help="which benchmark (env BENCH_CASE, default all: delivery, ingest, "
                         "latency, serve)")
    ap.add_argument("--ingest-rows", type=int,
                    default=int(os.environ.get("BENCH_INGEST_ROWS", 1_000_000)),
                    help="objects in the ingest report (env BENCH_INGEST_ROWS, default 1000000)")
    a = ap.parse_args()

    lakeport = Path(a.bin).resolve()
    if not lakeport.is_file():
        sys.exit(f"bench: no lakeport binary at {lakeport} (cargo build --release)")
    code = 0
    if a.case in ("all", "delivery"):
        code |= delivery(a, lakeport)
    if a.case in ("all", "ingest"):
        if a.case == "all":
            print()
        code |= ingest(a, lakeport)
    if a.case in ("all", "latency"):
        if a.case == "all":
            print()
        code |= latency(lakeport, Path(a.dir) / "latency",
                        int(os.environ.get("BENCH_LATENCY_SECONDS", 60)),
                        int(os.environ.get("BENCH_LATENCY_RATE", 1000)))
    if a.case in ("all", "serve"):
        if a.case == "all":
            print()
        code |= serve(lakeport, Path(a.dir) / "serve", **serve_settings())
    return code


def delivery(a, lakeport):
    """The delivery case: lakeport run vs DuckDB COPY over the same store."""
    work = Path(a.dir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "pipelines").mkdir(parents=True)
    (work / "schemas").mkdir()
    store = work / "lakeport.db"
    lake_lp = work / "lake-lakeport"
    lake_duck = work / "lake-duckdb"
    (work / "pipelines" / f"{TASK}.yaml").write_text(TASK_YAML.format(task=TASK, dest=lake_lp, concurrency=2))
    base, env = lakeport_command(lakeport, f"sqlite:{store}")

    print(f"bench: {a.rows:,} rows over {a.days} days in {work}", flush=True)
    inv = work / "inventory.ndjson"
    t0 = time.perf_counter()
    generate_inventory(a.rows, inv, a.days)
    gen_s = time.perf_counter() - t0
    print(f"generated {inv.stat().st_size / 1e6:,.0f} MB of NDJSON in {gen_s:.1f}s", flush=True)

    load_s, load_rss, out = timed([*base, "load", "object_inventory", str(inv)], work, env)
    print(out.strip(), flush=True)
    inv.unlink()  # not needed any more; frees disk for the two lakes

    # (a) lakeport
    lp_s, lp_rss, out = timed([*base, "run", TASK], work, env)
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(summary, flush=True)
    m = SUMMARY_RE.match(summary)
    status = json.loads(subprocess.run([*base, "status", TASK, "--json"], cwd=work, env=env,
                                       capture_output=True, text=True, check=True).stdout)

    # (a') lakeport, incremental: a task whose checkpoint is 0 delivers every row as a change
    # since then, in one run (the same table, partitions, codec and shards).
    lake_inc = work / "lake-incremental"
    (work / "pipelines" / f"{TASK_INC}.yaml").write_text(
        TASK_YAML.format(task=TASK_INC, dest=lake_inc, concurrency=2).replace("mode: full", "mode: incremental")
        .replace("table: bench_daily", "table: bench_incremental"))
    inc_s, inc_rss, out = timed([*base, "run", TASK_INC], work, env)
    inc_summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(inc_summary, flush=True)
    m_inc = SUMMARY_RE.match(inc_summary)

    # (b) DuckDB over the same store file
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    if a.threads:
        con.execute(f"SET threads = {a.threads}")
    con.execute(f"LOAD '{sqlite_extension()}'")
    info = con.execute(f"SELECT * FROM sqlite_scan('{store}', 'object_inventory') LIMIT 0")
    copy = duckdb_copy_sql([d[0] for d in info.description], store, lake_duck)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    con.execute(copy)
    duck_s = time.perf_counter() - t0
    duck_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # Verify: both lakes hold every row, with the same columns and types.
    n_lp = count_rows(con, lake_lp)
    n_duck = count_rows(con, lake_duck)
    n_inc = count_rows(con, lake_inc)
    schema_lp = describe_lake(con, lake_lp)
    schema_duck = describe_lake(con, lake_duck)
    live = con.execute(f"SELECT count(*) FROM sqlite_scan('{store}', 'object_inventory')"
                       ).fetchone()[0]
    con.close()
    lp_parts = objects_per_partition(lake_lp)
    duck_parts = objects_per_partition(lake_duck)
    lp_bytes = sum(p.stat().st_size for p in lake_lp.rglob("*.parquet"))
    duck_bytes = sum(p.stat().st_size for p in lake_duck.rglob("*.parquet"))
    conc = 2
    one_per_shard = all(v <= conc for v in lp_parts.values())

    lp_rate = a.rows / lp_s
    duck_rate = a.rows / duck_s
    ratio = lp_rate / duck_rate
    print()
    print(f"lakeport load : {a.rows / load_s:12,.0f} rows/s  ({load_s:.2f}s, peak RSS "
          f"{load_rss / 1024:.0f} MB)")
    print(f"lakeport run  : {lp_rate:12,.0f} rows/s  ({lp_s:.2f}s wall incl. start-up)")
    print(f"lakeport run, incremental (all {a.rows:,} rows changed): {a.rows / inc_s:12,.0f} "
          f"rows/s  ({inc_s:.2f}s, peak RSS {inc_rss / 1024:.0f} MB) beside full {lp_rate:,.0f}")
    print(f"DuckDB COPY   : {duck_rate:12,.0f} rows/s  ({duck_s:.2f}s)")
    print(f"ratio lakeport/DuckDB: {ratio:.2f}x   (target >= 1.5x)")
    print(f"lakeport peak RSS: {lp_rss / 1024:.0f} MB   (target <= 512 MB at 10M rows)")
    print(f"objects per partition: lakeport {describe(lp_parts)}; DuckDB {describe(duck_parts)}")
    print()
    rows = [
        ("", "lakeport", "DuckDB"),
        ("rows delivered", f"{n_lp:,}", f"{n_duck:,}"),
        ("seconds", f"{lp_s:.2f}", f"{duck_s:.2f}"),
        ("rows/s", f"{lp_rate:,.0f}", f"{duck_rate:,.0f}"),
        ("peak RSS MB", f"{lp_rss / 1024:.0f}",
         f"{duck_rss / 1024:.0f} (python+duckdb; {rss_before / 1024:.0f} before)"),
        ("partitions", f"{len(lp_parts)}", f"{len(duck_parts)}"),
        ("objects", f"{sum(lp_parts.values())}", f"{sum(duck_parts.values())}"),
        ("objects/partition", f"{max(lp_parts.values(), default=0)} max",
         f"{max(duck_parts.values(), default=0)} max"),
        ("lake MB", f"{lp_bytes / 1e6:,.1f}", f"{duck_bytes / 1e6:,.1f}"),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for r in rows:
        print(f"  {r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]}")
    print(f"  ratio lakeport/DuckDB rows/s: {ratio:.2f}x")

    problems = []
    if n_lp != a.rows:
        problems.append(f"lakeport lake has {n_lp} rows, expected {a.rows}")
    if n_inc != a.rows or not m_inc or int(m_inc["rows"]) != a.rows:
        problems.append(f"the incremental run delivered {n_inc} rows ({inc_summary!r}), "
                        f"expected {a.rows}")
    if n_duck != a.rows:
        problems.append(f"DuckDB lake has {n_duck} rows, expected {a.rows}")
    if [r[:2] for r in schema_lp] != [r[:2] for r in schema_duck]:
        problems.append(f"the lakes' columns differ: lakeport {schema_lp} vs DuckDB {schema_duck}")
    if live != a.rows:
        problems.append(f"store has {live} live rows, expected {a.rows}")
    if m and int(m["rows"]) != a.rows:
        problems.append(f"run summary says {m['rows']} rows")
    if not m:
        problems.append(f"no run summary line: {summary!r}")
    if not one_per_shard:
        problems.append("lakeport wrote more than one object per partition per shard")
    last = (status.get("tasks") or [{}])[0].get("last_run") or {}
    if last.get("status") != "succeeded":
        problems.append(f"status of the run: {last.get('status')!r}")
    for p in problems:
        print(f"bench: PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


def duckdb_copy_sql(names, store, lake):
    """DuckDB's side of the delivery: `COPY` of the store's live rows (`sqlite_scan` of the
    view object_inventory, the table's current state, whose columns are `names`) to `lake` as
    Parquet, daily partitions on last_modified, zstd, with the columns and types lakeport's
    `schema: auto` delivers."""
    inv_types = dict(_inventory_types())
    duck_type = {"string": "VARCHAR", "int64": "BIGINT", "double": "DOUBLE", "binary": "BLOB"}
    select = []
    for n in names:
        if n == "_deleted":
            continue
        ty = inv_types.get(n, "int64" if n == "_seq" else "timestamp_ms" if n == "_write_time"
                           else None)
        if ty == "timestamp_ms":
            select.append(f'CAST(epoch_ms(CAST("{n}" AS BIGINT)) AS TIMESTAMPTZ) AS "{n}"')
        elif ty == "bool":
            select.append(f'CAST(CAST("{n}" AS BIGINT) AS BOOLEAN) AS "{n}"')
        elif ty in duck_type:
            select.append(f'CAST("{n}" AS {duck_type[ty]}) AS "{n}"')
        else:
            sys.exit(f"bench: unexpected store column {n!r}")
    return (
        f"COPY (SELECT {', '.join(select)}, "
        f"strftime(epoch_ms(CAST(last_modified AS BIGINT)), '%Y-%m-%d') AS dt "
        f"FROM sqlite_scan('{store}', 'object_inventory')) "
        f"TO '{lake}' (FORMAT parquet, PARTITION_BY (dt), COMPRESSION zstd)"
    )


# -- ingest case ----------------------------------------------------------------------------

SQL_TYPES = {"string": "TEXT", "int64": "INTEGER", "bool": "INTEGER", "timestamp_ms": "INTEGER",
             "double": "REAL", "binary": "BLOB"}


def baseline_table_sql():
    """The data table lakeport's SQLite store creates for object_inventory (see
    create_table_sql in src/store/sqlite/schema.rs): same columns, types, key and index, the
    prefix computed from the key and its length stored (`_folder_len`)."""
    doc = yaml.safe_load((REPO / "schemas" / "object_inventory.yaml").read_text())
    pk = doc["primary_key"]
    cols = []
    for c in doc["columns"]:
        if c["name"] == "prefix":
            cols.append('"prefix" TEXT GENERATED ALWAYS AS (CASE WHEN "_deleted" THEN NULL '
                        'ELSE substr("key", 1, "_folder_len") END) VIRTUAL')
        else:
            cols.append(f'"{c["name"]}" {SQL_TYPES[c["type"]]}'
                        f'{" NOT NULL" if c["name"] in pk else ""}')
    cols += ['"_seq" INTEGER NOT NULL', '"_write_time" INTEGER NOT NULL',
             '"_deleted" INTEGER NOT NULL DEFAULT 0', '"_folder_len" INTEGER']
    key = ", ".join(f'"{k}"' for k in pk)
    return ([c["name"] for c in doc["columns"] if c["name"] != "prefix"],
            f'CREATE TABLE "data_object_inventory" ({", ".join(cols)}, PRIMARY KEY ({key})) '
            f'WITHOUT ROWID;\nCREATE INDEX "data_object_inventory_by_seq" ON '
            f'"data_object_inventory" ("_seq", "_deleted");')


def python_import(manifest, root, db):
    """The baseline: one report into a fresh SQLite file with sqlite3.executemany, one
    commit. Returns the number of rows inserted."""
    columns, ddl = baseline_table_sql()
    doc = json.loads(Path(manifest).read_text())
    fields = [f.strip() for f in doc["fileSchema"].split(",")]
    plan = []
    for f in fields:
        _, col, kind = reports.S3_BY_FIELD[f]
        plan.append((columns.index(col), kind, f == "Key"))
    key_i = columns.index("key")
    version_i = columns.index("version_id")
    ncols = len(columns)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA cache_size=-32768")
    con.executescript(ddl)
    now = int(time.time() * 1000)
    unquote_plus = urllib.parse.unquote_plus
    fromiso = __import__("datetime").datetime.fromisoformat

    def ms(text):
        return int(fromiso(text.replace("Z", "+00:00")).timestamp() * 1000)

    def rows():
        seq = 0
        for e in doc["files"]:
            data = (Path(root) / e["key"]).read_bytes()
            if len(data) != e["size"] or hashlib.md5(data).hexdigest() != e["MD5checksum"]:
                sys.exit(f"bench: baseline: {e['key']}: size or MD5 mismatch")
            text = gzip.decompress(data).decode("utf-8")
            for rec in csv.reader(io.StringIO(text)):
                row = [None] * ncols
                row[version_i] = ""
                for (i, kind, is_key), v in zip(plan, rec):
                    if is_key:
                        v = unquote_plus(v)
                    elif v == "":
                        v = None
                    elif kind == "int":
                        v = int(v)
                    elif kind == "bool":
                        v = 1 if v == "true" else 0
                    elif kind == "ts":
                        v = ms(v)
                    row[i] = v
                k = row[key_i]
                seq += 1
                yield (*row, seq, now, k.rfind("/") + 1)

    placeholders = ", ".join("?" * (ncols + 3))
    names = ", ".join(f'"{c}"' for c in columns)
    con.execute("BEGIN")
    con.executemany(f'INSERT INTO "data_object_inventory" ({names}, "_seq", "_write_time", '
                    f'"_folder_len") VALUES ({placeholders})', rows())
    con.execute("COMMIT")
    n = con.execute('SELECT count(*) FROM "data_object_inventory"').fetchone()[0]
    con.close()
    return n


def live_rows(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute('SELECT count(*) FROM "data_object_inventory" WHERE _deleted = 0'
                           ).fetchone()[0]
    finally:
        con.close()


def verdict(ok):
    return "PASS" if ok else "FAIL"


def ingest(a, lakeport):
    """The ingest case: lakeport inventory import vs a Python sqlite3 baseline, then an
    unchanged next-day re-import."""
    n = a.ingest_rows
    work = Path(a.dir).resolve() / "ingest"
    shutil.rmtree(work, ignore_errors=True)
    (work / "pipelines").mkdir(parents=True)
    (work / "schemas").mkdir()
    root = work / "reports"
    store = work / "lakeport.db"
    base_db = work / "baseline.db"
    base = [str(lakeport), "--store", f"sqlite:{store}", "--pipelines", "pipelines",
            "--schemas", "schemas"]
    env = dict(os.environ)
    env.pop("LAKEPORT_STORE", None)

    print(f"bench ingest: {n:,} objects, S3 CSV.gz in 10 files, in {work}", flush=True)
    t0 = time.perf_counter()
    rep = reports.write_s3_big(root, n=n, files=10)
    gen_s = time.perf_counter() - t0
    mb = sum(p.stat().st_size for p in rep.files) / 1e6
    print(f"generated {mb:,.0f} MB of CSV.gz in {gen_s:.1f}s", flush=True)
    # Each timed step starts with the disk quiet: what the previous step left to write back
    # (the generated files, the other contender's database) is flushed first, untimed.
    os.sync()

    # (a) lakeport, first import into a fresh store
    lp_s, lp_rss, out = timed([*base, "inventory", "import", rep.url, "--json"], work, env)
    rec1 = json.loads(out)
    print(f"lakeport import: {counts_text(rec1)} in {lp_s:.2f}s", flush=True)
    os.sync()

    # (b) Python baseline over the same files
    t0 = time.perf_counter()
    py_n = python_import(rep.manifest, root, base_db)
    py_s = time.perf_counter() - t0
    print(f"python baseline: {py_n:,} rows in {py_s:.2f}s", flush=True)
    os.sync()

    # (c) the unchanged next-day report
    nxt = reports.next_day_manifest(rep, root)
    re_s, re_rss, out = timed([*base, "inventory", "import", nxt.url, "--json"], work, env)
    rec2 = json.loads(out)
    print(f"lakeport re-import: {counts_text(rec2)} in {re_s:.2f}s", flush=True)

    lp_rate, py_rate, re_rate = n / lp_s, n / py_s, n / re_s
    ratio = lp_rate / py_rate
    written = rec2["inserted"] + rec2["updated"] + rec2["deleted"]
    speedup = lp_s / re_s
    rss_mb = max(lp_rss, re_rss) / 1024
    print()
    print(f"lakeport import   : {lp_rate:12,.0f} rows/s  ({lp_s:.2f}s wall incl. start-up)")
    print(f"python executemany: {py_rate:12,.0f} rows/s  ({py_s:.2f}s)")
    print(f"ratio lakeport/python: {ratio:.2f}x   (target >= 3x)  {verdict(ratio >= 3)}")
    print(f"lakeport peak RSS: {rss_mb:.0f} MB   (target <= 256 MB)  {verdict(rss_mb <= 256)}")
    print(f"unchanged re-import: {re_rate:12,.0f} rows/s  ({re_s:.2f}s), {written} rows written "
          f"(target 0)  {verdict(written == 0)}")
    print(f"re-import speed-up over the first import: {speedup:.2f}x   (target >= 2x)  "
          f"{verdict(speedup >= 2)}")

    problems = []
    if rec1["rows"] != n or rec1["inserted"] != n:
        problems.append(f"first import: {counts_text(rec1)}, expected {n} inserted")
    if rec2["rows"] != n or rec2["unchanged"] != n:
        problems.append(f"re-import: {counts_text(rec2)}, expected {n} unchanged")
    if py_n != n:
        problems.append(f"baseline stored {py_n} rows, expected {n}")
    live = live_rows(store)
    if live != n:
        problems.append(f"lakeport store has {live} live rows, expected {n}")
    for p in problems:
        print(f"bench: PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


def counts_text(rec):
    return (f"{rec.get('rows')} rows ({rec.get('inserted')} inserted, {rec.get('updated')} "
            f"updated, {rec.get('deleted')} deleted, {rec.get('unchanged')} unchanged)")


def _inventory_types():
    """(column, store type) of the built-in object_inventory table, from schemas/."""
    doc = yaml.safe_load((REPO / "schemas" / "object_inventory.yaml").read_text())
    return [(c["name"], c["type"]) for c in doc["columns"]]


if __name__ == "__main__":
    sys.exit(main())
