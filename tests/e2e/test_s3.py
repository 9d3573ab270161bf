"""Object storage end to end against a real S3-compatible server on 127.0.0.1 (s3s-fs, the
session's `s3_server`): delivery (full and incremental) into `s3://`, read back through the
server with pyarrow's own S3 client and compared with the store (DuckDB does the counting);
run manifests; one object over 100 MB delivered as a multipart upload; inventory import and a
watcher pass from a report root on the server; a missing bucket and refused credentials stop
a run at once with the fix and commit nothing; the server killed and restarted mid-run, and
lakeport killed mid-upload, still deliver every row exactly once and leave no multipart
upload open; and the `storage:` keys are checked before anything runs."""

import datetime as dt
import hashlib
import json
import math
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pyarrow import fs as pafs

from conftest import REPO, SUMMARY_RE, call, serving

sys.path.insert(0, str(REPO / "tests"))
import reports  # noqa: E402  (tests/reports.py, the report generator)

UTC = dt.timezone.utc
DAY1 = dt.datetime(2024, 6, 2, 1, 0, tzinfo=UTC)
DAY2 = dt.datetime(2024, 6, 3, 1, 0, tzinfo=UTC)
PART = 8 * 1024 * 1024  # lakeport's multipart part size


# -- helpers --------------------------------------------------------------------------------

def run(wd, task, env, expect=0):
    """`lakeport run TASK` with `env`; returns (result, summary dict or None)."""
    r = wd.lakeport("run", task, env=env, expect=expect)
    if expect != 0:
        return r, None
    m = SUMMARY_RE.match(r.lines[-1]) if r.lines else None
    assert m, f"last line is not the run summary\n{r}"
    return r, {k: int(v) for k, v in m.groupdict().items() if k in ("rows", "objects", "bytes")}


