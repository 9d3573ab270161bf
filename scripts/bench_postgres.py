#!/usr/bin/env python3
"""Benchmark (BENCH_CASE=postgres): full-mode delivery from a PostgreSQL store, lakeport to an
S3-compatible server and to a local folder vs DuckDB's postgres_scan, in one run.

Set-up (untimed unless said):

  * a throwaway PostgreSQL cluster: the script runs itself under scripts/with-postgres.sh
    (initdb on a free 127.0.0.1 port, fsync off, stopped and removed at the end), and makes a
    database of its own in it (`--postgres URL` names another server's database instead,
    which must be empty);
  * s3s-fs (`make s3s-fs` builds it into the tools cache; env LAKEPORT_S3S_FS or --s3s-fs) on a
    free 127.0.0.1 port, serving a folder of the work dir, with one bucket;
  * BENCH_ROWS object-inventory rows (default 1,000,000) from scripts/gen_inventory.py with
    the delivery bench's arguments (scripts/bench.py: BENCH_DAYS days, default 90, 8 buckets,
    seed 42), loaded with `lakeport load object_inventory` into the PostgreSQL store: timed,
    its rows/s printed for information (no target);
  * then `VACUUM ANALYZE` of the data table, so that setting hint bits and the visibility map
    (what the first scan after a bulk load does) and an autovacuum of the fresh table fall in
    none of the timed runs.

Timed, BENCH_PG_ROUNDS rounds (default 3) in the order A B C A B C, each run a fresh task
or folder doing the same work (a first full run: nothing of an earlier run to delete):

  A  lakeport → S3: `lakeport run` of a full-mode task delivering `object_inventory` to
     s3://<bucket>/s3-<round> on s3s-fs (`storage:` endpoint, region, path_style, allow_http,
     credentials by variable name). Task as in scripts/bench.py: daily partitions
     `dt=$yyyy-$MM-$dd` on last_modified (UTC), zstd, 128 MiB objects, schema auto,
     concurrency BENCH_PG_CONCURRENCY (default 2). Wall time of the process, start-up
     included; its peak RSS.
  B  lakeport → local folder: the same task with a local destination.
  C  DuckDB 1.4.4: `postgres_scanner` from the PyPI package duckdb-ext-postgres (loaded by path,
     allow_unsigned_extensions), the store ATTACHed read-only, `threads` = the concurrency;
     `COPY (SELECT <lakeport's columns> , strftime(last_modified in UTC) AS dt FROM
     pg.public.data_object_inventory WHERE NOT _deleted) TO '<folder>' (FORMAT parquet,
     PARTITION_BY (dt), COMPRESSION zstd)`. Only the COPY statement is timed (a fresh
     connection per run; loading the extension and ATTACH are not).

Each contender's figure is its best (fastest) of the rounds; every run's time is printed too.
Before any figure, every output is verified: each lake holds BENCH_ROWS rows (counted by DuckDB
reading the Parquet back: the local folders, and the objects s3s-fs keeps as plain files under
its root, which are also listed through the S3 API with pyarrow's own client and must match
in names and sizes); per partition, every lake holds the same number of rows as the store's
live rows of that day, and the same fingerprint (sum of a hash of key, version, _seq, size
and last_modified); the columns and their types are the same in every lake; lakeport's run
summaries and `status --json` report BENCH_ROWS rows and a succeeded run, and it wrote at most
one object per partition per shard.

Prints rows/s of each contender, the ratios lakeport(S3)/DuckDB and lakeport(local)/DuckDB
with PASS/FAIL against the 1.5x target, lakeport to S3 vs to a local folder, peak RSS, lake
MB and objects, and where the CPU went in each best run: the contender's own user + system
seconds (/usr/bin/time for lakeport, getrusage around the COPY for DuckDB), the PostgreSQL
server's (postmaster and its reaped backends, /proc) and s3s-fs's; on a 2-core machine
that shows which side a run waits for. Exit status 1 when a verification fails (a FAIL
against the target alone does not change it, as in scripts/bench.py).

    scripts/bench_postgres.py --bin target/release/lakeport             # BENCH_ROWS=1000000
    BENCH_CASE=postgres make bench
    BENCH_ROWS=100000 BENCH_PG_ROUNDS=2 .venv/bin/python scripts/bench_postgres.py
"""

import argparse
import ctypes
import importlib.metadata
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench import (SUMMARY_RE, TASK_YAML, describe, generate_inventory,  # noqa: E402
                   in_throwaway_postgres, objects_per_partition)
