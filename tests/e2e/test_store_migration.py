"""A SQLite store made by the lakeport of 2026-12-07 (tests/data/store-2026-12-07.tar.gz, made by
tests/data/make_store_2026_12_07.py: two S3 reports imported, rows loaded with and without a
prefix, a delete, a table of its own, a full and an incremental delivery of each) is read as it
is by the commands that only read, and rebuilt in the present layout by the first command that
writes: object_inventory's `prefix` computed from the key instead of stored. Every row keeps
its values, `_seq`, `_write_time` and tombstone; the run records, live sets and checkpoints
are untouched; deliveries and imports go on from where they were; any SQL reader finds the
current state in the view `object_inventory`."""

import datetime as dt
import json
import re
import sqlite3
import sys
import tarfile

from conftest import REPO, duck

sys.path.insert(0, str(REPO / "scripts"))
from bench import sqlite_extension  # noqa: E402  (the duckdb-ext-sqlite package's extension)

sys.path.insert(0, str(REPO / "tests"))
import reports  # noqa: E402  (tests/reports.py, the report generator)

FIXTURE = REPO / "tests" / "data" / "store-2026-12-07.tar.gz"
UTC = dt.timezone.utc
KEY = ("bucket", "key", "version_id")
LAKEPORT_TABLES = ("_lakeport_meta", "_lakeport_tables", "_lakeport_runs", "_lakeport_tasks",
                   "_lakeport_live", "_lakeport_imports", "_lakeport_store", "data_items")


def unpack(wd):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(wd.root, filter="data")


def read(path, sql):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def inventory_rows(wd):
    """Every row of data_object_inventory, tombstones too, by key (without `_folder_len` and
    `_etag`, the hidden columns that hold what `prefix` and `etag` show)."""
    rows = read(wd.store_path, 'SELECT * FROM "data_object_inventory"')
    return {tuple(r[k] for k in KEY): {c: v for c, v in r.items()
                                       if c not in ("_folder_len", "_etag")}
            for r in rows}


def computes_prefix(wd):
    """table_xinfo's `hidden` of object_inventory's prefix: 2 when computed (virtual)."""
    (row,) = read(wd.store_path, "SELECT hidden FROM pragma_table_xinfo('data_object_inventory') "
                                 "WHERE name = 'prefix'")
    return row["hidden"] == 2


def lakeport_state(wd):
    return {t: sorted(map(repr, (tuple(r.values()) for r in read(wd.store_path, f'SELECT * FROM "{t}"'))))
            for t in LAKEPORT_TABLES}


def meta(wd):
    """The store's counters (`_lakeport_meta`: `seq`, `last_write_time`)."""
    return {r["key"]: r["value"] for r in read(wd.store_path, 'SELECT * FROM "_lakeport_meta"')}


def folder(key):
    return key[:key.rfind("/") + 1]


