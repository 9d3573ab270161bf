"""Run manifests and `ddl --new-partitions`: every run writes
`<destination>/_lakeport/<task>/runs/<run id>.json` naming exactly the objects it added, each
with its size, MD5, rows and `_seq` range as read back from the file itself (hashlib, DuckDB);
the partitions it added are the ones no earlier run wrote to, and `ddl --new-partitions` gives
their ADD PARTITION statements; the manifest of a run that never committed is removed by the
run that takes it over."""

import hashlib
import json
import time

from conftest import duck
from test_incremental import fake_running_run, rows, setup


def manifest(wd, run_id):
    path = wd.destination("inc") / "_lakeport" / "inc" / "runs" / f"{run_id}.json"
    assert path.is_file(), f"no manifest for run {run_id}"
    return json.loads(path.read_text())


def check_objects(wd, doc, files):
    """The manifest's objects are exactly `files`, and what it says of each is true."""
    dest = wd.destination("inc")
    assert sorted(o["path"] for o in doc["objects"]) == sorted(
        str(f.relative_to(dest)) for f in files)
    for o in doc["objects"]:
        f = dest / o["path"]
        data = f.read_bytes()
        assert o["bytes"] == len(data) and o["md5"] == hashlib.md5(data).hexdigest(), o
        assert o["url"] == f"{doc['destination']}/{o['path']}" and o["url"].startswith("file://")
        assert o["partition"] == o["path"].rsplit("/", 1)[0]
        n, lo, hi = duck().execute("SELECT count(*), min(_seq), max(_seq) FROM read_parquet(?)",
                                   [str(f)]).fetchone()
        assert (o["rows"], o["seq_min"], o["seq_max"]) == (n, lo, hi), o
        assert doc["seq_from"] < lo <= hi <= doc["seq_to"], (doc, o)
    assert doc["rows"] == sum(o["rows"] for o in doc["objects"])
    assert doc["partitions"] == sorted({o["partition"] for o in doc["objects"]})


def new_partition_ddl(wd, *args):
    text = wd.ok("ddl", "inc", "--new-partitions", *args).out.strip()
    return [s for s in text.split(";\n") if s.strip()]


def test_each_run_writes_a_manifest_of_exactly_its_objects(wd):
    setup(wd)
    wd.load("items", rows(range(1, 31), "a", 1) + rows(range(31, 41), "a", 2))
    wd.run("inc")
    st = wd.status("inc")["last_run"]
    first = manifest(wd, st["run_id"])
    files1 = set(wd.objects("inc"))
    check_objects(wd, first, files1)
    assert (first["task"], first["mode"], first["format_version"]) == ("inc", "incremental", 1)
    assert first["new_partitions"] == ["dt=2024-05-01", "dt=2024-05-02"] == first["partitions"]
    ddl = new_partition_ddl(wd)
    assert len(ddl) == 2 and all("ADD IF NOT EXISTS PARTITION" in s for s in ddl), ddl
    assert "'2024-05-01'" in ddl[0] and "'2024-05-02'" in ddl[1], ddl
    ddl_first = ddl

    # A late row goes to an old partition (not new), another to a new one.
    wd.load("items", rows([5], "late", 1) + rows([50], "a", 3))
    wd.run("inc")
    second_id = wd.status("inc")["last_run"]["run_id"]
    second = manifest(wd, second_id)
    check_objects(wd, second, set(wd.objects("inc")) - files1)
    assert second["partitions"] == ["dt=2024-05-01", "dt=2024-05-03"], second
    assert second["new_partitions"] == ["dt=2024-05-03"], second
    ddl = new_partition_ddl(wd)
    assert len(ddl) == 1 and "'2024-05-03'" in ddl[0], ddl
    assert new_partition_ddl(wd, "--run", str(st["run_id"])) == ddl_first

    # A run with nothing to deliver still writes its (empty) manifest and adds no partition.
    wd.run("inc")
    third = manifest(wd, wd.status("inc")["last_run"]["run_id"])
    assert (third["objects"], third["new_partitions"]) == ([], []), third
    assert new_partition_ddl(wd) == []


def test_the_manifest_of_an_interrupted_run_is_removed_by_the_run_that_takes_it_over(wd):
    setup(wd)
    wd.load("items", rows(range(1, 11), "a", 1))
    wd.run("inc")
    first = wd.status("inc")["last_run"]["run_id"]
    dead, _ = fake_running_run(wd, int(time.time() * 1000) - 3_600_000)
    # It died after writing its manifest, before committing.
    runs = wd.destination("inc") / "_lakeport" / "inc" / "runs"
    (runs / f"{dead}.json").write_text('{"objects": []}')
    wd.load("items", rows(range(11, 16), "a", 2))
    wd.run("inc")
    assert not (runs / f"{dead}.json").exists()
    live = wd.status("inc")["last_run"]["run_id"]
    assert sorted(p.name for p in runs.iterdir()) == sorted([f"{live}.json", f"{first}.json"])
    r = wd.lakeport("ddl", "inc", "--new-partitions", "--run", str(dead), expect=1)
    assert f"run {dead} did not succeed (failed)" in r.err, r


def prunes_after(run_id):
    """Which runs prune old manifests: the hash of src/delivery/manifest.rs, computed here."""
    return ((run_id * 0x9E3779B97F4A7C15) % 2**64) >> 60 == 0


def test_old_manifests_are_pruned_to_the_newest_runs(wd):
    setup(wd, mode="full")
    wd.write_task("inc", source="items", mode="full", prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "at", "timezone": "UTC"},
                  manifests={"keep": 3})
    wd.load("items", rows(range(1, 6), "a", 1))
    folder = wd.destination("inc") / "_lakeport" / "inc" / "runs"
    pruned_at = []
    for _ in range(40):
        wd.run("inc")
        run_id = wd.status("inc")["last_run"]["run_id"]
        if prunes_after(run_id):
            pruned_at.append(run_id)
        ids = sorted(int(p.stem) for p in folder.glob("*.json"))
        # The newest three as of the last prune, and every run since.
        last = pruned_at[-1] if pruned_at else 0
        expected = [i for i in range(1, run_id + 1) if i > last - 3]
        assert ids == expected, (run_id, pruned_at, ids)
    assert pruned_at, "no run of 40 pruned: the hash would not pick one in sixteen"
    r = wd.lakeport("validate")
    assert r.code == 0, r
    wd.write_task("inc", source="items", mode="full", manifests={"keep": 0})
    r = wd.lakeport("validate", expect=2)
    assert "inc.yaml: manifests.keep: 0: expected at least 1" in r.err, r.err