from s3s_fs import REGION, S3sFs, StartError  # noqa: E402

TARGET = 1.5
BUCKET = "lakeport-bench"
ACCESS_KEY = "lakeport-bench-key"
SECRET_KEY = "lakeport-bench-secret"
KEY_VAR, SECRET_VAR = "LAKEPORT_BENCH_S3_KEY", "LAKEPORT_BENCH_S3_SECRET"
TABLE = "object_inventory"
S3S_FS_VERSION = "0.14.1"  # Makefile: S3S_FS_VERSION

# The task is the delivery benchmark's (scripts/bench.py), with the concurrency asked for.

STORAGE_YAML = """\
storage: {{ endpoint: "{endpoint}", region: {region}, path_style: true, allow_http: true,
           access_key_id_env: {key_var}, secret_access_key_env: {secret_var} }}
"""


def pg_bin(name):
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                   key=lambda p: [int(x) for x in p.parts[-3].split(".") if x.isdigit()])
    if not found:
        sys.exit(f"bench postgres: PostgreSQL's {name} is not installed (make postgresql)")
    return str(found[-1])


def psql(url, sql):
    p = subprocess.run([pg_bin("psql"), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c",
                        sql], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench postgres: psql {sql!r} failed:\n{p.stderr}")
    return p.stdout.strip()


def die_with_parent():
    """preexec_fn: the child gets SIGTERM when this process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def proc_cpu(pid, children=False):
    """CPU seconds (user + system) of a running process, and with `children` those of the
    children it has reaped (a postmaster reaps its backends), from /proc."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def run_timed(cmd, cwd, env):
    """Runs cmd under /usr/bin/time: (wall s, user + system CPU s, peak RSS KiB, stdout); a
    non-zero exit ends the benchmark."""
    stats = cwd / ".time"
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-q", "-f", "%U %S %M", "-o", str(stats), *cmd],
                       cwd=cwd, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench postgres: {' '.join(map(str, cmd))} failed ({p.returncode}):\n"
                 f"{p.stdout}{p.stderr[-5000:]}")
    user, system, rss = stats.read_text().split()[-3:]
    stats.unlink()
    return secs, float(user) + float(system), int(rss), p.stdout


class Others:
    """CPU seconds of the other processes a timed run makes work: the PostgreSQL server
    (postmaster and its reaped backends; None when the server is not on this machine) and
    s3s-fs."""

    def __init__(self, url, s3):
        self.s3 = s3
        self.postmaster = None
        try:
            pidfile = Path(psql(url, "SHOW data_directory")) / "postmaster.pid"
            self.postmaster = int(pidfile.read_text().split()[0])
            proc_cpu(self.postmaster, children=True)
        except (OSError, ValueError, IndexError):
            self.postmaster = None

    def now(self):
        pg = proc_cpu(self.postmaster, children=True) if self.postmaster else None
        return pg, proc_cpu(self.s3.process.pid)

    def since(self, before):
        time.sleep(0.3)  # the backends of the run's connections exit and are reaped
        pg, s3 = self.now()
        return (None if pg is None else pg - before[0]), s3 - before[1]


class S3Server(S3sFs):
    """The benchmark's s3s-fs (`scripts/s3s_fs.py`) on a free port, ended with this process."""

    def __init__(self, binary, root, log):
        super().__init__(binary, root, None, log, ACCESS_KEY, SECRET_KEY,
                         preexec_fn=die_with_parent)

    def start(self):
        try:
            super().start()
        except StartError as e:
            sys.exit(f"bench postgres: {e}")

    def listing(self, prefix):
        """{key: size} of the Parquet objects under prefix, listed through the S3 API."""
        from pyarrow import fs as pafs
        infos = self.fs(request_timeout=60).get_file_info(
            pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True))
        return {i.path.split("/", 1)[1]: i.size for i in infos
                if i.type == pafs.FileType.File and i.path.endswith(".parquet")}


def postgres_extension():
    """Path of the postgres_scanner extension shipped by duckdb-ext-postgres."""
    try:
        files = importlib.metadata.files("duckdb-ext-postgres") or []
    except importlib.metadata.PackageNotFoundError:
        sys.exit("bench postgres: the PyPI package duckdb-ext-postgres is not installed "
                 "(make bench installs tests/requirements.txt)")
    for f in files:
        if str(f).endswith(".duckdb_extension"):
            return Path(f.locate())
    sys.exit("bench postgres: no .duckdb_extension file in duckdb-ext-postgres")