def test_a_store_of_2026_12_07_is_rebuilt_by_the_first_write_and_keeps_every_row(wd):
    unpack(wd)
    before = inventory_rows(wd)
    state = lakeport_state(wd)
    old_meta = meta(wd)
    assert not computes_prefix(wd)
    assert len(before) == 221 and sum(r["_deleted"] for r in before.values()) == 16
    # The row loaded with a prefix that is not its key's folder, and one loaded with none.
    assert before[("loaded", "given/wrong", "")]["prefix"] == "elsewhere/"
    assert before[("loaded", "a/b/c d.txt", "")]["prefix"] is None

    # Commands that only read take the store as it is.
    tables = {t["table"]: t for t in json.loads(wd.ok("tables", "--json").out)}
    assert tables["object_inventory"]["rows"] == 205, tables
    listed = json.loads(wd.ok("ls", "loaded", "--json").out)
    assert [o["key"] for o in listed["objects"]] == ["a/b/c d.txt", "dir/", "given/wrong", "x//y",
                                                     "ü/é/x"], listed
    assert not computes_prefix(wd) and inventory_rows(wd) == before

    # The first command that writes rebuilds the table, once, and then writes.
    wd.write_ndjson("new.ndjson", [{"bucket": "loaded", "key": "new/one", "version_id": "",
                                    "size": 1}])
    first = wd.ok("load", "object_inventory", "new.ndjson")
    assert "rebuilding the table in the present layout" in first.err, first
    assert "table rebuilt table=object_inventory rows=221" in first.err, first
    assert computes_prefix(wd)
    after = inventory_rows(wd)
    assert set(after) == set(before) | {("loaded", "new/one", "")}
    for key, old in before.items():
        new = after[key]
        want = None if old["_deleted"] else folder(key[1])
        # No copied row is in the new, partial _seq index; the floor below says so.
        assert new == {**old, "prefix": want, "_seq_indexed": None}, (key, old, new)
    assert after[("loaded", "new/one", "")]["_seq_indexed"] == 1
    # Every ETag of 32 lowercase hex digits is now kept as its 16 bytes in `_etag`
    # (src/store/sqlite/schema.rs, packed_etag); `etag` shows the text it was (compared above).
    hexes = {k for k, r in before.items()
             if isinstance(r["etag"], str) and re.fullmatch(r"[0-9a-f]{32}", r["etag"])}
    packed = {(r["bucket"], r["key"], r["version_id"]) for r in read(
        wd.store_path, "SELECT bucket, key, version_id FROM data_object_inventory "
                       "WHERE typeof(_etag) = 'blob' AND length(_etag) = 16")}
    assert hexes and packed == hexes, (len(hexes), len(packed))
    assert after[("loaded", "given/wrong", "")]["prefix"] == "given/"
    assert after[("loaded", "new/one", "")]["prefix"] == "new/"
    assert meta(wd)["seq"] == old_meta["seq"] + 1
    assert meta(wd)["seq_index_floor:object_inventory"] == max(r["_seq"] for r in before.values())
    now = lakeport_state(wd)
    for t in LAKEPORT_TABLES:
        if t == "data_items":
            # The other data table gains the _seq_indexed column, NULL in every row (its
            # whole _seq index is below its floor); nothing else of it changes.
            assert now[t] == [r[:-1] + ", None)" for r in state[t]], t
            assert meta(wd)["seq_index_floor:items"] == max(
                r["_seq"] for r in read(wd.store_path, 'SELECT "_seq" FROM "data_items"'))
        elif t != "_lakeport_meta":
            assert now[t] == state[t], t
    assert read(wd.store_path, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    indexes = {r["name"] for r in read(wd.store_path, "SELECT name FROM sqlite_master WHERE "
                                       "type = 'index' AND tbl_name = 'data_object_inventory'")}
    # The release of 2026-12-07 also kept a summary index for du; the migration drops it.
    assert indexes == {"data_object_inventory_by_seq"}

    second = wd.ok("load", "object_inventory", "new.ndjson")
    assert "rebuilding" not in second.err, second

    # Any SQL reader: the view holds the live rows with their computed prefix (DuckDB's
    # sqlite reader does not show a table's generated columns, the view's it does).
    live = {k: r for k, r in after.items() if not r["_deleted"]}
    con = duck()
    try:
        con.execute(f"LOAD '{sqlite_extension()}'")
        viewed = con.execute("SELECT bucket, key, version_id, prefix, size, _seq "
                             "FROM sqlite_scan(?, 'object_inventory')",
                             [str(wd.store_path)]).fetchall()
    finally:
        con.close()
    assert {(b, k, v): (p, s, q) for b, k, v, p, s, q in viewed} == \
        {k: (r["prefix"], r["size"], r["_seq"]) for k, r in live.items()}

    # Deliveries go on from their checkpoints: the incremental task delivers the one new row,
    # the full one every live row, each with its key's folder.
    _, inc = wd.run("inv-inc")
    assert inc["rows"] == 1, inc
    _, full = wd.run("inv-full")
    assert full["rows"] == len(live), full
    files = [str(p) for p in (wd.root / "lake" / "inv-full").rglob("*.parquet")]
    con = duck()
    try:
        bad = con.execute("SELECT count(*) FROM read_parquet(?) WHERE prefix IS DISTINCT FROM "
                          "left(key, length(key) - length(regexp_extract(key, '[^/]*$')))",
                          [files]).fetchone()[0]
        total = con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()[0]
    finally:
        con.close()
    assert (total, bad) == (len(live), 0)

    # And the next day's report imports into the rebuilt table, change by change.
    objs = reports.make_objects(n=200, seed=11, bucket="src-bucket")
    objs, _ = reports.mutate(objs, seed=12, add=15, change=15, remove=15)
    objs, diff = reports.mutate(objs, seed=13, add=7, change=5, remove=9)
    day3 = reports.write_s3(wd.root / "reports", objs,
                            created=dt.datetime(2024, 6, 4, 1, 0, tzinfo=UTC))
    rec = json.loads(wd.ok("inventory", "import", day3.url, "--json").out)
    assert (rec["inserted"], rec["updated"], rec["deleted"]) == \
        (len(diff["added"]), len(diff["changed"]), len(diff["removed"])), rec
    rows = inventory_rows(wd)
    src = {k: r for k, r in rows.items() if k[0] == "src-bucket" and not r["_deleted"]}
    assert len(src) == len(objs)
    assert all(r["prefix"] == folder(k[1]) for k, r in src.items())
