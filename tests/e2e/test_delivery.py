"""Full-mode delivery read back by DuckDB and pyarrow: every object, every column type, every
value, the partition of every row (column, write-time and run-time partitioning, UTC and
Europe/Berlin), object names and footer metadata, and what a second run leaves behind."""

import base64
import json
import shutil
import subprocess
import sys

from conftest import REPO, load_counts, ms_of, render_prefix, verify_delivery

ALL_TYPES = [("id", "int64"), ("s", "string"), ("i", "int64"), ("d", "double"),
             ("b", "bool"), ("bin", "binary"), ("ts", "timestamp_ms")]


def all_types_rows():
    """Rows covering every store type, NULLs, extremes, and times around Berlin's DST
    changes, midnight and 1970."""
    times = [
        "2024-03-31T00:30:00Z",   # 01:30 CET, before the spring change
        "2024-03-31T01:30:00Z",   # 03:30 CEST, after it
        "2024-10-27T00:30:00Z",   # 02:30 CEST, first 02:xx of the autumn change
        "2024-10-27T01:30:00Z",   # 02:30 CET, second 02:xx
        "2023-12-31T23:30:00Z",   # already 2024-01-01 in Berlin
        "1969-12-31T23:30:00Z",   # before 1970 in UTC, 1970-01-01 00:30 in Berlin
        "1950-06-15T11:59:59.999Z",
        "2024-02-29T12:00:00.001Z",
    ]
    rows = []
    for n, t in enumerate(times):
        rows.append({
            "id": n, "s": ["plain", "", "Grüße, 世界", "tab\tand \"quote\"", "a/b c",
                           "😀 emoji", "x" * 300, "newline\nhere"][n],
            "i": [0, -1, 2**62, -(2**63), 2**63 - 1, 42, -42, 7][n],
            "d": [0.0, -0.5, 1e300, -2.5e-300, 3.141592653589793, 1.0, -1e15, 0.1][n],
            "b": [True, False, True, False, True, False, True, False][n],
            "bin": base64.b64encode([b"", b"\x00\xff\x10", b"hello", bytes(range(256)),
                                     b"\xc3\x28", b"x", b"\n", b"0"][n]).decode(),
            # One time as integer epoch ms, the others as RFC 3339.
            "ts": ms_of(t) if n == 7 else t,
        })
    # NULL in every nullable column: missing keys and JSON null.
    rows.append({"id": 100, "ts": "2024-06-01T00:00:00Z", "s": None, "d": None})
    return rows


def test_every_store_type_column_partitioned_in_berlin(wd):
    wd.write_table("all_types", ["id"], ALL_TYPES)
    wd.write_task("types-berlin", source="all_types", destination="lake/types",
                  prefix="$yyyy/$MM/$dd/$HH",
                  partition_time={"from": "column", "column": "ts", "timezone": "Europe/Berlin"},
                  concurrency=2, catalog={"dialect": "hive", "table": "types_berlin"})
    r = wd.load("all_types", all_types_rows())
    (counts,) = load_counts(r).values()
    assert counts == {"inserted": 9, "updated": 0, "deleted": 0, "unchanged": 0,
                      "seq": counts["seq"]} and counts["seq"] >= 9, r
    _, summary = wd.run("types-berlin")
    found = verify_delivery(wd, "types-berlin", summary)
    assert summary["rows"] == 9 and summary["dirty"] == 0
    parts = found["rows_by_partition"]
    # The DST and day-boundary cases land where a Berlin clock says.
    assert parts["2024/03/31/01"] == 1 and parts["2024/03/31/03"] == 1
    assert parts["2024/10/27/02"] == 2
    assert parts["2024/01/01/00"] == 1
    assert parts["1970/01/01/00"] == 1
    assert parts["1950/06/15/12"] == 1   # no summer time in 1950s Germany