def duck(threads=None, pg_url=None):
    """A DuckDB connection in UTC with the postgres extension; the store ATTACHed as `pg`."""
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if pg_url:
        con.execute(f"LOAD '{postgres_extension()}'")
        con.execute(f"ATTACH '{pg_url}' AS pg (TYPE postgres, READ_ONLY)")
    return con


def duck_copy_sql(con, dest):
    """The COPY of DuckDB's run: lakeport's `schema: auto` columns (every declared column, then
    _seq and _write_time; timestamps as TIMESTAMPTZ) and the day of last_modified in UTC."""
    cols = [r[0] for r in con.execute(
        f"DESCRIBE SELECT * FROM pg.public.data_{TABLE}").fetchall() if r[0] != "_deleted"]
    select = ", ".join(f'"{c}"' for c in cols)
    return (f"COPY (SELECT {select}, strftime(last_modified, '%Y-%m-%d') AS dt "
            f"FROM pg.public.data_{TABLE} WHERE NOT _deleted) "
            f"TO '{dest}' (FORMAT parquet, PARTITION_BY (dt), COMPRESSION zstd)")


FINGERPRINT = ("count(*) AS n, sum(hash(bucket, \"key\", version_id, _seq, size, "
               "last_modified)::HUGEINT) AS h")


def lake_by_partition(con, root):
    """{dt: (rows, fingerprint)} of every Parquet file under root (not _dirty/)."""
    files = [str(p) for p in Path(root).rglob("*.parquet")
             if "_dirty" not in p.relative_to(root).parts]
    if not files:
        return {}
    got = con.execute(
        f"SELECT regexp_extract(filename, 'dt=([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})', 1) AS dt, "
        f"{FINGERPRINT} FROM read_parquet(?, filename = true, hive_partitioning = false) "
        f"GROUP BY dt", [files]).fetchall()
    return {dt: (n, int(h)) for dt, n, h in got}


def lake_columns(con, root):
    files = [str(p) for p in Path(root).rglob("*.parquet")]
    return [r[:2] for r in con.execute(
        "DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)", [files]).fetchall()]


def store_by_partition(con):
    got = con.execute(
        f"SELECT strftime(last_modified, '%Y-%m-%d') AS dt, {FINGERPRINT} "
        f"FROM pg.public.data_{TABLE} WHERE NOT _deleted GROUP BY dt").fetchall()
    return {dt: (n, int(h)) for dt, n, h in got}


def lake_bytes(root):
    return sum(p.stat().st_size for p in Path(root).rglob("*.parquet"))


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main():
    ap = argparse.ArgumentParser(description="lakeport from a PostgreSQL store to S3 and to a "
                                             "local folder vs DuckDB's postgres_scan")
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "lakeport"),
                    help="lakeport binary (default target/release/lakeport)")
    ap.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 1_000_000)),
                    help="rows to generate (env BENCH_ROWS, default 1000000)")
    ap.add_argument("--days", type=int, default=int(os.environ.get("BENCH_DAYS", 90)),
                    help="last_modified spread, i.e. daily partitions (env BENCH_DAYS, default 90)")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_PG_ROUNDS", 3)),
                    help="timed rounds, each A B C (env BENCH_PG_ROUNDS, default 3)")
    ap.add_argument("--concurrency", type=int,
                    default=int(os.environ.get("BENCH_PG_CONCURRENCY", 2)),
                    help="lakeport's shards and DuckDB's threads (env BENCH_PG_CONCURRENCY, "
                         "default 2)")
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", str(REPO / "bench-out")),
                    help="parent of the work folder postgres/, which is emptied first (env "
                         "BENCH_DIR, default bench-out/)")
    ap.add_argument("--s3s-fs", default=os.environ.get("LAKEPORT_S3S_FS"),
                    help="the s3s-fs binary (env LAKEPORT_S3S_FS; default: the tools cache "
                         "of make s3s-fs)")
    ap.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES"),
                    help="an empty database to use (env BENCH_POSTGRES); default: a database "
                         "of its own in a throwaway cluster (scripts/with-postgres.sh)")
    a = ap.parse_args()

    in_throwaway_postgres(a.postgres, __file__)

    lakeport = Path(a.bin).resolve()
    if not lakeport.is_file():
        sys.exit(f"bench postgres: no lakeport binary at {lakeport} (cargo build --release)")
    s3s_fs = Path(a.s3s_fs) if a.s3s_fs else tools_dir() / f"s3s-fs-{S3S_FS_VERSION}/bin/s3s-fs"
    if not os.access(s3s_fs, os.X_OK):
        sys.exit(f"bench postgres: no s3s-fs at {s3s_fs} (make s3s-fs builds it)")

    # SIGTERM/SIGINT unwind through the finally blocks (s3s-fs stopped, database dropped).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    created = None
    if a.postgres:
        url = a.postgres
    else:
        server = os.environ["LAKEPORT_TEST_POSTGRES"]
        created = "lakeport_bench_" + uuid.uuid4().hex[:12]
        psql(server, f"CREATE DATABASE {created}")
        url = server.rsplit("/", 1)[0] + "/" + created
    try:
        return bench(a, lakeport, s3s_fs, url)
    finally:
        if created:
            psql(server, f"DROP DATABASE IF EXISTS {created} WITH (FORCE)")


