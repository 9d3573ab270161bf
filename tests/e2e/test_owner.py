"""One lake, one owner (issue 18, point 1), against the real binary.

- The scenario a new user hit: a second, empty store delivering the same task into the same
  destination is refused before it writes or deletes anything, naming both stores and
  `lakeport claim`; the lake stays byte for byte as the real store left it, DuckDB reads the
  real store's rows, and the real store goes on delivering.
- The first run claims the destination with `_lakeport/<task>/owner.json`; two stores racing
  to claim one destination (a local folder, and an S3 bucket on the session's s3s-fs, where
  the claim is a conditional put) end with exactly one owner that delivered.
- `lakeport claim <task> --force` moves a task deliberately: the new store's next run delivers
  exactly its rows and removes the previous owner's objects; the marker records the move; the
  old store is refused from then on, and so is its `store compact`.
- A destination without a marker that holds objects another store delivered is not claimed
  by a run: `lakeport claim` does it deliberately.
"""

import hashlib
import json
import sqlite3
import threading

from pyarrow import fs as pafs

from conftest import Workdir, duck

ROWS = 1000


def inventory_rows(n, bucket="b", start=0):
    return [{"bucket": bucket, "key": f"k/{i:05d}", "version_id": "", "size": i,
             "last_modified": 1_717_000_000_000 + i} for i in range(start, start + n)]