def test_every_lake_type_through_a_schema_file(wd):
    wd.write_table("all_types", ["id"], ALL_TYPES + [("num_text", "string")])
    wd.write_schema("types_lake", [
        ("id", "row_id", "int64"), ("s", "text", "string"), ("i", "small", "int32"),
        ("i", "as_decimal", "decimal(20,0)"), ("d", "real", "double"),
        ("d", "real32", "float"), ("b", "flag", "boolean"), ("bin", "blob", "binary"),
        ("ts", "at_ms", "timestamp_ms"), ("ts", "at_us", "timestamp_us"),
        ("ts", "day", "date"), ("num_text", "parsed", "int64"), ("_seq", "seq", "int64"),
        ("_write_time", "written", "timestamp_ms"),
    ])
    wd.write_task("types-lake", source="all_types", schema="schemas/types_lake.yaml",
                  prefix="$yyyy", partition_time={"from": "column", "column": "ts"},
                  concurrency=3)
    rows = [{"id": n, "s": f"s{n}", "i": n * 1000 - 5, "d": n / 4, "b": n % 2 == 0,
             "bin": base64.b64encode(bytes([n])).decode(),
             "ts": f"20{10 + n}-0{1 + n % 9}-1{n % 9}T0{n % 10}:00:00.{n:03d}Z",
             "num_text": str(-n * 7)} for n in range(20)]
    rows.append({"id": 99, "ts": "2001-01-01T00:00:00Z"})
    wd.load("all_types", rows)
    _, summary = wd.run("types-lake")
    verify_delivery(wd, "types-lake", summary)
    assert summary["dirty"] == 0


def test_object_inventory_daily_by_last_modified(wd):
    shutil.copy(REPO / "schemas" / "inventory_lake.yaml", wd.root / "schemas")
    gen = [sys.executable, str(REPO / "scripts" / "gen_inventory.py"), "--rows", "5000",
           "--days", "20", "--buckets", "3", "--seed", "7", "--jobs", "1", "--quiet",
           "--out", str(wd.root / "inv.ndjson")]
    subprocess.run(gen, check=True)
    wd.write_task("inv-daily", destination="lake/inventory", prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "last_modified",
                                  "timezone": "UTC"},
                  schema="schemas/inventory_lake.yaml", concurrency=2)
    r = wd.ok("load", "object_inventory", "inv.ndjson")
    c = load_counts(r)["inv.ndjson"]
    assert (c["inserted"], c["updated"], c["deleted"], c["unchanged"]) == (5000, 0, 0, 0), r
    _, summary = wd.run("inv-daily")
    found = verify_delivery(wd, "inv-daily", summary)
    assert len(found["partitions"]) == 20
    # With hive partitioning DuckDB sees dt as a column equal to each row's day.
    import duckdb
    con = duckdb.connect()
    dest = wd.destination("inv-daily")
    bad = con.execute(
        f"SELECT count(*) FROM read_parquet('{dest}/**/*.parquet', hive_partitioning=true, "
        f"hive_types={{'dt': VARCHAR}}) WHERE dt <> strftime(last_modified AT TIME ZONE 'UTC', "
        f"'%Y-%m-%d')").fetchone()[0]
    assert bad == 0
    # Loading the same report again changes nothing.
    r = wd.ok("load", "object_inventory", "inv.ndjson")
    c2 = load_counts(r)["inv.ndjson"]
    assert (c2["inserted"], c2["updated"], c2["deleted"], c2["unchanged"]) == (0, 0, 0, 5000), r
    assert c2["seq"] == c["seq"], "an unchanged re-import bumped the sequence"


def test_write_time_partitions(wd):
    wd.write_task("by-write", destination="lake/bywrite", prefix="w/$yyyy/$MM/$dd/$HH/$mm",
                  partition_time={"from": "write_time", "timezone": "America/New_York"})
    wd.load("object_inventory", [
        {"bucket": "b", "key": f"k{n}", "version_id": "", "size": n,
         "last_modified": "2020-01-01T00:00:00Z"} for n in range(30)])
    wd.load("object_inventory", [
        {"bucket": "c", "key": f"k{n}", "version_id": "", "size": n} for n in range(10)])
    _, summary = wd.run("by-write")
    found = verify_delivery(wd, "by-write", summary)
    assert sum(found["rows_by_partition"].values()) == 40


