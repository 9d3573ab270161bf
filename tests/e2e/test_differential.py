"""Differential mode and delivered deletes, read back by DuckDB.

Differential: the first run is a consistent snapshot at the store's sequence S (a writer keeps
writing meanwhile), later runs are incremental from S; the lake then holds every row version
the runs saw exactly once, none lost at the switch. `deletes: emit`: a delete arrives as a row
with its key, `_op = 'delete'` and its `_seq` (upserts carry `_op = 'upsert'`), placed by the
time it was deleted; `lakeport store compact` purges only tombstones every such task has
delivered past."""

import json
import subprocess
import threading

from conftest import duck, run_records, utc_date

COLUMNS = [("id", "int64"), ("name", "string"), ("size", "int64"), ("at", "timestamp_ms")]


def rows(ids, name, day):
    return [{"id": i, "name": f"{name}-{i}", "size": i * 10,
             "at": f"2024-05-{day:02d}T{i % 24:02d}:00:00Z"} for i in ids]


def setup(wd, mode="differential", **keys):
    wd.write_table("items", ["id"], COLUMNS)
    wd.write_task("diff", source="items", mode=mode, prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "at", "timezone": "UTC"}, **keys)


def read(files, columns="id, name, _seq"):
    """Rows of the given objects as tuples, in `_seq` order."""
    if not files:
        return []
    return [tuple(r) for r in duck().execute(
        f"SELECT {columns} FROM read_parquet(?, filename = true) ORDER BY _seq",
        [[str(f) for f in files]]).fetchall()]


def test_differential_switches_to_incremental_without_gap_or_duplicate(wd):
    setup(wd, concurrency=2)
    n = 60_000
    wd.load("items", rows(range(1, n + 1), "a", 1))

    # A writer updates rows in small batches for as long as the snapshot run takes.
    stop = threading.Event()
    loads = []

    def writer():
        k = 0
        while not stop.is_set() and k < 200:
            k += 1
            ids = range(1 + (k * 97) % n, 1 + (k * 97) % n + 50)
            wd.load("items", rows(ids, f"w{k}", 2), name=f"in/w{k}.ndjson")
            loads.append(k)

    t = threading.Thread(target=writer)
    run = wd.spawn("run", "diff", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t.start()
    try:
        out, err = run.communicate(timeout=300)
        during = len(loads)
    finally:
        stop.set()
        t.join()
    assert run.returncode == 0, err
    first = run_records(wd, "diff")[-1]
    assert (first["mode"], first["seq_from"]) == ("differential", 0), first
    snapshot_files = set(wd.objects("diff"))
    snap = read(snapshot_files)
    assert len(snap) == n and len({i for i, *_ in snap}) == n, "the snapshot holds each row once"
    assert max(s for *_, s in snap) <= first["seq_to"]
    assert during > 0, "the writer committed nothing while the snapshot ran"

    # The next runs continue from the snapshot's sequence.
    wd.load("items", rows(range(n + 1, n + 11), "new", 3))
    wd.run("diff")
    wd.run("diff")
    later = run_records(wd, "diff")[-2:]
    assert [r["mode"] for r in later] == ["incremental", "incremental"], later
    assert later[0]["seq_from"] == first["seq_to"], (first, later)
    inc = read(set(wd.objects("diff")) - snapshot_files)
    assert all(s > first["seq_to"] for *_, s in inc), "an incremental row repeats the snapshot"
    store = {r["id"]: (r["name"], r["_seq"]) for r in wd.store_rows("items")}
    expected_inc = sorted((i, name, s) for i, (name, s) in store.items() if s > first["seq_to"])
    assert sorted(inc) == expected_inc, "the incremental runs miss or repeat a change"

    union = snap + inc
    keys = [(i, s) for i, _, s in union]
    assert len(keys) == len(set(keys)), "a change was delivered twice"
    newest = {}
    for i, name, s in union:
        if s > newest.get(i, ("", 0))[1]:
            newest[i] = (name, s)
    assert newest == store, "the lake's newest version of some row is not the store's"
    assert wd.status("diff")["lag"]["rows_behind"] == 0


def test_deletes_are_emitted_as_rows_and_compaction_waits_for_them(wd):
    setup(wd, mode="incremental", deletes="emit")
    wd.load("items", rows(range(1, 21), "a", 1))
    _, first = wd.run("diff")
    before = set(wd.objects("diff"))
    got = read(before, "id, name, _seq, _op")
    assert len(got) == 20 and {op for *_, op in got} == {"upsert"}, got

    wd.ok("load", "items", "--delete", wd.write_ndjson("in/del.ndjson",
                                                       [{"id": 3}, {"id": 4}, {"id": 5}]))
    wd.load("items", rows([6, 7], "b", 2))
    assert wd.status("diff")["lag"]["rows_behind"] == 5, "deletes count as changes behind"

    # Compaction keeps what the task has not delivered.
    r = wd.ok("store", "compact", "--json")
    (items,) = [t for t in json.loads(r.out) if t["table"] == "items"]
    assert (items["purged"], items["tombstones_left"], items["held_by"]) == (0, 3, "diff"), items

    wd.run("diff")
    run = run_records(wd, "diff")[-1]
    new = read(set(wd.objects("diff")) - before,
               "id, name, _seq, _op, size, epoch_ms(\"at\"), epoch_ms(_write_time), "
               "regexp_extract(filename, 'dt=([0-9-]+)', 1)")
    deletes = [r for r in new if r[3] == "delete"]
    upserts = [r for r in new if r[3] == "upsert"]
    assert sorted(r[0] for r in deletes) == [3, 4, 5], new
    assert sorted(r[0] for r in upserts) == [6, 7], new
    tombstones = {r["id"]: r for r in wd.store_rows("items", live_only=False) if r["_deleted"]}
    for i, name, seq, _, size, at, write_time, dt in deletes:
        assert (name, size, at) == (None, None, None), "a delete carries only its key"
        assert seq == tombstones[i]["_seq"] and run["seq_from"] < seq <= run["seq_to"]
        # A delete has no event time: it is placed by the time it was deleted.
        assert dt == utc_date(tombstones[i]["_write_time"]), (i, dt)
    assert {r[-1] for r in upserts} == {"2024-05-02"}

    r = wd.ok("store", "compact", "--json")
    (items,) = [t for t in json.loads(r.out) if t["table"] == "items"]
    assert (items["purged"], items["tombstones_left"]) == (3, 0), items
    assert items["up_to_seq"] == run["seq_to"]
    (stats,) = [t for t in wd.tables_json() if t["table"] == "items"]
    assert stats["tombstones"] == 0 and stats["rows"] == 17, stats
    # Purged tombstones are not delivered again, and nothing else is either.
    _, third = wd.run("diff")
    assert third["rows"] == 0, third


def test_emitting_deletes_needs_the_key_and_seq_in_the_lake(wd):
    setup(wd, mode="incremental", deletes="emit", schema="schemas/lake.yaml")
    wd.write_schema("lake", [("name", "name", "string"), ("size", "size", "int64")])
    r = wd.lakeport("validate", expect=2)
    assert "deletes: emit" in r.err and "does not carry id, _seq" in r.err, r