def listing(fs, prefix):
    """{key relative to the bucket: size} of every object under `bucket/prefix`."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
    except FileNotFoundError:
        return {}
    bucket = prefix.split("/", 1)[0]
    return {i.path[len(bucket) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}


def read_bytes(fs, path):
    with fs.open_input_stream(path, compression=None) as f:
        return f.read()


def read_parquet(fs, bucket, keys, columns=None):
    """One pyarrow table of the objects `keys`, read through the server."""
    tables = [pq.read_table(f"{bucket}/{k}", filesystem=fs, columns=columns) for k in keys]
    return pa.concat_tables(tables) if tables else None


def inventory_rows(start, n, size_base=0):
    return [{"bucket": "src", "key": f"k/{i:06d}", "version_id": "", "size": size_base + i,
             "last_modified": 1_717_000_000_000 + i * 1000, "storage_class": "STANDARD"}
            for i in range(start, start + n)]


def status(wd, task):
    r = wd.ok("status", task, "--json")
    return next(t for t in json.loads(r.out)["tasks"] if t["task"] == task)


def payload_rows(n, width, seed):
    """Rows of the `blobs` table: an id and `width` hex characters of random payload (hex of
    random bytes: nothing for a dictionary or a compressor to fold)."""
    rng = random.Random(seed)
    return [{"id": i, "payload": rng.randbytes(width // 2).hex()} for i in range(n)]


def blobs_task(wd, name, bucket, s3, **extra):
    """A task delivering the `blobs` table uncompressed into one big object per run."""
    wd.write_table("blobs", ["id"], [("id", "int64"), ("payload", "string")])
    keys = dict(source="blobs", destination=f"s3://{bucket}/lake", prefix="",
                parquet={"compression": "none", "encoding": "plain",
                         "target_file_size": "1GiB"},
                concurrency=1, storage=s3.storage())
    keys.update(extra)
    return wd.write_task(name, **keys)


def load_blobs(wd, rows):
    """Loads rows in files of at most ~32 MB (one transaction each)."""
    batch, size, n = [], 0, 0
    for r in rows:
        batch.append(r)
        size += len(r["payload"])
        if size > 32 << 20:
            n += 1
            wd.load("blobs", batch, name=f"in/blobs-{n}.ndjson")
            batch, size = [], 0
    if batch:
        wd.load("blobs", batch, name=f"in/blobs-{n + 1}.ndjson")


def check_blobs_exactly_once(fs, bucket, rows):
    """Every row of `rows` is in the bucket's lake exactly once, payload intact (read through
    the server); returns the Parquet objects."""
    objects = {k: v for k, v in listing(fs, f"{bucket}/lake").items()
               if k.endswith(".parquet")}
    table = read_parquet(fs, bucket, sorted(objects))
    assert table is not None, "no object delivered"
    con = duckdb.connect()
    try:
        lake = table  # noqa: F841  (read by DuckDB's replacement scan below)
        got = con.execute("SELECT count(*), count(DISTINCT id), min(id), max(id) "
                          "FROM lake").fetchone()
        digest = con.execute("SELECT md5(string_agg(payload, '' ORDER BY id)) "
                             "FROM lake").fetchone()[0]
    finally:
        con.close()
    assert got == (len(rows), len(rows), 0, len(rows) - 1), got
    want = hashlib.md5("".join(r["payload"] for r in rows).encode()).hexdigest()
    assert digest == want, "payloads read back differ from what was loaded"
    return objects


def no_open_uploads(wd, s3, bucket, task):
    """The server holds no unfinished multipart upload, and the task's upload journal is
    empty."""
    assert s3.uploads_in_progress() == [], "multipart uploads left open on the server"
    journal = listing(s3.fs(), f"{bucket}/lake/_lakeport/{task}/uploads")
    assert journal == {}, f"upload journal entries left: {journal}"


# -- delivery -------------------------------------------------------------------------------

def test_full_and_incremental_delivery_read_back_through_the_server(wd, s3_server):
    s3, fs = s3_server, s3_server.fs()
    bucket = s3.create_bucket("deliver")
    env = s3.credentials_env()
    wd.load("object_inventory", inventory_rows(0, 3000))
    wd.write_task("s3-full", destination=f"s3://{bucket}/lake/full", storage=s3.storage())
    wd.write_task("s3-inc", destination=f"s3://{bucket}/lake/inc", mode="incremental",
                  concurrency=1, storage=s3.storage())

    # Full: the objects in the bucket are exactly the run's, and hold the store's rows.
    _, summary = run(wd, "s3-full", env)
    st = status(wd, "s3-full")
    run_rec = st["last_run"]
    assert run_rec["status"] == "succeeded"
    objects = {k: v for k, v in listing(fs, f"{bucket}/lake/full").items()
               if k.endswith(".parquet")}
    assert sorted(objects) == sorted(f"lake/full/{o['path']}" for o in run_rec["objects"])
    assert summary["objects"] == len(objects) and summary["rows"] == 3000
    lake = read_parquet(fs, bucket, sorted(objects), columns=["bucket", "key", "size", "_seq"])
    store = wd.store_rows("object_inventory")
    con = duckdb.connect()
    try:
        n, distinct = con.execute("SELECT count(*), count(DISTINCT key) FROM lake").fetchone()
        got = set(con.execute("SELECT bucket, key, size FROM lake").fetchall())
    finally:
        con.close()
    assert n == distinct == len(store) == 3000
    assert got == {(r["bucket"], r["key"], r["size"]) for r in store}

    # Its run manifest sits beside the objects and names them with their MD5s.
    manifest = json.loads(read_bytes(fs, f"{bucket}/lake/full/_lakeport/s3-full/runs/"
                                         f"{run_rec['run_id']}.json"))
    assert manifest["destination"] == f"s3://{bucket}/lake/full"
    assert manifest["rows"] == 3000
    for o in manifest["objects"]:
        data = read_bytes(fs, f"{bucket}/lake/full/{o['path']}")
        assert len(data) == o["bytes"] and hashlib.md5(data).hexdigest() == o["md5"], o
        assert o["url"] == f"s3://{bucket}/lake/full/{o['path']}"
    no_open_uploads(wd, s3, bucket, "s3-full")

    # Incremental: a first run delivers everything, the second only what changed since.
    run(wd, "s3-inc", env)
    changed = inventory_rows(0, 100, size_base=1_000_000) + inventory_rows(3000, 50)
    wd.load("object_inventory", changed)
    _, second = run(wd, "s3-inc", env)
    assert second["rows"] == 150
    objects = {k: v for k, v in listing(fs, f"{bucket}/lake/inc").items()
               if k.endswith(".parquet")}
    lake = read_parquet(fs, bucket, sorted(objects), columns=["key", "size", "_seq"])
    con = duckdb.connect()
    try:
        assert con.execute("SELECT count(*) FROM lake").fetchone()[0] == 3150
        assert con.execute("SELECT count(*) FROM (SELECT _seq FROM lake GROUP BY _seq "
                           "HAVING count(*) > 1)").fetchone()[0] == 0
        newest = dict(con.execute("SELECT key, arg_max(size, _seq) FROM lake GROUP BY key")
                      .fetchall())
    finally:
        con.close()
    store = {r["key"]: r["size"] for r in wd.store_rows("object_inventory")}
    assert newest == store
    manifests = listing(fs, f"{bucket}/lake/inc/_lakeport/s3-inc/runs")
    assert len(manifests) == 2
    named = set()
    for key in manifests:
        named |= {f"lake/inc/{o['path']}" for o in json.loads(read_bytes(fs, f"{bucket}/{key}"))["objects"]}
    assert named == set(objects), "the manifests name exactly the objects in the bucket"
    no_open_uploads(wd, s3, bucket, "s3-inc")


def test_object_over_100_mb_goes_up_in_parts(wd, s3_server):
    s3, fs = s3_server, s3_server.fs()
    bucket = s3.create_bucket("bigobj")
    rows = payload_rows(1100, 100_000, seed=11)  # 110 MB of payload
    blobs_task(wd, "s3-big", bucket, s3)
    load_blobs(wd, rows)
    started = time.time()
    _, summary = run(wd, "s3-big", s3.credentials_env())
    took = time.time() - started
    objects = check_blobs_exactly_once(fs, bucket, rows)
    assert len(objects) == 1 and summary["objects"] == 1
    (key, size), = objects.items()
    assert size > 100_000_000, size
    # The server recorded a multipart upload of 8 MiB parts: its ETag is `<md5>-<parts>`.
    etag = s3.etag(bucket, key).strip('"')
    assert re.fullmatch(r"[0-9a-f]{32}-\d+", etag), etag
    assert int(etag.rsplit("-", 1)[1]) == math.ceil(size / PART), (etag, size)
    no_open_uploads(wd, s3, bucket, "s3-big")
    print(f"multipart object {size} bytes in {etag.rsplit('-', 1)[1]} parts, run {took:.1f}s")


# -- refusals -------------------------------------------------------------------------------

def test_missing_bucket_and_refused_credentials_stop_at_once(wd, s3_server):
    s3, fs = s3_server, s3_server.fs()
    bucket = s3.create_bucket("refusals")
    wd.load("object_inventory", inventory_rows(0, 200))
    env = s3.credentials_env()

    wd.write_task("s3-nobucket", destination="s3://no-such-bucket/lake", storage=s3.storage())
    started = time.time()
    r, _ = run(wd, "s3-nobucket", env, expect=1)
    assert time.time() - started < 10, "a missing bucket is not retried"
    assert "bucket or container of s3://no-such-bucket/lake does not exist" in r.err, r
    assert "create it" in r.err, r
    st = status(wd, "s3-nobucket")
    assert st["last_run"]["status"] == "failed" and "does not exist" in st["last_run"]["error"]
    assert st["last_success_ms"] is None and st["live_objects"] == 0, st
    assert not (s3.root / "no-such-bucket").exists(), "nothing was written"

    wd.write_task("s3-badkey", destination=f"s3://{bucket}/lake", storage=s3.storage())
    started = time.time()
    bad = {**env, "LAKEPORT_E2E_S3_SECRET": "not-the-secret"}
    r, _ = run(wd, "s3-badkey", bad, expect=1)
    assert time.time() - started < 10, "refused credentials are not retried"
    assert "refused the credentials" in r.err and "SignatureDoesNotMatch" in r.err, r
    assert "storage.*_env" in r.err, r
    st = status(wd, "s3-badkey")
    assert st["last_run"]["status"] == "failed" and st["last_success_ms"] is None, st
    assert listing(fs, bucket) == {}, "nothing was written"

    # A credential variable the task names but the environment lacks.
    unset = {"LAKEPORT_E2E_S3_KEY": s3.ACCESS_KEY}
    r = wd.lakeport("run", "s3-badkey", env=unset, expect=1)
    assert "LAKEPORT_E2E_S3_SECRET is not set" in r.err, r

    # The same run with the right key delivers everything.
    _, summary = run(wd, "s3-badkey", env)
    assert summary["rows"] == 200


# -- faults mid-run -------------------------------------------------------------------------

def wait_for_upload(s3, process, timeout=60):
    """Waits until the server holds a part of an open multipart upload while `process` runs
    (lakeport journals an upload before its first part)."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if s3.uploads_in_progress() and s3.parts_uploaded():
            return True
        time.sleep(0.002)
    return False