def test_second_full_run_replaces_the_first(wd):
    wd.write_task("replace-me", destination="lake/replace", prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "last_modified"}, concurrency=2)
    rows = [{"bucket": "b", "key": f"obj {n}", "version_id": "", "size": n,
             "last_modified": f"2024-05-0{1 + n % 5}T10:00:00Z"} for n in range(200)]
    wd.load("object_inventory", rows)
    _, s1 = wd.run("replace-me")
    first = verify_delivery(wd, "replace-me", s1)
    first_names = {f.relative_to(wd.destination("replace-me")) for f in first["files"]}

    # Change, add and delete rows, then deliver again.
    wd.load("object_inventory", [dict(r, size=r["size"] + 1) for r in rows[:50]] + [
        {"bucket": "b", "key": f"new {n}", "version_id": "",
         "last_modified": "2024-05-09T00:00:00Z"} for n in range(25)])
    wd.write_ndjson("del.ndjson", [{"bucket": "b", "key": f"obj {n}", "version_id": ""}
                                   for n in range(150, 200)])
    r = wd.ok("load", "object_inventory", "del.ndjson", "--delete")
    assert load_counts(r)["del.ndjson"]["deleted"] == 50, r
    inv = {t["table"]: t for t in wd.tables_json()}["object_inventory"]
    assert inv["rows"] == 175 and inv["tombstones"] == 50, inv
    _, s2 = wd.run("replace-me")
    second = verify_delivery(wd, "replace-me", s2)
    second_names = {f.relative_to(wd.destination("replace-me")) for f in second["files"]}
    assert first_names.isdisjoint(second_names), "old objects were overwritten in place"
    assert s2["rows"] == 200 - 50 + 25
    assert second["run"]["run_id"] != first["run"]["run_id"]
    assert second["run"]["first_object_seq"] >= first["run"]["next_object_seq"]


def test_run_time_snapshots_keep_every_run(wd):
    import duckdb
    wd.write_task("snapshots", destination="lake/snap", prefix="snap=$yyyy-$MM-$dd-$HH",
                  partition_time={"from": "run_time", "timezone": "Asia/Kolkata"},
                  concurrency=2)
    wd.load("object_inventory", [{"bucket": "b", "key": f"k{n}", "version_id": ""}
                                 for n in range(40)])
    _, s1 = wd.run("snapshots")
    first = verify_delivery(wd, "snapshots", s1)
    wd.load("object_inventory", [{"bucket": "b", "key": f"z{n}", "version_id": ""}
                                 for n in range(5)])
    _, s2 = wd.run("snapshots")
    run2 = wd.status("snapshots")["last_run"]
    files = wd.objects("snapshots")
    # Nothing of the first run was removed; the second run added its own objects.
    assert set(first["files"]) <= set(files)
    new = [f for f in files if f not in set(first["files"])]
    assert new and s2["rows"] == 45
    assert len(run2["objects"]) == len(new), (run2["objects"], new)
    dest = wd.destination("snapshots")
    for f in new:
        assert f.parent.relative_to(dest).as_posix() == render_prefix(
            "snap=$yyyy-$MM-$dd-$HH", run2["started_ms"], "Asia/Kolkata")
    flist = ", ".join(f"'{f}'" for f in files)
    total = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet([{flist}])").fetchone()[0]
    assert total == 40 + 45


def test_status_and_tables_json(wd):
    wd.write_task("status-chk")
    # Reading commands never create the store: before it exists they say where they looked.
    for args in (("status", "status-chk"), ("ddl", "status-chk"), ("tables",)):
        r = wd.lakeport(*args, expect=2)
        assert f"no store at {wd.store_path}" in r.err, r
    assert not wd.store_path.exists()
    wd.ok("load", "object_inventory", wd.write_ndjson("in/none.ndjson", []))  # makes it
    st = wd.status("status-chk")
    assert st["last_run"] is None and st["live_objects"] == 0 and st["mode"] == "full", st
    assert st["live_partitions"] == 0, st
    # Before any delivery the DDL is the table alone; an empty table delivers nothing.
    stmts = wd.ddl("status-chk")
    assert len(stmts) == 1 and stmts[0].startswith("CREATE EXTERNAL TABLE IF NOT EXISTS"), stmts
    _, summary = wd.run("status-chk")
    assert (summary["rows"], summary["objects"], summary["partitions"]) == (0, 0, 0), summary
    assert wd.objects("status-chk") == [] and len(wd.ddl("status-chk")) == 1
    wd.load("object_inventory", [{"bucket": "b", "key": "k", "version_id": ""}])
    _, summary = wd.run("status-chk")
    verify_delivery(wd, "status-chk", summary)
    tables = {t["table"]: t for t in wd.tables_json()}
    inv = tables["object_inventory"]
    assert inv["rows"] == 1 and inv["tombstones"] == 0 and inv["max_seq"] >= 1, inv
    r = wd.ok("status", "--json")
    assert any(t["task"] == "status-chk" for t in json.loads(r.out)["tasks"])
    r = wd.ok("validate")
    assert r.lines == ["ok: 1 tasks, 0 watchers, 1 tables"], r
