#!/usr/bin/env python3
"""Scale benchmark (issue 20, point 1): an S3 Inventory report of 1M to 100M objects through
lakeport on one machine, beside DuckDB on the same files in the same run.

For each size in BENCH_SCALE_ROWS (default 100000000; a comma list such as
1000000,10000000,100000000 runs each size in turn and prints one table, a column per size):

  0. Generate the report (untimed, its rate printed): S3 CSV.gz, the nine fields an S3
     Inventory CSV report has by default (`FIELDS`: bucket, key, size, last-modified date,
     ETag, storage class, multipart, replication and encryption status), form-encoded keys with deep and shared prefixes,
     spaces, `+`, non-ASCII (accents, CJK, emoji), rows in random key order, the data files
     listed in random order; one folder (`BIG_FOLDER`) holds min(1,000,000, N) of the keys,
     600 of them directly and the rest in its 12 subfolders and below. Streamed in 20,000-row
     chunks by one process per core, one data file at a time, gzip level 1, about 1,000,000
     objects per file (at least 10 files); object i's row is a function of (seed, i) alone,
     so the change report below regenerates the same objects.
  1. `lakeport inventory import <manifest> --json` into a fresh SQLite store.
  2. DuckDB anchor on the same files: `CREATE TABLE … AS SELECT … FROM read_csv(…)` (keys
     form-decoded, typed columns) + `CREATE UNIQUE INDEX` on (bucket, key) + `CHECKPOINT`,
     `SET threads = 2`, into a fresh database file; its bytes per object are printed.
  3. The unchanged next-day report (`reports.next_day_manifest`: the same data files, a new
     manifest): it must write 0 rows.
  4. The incremental task's first run (every row is a change): it sets the task's checkpoint
     after the first import, so that step 6 delivers exactly the change set. Timed and printed.
  5. A next-day report with new data files: 1% of the objects resized (new size, ETag and
     last-modified date), 0.5% deleted, 0.5% new; the --json counts must match exactly.
  6. The incremental task (deletes emitted) delivers that change set; the full-mode task
     delivers the table (both: bench.py's task, daily partitions on last_modified, zstd,
     concurrency 2, schema auto, to a local folder).
  7. DuckDB anchor: `sqlite_scan` of the store → `COPY … (FORMAT parquet, PARTITION_BY (dt),
     COMPRESSION zstd)` with the same columns (bench.duckdb_copy_sql), `SET threads = 2`.
  8. `lakeport du <bucket> --json`, the first `lakeport ls <bucket> --json` page, and the first
     page of `lakeport ls <bucket> --prefix <BIG_FOLDER> --non-recursive --json` (the whole
     folder level: its 600 keys and 12 subfolders, each stepped over).

Once per run, after the sizes: `lakeport load` of 1,000,000 NDJSON rows in random key order
(scripts/gen_inventory.py, as the delivery benchmark makes them) into a fresh store.

Every step is its own process, timed wall clock including start-up; its peak RSS is measured by
GNU time (that process alone); its peak temporary disk is sampled every 0.2 s from a thread:
the files under the step's TMPDIR (lakeport's TMPDIR, so its sort runs, SQLite temp files and
Parquet spool files; DuckDB's temp_directory) plus the deleted-but-open files under it that the
process holds (the sort's runs are anonymous files, invisible to a folder walk). DuckDB's rows/s
are from its statements' time (its process start-up, about 0.3 s, is left out: the ratios are
conservative for lakeport); its process wall time is printed too.

The store's bytes per object are the SQLite pages of the table and every index of
data_object_inventory (dbstat), measured after the first import. Results are checked (exit 1
when wrong): row counts of every import, 0 rows written by the unchanged re-import, both lakes
and DuckDB's table counted back, du's objects, the listing pages. Issue 20's targets are
printed beside the figures as PASS/FAIL; a missed target does not fail the run.

    .venv/bin/python scripts/bench_scale.py --bin target/release/lakeport --rows 1000000
    BENCH_SCALE_ROWS=1000000,10000000 BENCH_CASE=scale make bench
"""

import argparse
import datetime as dt
import functools
import hashlib
import json
import math
import multiprocessing
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import duckdb

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
import bench  # noqa: E402  (scripts/bench.py: tasks, DuckDB's COPY, counting lakes)
from bench import reports  # noqa: E402  (tests/reports.py, which bench.py imports)

BUCKET = "big-bucket"
# The fields of an S3 Inventory CSV report when none is added: the issue's "nine default
# fields" (the ingest benchmark's reports.BIG_FIELDS adds three).
FIELDS = ["Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass",
          "IsMultipartUploaded", "ReplicationStatus", "EncryptionStatus"]
BIG_FOLDER = "clickstream/"
# The bucket's other top-level folders, each as long as BIG_FOLDER in UTF-8 (12 bytes), so
# that keys are as long at every size (at 1,000,000 objects all are in BIG_FOLDER).
ZONES = ["web-archive/", "user-média/", "team+ops 24/", "日本-logs/", "données-v2/",
         "backups-eu1/", "media store/"]
BIG_FOLDER_KEYS = 1_000_000
# Keys directly in the big folder (the rest are in its 12 subfolders and below), so that its
# non-recursive listing is one page that must step over every subfolder. Every other key is
# in a subfolder of its top-level folder.
BIG_FOLDER_FILES = 600
SEED = 42
CREATED = dt.datetime(2024, 6, 2, 1, 0, tzinfo=dt.timezone.utc)
DAY_MS = 86_400_000
# object i's place in a pseudo-random permutation of 0..n: r = i * PERM % n (PERM coprime
# with n). r decides membership of the big folder (r < its size) and the change report's
# picks, spread over every data file.
PERM = 2_654_435_761
# Rows of the `lakeport load` step (issue 20: 1M NDJSON rows in random key order).
LOAD_ROWS = 1_000_000
TASK_FULL = "scale-full"
TASK_INC = "scale-inc"
GZIP_LEVEL = 1

