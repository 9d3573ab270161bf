"""`lakeport load`: NDJSON and CSV values of every store type reach the store exactly (read
back with Python's sqlite3), formats come from the extension or --format, and the counts,
_seq and _write_time follow DESIGN.md (a write that changes nothing bumps nothing)."""

import time

from conftest import load_counts, ms_of

TYPES = [("id", "int64"), ("s", "string"), ("i", "int64"), ("d", "double"), ("b", "bool"),
         ("bin", "binary"), ("ts", "timestamp_ms")]


def test_values_of_every_type_in_both_formats(wd):
    wd.write_table("all_types", ["id"], TYPES)
    wd.write("a.csv", (
        'id,s,i,d,b,bin,ts\n'
        '1,"comma, and ""quotes""",-9223372036854775808,1.5e-7,true,AAEC,2024-01-01T12:00:00Z\n'
        '2,Grüße,9223372036854775807,-0.25,false,,1700000000123\n'
        '3,,,,,,\n'
        '4,x,0,3,true,aGk=,1969-12-31T23:59:59.999+00:00\n'))
    wd.write_ndjson("b.jsonl", [
        {"id": 5, "s": "", "i": 1, "d": 2, "b": True, "bin": "",
         "ts": "2024-06-30T23:00:00-02:00"},
        {"id": 6, "s": None, "i": None, "ts": 0}])
    wd.write_ndjson("c.json", [{"id": 7, "s": "json ext", "d": 1e300}])
    wd.write_ndjson("d.txt", [{"id": 8, "s": "forced ndjson"}])
    wd.write("e.data", "id,s\n9,forced csv\n")
    r = wd.ok("load", "all_types", "a.csv", "b.jsonl", "c.json")
    counts = load_counts(r)
    assert [counts[f]["inserted"] for f in ("a.csv", "b.jsonl", "c.json")] == [4, 2, 1], r
    assert load_counts(wd.ok("load", "all_types", "d.txt", "--format", "ndjson"))["d.txt"]["inserted"] == 1
    assert load_counts(wd.ok("load", "all_types", "e.data", "--format", "csv"))["e.data"]["inserted"] == 1

    got = {r["id"]: r for r in wd.store_rows("all_types")}
    assert set(got) == set(range(1, 10))
    assert got[1]["s"] == 'comma, and "quotes"' and got[1]["i"] == -(2**63)
    assert got[1]["d"] == 1.5e-7 and got[1]["b"] == 1
    assert got[1]["bin"] == b"\x00\x01\x02" and got[1]["ts"] == ms_of("2024-01-01T12:00:00Z")
    assert got[2]["s"] == "Grüße" and got[2]["i"] == 2**63 - 1 and got[2]["d"] == -0.25
    assert got[2]["b"] == 0 and got[2]["bin"] is None and got[2]["ts"] == 1700000000123
    # An empty CSV field of a non-key column is NULL (strings too).
    assert all(got[3][c] is None for c in ("s", "i", "d", "b", "bin", "ts")), got[3]
    assert got[4]["b"] == 1 and got[4]["bin"] == b"hi" and got[4]["ts"] == -1
    assert got[4]["d"] == 3.0
    # JSON: "" stays an empty string, missing and null are NULL, integers fit doubles.
    assert got[5]["s"] == "" and got[5]["bin"] == b"" and got[5]["d"] == 2.0
    assert got[5]["ts"] == ms_of("2024-07-01T01:00:00Z")
    assert got[6]["s"] is None and got[6]["i"] is None and got[6]["ts"] == 0
    assert got[6]["bin"] is None and got[6]["b"] is None
    assert got[7]["d"] == 1e300 and got[8]["s"] == "forced ndjson" and got[9]["s"] == "forced csv"


def test_counts_sequence_and_write_time(wd):
    rows = [{"bucket": "b", "key": f"k{n}", "version_id": "", "size": n} for n in range(3)]
    before = int(time.time() * 1000)
    c1 = load_counts(wd.load("object_inventory", rows, name="one.ndjson"))["one.ndjson"]
    after = int(time.time() * 1000)
    assert (c1["inserted"], c1["updated"], c1["deleted"], c1["unchanged"]) == (3, 0, 0, 0)
    store = wd.store_rows("object_inventory")
    seq_by_key = {r["key"]: r["_seq"] for r in store}
    seqs = sorted(seq_by_key.values())
    assert len(set(seqs)) == 3 and seqs[-1] == c1["seq"], (seqs, c1)
    assert all(before <= r["_write_time"] <= after for r in store), (before, after, store)
    assert all(r["_deleted"] == 0 for r in store)

    # One changed row: one update, one new _seq; the others keep theirs.
    rows[1]["size"] = 100
    c2 = load_counts(wd.load("object_inventory", rows, name="two.ndjson"))["two.ndjson"]
    assert (c2["inserted"], c2["updated"], c2["unchanged"]) == (0, 1, 2), c2
    assert c2["seq"] == c1["seq"] + 1
    by_key = {r["key"]: r for r in wd.store_rows("object_inventory")}
    assert by_key["k1"]["_seq"] == c2["seq"] and by_key["k1"]["size"] == 100
    assert by_key["k0"]["_seq"] == seq_by_key["k0"] and by_key["k2"]["_seq"] == seq_by_key["k2"]

    # Nothing changed: nothing bumped.
    c3 = load_counts(wd.load("object_inventory", rows, name="three.ndjson"))["three.ndjson"]
    assert (c3["inserted"], c3["updated"], c3["unchanged"], c3["seq"]) == (0, 0, 3, c2["seq"])

    # A delete leaves a tombstone with its own _seq.
    wd.write_ndjson("del.ndjson", [{"bucket": "b", "key": "k2", "version_id": ""}])
    c4 = load_counts(wd.ok("load", "object_inventory", "del.ndjson", "--delete"))["del.ndjson"]
    assert c4["deleted"] == 1 and c4["seq"] == c2["seq"] + 1, c4
    tomb = [r for r in wd.store_rows("object_inventory", live_only=False) if r["_deleted"]]
    assert len(tomb) == 1 and tomb[0]["key"] == "k2" and tomb[0]["_seq"] == c4["seq"], tomb
    t = {x["table"]: x for x in wd.tables_json()}["object_inventory"]
    assert (t["rows"], t["tombstones"], t["max_seq"]) == (2, 1, c4["seq"]), t


def test_binary_and_inventory_csv(wd):
    # Inventory-style CSV: booleans, sizes, timestamps, keys with spaces and non-ASCII.
    wd.write("inv.csv", (
        "bucket,key,version_id,size,last_modified,is_latest,etag\n"
        "b,folder one/Überblick.pdf,,10,2024-02-03T04:05:06.789Z,true,abc\n"
        "b,日本/x,v1,0,2024-02-03T04:05:06Z,false,\n"))
    wd.ok("load", "object_inventory", "inv.csv")
    got = {(r["key"], r["version_id"]): r for r in wd.store_rows("object_inventory")}
    a = got[("folder one/Überblick.pdf", "")]
    assert a["size"] == 10 and a["last_modified"] == ms_of("2024-02-03T04:05:06.789Z")
    assert a["is_latest"] == 1 and a["etag"] == "abc"
    b = got[("日本/x", "v1")]
    assert b["is_latest"] == 0 and b["etag"] is None and b["size"] == 0
