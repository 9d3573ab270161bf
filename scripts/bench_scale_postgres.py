#!/usr/bin/env python3
"""Scale benchmark on PostgreSQL (issue 20, point 3; BENCH_CASE=scale-postgres): an S3
Inventory report imported into a PostgreSQL store, beside the server's own limit, a plain
`COPY … FROM STDIN` of the same rows into a table with the same primary key, in one run.

For each size in BENCH_SCALE_ROWS (default 10000000; a comma list runs each in turn):

  0. Generate the report (untimed): scripts/bench_scale.py's generator (S3 CSV.gz, the nine
     default fields of `bench_scale.FIELDS`, form-encoded keys, rows in random key order, about
     1,000,000 objects per data file, at least 10 files).
  1. `lakeport inventory import <manifest> --json` into a fresh database: wall time of the
     process (start-up included), peak RSS, CPU; counts checked (every row inserted) and the
     live rows counted back with psql.
  2. The unchanged next-day report (same data files, new manifest): must write nothing
     (every row unchanged, the store's `_seq` unmoved). Timed, for information.
  3. The server's limit: the data files decompressed into one CSV file (untimed), then
     `psql -c "\\copy … FROM '<file>' (FORMAT csv)"` (psql sends it as `COPY … FROM STDIN`)
     into a fresh table of the same typed columns and the same primary key
     (bucket, key, version_id; text `COLLATE "C"`, version_id '' as in lakeport's table).
     Wall time of psql; the rows counted back.

Each timed step starts after a CHECKPOINT (and an `os.sync()`), so that none pays for the dirty
pages of the one before. Prints rows/s of each, and the ratio lakeport / COPY against the
target (at least 0.5x); a missed target does not fail the run, a wrong count does (exit 1).

With BENCH_LOAD_ROWS (default 0: skipped), also `lakeport load object_inventory` of that many
NDJSON rows from scripts/gen_inventory.py (the delivery case's arguments: 90 days, 8 buckets,
seed 42) into a fresh database, timed; with --before BIN, the same load (and import) with
another lakeport binary too (e.g. a build of the commit before the bulk path).

The PostgreSQL cluster is a throwaway one (the script runs itself under
scripts/with-postgres.sh: fsync, synchronous_commit and full_page_writes off, as for every
test and benchmark here), or --postgres URL names a server whose databases it may create.

    scripts/bench_scale_postgres.py --bin target/release/lakeport --rows 1000000
    BENCH_SCALE_ROWS=1000000,10000000 BENCH_CASE=scale-postgres make bench
"""

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
import bench_scale  # noqa: E402  (the report generator and run_step)
from bench import (counts_text, generate_inventory, in_throwaway_postgres,  # noqa: E402
                   lakeport_command, reports)

TARGET = 0.5
# The baseline table: the report's nine fields (bench_scale.FIELDS), typed as lakeport types
# them, and lakeport's primary key (version_id '' when the report has none).
BASELINE_COLUMNS = [
    ("bucket", 'text COLLATE "C" NOT NULL'),
    ("key", 'text COLLATE "C" NOT NULL'),
    ("size", "bigint"),
    ("last_modified", "timestamptz"),
    ("etag", "text"),
    ("storage_class", "text"),
    ("is_multipart_uploaded", "boolean"),
    ("replication_status", "text"),
    ("encryption_status", "text"),
]


def pg_bin(name):
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                   key=lambda p: [int(x) for x in p.parts[-3].split(".") if x.isdigit()])
    return str(found[-1]) if found else (shutil.which(name) or name)