# -- the report -----------------------------------------------------------------------------

TOPS = ["logs", "photos", "backups", "datasets", "données clients", "日本語", "media",
        "archive 2019", "R&D", "tmp", "q1+q2 reports", "user uploads"]
SUBS = ["app-1", "app-2", "web", "équipe", "客户", "team a", "eu-west-1", "raw", "processed",
        "2024 Q1"]
NAMES = ["part", "IMG", "report", "export", "résumé", "写真", "data set", "log", "Q&A notes",
         "a+b=c", "snapshot (1)", "🚀 launch", "Grüße"]
EXTS = [".json.gz", ".jpg", ".parquet", ".csv", ".pdf", "", ".txt", ".tar.zst"]
STORAGE = ["STANDARD"] * 6 + ["STANDARD_IA", "GLACIER", "INTELLIGENT_TIERING", "DEEP_ARCHIVE"]
ENCRYPTION = ["SSE-S3", "SSE-KMS", "NOT-SSE"]
SHALLOW = 1 / 6


@functools.lru_cache(maxsize=None)
def _vocabulary():
    """Encoded folders below a top-level folder (shallow, deep), names and extensions: a
    sixth of the keys are in 132 shallow folders (1 or 2 levels), the rest in about 12,000
    deep ones: dated (yyyy/mm/dd, 5 levels) and Hive-style (year=/month=/day=/hour=, 6)."""
    enc = reports.form_encode
    pairs = [(t, s) for t in TOPS for s in SUBS]
    shallow = [t + "/" for t in TOPS] + [f"{t}/{s}/" for t, s in pairs]
    first = dt.date(2023, 5, 1)
    deep = []
    for k, (t, s) in enumerate(pairs):
        if k % 3 == 0:
            for d in range(0, 400, 3):
                day = first + dt.timedelta(days=d)
                deep.append(f"{t}/{s}/{day.year}/{day.month:02d}/{day.day:02d}/")
        elif k % 12 == 1:
            for d in range(30):
                day = first + dt.timedelta(days=d * 13)
                for h in range(24):
                    deep.append(f"{t}/{s}/year={day.year}/month={day.month:02d}/"
                                f"day={day.day:02d}/hour={h:02d}/")
    return ([enc(f) for f in shallow], [enc(f) for f in deep], [enc(n) for n in NAMES],
            [enc(e) for e in EXTS])


def _perm(n):
    p = PERM
    while math.gcd(p, n) != 1:
        p += 1
    return p


