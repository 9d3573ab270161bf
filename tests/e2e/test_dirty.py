"""Dirty rows: values that do not fit their lake column are counted per reason in the run
record, written as NDJSON under <destination>/_dirty/<task>/ when `dirty: {keep: true}`, and
never delivered; the clean rows are delivered unchanged."""

import base64
import decimal
import json
from collections import Counter

from conftest import ms_of, read_lake

# id,n,d,bin,ts_text  (CSV: an empty non-key field is NULL; `inf` is a double infinity)
CSV = """\
id,n,d,bin,ts_text
1,5,1.25,aGVsbG8=,2024-01-01T00:00:00Z
2,-7,-3.5,,2024-02-01T12:00:00+01:00
3,3000000000,1,YQ==,2024-01-01T00:00:00Z
4,1,inf,YQ==,2024-01-01T00:00:00Z
5,1,1,//4=,2024-01-01T00:00:00Z
6,1,1,YQ==,yesterday
7,,,,
8,-2147483648,99999999.99,w7xiZXI=,1969-07-20T20:17:40Z
9,2147483648,2,YQ==,2024-01-01T00:00:00Z
"""
CLEAN = {1, 2, 7, 8}
DIRTY = {3: ("int32_overflow", "n"), 4: ("decimal_not_finite", "d"),
         5: ("invalid_utf8", "bin"), 6: ("invalid_timestamp", "ts_text"),
         9: ("int32_overflow", "n")}
LAKE = [("id", "id", "int64", "int64"), ("n", "n", "int32", "int64"),
        ("d", "d", "decimal(10,2)", "double"), ("bin", "bin", "string", "binary"),
        ("ts_text", "ts_text", "timestamp_ms", "string")]


def setup(wd, keep):
    wd.write_table("dirty_src", ["id"], [("id", "int64"), ("n", "int64"), ("d", "double"),
                                         ("bin", "binary"), ("ts_text", "string")])
    wd.write_schema("dirty_lake", [(s, n, t) for s, n, t, _ in LAKE])
    task = "dirty-keep" if keep else "dirty-drop"
    wd.write_task(task, source="dirty_src", schema="schemas/dirty_lake.yaml",
                  destination=f"lake/{task}", dirty={"keep": keep},
                  concurrency=2)
    wd.write("in.csv", CSV)
    wd.ok("load", "dirty_src", "in.csv")
    return task


def check_run(wd, task):
    _, summary = wd.run(task)
    want = Counter(reason for reason, _ in DIRTY.values())
    assert summary["dirty"] == len(DIRTY), summary
    assert summary["rows"] == len(CLEAN), summary
    run = wd.status(task)["last_run"]
    assert run["status"] == "succeeded", run
    assert run["dirty"] == dict(want), run["dirty"]
    assert run["rows"] == len(CLEAN), run
    # Only the clean rows are in the lake, with their values converted exactly.
    files = wd.objects(task)
    rows = {r["id"]: r for r in read_lake(files, LAKE)}
    assert set(rows) == CLEAN
    assert rows[1]["n"] == 5 and rows[1]["d"] == decimal.Decimal("1.25")
    assert rows[1]["bin"] == "hello" and rows[1]["ts_text"] == ms_of("2024-01-01T00:00:00Z")
    assert rows[2]["bin"] is None and rows[2]["ts_text"] == ms_of("2024-02-01T11:00:00Z")
    assert rows[7] == {"id": 7, "n": None, "d": None, "bin": None, "ts_text": None,
                       "__file": rows[7]["__file"]}
    assert rows[8]["n"] == -2147483648 and rows[8]["d"] == decimal.Decimal("99999999.99")
    assert rows[8]["bin"] == "über" and rows[8]["ts_text"] == ms_of("1969-07-20T20:17:40Z")


def test_dirty_rows_counted_and_kept(wd):
    task = setup(wd, keep=True)
    check_run(wd, task)
    dirty_dir = wd.destination(task) / "_dirty" / task
    files = [p for p in dirty_dir.rglob("*") if p.is_file()]
    assert files, f"no dirty-data file under {dirty_dir}"
    records = [json.loads(line) for f in files
               for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(records) == len(DIRTY), records
    seqs = {r["id"]: r["_seq"] for r in wd.store_rows("dirty_src")}
    for rec in records:
        assert set(rec) >= {"reason", "column", "detail", "_seq", "row"}, rec
        rid = rec["row"]["id"]
        reason, column = DIRTY[rid]
        assert rec["reason"] == reason and rec["column"] == column, rec
        assert isinstance(rec["detail"], str) and rec["detail"], rec
        assert rec["_seq"] == seqs[rid], rec
    by_id = {rec["row"]["id"]: rec["row"] for rec in records}
    assert by_id[5]["bin"] == base64.b64encode(b"\xff\xfe").decode()
    assert by_id[6]["ts_text"] == "yesterday"
    assert by_id[3]["n"] == 3000000000
    # Dirty-data files are not Parquet objects of the task.
    assert not any(p.suffix == ".parquet" for p in files)


def test_dirty_rows_counted_not_kept(wd):
    task = setup(wd, keep=False)
    check_run(wd, task)
    dirty_dir = wd.destination(task) / "_dirty"
    assert not dirty_dir.exists() or not any(p.is_file() for p in dirty_dir.rglob("*"))


def test_null_partition_time_is_counted_not_lost(wd):
    # A row whose partition-time column is NULL has no partition: it may be dirty, but it
    # must not vanish uncounted.
    wd.write_task("null-time", prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "last_modified"})
    wd.load("object_inventory", [
        {"bucket": "b", "key": f"k{n}", "version_id": "",
         "last_modified": None if n % 3 == 0 else "2024-01-02T03:04:05Z"} for n in range(9)])
    _, summary = wd.run("null-time")
    delivered = len(read_lake(wd.objects("null-time"), [("key", "key", "string", "string")]))
    assert delivered == summary["rows"]
    assert summary["rows"] + summary["dirty"] == 9, summary
    assert summary["rows"] >= 6, summary