def psql(url, sql):
    p = subprocess.run([pg_bin("psql"), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c",
                        sql], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench scale-postgres: psql {sql[:200]!r} failed:\n{p.stderr}")
    return p.stdout.strip()


class Databases:
    """Fresh databases on one server, dropped at the end."""

    def __init__(self, server):
        self.server, self.made = server, []

    def fresh(self, what):
        name = f"lakeport_{what}_{uuid.uuid4().hex[:8]}"
        psql(self.server, f"CREATE DATABASE {name}")
        self.made.append(name)
        return self.server.rsplit("/", 1)[0] + "/" + name

    def drop(self, url):
        name = url.rsplit("/", 1)[1]
        psql(self.server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.made.remove(name)

    def drop_all(self):
        for name in list(self.made):
            psql(self.server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.made.clear()


def checkpoint(url):
    psql(url, "CHECKPOINT")
    os.sync()


def step_text(s, rows):
    return (f"{rows / s['secs']:,.0f} rows/s, {s['secs']:.2f} s, RSS {s['rss'] / 2**20:,.0f} MB, "
            f"CPU {s['cpu']:.1f} s")


def lakeport_import(lakeport, label, dbs, rep, work, n, problems, say):
    """Steps 1 and 2 with one lakeport binary; returns the first import's step."""
    url = dbs.fresh("import")
    base, env = lakeport_command(lakeport, url)
    # The store's tables are made first (untimed), as a running service would have them.
    bench_scale.run_step([*base, "tables"], work, env, work / "tmp")
    checkpoint(url)
    s = bench_scale.run_step([*base, "inventory", "import", str(rep.url), "--json"], work, env,
                             work / "tmp")
    rec = json.loads(s["stdout"])
    say(f"{label}: first import: {counts_text(rec)}: {step_text(s, n)}")
    if rec["rows"] != n or rec["inserted"] != n:
        problems.append(f"{label}: first import: {counts_text(rec)}, expected {n} inserted")
    live = int(psql(url, "SELECT count(*) FROM data_object_inventory WHERE NOT _deleted"))
    if live != n:
        problems.append(f"{label}: {live} live rows after the first import, expected {n}")
    seq = psql(url, 'SELECT "seq" FROM "_lakeport_meta"')
    size = int(psql(url, "SELECT pg_total_relation_size('data_object_inventory')"))
    say(f"{label}: data_object_inventory is {size / 2**20:,.0f} MB with its indexes "
        f"({size / n:.0f} bytes/object); seq {seq}")

    again = reports.next_day_manifest(rep, work / "reports", 1)
    checkpoint(url)
    s2 = bench_scale.run_step([*base, "inventory", "import", str(again.url), "--json"], work,
                              env, work / "tmp")
    rec2 = json.loads(s2["stdout"])
    say(f"{label}: unchanged re-import: {counts_text(rec2)}: {step_text(s2, n)}")
    if rec2["unchanged"] != n or psql(url, 'SELECT "seq" FROM "_lakeport_meta"') != seq:
        problems.append(f"{label}: the unchanged re-import wrote rows: {counts_text(rec2)}")
    shutil.rmtree(again.manifest.parent, ignore_errors=True)
    dbs.drop(url)
    return s, s2


def copy_baseline(dbs, rep, work, n, problems, say):
    """Step 3: the same rows, decompressed, through psql's \\copy into a keyed table."""
    csv = work / "report.csv"
    t0 = time.perf_counter()
    with open(csv, "wb") as out:
        for f in rep.files:
            with gzip.open(f, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    say(f"decompressed {csv.stat().st_size / 2**20:,.0f} MB of CSV in "
        f"{time.perf_counter() - t0:.1f} s (untimed)")
    url = dbs.fresh("copy")
    cols = ", ".join(f'"{c}" {t}' for c, t in BASELINE_COLUMNS)
    psql(url, f'CREATE TABLE baseline ({cols}, "version_id" text COLLATE "C" NOT NULL '
              f'DEFAULT \'\', PRIMARY KEY ("bucket", "key", "version_id"))')
    checkpoint(url)
    names = ", ".join(f'"{c}"' for c, _ in BASELINE_COLUMNS)
    sql = f"\\copy baseline ({names}) FROM '{csv}' WITH (FORMAT csv)"
    s = bench_scale.run_step([pg_bin("psql"), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                              sql], work, dict(os.environ), work / "tmp")
    rows = int(psql(url, "SELECT count(*) FROM baseline"))
    if rows != n:
        problems.append(f"COPY: {rows} rows in the table, expected {n}")
    size = int(psql(url, "SELECT pg_total_relation_size('baseline')"))
    say(f"COPY … FROM STDIN (psql \\copy, CSV) into a keyed table: {step_text(s, n)}; "
        f"table {size / 2**20:,.0f} MB with its index")
    csv.unlink()
    dbs.drop(url)
    return s


def load_case(lakeport, label, dbs, work, rows, problems, say):
    """`lakeport load` of `rows` NDJSON rows into a fresh database."""
    inv = work / "inventory.ndjson"
    if not inv.exists():
        generate_inventory(rows, inv)
    url = dbs.fresh("load")
    base, env = lakeport_command(lakeport, url)
    bench_scale.run_step([*base, "tables"], work, env, work / "tmp")
    checkpoint(url)
    s = bench_scale.run_step([*base, "load", "object_inventory", str(inv)], work, env,
                             work / "tmp")
    live = int(psql(url, "SELECT count(*) FROM data_object_inventory WHERE NOT _deleted"))
    say(f"{label}: load of {rows:,} NDJSON rows: {s['stdout'].strip()}: {step_text(s, rows)}")
    if live != rows:
        problems.append(f"{label}: load: {live} live rows, expected {rows}")
    dbs.drop(url)
    return s


def one_size(n, binaries, dbs, work, files_per, load_rows):
    shutil.rmtree(work, ignore_errors=True)
    (work / "pipelines").mkdir(parents=True)
    (work / "schemas").mkdir()
    problems = []

    def say(text):
        print(f"  [{n:,}] {text}", flush=True)

    files = max(10, -(-n // files_per))
    rep, gen, gen_s = bench_scale.write_report(work / "reports", n, files, bench_scale.CREATED)
    say(f"generated {gen['size'] / 2**20:,.0f} MB of CSV.gz in {files} files "
        f"({gen['raw_bytes'] / 2**20:,.0f} MB uncompressed) in {gen_s:.1f} s (untimed)")
    if gen["rows"] != n:
        problems.append(f"the generator wrote {gen['rows']} rows, expected {n}")
    res = {"n": n}
    for label, binary in binaries:
        res[label] = lakeport_import(binary, label, dbs, rep, work, n, problems, say)
    res["copy"] = copy_baseline(dbs, rep, work, n, problems, say)
    copy_rate = n / res["copy"]["secs"]
    for label, _ in binaries:
        rate = n / res[label][0]["secs"]
        ok = rate >= TARGET * copy_rate
        say(f"{label}: import {rate:,.0f} rows/s vs COPY {copy_rate:,.0f} rows/s: "
            f"{rate / copy_rate:.2f}x (target >= {TARGET}x: {'PASS' if ok else 'FAIL'})")
    if load_rows:
        for label, binary in binaries:
            res[f"load {label}"] = load_case(binary, label, dbs, work, load_rows, problems, say)
        (work / "inventory.ndjson").unlink(missing_ok=True)
    shutil.rmtree(work / "reports", ignore_errors=True)
    return res, problems


def main():
    ap = argparse.ArgumentParser(description="lakeport inventory import into PostgreSQL at "
                                             "scale vs the server's plain COPY (issue 20)")
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "lakeport"),
                    help="lakeport binary (default target/release/lakeport)")
    ap.add_argument("--before", help="another lakeport binary to time the same way")
    ap.add_argument("--rows", default=os.environ.get("BENCH_SCALE_ROWS", "10000000"),
                    help="objects, or a comma list of sizes (env BENCH_SCALE_ROWS, default "
                         "10000000)")
    ap.add_argument("--load-rows", type=int, default=int(os.environ.get("BENCH_LOAD_ROWS", 0)),
                    help="also time `lakeport load` of this many NDJSON rows (env "
                         "BENCH_LOAD_ROWS, default 0: not run)")
    ap.add_argument("--files-per", type=int, default=1_000_000,
                    help="objects per data file (at least 10 files; default 1000000)")
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", str(REPO / "bench-out")),
                    help="work folder; the case uses <dir>/scale-postgres, emptied first (env "
                         "BENCH_DIR, default bench-out/)")
    ap.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES"),
                    help="a server URL whose databases the run may create (env "
                         "BENCH_POSTGRES); default: a throwaway cluster (scripts/with-postgres.sh)")
    a = ap.parse_args()
    in_throwaway_postgres(a.postgres, __file__)
    try:
        sizes = [int(s.replace("_", "")) for s in a.rows.split(",") if s.strip()]
    except ValueError:
        sys.exit(f"bench scale-postgres: --rows {a.rows!r}: expected sizes like 1000000")
    binaries = [("lakeport", Path(a.bin).resolve())]
    if a.before:
        binaries.append(("before", Path(a.before).resolve()))
    for _, b in binaries:
        if not b.is_file():
            sys.exit(f"bench scale-postgres: no lakeport binary at {b} (cargo build --release)")
    server = a.postgres or os.environ["LAKEPORT_TEST_POSTGRES"]
    print(f"bench scale-postgres: sizes {', '.join(f'{s:,}' for s in sizes)}; PostgreSQL "
          f"{psql(server, 'SHOW server_version')} (shared_buffers "
          f"{psql(server, 'SHOW shared_buffers')}, work_mem {psql(server, 'SHOW work_mem')}); "
          f"{', '.join(str(b) for _, b in binaries)}; {os.cpu_count()} CPUs", flush=True)
    dbs = Databases(server)
    problems = []
    try:
        for n in sizes:
            _, probs = one_size(n, binaries, dbs, Path(a.dir).resolve() / "scale-postgres" /
                                str(n), a.files_per, a.load_rows)
            problems += [f"[{n:,}] {p}" for p in probs]
    finally:
        dbs.drop_all()
    for p in problems:
        print(f"PROBLEM: {p}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
