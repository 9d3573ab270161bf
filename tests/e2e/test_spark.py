"""`lakeport ddl` executed unchanged, statement by statement, in Spark SQL with Hive support
(pyspark, local mode, Derby metastore in a temp folder); then Spark's counts, per-partition
counts and values equal the store's. One SparkSession serves the whole module (start-up takes
several seconds)."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, Workdir, utc_date, verify_delivery
from test_delivery import ALL_TYPES, all_types_rows


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession

    d = tmp_path_factory.mktemp("spark")
    session = (
        SparkSession.builder.master("local[1]")
        .appName("lakeport-e2e")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.warehouse.dir", str(d / "warehouse"))
        .config("spark.hadoop.javax.jdo.option.ConnectionURL",
                f"jdbc:derby:;databaseName={d / 'metastore'};create=true")
        .config("spark.driver.extraJavaOptions",
                f"-Dderby.system.home={d} -Duser.timezone=UTC")
        .enableHiveSupport()
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    assert session.conf.get("spark.sql.catalogImplementation") == "hive"
    yield session
    session.stop()


def norm(v):
    """Partition values compare as text, integers without leading zeros (Hive may type them)."""
    s = str(v)
    return str(int(s)) if s.isdigit() else s


def partition_key(rel):
    """Partition values of a partition path: `k=v` segments give v, plain segments themselves."""
    return tuple(norm(seg.split("=", 1)[1] if "=" in seg else seg) for seg in rel.split("/"))


def run_ddl(spark, wd, task, found):
    """Executes the task's DDL in Spark and checks counts; returns the table name."""
    stmts = wd.ddl(task)
    create, alters = stmts[0], stmts[1:]
    assert create.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS "), create
    assert "STORED AS PARQUET" in create and "PARTITIONED BY" in create, create
    assert re.search(r"LOCATION '[^']+'", create), create
    assert len(alters) == len(found["partitions"]), (alters, found["partitions"])
    for a in alters:
        assert re.match(r"^ALTER TABLE \S+ ADD IF NOT EXISTS PARTITION \(.+\) LOCATION '[^']+'$",
                        a, re.S), a
    for s in stmts:
        spark.sql(s)
    table = wd.tasks[task]["catalog"]["table"]
    total = spark.sql(f"SELECT count(*) AS n FROM `{table}`").collect()[0]["n"]
    assert total == sum(found["rows_by_partition"].values())
    pcols = [c.name for c in spark.catalog.listColumns(table) if c.isPartition]
    assert pcols, "the table has no partition columns"
    cols = ", ".join(f"`{c}`" for c in pcols)
    got = {tuple(norm(r[c]) for c in pcols): r["n"] for r in spark.sql(
        f"SELECT {cols}, count(*) AS n FROM `{table}` GROUP BY {cols}").collect()}
    fixed = wd.tasks[task]["prefix"].split("$")[0].rsplit("/", 1)
    fixed = fixed[0] + "/" if len(fixed) == 2 else ""
    want = {partition_key(p[len(fixed):]): n for p, n in found["rows_by_partition"].items()}
    assert got == want
    return table


def test_inventory_daily_ddl_runs_in_spark(spark, tmp_path, binary):
    wd = Workdir(tmp_path, binary)
    shutil.copy(REPO / "schemas" / "inventory_lake.yaml", wd.root / "schemas")
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_inventory.py"), "--rows", "3000",
                    "--days", "12", "--seed", "3", "--jobs", "1", "--quiet",
                    "--out", str(wd.root / "inv.ndjson")], check=True)
    wd.ok("load", "object_inventory", "inv.ndjson")
    # A relative destination: the DDL must still carry an absolute location.
    wd.write_task("spark-daily", destination="lake/inventory", prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "last_modified"},
                  schema="schemas/inventory_lake.yaml",
                  catalog={"dialect": "hive", "table": "spark_inventory_daily"})
    _, summary = wd.run("spark-daily")
    found = verify_delivery(wd, "spark-daily", summary)
    table = run_ddl(spark, wd, "spark-daily", found)
    store = wd.store_rows("object_inventory")
    row = spark.sql(
        f"SELECT sum(size_bytes) AS s, count(DISTINCT object_key) AS k, "
        f"sum(CAST(is_latest AS INT)) AS latest, sum(tagging_count) AS tags, "
        f"count(crc64) AS crc, max(last_modified_date) AS maxday FROM `{table}`").collect()[0]
    assert row["s"] == sum(r["size"] for r in store if r["size"] is not None)
    assert row["k"] == len({r["key"] for r in store})
    assert row["latest"] == sum(1 for r in store if r["is_latest"])
    assert row["tags"] == sum(r["tagging_count"] or 0 for r in store)
    assert row["crc"] == sum(1 for r in store if r["crc64"] is not None)
    assert str(row["maxday"]) == utc_date(max(r["last_modified"] for r in store))


def test_berlin_hourly_ddl_runs_in_spark(spark, tmp_path, binary):
    wd = Workdir(tmp_path, binary)
    wd.write_table("all_types", ["id"], ALL_TYPES)
    wd.load("all_types", all_types_rows())
    wd.write_task("spark-berlin", source="all_types",
                  destination=f"file://{wd.root / 'lake' / 'berlin'}",
                  prefix="$yyyy/$MM/$dd/$HH",
                  partition_time={"from": "column", "column": "ts", "timezone": "Europe/Berlin"},
                  catalog={"dialect": "hive", "table": "spark_types_berlin"})
    _, summary = wd.run("spark-berlin")
    found = verify_delivery(wd, "spark-berlin", summary)
    table = run_ddl(spark, wd, "spark-berlin", found)
    # Every column decodes in Spark to the store's value.
    got = {r["id"]: tuple(r) for r in spark.sql(
        f"SELECT id, s, i, d, b, hex(bin) AS bin, unix_millis(ts) AS ts, _seq, "
        f"unix_millis(_write_time) AS wt FROM `{table}`").collect()}
    want = {}
    for r in wd.store_rows("all_types"):
        want[r["id"]] = (r["id"], r["s"], r["i"], r["d"],
                         None if r["b"] is None else bool(r["b"]),
                         None if r["bin"] is None else r["bin"].hex().upper(),
                         r["ts"], r["_seq"], r["_write_time"])
    assert got == want


def test_write_time_ddl_with_fixed_prefix_runs_in_spark(spark, tmp_path, binary):
    wd = Workdir(tmp_path, binary)
    wd.load("object_inventory", [{"bucket": "b", "key": f"k{n}", "version_id": "", "size": n}
                                 for n in range(25)])
    wd.write_task("spark-write", destination="lake/by-write", prefix="inv/$yyyy/$MM/$dd/$HH/$mm",
                  partition_time={"from": "write_time", "timezone": "America/New_York"},
                  catalog={"dialect": "hive", "table": "spark_by_write"})
    _, summary = wd.run("spark-write")
    found = verify_delivery(wd, "spark-write", summary)
    table = run_ddl(spark, wd, "spark-write", found)
    s = spark.sql(f"SELECT sum(size) AS s FROM `{table}`").collect()[0]["s"]
    assert s == sum(range(25))
