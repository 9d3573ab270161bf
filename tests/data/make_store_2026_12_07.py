"""Made tests/data/store-2026-12-07.tar.gz with the lakeport of 2026-12-07 (the debug build of
b9245f9, before the SQLite store computed object_inventory's prefix): two S3 reports imported
(200 objects, keys with spaces and accents; the next day's with changes and deletes), rows
loaded with a wrong prefix and without one, a delete, a table of its own (items), and a full
and an incremental delivery. Kept to say how the fixture was made; it needs that release:

    python3 tests/data/make_store_2026_12_07.py OLD_LAKEPORT OUT
    (cd OUT && tar czf store-2026-12-07.tar.gz lakeport.db lake pipelines schemas)
"""
import json, subprocess, sys, datetime as dt
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/reports.py
import reports
lp, proj = sys.argv[1], Path(sys.argv[2])
(proj / "schemas").mkdir(parents=True, exist_ok=True)
(proj / "pipelines").mkdir(exist_ok=True)
(proj / "schemas" / "items.yaml").write_text(
    "table: items\nprimary_key: [id]\ncolumns:\n  - { name: id, type: int64 }\n"
    "  - { name: name, type: string }\n")
for name, source, mode, prefix in [("inv-full", "object_inventory", "full", "dt=$yyyy-$MM-$dd"),
                                   ("inv-inc", "object_inventory", "incremental", "dt=$yyyy-$MM-$dd"),
                                   ("items-inc", "items", "incremental", "")]:
    (proj / "pipelines" / f"{name}.yaml").write_text(
        f"name: {name}\nsource: {source}\ndestination: lake/{name}\nprefix: \"{prefix}\"\n"
        f"mode: {mode}\npartition_time: {{ from: write_time }}\n")
def run(*args):
    r = subprocess.run([lp, "--store", "sqlite:lakeport.db", *args], cwd=proj, capture_output=True, text=True)
    assert r.returncode == 0, r
    return r.stdout
objs = reports.make_objects(n=200, seed=11, bucket="src-bucket")
day1 = reports.write_s3(proj / "reports", objs, created=dt.datetime(2024, 6, 2, 1, 0, tzinfo=dt.timezone.utc))
run("inventory", "import", day1.url)
objs2, _ = reports.mutate(objs, seed=12, add=15, change=15, remove=15)
day2 = reports.write_s3(proj / "reports", objs2, created=dt.datetime(2024, 6, 3, 1, 0, tzinfo=dt.timezone.utc))
run("inventory", "import", day2.url)
rows = [{"bucket": "loaded", "key": k, "version_id": "", "size": i}
        for i, k in enumerate(["top", "a/b/c d.txt", "ü/é/x", "x//y", "dir/"])]
rows.append({"bucket": "loaded", "key": "given/wrong", "version_id": "", "prefix": "elsewhere/", "size": 9})
(proj / "loaded.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows))
run("load", "object_inventory", "loaded.ndjson")
(proj / "gone.ndjson").write_text(json.dumps({"bucket": "loaded", "key": "top", "version_id": ""}) + "\n")
run("load", "object_inventory", "gone.ndjson", "--delete")
(proj / "items.ndjson").write_text("".join(json.dumps({"id": i, "name": f"n{i}"}) + "\n" for i in range(50)))
run("load", "items", "items.ndjson")
for t in ("inv-full", "inv-inc", "items-inc"):
    run("run", t)
print(run("tables"))