def tools_dir():
    """The Makefile's TOOLS: $LAKEPORT_TOOLS_DIR, else
    ${XDG_CACHE_HOME:-~/.cache}/lakeport-tools."""
    if os.environ.get("LAKEPORT_TOOLS_DIR"):
        return Path(os.environ["LAKEPORT_TOOLS_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lakeport-tools"


def bench(a, lakeport, s3s_fs, url):
    work = (Path(a.dir) / "postgres").resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "pipelines").mkdir(parents=True)
    (work / "schemas").mkdir()
    s3root = work / "s3"
    local = work / "lake-local"
    ducklake = work / "lake-duckdb"
    n = a.rows
    base = [str(lakeport), "--store", url, "--pipelines", "pipelines", "--schemas", "schemas"]
    env = dict(os.environ, **{KEY_VAR: ACCESS_KEY, SECRET_VAR: SECRET_KEY})
    env.pop("LAKEPORT_STORE", None)

    s3 = S3Server(s3s_fs, s3root, work / "s3s-fs.log")
    s3.start()
    try:
        s3.fs().create_dir(BUCKET)
        pg_version = psql(url, "SHOW server_version")
        print(f"bench postgres: {n:,} rows over {a.days} days in {work}; PostgreSQL "
              f"{pg_version} at {url.rsplit('@', 1)[-1]}; s3s-fs {S3S_FS_VERSION} at "
              f"{s3.endpoint}; {a.rounds} rounds; concurrency {a.concurrency}; "
              f"{os.cpu_count()} CPUs", flush=True)

        inv = work / "inventory.ndjson"
        t0 = time.perf_counter()
        generate_inventory(n, inv, a.days)
        print(f"generated {inv.stat().st_size / 1e6:,.0f} MB of NDJSON in "
              f"{time.perf_counter() - t0:.1f}s", flush=True)
        os.sync()
        load_s, _, load_rss, out = run_timed([*base, "load", TABLE, str(inv)], work, env)
        print(f"{out.strip()}  [lakeport load into PostgreSQL: {n / load_s:,.0f} rows/s, "
              f"{load_s:.2f}s, peak RSS {load_rss / 1024:.0f} MB]", flush=True)
        inv.unlink()
        t0 = time.perf_counter()
        psql(url, f"VACUUM ANALYZE data_{TABLE}")
        psql(url, "CHECKPOINT")
        table_mb = int(psql(url, f"SELECT pg_total_relation_size('data_{TABLE}')")) / 1e6
        print(f"VACUUM ANALYZE + CHECKPOINT in {time.perf_counter() - t0:.1f}s (untimed); "
              f"data_{TABLE} is {table_mb:,.0f} MB with its indexes", flush=True)

        runs = {"s3": [], "local": [], "duckdb": []}
        summaries = {}
        tasks = {}
        others = Others(url, s3)

        def lakeport_run(who, r, task):
            tasks[(who, r)] = task
            os.sync()
            before = others.now()
            secs, cpu, rss, out = run_timed([*base, "run", task], work, env)
            pg, s3cpu = others.since(before)
            runs[who].append({"secs": secs, "rss": rss, "cpu": cpu, "pg": pg, "s3": s3cpu,
                              "task": task})
            summaries[task] = out.strip().splitlines()[-1] if out.strip() else ""

        for r in range(1, a.rounds + 1):
            # A: lakeport -> S3
            task = f"pg-s3-{r}"
            (work / "pipelines" / f"{task}.yaml").write_text(
                TASK_YAML.format(task=task, dest=f"s3://{BUCKET}/s3-{r}",
                                 concurrency=a.concurrency)
                + STORAGE_YAML.format(endpoint=s3.endpoint, region=REGION, key_var=KEY_VAR,
                                      secret_var=SECRET_VAR))
            lakeport_run("s3", r, task)
            # B: lakeport -> local folder
            task = f"pg-local-{r}"
            (work / "pipelines" / f"{task}.yaml").write_text(
                TASK_YAML.format(task=task, dest=local / str(r), concurrency=a.concurrency))
            lakeport_run("local", r, task)
            # C: DuckDB postgres_scan -> COPY to a local folder
            ducklake.mkdir(exist_ok=True)  # COPY creates the folder, not its parents
            con = duck(a.concurrency, url)
            sql = duck_copy_sql(con, ducklake / str(r))
            os.sync()
            before = others.now()
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            con.execute(sql)
            secs = time.perf_counter() - t0
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            con.close()
            pg, s3cpu = others.since(before)
            runs["duckdb"].append({
                "secs": secs, "rss": None, "pg": pg, "s3": s3cpu,
                "cpu": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime})
            print(f"round {r}: lakeport -> S3 {runs['s3'][-1]['secs']:.2f}s, lakeport -> local "
                  f"{runs['local'][-1]['secs']:.2f}s, DuckDB {secs:.2f}s", flush=True)

        run_secs = {}
        problems = verify(a, base, work, env, s3, url, tasks, summaries, local, ducklake,
                          run_secs)
    finally:
        s3.stop()
    report(a, runs, run_secs, work, local, ducklake)
    for p in problems:
        print(f"bench postgres: PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


def verify(a, base, work, env, s3, url, tasks, summaries, local, ducklake, run_secs):
    """Every output against the store: rows and fingerprints per partition, columns, run
    records (their durations go into run_secs); the S3 objects also through the S3 API.
    Returns the problems found."""
    problems = []
    n = a.rows
    con = duck(a.concurrency, url)
    store = store_by_partition(con)
    live = sum(v[0] for v in store.values())
    if live != n:
        problems.append(f"the store holds {live} live rows, expected {n}")
    lakes = {}
    for r in range(1, a.rounds + 1):
        lakes[("s3", r)] = s3.root / BUCKET / f"s3-{r}"
        lakes[("local", r)] = local / str(r)
        lakes[("duckdb", r)] = ducklake / str(r)
    ref_cols = None
    for (who, r), root in lakes.items():
        name = f"{who} round {r}"
        parts = lake_by_partition(con, root)
        total = sum(v[0] for v in parts.values())
        if total != n:
            problems.append(f"{name}: {total} rows in the lake, expected {n}")
        if parts != store:
            diff = sorted(k for k in set(parts) | set(store) if parts.get(k) != store.get(k))
            problems.append(f"{name}: rows or fingerprint differ from the store in "
                            f"{len(diff)} partitions, e.g. {diff[:3]}")
        cols = lake_columns(con, root)
        if ref_cols is None:
            ref_cols = cols
        elif cols != ref_cols:
            problems.append(f"{name}: columns {cols} differ from {ref_cols}")
        if who in ("s3", "local"):
            task = tasks[(who, r)]
            m = SUMMARY_RE.match(summaries[task])
            if not m or int(m["rows"]) != n:
                problems.append(f"{task}: run summary {summaries[task]!r}, expected {n} rows")
            p = subprocess.run([*base, "status", task, "--json"], cwd=work, env=env,
                               capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"bench postgres: lakeport status {task} failed ({p.returncode}):\n"
                         f"{p.stderr[-3000:]}")
            status = json.loads(p.stdout)
            last = (status.get("tasks") or [{}])[0].get("last_run") or {}
            if last.get("ended_ms") and last.get("started_ms"):
                run_secs[task] = (last["ended_ms"] - last["started_ms"]) / 1000
            if last.get("status") != "succeeded" or last.get("rows") != n:
                problems.append(f"{task}: last run {last.get('status')!r} with "
                                f"{last.get('rows')!r} rows")
            per = objects_per_partition(root)
            if any(v > a.concurrency for v in per.values()):
                problems.append(f"{task}: more than one object per partition per shard")
        if who == "s3":
            files = {p.relative_to(s3.root / BUCKET).as_posix(): p.stat().st_size
                     for p in root.rglob("*.parquet")}
            listed = s3.listing(f"s3-{r}")
            if listed != files:
                problems.append(f"{name}: the S3 listing ({len(listed)} objects) differs from "
                                f"the server's files ({len(files)})")
    con.close()
    print(f"verified: {len(lakes)} lakes x {n:,} rows; per partition ({len(store)} days) "
          f"rows and fingerprints equal to the store's live rows; same columns; S3 objects "
          f"listed through the S3 API; run records succeeded"
          + ("" if not problems else f" -- {len(problems)} PROBLEMS"), flush=True)
    return problems


def report(a, runs, run_secs, work, local, ducklake):
    n = a.rows
    best = {k: min(v, key=lambda x: x["secs"]) for k, v in runs.items()}
    rate = {k: n / v["secs"] for k, v in best.items()}
    s3_lake = work / "s3" / BUCKET / "s3-1"
    mb = {"s3": lake_bytes(s3_lake) / 1e6, "local": lake_bytes(local / "1") / 1e6,
          "duckdb": lake_bytes(ducklake / "1") / 1e6}
    objs = {"s3": objects_per_partition(s3_lake), "local": objects_per_partition(local / "1"),
            "duckdb": objects_per_partition(ducklake / "1")}
    # A run's own time, start to end of its run record (start-up and store opening excluded).
    inner = {k: ", ".join(f"{run_secs[x['task']]:.2f}" if x["task"] in run_secs else "?"
                          for x in runs[k]) for k in ("s3", "local")}
    label = {"s3": "lakeport -> S3 (s3s-fs)", "local": "lakeport -> local folder",
             "duckdb": "DuckDB postgres_scan -> COPY local"}
    w = max(len(v) for v in label.values())
    print()
    print(f"{n:,} rows, full mode, {a.concurrency} shards / DuckDB threads; best (fastest) of "
          f"{a.rounds} runs each, run in the order A B C per round:")
    for k in ("s3", "local", "duckdb"):
        b = best[k]
        rss = f", peak RSS {b['rss'] / 1024:.0f} MB" if b["rss"] else ""
        each = ", ".join(f"{x['secs']:.2f}" for x in runs[k])
        med = statistics.median(x["secs"] for x in runs[k])
        print(f"  {label[k]:<{w}} : {rate[k]:12,.0f} rows/s  ({b['secs']:.2f}s{rss}; "
              f"runs {each} s; median {med:.2f}s)")
        if k in inner:
            print(f"  {'':<{w}}   run records, started to ended (start-up excluded): "
                  f"{inner[k]} s")
    r_s3 = rate["s3"] / rate["duckdb"]
    r_local = rate["local"] / rate["duckdb"]
    print(f"ratio lakeport(S3)/DuckDB   : {r_s3:.2f}x   (target >= {TARGET}x)  "
          f"{verdict(r_s3 >= TARGET)}")
    print(f"ratio lakeport(local)/DuckDB: {r_local:.2f}x   (target >= {TARGET}x)  "
          f"{verdict(r_local >= TARGET)}")
    per_round = ", ".join(
        f"{d['secs'] / s3['secs']:.2f}x/{d['secs'] / lo['secs']:.2f}x"
        for s3, lo, d in zip(runs["s3"], runs["local"], runs["duckdb"]))
    print(f"  the same ratios within each round (S3/local): {per_round}")
    print(f"lakeport S3 vs local: {rate['s3'] / rate['local']:.2f}x the local rate "
          f"({best['s3']['secs']:.2f}s vs {best['local']['secs']:.2f}s, "
          f"{best['s3']['secs'] - best['local']['secs']:+.2f}s)")
    print("CPU seconds of the best runs (user + system; 2 cores = 2 s per wall second):")
    for k in ("s3", "local", "duckdb"):
        b = best[k]
        who = "lakeport" if k != "duckdb" else "DuckDB (in this Python process)"
        pg = "?" if b["pg"] is None else f"{b['pg']:.2f}"
        print(f"  {label[k]:<{w}} : {who} {b['cpu']:.2f}, PostgreSQL server {pg}, "
              f"s3s-fs {b['s3']:.2f}; wall {b['secs']:.2f}")
    print(f"lake MB (round 1): lakeport S3 {mb['s3']:,.1f}, local {mb['local']:,.1f}; "
          f"DuckDB {mb['duckdb']:,.1f}")
    print(f"objects per partition: lakeport S3 {describe(objs['s3'])}; local "
          f"{describe(objs['local'])}; DuckDB {describe(objs['duckdb'])}")


if __name__ == "__main__":
    sys.exit(main())
