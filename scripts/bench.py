#!/usr/bin/env python3
"""Benchmark: lakeport vs DuckDB delivering the same SQLite store to Parquet.

One run: generate N object-inventory rows (scripts/gen_inventory.py), load them into a fresh
store with `lakeport load`, then deliver the store twice, timed:

  (a) lakeport: `lakeport run` of a full-mode task, daily partitions `dt=$yyyy-$MM-$dd` on
      last_modified (UTC), zstd, concurrency 2, schema auto; peak RSS of that process.
  (b) DuckDB: the sqlite extension from the PyPI package duckdb-ext-sqlite scans the same
      store file (`sqlite_scan(..., 'data_object_inventory') WHERE _deleted = 0`) and
      `COPY ... TO (FORMAT parquet, PARTITION_BY (dt), COMPRESSION zstd)` with the same columns
      and types (timestamps as TIMESTAMPTZ, booleans as BOOLEAN, _seq and _write_time too).

Both outputs are counted back with DuckDB (each must hold N rows). Prints rows/s of each, the
ratio lakeport/DuckDB, lakeport's peak RSS, objects per partition of each, and a table.

    .venv/bin/python scripts/bench.py --bin target/release/lakeport      # BENCH_ROWS=1000000
"""

import argparse
import importlib.metadata
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
TASK = "bench-daily"
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
concurrency: 2
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


def timed(cmd, cwd, env=None):
    """Runs cmd; returns (seconds, peak RSS in KiB, stdout). Fails loudly on non-zero exit."""
    time_bin = shutil.which("time", path="/usr/bin:/bin")
    rss_file = cwd / ".rss"
    if time_bin:
        full = [time_bin, "-q", "-f", "%M", "-o", str(rss_file), *cmd]
    else:
        # A fresh Python whose only child is cmd: its RUSAGE_CHILDREN max RSS is cmd's.
        full = [sys.executable, "-c",
                "import resource, subprocess, sys\n"
                "r = subprocess.run(sys.argv[2:]).returncode\n"
                "open(sys.argv[1], 'w').write(str(resource.getrusage("
                "resource.RUSAGE_CHILDREN).ru_maxrss))\n"
                "sys.exit(r)", str(rss_file), *cmd]
    t0 = time.perf_counter()
    p = subprocess.run(full, cwd=cwd, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    rss = int(rss_file.read_text().split()[-1])
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
    ap = argparse.ArgumentParser(description="lakeport vs DuckDB delivery benchmark")
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
    a = ap.parse_args()

    lakeport = Path(a.bin).resolve()
    if not lakeport.is_file():
        sys.exit(f"bench: no lakeport binary at {lakeport} (cargo build --release)")
    work = Path(a.dir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "pipelines").mkdir(parents=True)
    (work / "schemas").mkdir()
    store = work / "lakeport.db"
    lake_lp = work / "lake-lakeport"
    lake_duck = work / "lake-duckdb"
    (work / "pipelines" / f"{TASK}.yaml").write_text(TASK_YAML.format(task=TASK, dest=lake_lp))
    base = [str(lakeport), "--store", f"sqlite:{store}", "--pipelines", "pipelines",
            "--schemas", "schemas"]
    env = dict(os.environ)
    env.pop("LAKEPORT_STORE", None)

    print(f"bench: {a.rows:,} rows over {a.days} days in {work}", flush=True)
    inv = work / "inventory.ndjson"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_inventory.py"), "--rows",
                    str(a.rows), "--days", str(a.days), "--buckets", "8", "--seed", "42",
                    "--quiet", "--out", str(inv)], check=True)
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

    # (b) DuckDB over the same store file
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    if a.threads:
        con.execute(f"SET threads = {a.threads}")
    con.execute(f"LOAD '{sqlite_extension()}'")
    info = con.execute(f"SELECT * FROM sqlite_scan('{store}', 'data_object_inventory') LIMIT 0")
    names = [d[0] for d in info.description]
    inv_types = dict(_inventory_types())
    # The same columns and types lakeport's `schema: auto` delivers.
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
    copy = (
        f"COPY (SELECT {', '.join(select)}, "
        f"strftime(epoch_ms(CAST(last_modified AS BIGINT)), '%Y-%m-%d') AS dt "
        f"FROM sqlite_scan('{store}', 'data_object_inventory') WHERE _deleted = 0) "
        f"TO '{lake_duck}' (FORMAT parquet, PARTITION_BY (dt), COMPRESSION zstd)"
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    con.execute(copy)
    duck_s = time.perf_counter() - t0
    duck_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # Verify: both lakes hold every row, with the same columns and types.
    n_lp = count_rows(con, lake_lp)
    n_duck = count_rows(con, lake_duck)
    schema_lp = describe_lake(con, lake_lp)
    schema_duck = describe_lake(con, lake_duck)
    live = con.execute(f"SELECT count(*) FROM sqlite_scan('{store}', 'data_object_inventory') "
                       f"WHERE _deleted = 0").fetchone()[0]
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


def _inventory_types():
    """(column, store type) of the built-in object_inventory table, from schemas/."""
    doc = yaml.safe_load((REPO / "schemas" / "object_inventory.yaml").read_text())
    return [(c["name"], c["type"]) for c in doc["columns"]]


if __name__ == "__main__":
    sys.exit(main())