def write_data_file(job):
    """Writes data file `f` of a report of `n` objects (objects i ≡ f mod `files`) to `path`;
    `change` makes the changed next-day report. Returns the manifest entry and counts."""
    path, n, files, f, seed, change, created_ms = job
    shallow, deep, names, exts = _vocabulary()
    big = reports.form_encode(BIG_FOLDER)
    zones = [reports.form_encode(z) for z in ZONES]
    nzo = len(zones)
    n_big = min(BIG_FOLDER_KEYS, n)
    n_direct = min(BIG_FOLDER_FILES, n_big // 10)
    perm = _perm(n)
    rng = random.Random(seed * 1_000_003 + f)
    rnd, bits = rng.random, rng.getrandbits
    crng = random.Random(seed * 1_000_033 + f + 7)  # the change report's own draws
    crnd, cbits = crng.random, crng.getrandbits
    nsh, nde, nna, nex = len(shallow), len(deep), len(names), len(exts)
    now = reports.ms_of(CREATED)
    first_day = now // DAY_MS - 400
    days = [(reports.EPOCH + dt.timedelta(days=first_day + d)).strftime("%Y-%m-%dT")
            for d in range(410)]
    hms = [f"{h:02d}:{m:02d}:{s:02d}." for h in range(24) for m in range(60) for s in range(60)]
    ms3 = [f"{m:03d}Z" for m in range(1000)]

    def date(ms):
        day, rest = divmod(ms, DAY_MS)
        sec, msr = divmod(rest, 1000)
        return days[day - first_day] + hms[sec] + ms3[msr]

    def folder(u):
        if u < SHALLOW:
            return shallow[int(u / SHALLOW * nsh)]
        return deep[int((u - SHALLOW) / (1 - SHALLOW) * nde)]

    # The fields after the ETag, drawn as one: storage class, replication and encryption
    # (multipart follows the size: tails[True] above 1 GiB).
    combos = [(sc, rep, enc) for sc in STORAGE for rep in ("COMPLETED", "", "", "")
              for enc in ENCRYPTION]
    tails = {mp: [f'"{sc}","{"true" if mp else "false"}","{rep}","{enc}"\n'
                  for sc, rep, enc in combos] for mp in (False, True)}
    ntails = len(combos)

    def line(key, size, lm, etag, u):
        return (f'"{BUCKET}","{key}","{size}","{date(lm)}","{etag}",'
                + tails[size > 2**30][int(u * ntails)])

    counts = {"rows": 0, "resized": 0, "deleted": 0, "new": 0, "raw_bytes": 0}
    comp = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # gzip container
    md5 = hashlib.md5()
    size_out = 0
    chunk = []
    with open(path, "wb") as out:
        def flush():
            nonlocal size_out
            raw = "".join(chunk).encode("utf-8")
            chunk.clear()
            counts["raw_bytes"] += len(raw)
            data = comp.compress(raw)
            if data:
                out.write(data)
                md5.update(data)
                size_out += len(data)

        for i in range(f, n, files):
            r = i * perm % n
            u = rnd()
            if r < n_direct:
                fold = big
            else:
                fold = (big if r < n_big else zones[r % nzo]) + folder(u)
            key = f"{fold}{names[int(rnd() * nna)]}-{i:09d}{exts[int(rnd() * nex)]}"
            size = int(2 ** (rnd() * 32))
            lm = now - int(rnd() * 400 * DAY_MS)
            etag = f"{bits(128):032x}"
            tail = rnd()
            if change:
                pick = r % 200
                if pick == 3:
                    counts["deleted"] += 1
                    continue
                if pick in (1, 101):  # r % 100 == 1: 1%
                    size = size + 1 + int(crnd() * 2**20)
                    lm = created_ms - int(crnd() * DAY_MS)
                    etag = f"{cbits(128):032x}"
                    counts["resized"] += 1
                chunk.append(line(key, size, lm, etag, tail))
                if pick == 5:  # 0.5% new objects, in folders of their own draw
                    new_key = (f"{zones[int(crnd() * nzo)]}{folder(crnd())}"
                               f"{names[int(crnd() * nna)]}"
                               f"-{i:09d}+%282%29{exts[int(crnd() * nex)]}")
                    chunk.append(line(new_key, int(2 ** (crnd() * 32)),
                                      created_ms - int(crnd() * DAY_MS), f"{cbits(128):032x}",
                                      crnd()))
                    counts["new"] += 1
            else:
                chunk.append(line(key, size, lm, etag, tail))
            if len(chunk) >= 20_000:
                counts["rows"] += len(chunk)
                flush()
        counts["rows"] += len(chunk)
        flush()
        data = comp.flush()
        out.write(data)
        md5.update(data)
        size_out += len(data)
    return {"size": size_out, "MD5checksum": md5.hexdigest(), "path": str(path), **counts}


def write_report(root, n, files, created, change=False, seed=SEED):
    """Writes an S3 CSV.gz report of `n` objects in `files` data files (one process per core)
    and its manifest; returns (Report, totals, seconds)."""
    root = Path(root)
    base = f"inventory/{BUCKET}/daily-all"
    rng = random.Random(f"{seed}/{reports.ms_of(created)}")
    keys = [f"{base}/data/{reports._uuid(rng)}.csv.gz" for _ in range(files)]
    (root / base / "data").mkdir(parents=True, exist_ok=True)
    jobs = [(root / k, n, files, f, seed, change, reports.ms_of(created))
            for f, k in enumerate(keys)]
    procs = min(os.cpu_count() or 1, files)
    t0 = time.perf_counter()
    _vocabulary()  # made once, inherited by the forked workers
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        results = pool.map(write_data_file, jobs, chunksize=1)
    secs = time.perf_counter() - t0
    entries = [{"key": k, "size": r["size"], "MD5checksum": r["MD5checksum"]}
               for k, r in zip(keys, results)]
    rng.shuffle(entries)  # listed in random order
    doc = {"sourceBucket": BUCKET, "destinationBucket": "arn:aws:s3:::bench-inventory",
           "version": "2016-11-30", "creationTimestamp": str(reports.ms_of(created)),
           "fileFormat": "CSV", "fileSchema": ", ".join(FIELDS), "files": entries}
    m = reports._write_manifest(root / base / reports.folder_stamp(created),
                                reports._json_manifest(doc), True)
    totals = {c: sum(r[c] for r in results)
              for c in ("rows", "resized", "deleted", "new", "raw_bytes", "size")}
    totals["procs"] = procs
    rep = reports.Report("s3", "csv.gz", BUCKET, created, m, [root / k for k in keys], [],
                         totals["rows"])
    return rep, totals, secs


# -- timed steps ----------------------------------------------------------------------------

class TempSampler(threading.Thread):
    """Peak bytes on disk under `folder` plus the deleted files under it that the measured
    process (the child of `parent`, the rusage wrapper) still holds open, every 0.2 s."""

    def __init__(self, folder, parent):
        super().__init__(daemon=True)
        self.folder, self.parent, self.pid, self.peak = str(folder), parent, None, 0
        self.stop_event = threading.Event()

    def child(self):
        if self.pid is None:
            try:
                kids = Path(f"/proc/{self.parent}/task/{self.parent}/children").read_text()
                self.pid = int(kids.split()[0]) if kids.split() else None
            except (OSError, ValueError):
                pass
        return self.pid

    def sample(self):
        seen, total = set(), 0
        for dirpath, _, names in os.walk(self.folder):
            for name in names:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
        pid = self.child()
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir) if pid else []
        except OSError:
            fds = []
        for fd in fds:
            try:
                if not os.readlink(f"{fd_dir}/{fd}").startswith(self.folder):
                    continue
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
        self.peak = max(self.peak, total)

    def run(self):
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(0.2)

    def finish(self):
        self.stop_event.set()
        self.join()
        return self.peak


# The 1-minute load average at the end of every step (this benchmark's processes included).
LOADS = []