def lake_state(root):
    """{relative path: md5} of every file under `root`."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def lake_keys(dest):
    """Every (bucket, key) row of the Parquet objects of `dest`, read by DuckDB."""
    con = duck()
    try:
        return sorted(con.execute(
            f"SELECT bucket, key FROM read_parquet('{dest}/**/*.parquet', "
            f"hive_partitioning=false)").fetchall())
    finally:
        con.close()


def store_id(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute('SELECT "id" FROM "_lakeport_store"').fetchone()[0]
    finally:
        con.close()


def second_store(wd, rows):
    """The same project with another store, `b/lakeport.db`, holding `rows` of the inventory."""
    (wd.root / "b").mkdir()
    other = Workdir(wd.root, wd.binary)
    other.store = "sqlite:b/lakeport.db"
    other.store_path = wd.root / "b/lakeport.db"
    other.load("object_inventory", rows, name="in/b.ndjson")
    return other


def project(wd, task="inv"):
    """The task of the scenario: full delivery of the inventory into lake/<task>."""
    wd.write_task(task, concurrency=1)
    wd.load("object_inventory", inventory_rows(ROWS))
    return wd.destination(task)


def test_a_second_store_is_refused_and_the_lake_is_untouched(wd):
    dest = project(wd)
    wd.run("inv")
    marker = json.loads((dest / "_lakeport/inv/owner.json").read_text())
    real_id = store_id(wd.store_path)
    assert marker["store_id"] == real_id and marker["task"] == "inv"
    assert marker["store"].endswith("/lakeport.db")
    before = lake_state(dest)
    assert len(lake_keys(dest)) == ROWS

    # From a subfolder, with a store of its own (what a missing project default made).
    sub = wd.root / "sub"
    sub.mkdir()
    r = wd.bare("--store", "sqlite:other.db", "--pipelines", "../pipelines",
                "--schemas", "../schemas", "run", "inv", cwd=sub, expect=1)
    other_id = store_id(sub / "other.db")
    assert other_id != real_id
    for needle in (real_id, other_id, "lakeport claim inv --force",
                   "Nothing was written or deleted", str(wd.store_path)):
        assert needle in r.err, f"{needle!r} not in\n{r.err}"
    assert lake_state(dest) == before
    assert lake_keys(dest) == [("b", f"k/{i:05d}") for i in range(ROWS)]
    # The refused store records the refusal as its failed run.
    status = json.loads(wd.bare("--store", "sqlite:other.db", "--pipelines", "../pipelines",
                                "status", "inv", "--json", cwd=sub, expect=0).out)
    last = status["tasks"][0]["last_run"]
    assert last["status"] == "failed" and "belongs to another store" in last["error"]

    # The real store goes on: its status still names the objects, its next run delivers.
    assert wd.status("inv")["live_objects"] == sum(1 for p in before if p.endswith(".parquet"))
    wd.load("object_inventory", inventory_rows(10, start=ROWS))
    wd.run("inv")
    assert len(lake_keys(dest)) == ROWS + 10


def test_two_stores_racing_for_one_destination_end_with_one_owner(wd):
    dest = project(wd)
    b = second_store(wd, inventory_rows(5, bucket="other"))
    results = {}

    def run(name, store):
        results[name] = store.lakeport("run", "inv")

    threads = [threading.Thread(target=run, args=("a", wd)),
               threading.Thread(target=run, args=("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.code for r in results.values())
    assert codes == [0, 1], "\n".join(map(str, results.values()))
    winner = "a" if results["a"].code == 0 else "b"
    marker = json.loads((dest / "_lakeport/inv/owner.json").read_text())
    owner_db = (wd if winner == "a" else b).store_path
    assert marker["store_id"] == store_id(owner_db)
    expected = ([("b", f"k/{i:05d}") for i in range(ROWS)] if winner == "a"
                else [("other", f"k/{i:05d}") for i in range(5)])
    assert lake_keys(dest) == expected
    loser = results["b" if winner == "a" else "a"]
    assert "belongs to another store" in loser.err, loser


def test_claim_force_moves_a_task_and_the_old_store_is_refused(wd):
    dest = project(wd)
    wd.write_task("inc", concurrency=1, mode="incremental", deletes="emit")
    wd.run("inv")
    wd.run("inc")
    a_id = store_id(wd.store_path)
    # Store B holds another state of the table (300 of the rows, changed).
    b = second_store(wd, [dict(r, size=r["size"] + 1) for r in inventory_rows(300)])
    b_id = store_id(b.store_path)
    refused = b.lakeport("claim", "inv", expect=1)
    assert a_id in refused.err and "--force" in refused.err, refused
    a_objects = sorted(p for p in lake_state(dest) if p.endswith(".parquet"))

    moved = b.lakeport("claim", "inv", "--force", "--json", expect=0)
    claimed = json.loads(moved.out)
    assert claimed["adopted_objects"] == len(a_objects) and claimed["moved_manifests"] == 1
    marker = json.loads((dest / "_lakeport/inv/owner.json").read_text())
    assert marker["store_id"] == b_id and marker["moved_from"]["store_id"] == a_id
    assert (dest / f"_lakeport/inv/previous/{a_id}/runs").is_dir()
    # Until B runs, the lake still holds A's delivery.
    assert len(lake_keys(dest)) == ROWS

    r = b.lakeport("run", "inv", expect=0)
    assert r.lines[-1].startswith("inv: 300 rows"), r
    assert lake_keys(dest) == [("b", f"k/{i:05d}") for i in range(300)]
    con = duck()
    sizes = con.execute(f"SELECT min(size), max(size) FROM read_parquet('{dest}/**/*.parquet', "
                        "hive_partitioning=false)").fetchone()
    con.close()
    assert sizes == (1, 300)
    left = sorted(p for p in lake_state(dest) if p.endswith(".parquet"))
    assert not set(left) & set(a_objects), "the previous owner's objects were not removed"

    # The old store is refused now, before it touches anything.
    before = lake_state(dest)
    r = wd.lakeport("run", "inv", expect=1)
    assert b_id in r.err and a_id in r.err, r
    assert lake_state(dest) == before

    # `store compact` of a store that does not own a task delivering deletes is refused
    # before it purges anything.
    b.lakeport("claim", "inc", "--force", expect=0)
    wd.lakeport("load", "object_inventory", wd.write_ndjson("in/del.ndjson", [
        {"bucket": "b", "key": "k/00000", "version_id": ""}]), "--delete", expect=0)
    tombstones = [t for t in wd.tables_json() if t["table"] == "object_inventory"][0]
    r = wd.lakeport("store", "compact", expect=1)
    assert "belongs to another store" in r.err, r
    after = [t for t in wd.tables_json() if t["table"] == "object_inventory"][0]
    assert after == tombstones


def test_an_unclaimed_destination_with_foreign_objects_is_claimed_deliberately(wd):
    dest = project(wd)
    wd.run("inv")
    (dest / "_lakeport/inv/owner.json").unlink()  # as lakeport left lakes before owners
    before = lake_state(dest)
    b = second_store(wd, inventory_rows(7))
    r = b.lakeport("run", "inv", expect=1)
    assert "no store has claimed it" in r.err and "lakeport claim inv" in r.err, r
    assert lake_state(dest) == before
    # The store that delivered them claims it again by just running.
    wd.run("inv")
    assert json.loads((dest / "_lakeport/inv/owner.json").read_text())["store_id"] == \
        store_id(wd.store_path)


def test_on_s3_a_second_store_is_refused(wd, s3_server):
    """On S3 the claim is a conditional put (If-None-Match: *). The test server (s3s-fs) checks
    the condition and writes in two steps, so two first runs in the same instant can both pass
    it there (real S3 decides atomically): the race is tested on a local folder above, and
    here the second store comes after the first."""
    bucket = s3_server.create_bucket("owned")
    env = s3_server.credentials_env()
    wd.write_task("inv", concurrency=1, destination=f"s3://{bucket}/lake/inv",
                  storage=s3_server.storage())
    wd.load("object_inventory", inventory_rows(50))
    b = second_store(wd, inventory_rows(3))
    wd.lakeport("run", "inv", env=env, expect=0)
    fs = s3_server.fs()

    def lake():
        """{key: md5} of every object under the destination, read through the server."""
        infos = fs.get_file_info(pafs.FileSelector(f"{bucket}/lake/inv", recursive=True))
        out = {}
        for info in infos:
            if info.type == pafs.FileType.File:
                with fs.open_input_stream(info.path) as f:
                    out[info.path] = hashlib.md5(f.read()).hexdigest()
        return out

    before = lake()
    with fs.open_input_stream(f"{bucket}/lake/inv/_lakeport/inv/owner.json") as f:
        marker = json.loads(f.read())
    assert marker["store_id"] == store_id(wd.store_path)
    refused = b.lakeport("run", "inv", env=env, expect=1)
    assert "belongs to another store" in refused.err and store_id(b.store_path) in refused.err
    assert lake() == before