def test_lakeport_killed_mid_upload_is_taken_over_and_its_upload_aborted(wd, s3_server):
    s3, fs = s3_server, s3_server.fs()
    bucket = s3.create_bucket("killed")
    rows = payload_rows(500, 100_000, seed=12)  # 50 MB: 6 parts
    blobs_task(wd, "s3-kill", bucket, s3)
    load_blobs(wd, rows)
    env = s3.credentials_env()
    before = set(s3.uploads_in_progress())
    p = wd.spawn("run", "s3-kill", env=env, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
    try:
        assert wait_for_upload(s3, p), "the run ended before its multipart upload began"
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    left = set(s3.uploads_in_progress()) - before
    assert left, "the killed run left no open upload (the kill came too late)"
    journal = listing(fs, f"{bucket}/lake/_lakeport/s3-kill/uploads")
    assert len(journal) == len(left), (journal, left)

    r, summary = run(wd, "s3-kill", env)
    assert "took over" in r.err and "aborted multipart uploads" in r.err, r
    assert summary["rows"] == len(rows)
    check_blobs_exactly_once(fs, bucket, rows)
    no_open_uploads(wd, s3, bucket, "s3-kill")


def test_server_killed_and_restarted_mid_run_delivers_exactly_once(wd, s3_server):
    s3, fs = s3_server, s3_server.fs()
    bucket = s3.create_bucket("restart")
    rows = payload_rows(700, 100_000, seed=13)  # 70 MB: 9 parts
    blobs_task(wd, "s3-restart", bucket, s3,
               retry={"initial": "200ms", "max_interval": "2s", "max_elapsed": "60s"})
    load_blobs(wd, rows)
    env = s3.credentials_env()
    p = wd.spawn("run", "s3-restart", env=env, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_upload(s3, p), "the run ended before its multipart upload began"
        s3.kill()
        time.sleep(1.0)
        s3.start()
        out, err = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if s3.process.poll() is not None:
            s3.start()
    runs = 1
    if p.returncode != 0:
        # The run gave up while the server was away: it failed whole, and the next run
        # delivers the same rows.
        assert "object storage" in err, err
        run(wd, "s3-restart", env)
        runs = 2
    st = status(wd, "s3-restart")
    assert st["last_run"]["status"] == "succeeded", st
    check_blobs_exactly_once(fs, bucket, rows)
    manifests = listing(fs, f"{bucket}/lake/_lakeport/s3-restart/runs")
    assert len(manifests) == 1, manifests
    no_open_uploads(wd, s3, bucket, "s3-restart")
    print(f"server restarted mid-upload: delivered in {runs} run(s)")


# -- inventory reports on the server ---------------------------------------------------------

def upload_tree(fs, local_root, bucket):
    """Copies every file under `local_root` to `bucket`, keys relative to the root."""
    for path in sorted(Path(local_root).rglob("*")):
        if path.is_file():
            key = path.relative_to(local_root).as_posix()
            # compression=None: pyarrow would gzip a `.gz` name again by default.
            with fs.open_output_stream(f"{bucket}/{key}", compression=None) as f:
                f.write(path.read_bytes())


def store_equals(wd, report):
    got = {(r["bucket"], r["key"], r["version_id"]): r
           for r in wd.store_rows("object_inventory") if r["bucket"] == report.bucket}
    want = report.truth_by_key()
    assert set(got) == set(want), (len(got), len(want))
    diffs = [(k, c) for k, w in want.items() for c in reports.INVENTORY_COLUMNS
             if got[k].get(c) != w[c]]
    assert not diffs, diffs[:5]


def test_inventory_import_and_watcher_pass_from_the_server(wd, s3_server):
    s3, fs = s3_server, s3_server.fs()
    bucket = s3.create_bucket("inv-reports")
    local = wd.root / "reports-local"
    day1 = reports.make_objects(120, seed=401, bucket="s3-src")
    r1 = reports.write_s3(local, day1, fmt="csv.gz", created=DAY1, dest_bucket=bucket)
    r2 = reports.write_s3(local, reports.mutate(day1, seed=402)[0], fmt="parquet", created=DAY2,
                          dest_bucket=bucket)
    upload_tree(fs, local, bucket)
    rel1 = r1.manifest.relative_to(local).as_posix()

    # The command line: store flags, credentials from the standard environment variables.
    aws_env = {"AWS_ACCESS_KEY_ID": s3.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": s3.SECRET_KEY}
    r = wd.lakeport("inventory", "import", f"s3://{bucket}/{rel1}", "--json",
                    "--endpoint", s3.endpoint, "--region", s3.REGION, "--allow-http",
                    "--path-style", env=aws_env, expect=0)
    rec = json.loads(r.out)
    assert rec["outcome"] == "applied" and rec["manifest_url"] == f"s3://{bucket}/{rel1}"
    assert rec["rows"] == r1.count
    store_equals(wd, r1)

    # Without --allow-http the plain-http endpoint is refused before anything is read.
    r = wd.lakeport("inventory", "import", f"s3://{bucket}/{rel1}", "--endpoint",
                    s3.endpoint, env=aws_env, expect=2)
    assert "--endpoint:" in r.err and "--allow-http" in r.err, r

    # A watcher file with a storage section, run by the service: it finds both reports,
    # knows the first, applies the second.
    wd.write("pipelines/s3-watch.yaml", yaml.safe_dump({
        "kind": "inventory-watch", "name": "s3-watch", "root": f"s3://{bucket}/inventory",
        "schedule": "* * * * * *", "storage": s3.storage()}, sort_keys=False))
    wd.ok("validate")
    with serving(wd, env=s3.credentials_env()) as (p, base):
        def applied():
            code, body = call(base, "/api/watchers/s3-watch")
            assert code == 200, body
            rep = body["reports"]
            assert rep["failed"] == 0, body
            return rep["applied"] >= 1 and rep["already_imported"] >= 1 and body
        deadline = time.time() + 60
        body = None
        while time.time() < deadline and not body:
            body = applied()
            time.sleep(0.2)
        assert body, "the watcher did not apply the second report"
    store_equals(wd, r2)
    imports = json.loads(wd.ok("status", "--json").out)["imports"]
    rel2 = r2.manifest.relative_to(local).as_posix()
    assert {f"s3://{bucket}/{rel1}", f"s3://{bucket}/{rel2}"} <= {
        i["manifest_url"] for i in imports}, imports


# -- checks of the storage keys ---------------------------------------------------------------

def test_storage_keys_are_checked(wd):
    base = {"endpoint": "http://127.0.0.1:9", "allow_http": True, "region": "us-east-1",
            "access_key_id_env": "K", "secret_access_key_env": "S"}
    cases = {
        "st-literal": ({**base, "secret_access_key": "wJalrXUtnFEMIK7MDENGbPxRfiCY"},
                       "s3://b/l", "storage.secret_access_key: secrets are never written in pipeline files"),
        "st-unknown": ({**base, "endpoint_url": "http://x"}, "s3://b/l",
                       "storage.endpoint_url: unknown key; expected one of endpoint"),
        "st-badurl": ({**base, "endpoint": "127.0.0.1:9000"}, "s3://b/l",
                      "storage.endpoint: \"127.0.0.1:9000\": expected an http:// or https:// URL such as"),
        "st-http": ({k: v for k, v in base.items() if k != "allow_http"}, "s3://b/l",
                    "storage.endpoint: \"http://127.0.0.1:9\" is plain http"),
        "st-region-gs": ({"region": "us-east-1"}, "gs://b/l",
                         "storage.region: applies to s3:// only; this store is gs://"),
        "st-local": ({"region": "us-east-1"}, "lake/here",
                     "storage.region: store options apply to s3://, gs:// and az:// URLs"),
        "st-half": ({"access_key_id_env": "K"}, "s3://b/l",
                    "storage.access_key_id_env: needs secret_access_key_env too"),
        "st-varname": ({"access_key_id_env": "K", "secret_access_key_env": "abc/DEF+ghi"},
                       "s3://b/l", "storage.secret_access_key_env: expected the name of an "
                                   "environment variable"),
        "st-profile": ({"profile": "prod"}, "s3://b/l",
                       "storage.profile: object_store reads no AWS profile files"),
    }
    for name, (storage, dest, _) in cases.items():
        wd.write_task(name, destination=dest, storage=storage)
    wd.write("pipelines/st-watch.yaml", yaml.safe_dump({
        "kind": "inventory-watch", "name": "st-watch", "root": "s3://reports/inv",
        "schedule": "@hourly", "storage": {"sas_token": "sv=2024&sig=abc"}}))
    r = wd.lakeport("validate", expect=2)
    for name, (_, _, message) in cases.items():
        want = f"pipelines/{name}.yaml: {message}"
        assert any(want in line for line in r.err_lines), f"missing {want!r}\n{r}"
    assert any("pipelines/st-watch.yaml: storage.sas_token: secrets are never written in pipeline files" in line
               and "sas_token_env" in line for line in r.err_lines), r
    # Neither secret appears in the messages.
    assert "wJalrXUtnFEMIK7MDENGbPxRfiCY" not in r.err and "abc/DEF+ghi" not in r.err, r
    assert "sig=abc" not in r.err, r