def run_step(cmd, work, env, tmp):
    """Runs cmd in `work` with TMPDIR=`tmp` (emptied first); returns a dict of seconds (wall,
    start-up included), rss (peak, bytes), tmp (peak temporary disk, bytes) and stdout.
    Exits when the command fails. Also its CPU seconds (user + system).

    The peak RSS comes from a small wrapper that forks the command (bench.measured: GNU time, as bench.timed uses):
    a process started straight from this Python would report this Python's peak RSS too
    (Linux keeps the memory a child had before exec in its ru_maxrss)."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = dict(env, TMPDIR=str(tmp))
    out_path, err_path, rss_path = work / ".step.out", work / ".step.err", work / ".step.rss"
    cmd = [str(c) for c in cmd]
    full = bench.measured(cmd, rss_path)
    os.sync()  # what the previous step left to write back is flushed first, untimed
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(full, cwd=work, env=env, stdout=out, stderr=err)
        sampler = TempSampler(tmp, p.pid)
        sampler.start()
        p.wait()
        secs = time.perf_counter() - t0
        peak_tmp = sampler.finish()
    stdout = out_path.read_text(encoding="utf-8")
    if p.returncode != 0:
        sys.exit(f"bench scale: {' '.join(cmd[:3])} ... failed ({p.returncode}):\n{stdout}"
                 f"{err_path.read_text(encoding='utf-8', errors='replace')}")
    rss, user, system = rss_path.read_text().split()[-3:]
    shutil.rmtree(tmp, ignore_errors=True)
    LOADS.append(os.getloadavg()[0])
    return {"secs": secs, "rss": int(rss) * 1024, "cpu": float(user) + float(system),
            "tmp": peak_tmp, "stdout": stdout}


# A DuckDB anchor in a process of its own (its RSS and temp disk measured like lakeport's):
# argv[1] is JSON {db, tmp, extension, sql: [statements timed one by one], check: a query}.
DUCK_CHILD = r"""
import json, sys, time, duckdb
a = json.loads(sys.argv[1])
con = duckdb.connect(a["db"], config={"allow_unsigned_extensions": "true"})
con.execute("SET threads = 2")
con.execute("SET temp_directory = '%s'" % a["tmp"].replace("'", "''"))
if a.get("extension"):
    con.execute("LOAD '%s'" % a["extension"])
times = []
for sql in a["sql"]:
    t0 = time.perf_counter()
    con.execute(sql)
    times.append(time.perf_counter() - t0)
check = list(con.execute(a["check"]).fetchone()) if a.get("check") else None
con.close()
print(json.dumps({"times": times, "check": check}))
"""


def duck_step(work, env, tmp, db, sql, check=None, extension=None):
    args = {"db": str(db), "tmp": str(tmp), "sql": sql, "check": check,
            "extension": str(extension) if extension else None}
    s = run_step([sys.executable, "-c", DUCK_CHILD, json.dumps(args)], work, env, tmp)
    res = json.loads(s["stdout"].strip().splitlines()[-1])
    s["wall"] = s["secs"]
    s["secs"] = sum(res["times"])
    s["times"] = res["times"]
    s["check"] = res["check"]
    return s


def sql_str(s):
    return "'" + str(s).replace("'", "''") + "'"


def duck_import_sql(manifest, root):
    """DuckDB's import of the report: read_csv of its data files into a typed table (keys
    form-decoded), a unique index on (bucket, key), a checkpoint."""
    doc = json.loads(Path(manifest).read_text(encoding="utf-8"))
    fields = [f.strip() for f in doc["fileSchema"].split(",")]
    duck = {"str": "VARCHAR", "int": "BIGINT", "bool": "BOOLEAN", "ts": "TIMESTAMPTZ"}
    cols = {reports.S3_BY_FIELD[f][1]: duck[reports.S3_BY_FIELD[f][2]] for f in fields}
    files = ", ".join(sql_str(Path(root) / e["key"]) for e in doc["files"])
    columns = ", ".join(f"{sql_str(c)}: {sql_str(t)}" for c, t in cols.items())
    select = ", ".join(
        "url_decode(replace(key, '+', ' ')) AS key" if c == "key" else f'"{c}"' for c in cols)
    return [
        f"CREATE TABLE inventory AS SELECT {select} FROM read_csv([{files}], header = false, "
        f"auto_detect = false, compression = 'gzip', delim = ',', quote = '\"', "
        f"escape = '\"', columns = {{{columns}}})",
        "CREATE UNIQUE INDEX inventory_bucket_key ON inventory (bucket, key)",
        "CHECKPOINT",
    ]


# -- the store ------------------------------------------------------------------------------

def store_bytes(db):
    """(bytes of data_object_inventory and every index on it, {b-tree: bytes}, how measured):
    dbstat when this sqlite3 module has it, else the file's used pages (whole store)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'data_object_inventory' "
            "AND type IN ('table', 'index')")]
        try:
            con.execute("SELECT * FROM dbstat LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            page = con.execute("PRAGMA page_size").fetchone()[0]
            used = (con.execute("PRAGMA page_count").fetchone()[0]
                    - con.execute("PRAGMA freelist_count").fetchone()[0])
            return used * page, {}, "PRAGMA page_count - freelist_count (whole file)"
        per = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
        btrees = {n: per.get(n, 0) for n in names}
        return sum(btrees.values()), btrees, "dbstat (pages of the table and its indexes)"
    finally:
        con.close()


def expected_listings(db):
    """From the store, untimed: the bucket's first 1,000 current keys, and the entries of the
    big folder's non-recursive listing (its keys without a further "/" and its subfolders),
    in S3's order (UTF-8 bytes)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        first = [r[0] for r in con.execute(
            'SELECT key FROM "data_object_inventory" WHERE bucket = ? AND _deleted = 0 '
            "ORDER BY key LIMIT 1000", (BUCKET,))]
        entries = set()
        for (key,) in con.execute(
                'SELECT key FROM "data_object_inventory" WHERE bucket = ? AND key >= ? '
                "AND key < ? AND _deleted = 0", (BUCKET, BIG_FOLDER, BIG_FOLDER[:-1] + "0")):
            rest = key[len(BIG_FOLDER):]
            cut = rest.find("/")
            entries.add(key if cut < 0 else BIG_FOLDER + rest[:cut + 1])
    finally:
        con.close()
    return first, sorted(entries, key=lambda k: k.encode("utf-8"))


def lake_count(con, root, where=""):
    if not any(Path(root).rglob("*.parquet")):
        return 0
    return con.execute(f"SELECT count(*) FROM read_parquet('{root}/**/*.parquet', "
                       f"hive_partitioning = false) {where}").fetchone()[0]


# -- one size -------------------------------------------------------------------------------

def one_size(n, lakeport, work, files_per):
    """Runs every step for a report of n objects in `work`; returns (results, problems)."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "pipelines").mkdir(parents=True)
    (work / "schemas").mkdir()
    root, store, tmp = work / "reports", work / "lakeport.db", work / "tmp"
    lake_full, lake_inc, lake_duck = work / "lake-full", work / "lake-inc", work / "lake-duckdb"
    for task, dest, mode in ((TASK_FULL, lake_full, "full"), (TASK_INC, lake_inc, "incremental")):
        text = (bench.TASK_YAML.format(task=task, dest=dest, concurrency=2)
                .replace("mode: full", f"mode: {mode}")
                .replace("table: bench_daily", f"table: {task.replace('-', '_')}"))
        if mode == "incremental":
            text = text.replace("deletes: ignore", "deletes: emit")
        (work / "pipelines" / f"{task}.yaml").write_text(text)
    env = dict(os.environ)
    for var in ("LAKEPORT_STORE", "LAKEPORT_SPOOL_DIR", "SQLITE_TMPDIR"):
        env.pop(var, None)
    base = [lakeport, "--store", f"sqlite:{store}", "--pipelines", "pipelines",
            "--schemas", "schemas"]
    files = max(10, math.ceil(n / files_per))
    res = {"n": n, "files": files}
    LOADS.clear()
    problems = []

    def say(text):
        print(f"  [{n:,}] {text}", flush=True)

    def step_text(s, rows=None):
        rate = f"{rows / s['secs']:,.0f} rows/s, " if rows else ""
        return (f"{rate}{s['secs']:.2f} s, RSS {s['rss'] / 2**20:,.0f} MB, "
                f"tmp {s['tmp'] / 2**20:,.0f} MB, CPU {s['cpu']:.1f} s")

    print(f"bench scale: {n:,} objects in {files} CSV.gz files, in {work}", flush=True)
    rep, gen, gen_s = write_report(root, n, files, CREATED)
    res["gen"] = dict(gen, secs=gen_s)
    say(f"generated {mb(gen['size'])} MB of CSV.gz ({mb(gen['raw_bytes'])} MB "
        f"uncompressed) in {gen_s:.1f} s: {n / gen_s:,.0f} rows/s, "
        f"{mb(gen['raw_bytes'] / gen_s)} MB/s with {gen['procs']} processes")
    if gen["rows"] != n:
        problems.append(f"the generator wrote {gen['rows']} rows, expected {n}")

    # 1. first import
    s = run_step([*base, "inventory", "import", rep.url, "--json"], work, env, tmp)
    rec = json.loads(s["stdout"])
    res["import"] = s
    say(f"first import: {bench.counts_text(rec)}: {step_text(s, n)}")
    if rec["rows"] != n or rec["inserted"] != n:
        problems.append(f"first import: {bench.counts_text(rec)}, expected {n} inserted")
    t0 = time.perf_counter()
    res["store"] = store_bytes(store)
    res["store_file"] = sum(p.stat().st_size for p in work.glob("lakeport.db*"))
    say(f"store after the first import: {res['store'][0] / n:.0f} bytes/object "
        f"({', '.join(f'{k} {v / n:.0f}' for k, v in res['store'][1].items())}; "
        f"{res['store'][2]}, {time.perf_counter() - t0:.1f} s); file {res['store_file'] / n:.0f}")

    # 2. DuckDB anchor: read_csv + unique index
    duck_db = work / "anchor.duckdb"
    s = duck_step(work, env, tmp, duck_db, duck_import_sql(rep.manifest, root),
                  check="SELECT count(*), avg(strlen(key)) FROM inventory")
    res["duck_import"] = s
    res["duck_db"] = sum(p.stat().st_size for p in work.glob("anchor.duckdb*"))
    say(f"DuckDB read_csv + unique index: {step_text(s, n)} (statements "
        f"{', '.join(f'{t:.2f}' for t in s['times'])} s; process {s['wall']:.2f} s); "
        f"database {res['duck_db'] / n:.0f} bytes/object")
    res["key_bytes"] = s["check"][1]
    say(f"keys: {res['key_bytes']:.1f} bytes on average (UTF-8, decoded)")
    if s["check"][0] != n:
        problems.append(f"DuckDB's table holds {s['check'][0]} rows, expected {n}")
    for p in work.glob("anchor.duckdb*"):
        p.unlink()

    # 3. unchanged next-day report
    nxt = reports.next_day_manifest(rep, root)
    s = run_step([*base, "inventory", "import", nxt.url, "--json"], work, env, tmp)
    rec = json.loads(s["stdout"])
    res["reimport"] = s
    res["reimport_written"] = rec["inserted"] + rec["updated"] + rec["deleted"]
    say(f"unchanged re-import: {bench.counts_text(rec)}: {step_text(s, n)}")
    if rec["rows"] != n or rec["unchanged"] != n or res["reimport_written"]:
        problems.append(f"unchanged re-import: {bench.counts_text(rec)}, expected {n} unchanged")
    for p in rep.files:  # the first report's data files are not read again
        p.unlink()

    # 4. the incremental task's first run: its checkpoint is the first import's
    s = run_step([*base, "run", TASK_INC], work, env, tmp)
    res["inc_first"] = s
    m = bench.SUMMARY_RE.match(s["stdout"].strip().splitlines()[-1] if s["stdout"].strip() else "")
    say(f"incremental, first run (every row): {step_text(s, n)}")
    if not m or int(m["rows"]) != n:
        problems.append(f"the incremental task's first run: {s['stdout'].strip()!r}, "
                        f"expected {n} rows")

    # 5. the changed next-day report
    rep3, chg, chg_s = write_report(root, n, files, CREATED + dt.timedelta(days=2), change=True)
    res["chg_gen"] = dict(chg, secs=chg_s)
    say(f"generated the changed report ({chg['resized']:,} resized, {chg['deleted']:,} "
        f"deleted, {chg['new']:,} new) in {chg_s:.1f} s")
    s = run_step([*base, "inventory", "import", rep3.url, "--json"], work, env, tmp)
    rec = json.loads(s["stdout"])
    res["change"] = s
    res["change_rows"] = rec["rows"]
    say(f"changed re-import: {bench.counts_text(rec)}: {step_text(s, rec['rows'])}")
    want = {"rows": n - chg["deleted"] + chg["new"], "inserted": chg["new"],
            "updated": chg["resized"], "deleted": chg["deleted"],
            "unchanged": n - chg["deleted"] - chg["resized"]}
    if any(rec[k] != v for k, v in want.items()):
        problems.append(f"changed re-import: {bench.counts_text(rec)}, expected {want}")
    live = n - chg["deleted"] + chg["new"]
    changes = chg["resized"] + chg["deleted"] + chg["new"]
    res["live"], res["changes"] = live, changes

    # 6. incremental delivery of the change set, full delivery of the table
    for key, task, rows, what in [
            ("inc", TASK_INC, changes, f"incremental, the change set ({changes:,} rows)"),
            ("full", TASK_FULL, live, "full delivery")]:
        s = res[key] = run_step([*base, "run", task], work, env, tmp)
        out = s["stdout"].strip()
        m = bench.SUMMARY_RE.match(out.splitlines()[-1] if out else "")
        say(f"{what}: {step_text(s, rows)}")
        if not m or int(m["rows"]) != rows:
            problems.append(f"{what}: {out!r}, expected {rows} rows")

    # 7. DuckDB anchor: sqlite_scan -> COPY PARTITION_BY
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    names = [r[1] for r in con.execute('PRAGMA table_info("object_inventory")')]
    con.close()
    s = duck_step(work, env, tmp, ":memory:", [bench.duckdb_copy_sql(names, store, lake_duck)],
                  extension=bench.sqlite_extension())
    res["duck_copy"] = s
    say(f"DuckDB sqlite_scan -> COPY: {step_text(s, live)} (process {s['wall']:.2f} s)")

    # 8. du, ls, ls --non-recursive
    s = run_step([*base, "du", BUCKET, "--json"], work, env, tmp)
    res["du"] = s
    du_objects = sum(g["objects"] for g in json.loads(s["stdout"]))
    say(f"du: {du_objects:,} objects: {step_text(s, live)}")
    if du_objects != live:
        problems.append(f"du counted {du_objects} objects, expected {live}")
    first_keys, folder_entries = expected_listings(store)
    s = run_step([*base, "ls", BUCKET, "--json"], work, env, tmp)
    res["ls"] = s
    page = json.loads(s["stdout"])
    say(f"ls, first page: {len(page['objects'])} objects: {step_text(s)}")
    if [o["key"] for o in page["objects"]] != first_keys:
        problems.append(f"ls listed {len(page['objects'])} objects, not the bucket's first "
                        f"{len(first_keys)} keys")
    s = run_step([*base, "ls", BUCKET, "--prefix", BIG_FOLDER, "--non-recursive", "--json"],
                 work, env, tmp)
    res["ls_nr"] = s
    page = json.loads(s["stdout"])
    res["ls_nr_entries"] = (len(page["common_prefixes"]), len(page["objects"]))
    got = sorted([o["key"] for o in page["objects"]] + page["common_prefixes"],
                 key=lambda k: k.encode("utf-8"))
    say(f"ls --non-recursive {BIG_FOLDER}: {len(page['common_prefixes'])} folders, "
        f"{len(page['objects'])} objects, truncated {page['is_truncated']}: {step_text(s)}")
    if got != folder_entries[:1000]:
        problems.append(f"ls --non-recursive of {BIG_FOLDER}: {len(got)} entries, not the "
                        f"folder's first {min(1000, len(folder_entries))} of "
                        f"{len(folder_entries)} (its files and subfolders)")

    # the lakes and the store, counted back
    con = duckdb.connect()
    n_full, n_duck = lake_count(con, lake_full), lake_count(con, lake_duck)
    n_inc = lake_count(con, lake_inc)
    n_inc_del = lake_count(con, lake_inc, "WHERE _op = 'delete'")
    same_columns = ([r[:2] for r in bench.describe_lake(con, lake_full)]
                    == [r[:2] for r in bench.describe_lake(con, lake_duck)])
    con.close()
    store_live = bench.live_rows(store)
    say(f"counted back: store {store_live:,} live rows, full lake {n_full:,}, DuckDB's lake "
        f"{n_duck:,}, incremental lake {n_inc:,} ({n_inc_del:,} deletes)")
    for what, got, expected in (("store", store_live, live), ("full lake", n_full, live),
                                ("DuckDB's lake", n_duck, live),
                                ("incremental lake", n_inc, n + changes),
                                ("incremental lake's deletes", n_inc_del, chg["deleted"])):
        if got != expected:
            problems.append(f"{what} holds {got} rows, expected {expected}")
    if not same_columns:
        problems.append("the full lake's columns differ from DuckDB's")
    res["loads"] = (min(LOADS), max(LOADS))
    return res, problems


# -- report ---------------------------------------------------------------------------------

def mb(b):
    """MB here are 2^20 bytes (as GNU time's and bench.py's RSS)."""
    return f"{b / 2**20:,.0f}"


def cell(s, rows=None):
    if rows:
        head = f"{rows / s['secs']:,.0f} rows/s ({s['secs']:.2f} s)"
    else:
        head = f"{s['secs'] * 1000:,.0f} ms"
    return f"{head}, {mb(s['rss'])} MB, tmp {mb(s['tmp'])} MB, CPU {s['cpu']:,.1f} s"


LAKEPORT_STEPS = [("import", "first import"), ("reimport", "unchanged re-import"),
                  ("inc_first", "incremental first run"), ("change", "changed re-import"),
                  ("inc", "incremental change set"), ("full", "full delivery"), ("du", "du"),
                  ("ls", "ls"), ("ls_nr", "ls --non-recursive")]


def table(results):
    head = ["", *[f"{r['n']:,} objects" for r in results]]
    rows = [
        ("report: data files, CSV.gz MB (uncompressed MB)",
         [f"{r['files']}, {mb(r['gen']['size'])} ({mb(r['gen']['raw_bytes'])})"
          for r in results]),
        ("1-min load average at the steps' ends (2 cores)",
         [f"{r['loads'][0]:.1f}–{r['loads'][1]:.1f}" for r in results]),
        ("mean key length, bytes (UTF-8)", [f"{r['key_bytes']:.1f}" for r in results]),
        ("generating it (processes)",
         [f"{r['n'] / r['gen']['secs']:,.0f} rows/s ({r['gen']['secs']:.1f} s, "
          f"{r['gen']['procs']})" for r in results]),
        ("first import: rows/s (s), peak RSS, peak tmp",
         [cell(r["import"], r["n"]) for r in results]),
        ("DuckDB read_csv + unique index (statements)",
         [cell(r["duck_import"], r["n"]) for r in results]),
        ("first import ÷ DuckDB", [f"{r['duck_import']['secs'] / r['import']['secs']:.2f}×"
                                   for r in results]),
        ("CPU per object: first import, DuckDB (its process)",
         [f"{r['import']['cpu'] / r['n'] * 1e6:.1f} µs, "
          f"{r['duck_import']['cpu'] / r['n'] * 1e6:.1f} µs" for r in results]),
        ("store bytes/object (table + indexes)",
         [f"{r['store'][0] / r['n']:.0f} (" + " + ".join(
             f"{k.replace('data_object_inventory', '').strip('_') or 'table'} {v / r['n']:.0f}"
             for k, v in r["store"][1].items()) + ")" for r in results]),
        ("DuckDB database bytes/object", [f"{r['duck_db'] / r['n']:.0f}" for r in results]),
        ("unchanged re-import", [cell(r["reimport"], r["n"]) for r in results]),
        ("unchanged re-import: rows written, speed-up",
         [f"{r['reimport_written']}, {r['import']['secs'] / r['reimport']['secs']:.2f}×"
          for r in results]),
        ("changed re-import (2% changed)", [cell(r["change"], r["change_rows"]) for r in results]),
        ("changed re-import: speed-up", [f"{r['import']['secs'] / r['change']['secs']:.2f}×"
                                         for r in results]),
        ("incremental, first run (every row)", [cell(r["inc_first"], r["n"]) for r in results]),
        ("incremental, the change set", [f"{r['changes']:,} rows: " + cell(r["inc"], r["changes"])
                                         for r in results]),
        ("full delivery", [cell(r["full"], r["live"]) for r in results]),
        ("DuckDB sqlite_scan → COPY (statement)", [cell(r["duck_copy"], r["live"])
                                                   for r in results]),
        ("full delivery ÷ DuckDB", [f"{r['duck_copy']['secs'] / r['full']['secs']:.2f}×"
                                    for r in results]),
        ("du of the bucket", [cell(r["du"], r["live"]) for r in results]),
        ("ls, first page", [cell(r["ls"]) for r in results]),
        ("ls --non-recursive of the big folder (first page)",
         [f"{r['ls_nr_entries'][0]} folders + {r['ls_nr_entries'][1]} keys: " + cell(r["ls_nr"])
          for r in results]),
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join([name, *vals]) + " |" for name, vals in rows]
    return "\n".join(out)


def targets(results):
    """Issue 20's targets (point 2) as PASS/FAIL lines; None where this run cannot say."""
    lines = []

    def line(ok, text):
        lines.append(f"{bench.verdict(ok) if ok is not None else 'n/a '}  {text}")

    by_n = {r["n"]: r for r in results}
    for r in results:
        n, tag = r["n"], f"[{r['n']:,}]"
        ratio = r["duck_import"]["secs"] / r["import"]["secs"]
        line(ratio >= 1.0, f"{tag} first import {ratio:.2f}× DuckDB's rows/s (target ≥ 1.0× "
                           f"at 10M, aim 1.5×)")
        bpo = r["store"][0] / n
        line(bpo <= 200, f"{tag} store {bpo:.0f} bytes/object (target ≤ 200 at 10M and 100M, "
                         f"aim 150)")
        sp = r["import"]["secs"] / r["reimport"]["secs"]
        line(sp >= 4 and r["reimport_written"] == 0,
             f"{tag} unchanged re-import {sp:.2f}× faster, {r['reimport_written']} rows written "
             f"(target ≥ 4×, 0 rows)")
        sp = r["import"]["secs"] / r["change"]["secs"]
        line(sp >= 3, f"{tag} 2%-changed re-import {sp:.2f}× faster (target ≥ 3×)")
        rss = max((r[k]["rss"], label) for k, label in LAKEPORT_STEPS)
        line(rss[0] <= 512 * 2**20, f"{tag} peak RSS {mb(rss[0])} MB ({rss[1]}) "
                                    f"(target ≤ 512 MB)")
        tmp = max((r[k]["tmp"], label) for k, label in LAKEPORT_STEPS)
        line(tmp[0] <= r["gen"]["raw_bytes"],
             f"{tag} peak temporary disk {mb(tmp[0])} MB ({tmp[1]}) (target ≤ the report's "
             f"uncompressed {mb(r['gen']['raw_bytes'])} MB)")
        ratio = r["duck_copy"]["secs"] / r["full"]["secs"]
        line(ratio >= 1.5, f"{tag} full delivery {ratio:.2f}× DuckDB's COPY (target ≥ 1.5× "
                           f"at 100M)")
        line(r["du"]["secs"] <= 30, f"{tag} du {r['du']['secs']:.2f} s (target ≤ 30 s at 100M)")
        line(r["ls"]["secs"] <= 0.05, f"{tag} first ls page {r['ls']['secs'] * 1000:.0f} ms "
                                      f"(target ≤ 50 ms)")
    if 1_000_000 in by_n and 100_000_000 in by_n:
        a, b = by_n[1_000_000], by_n[100_000_000]
        keep = (b["n"] / b["import"]["secs"]) / (a["n"] / a["import"]["secs"])
        line(keep >= 0.8, f"no cliff: first import rows/s at 100M is {keep:.0%} of 1M's "
                          f"(target ≥ 80%)")
    else:
        line(None, "no cliff (rows/s at 100M ≥ 80% of 1M): needs 1M and 100M in one run")
    return lines


def load_case(lakeport, work):
    """`lakeport load` of LOAD_ROWS NDJSON rows in random key order (scripts/gen_inventory.py,
    the delivery benchmark's generator and arguments) into a fresh SQLite store: its step
    figures and the problems found (the store must hold every row)."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "schemas").mkdir(parents=True)
    (work / "pipelines").mkdir()
    rows = work / "rows.ndjson"
    bench.generate_inventory(LOAD_ROWS, rows)
    store = work / "load.db"
    base, env = bench.lakeport_command(lakeport, f"sqlite:{store}")
    step = run_step([*base, "load", "object_inventory", rows], work, env, work / "tmp")
    con = sqlite3.connect(store)
    try:
        live = con.execute('SELECT count(*) FROM "data_object_inventory" WHERE _deleted = 0'
                           ).fetchone()[0]
    finally:
        con.close()
    problems = [] if live == LOAD_ROWS else [f"load: the store holds {live:,} rows, not "
                                             f"{LOAD_ROWS:,}"]
    return step, problems


def main():
    ap = argparse.ArgumentParser(description="lakeport at scale: inventory import, re-imports, "
                                             "delivery, du and ls vs DuckDB (issue 20)")
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "lakeport"),
                    help="lakeport binary (default target/release/lakeport)")
    ap.add_argument("--rows", default=os.environ.get("BENCH_SCALE_ROWS", "100000000"),
                    help="objects, or a comma list of sizes run in turn (env BENCH_SCALE_ROWS, "
                         "default 100000000)")
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", str(REPO / "bench-out")),
                    help="work folder; the case uses <dir>/scale, emptied first (env BENCH_DIR, "
                         "default bench-out/)")
    ap.add_argument("--files-per", type=int, default=1_000_000,
                    help="objects per data file (at least 10 files; default 1000000)")
    ap.add_argument("--keep", action="store_true",
                    help="keep each size's reports, store and lakes (they are large)")
    a = ap.parse_args()
    try:
        sizes = [int(s.replace("_", "")) for s in a.rows.split(",") if s.strip()]
    except ValueError:
        sys.exit(f"bench scale: --rows/BENCH_SCALE_ROWS {a.rows!r}: expected sizes like "
                 f"1000000,10000000")
    if not sizes or min(sizes) < 1000:
        sys.exit("bench scale: every size must be at least 1000 objects")
    lakeport = Path(a.bin).resolve()
    if not lakeport.is_file():
        sys.exit(f"bench scale: no lakeport binary at {lakeport} (cargo build --release)")
    work_root = Path(a.dir).resolve() / "scale"
    free = shutil.disk_usage(work_root.parent if work_root.parent.exists() else "/").free
    print(f"bench scale: sizes {', '.join(f'{s:,}' for s in sizes)}; {lakeport}; "
          f"{os.cpu_count()} CPUs; {free / 1e9:,.0f} GB free", flush=True)

    results, problems = [], []
    t_all = time.perf_counter()
    for n in sizes:
        t0 = time.perf_counter()
        work = work_root / str(n)
        res, probs = one_size(n, lakeport, work, a.files_per)
        results.append(res)
        problems += [f"[{n:,}] {p}" for p in probs]
        print(f"  [{n:,}] done in {time.perf_counter() - t0:.0f} s", flush=True)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"bench scale: {time.perf_counter() - t_all:.0f} s in all; cells: rows/s (seconds, "
          f"wall incl. start-up), peak RSS, peak temporary disk, CPU seconds (user + system); "
          f"DuckDB: its statements' time, its process's RSS, temp disk and CPU; store: "
          f"{results[0]['store'][2]}; MB = 2^20 bytes")
    print()
    print(table(results))
    print()
    for text in targets(results):
        print(text)
    print()
    load, probs = load_case(lakeport, work_root / "load")
    problems += probs
    rate = LOAD_ROWS / load["secs"]
    print(f"lakeport load, {LOAD_ROWS:,} NDJSON rows in random key order: {cell(load, LOAD_ROWS)}")
    print(f"{bench.verdict(rate >= 200_000)}  lakeport load {rate:,.0f} rows/s (target ≥ 200,000 "
          f"rows/s)")
    if not a.keep:
        shutil.rmtree(work_root / "load", ignore_errors=True)
    for p in problems:
        print(f"bench scale: PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
